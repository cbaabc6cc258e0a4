import Foundation

/// Decodes a Cognito error response: `X-Amzn-ErrorType` and/or a JSON body with `__type` and
/// `message`/`Message`. A body that is not JSON, or is cut short, still yields an error with
/// the HTTP status; nothing here can crash on what a server sends.
enum ErrorResponse {
    static func error(
        status: Int, headers: [(name: String, value: String)], body: [UInt8], operation: String, secrets: [String]
    ) -> CognitoError {
        let requestID = header("x-amzn-requestid", in: headers) ?? header("x-amz-request-id", in: headers)
        let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        // Signature and authorization failures can come as XML from the AWS front end.
        let xml = object == nil && body.first == UInt8(ascii: "<")
            ? SimpleXML.fields(in: body, named: ["Code", "Message"]) : [:]
        let rawType = (object?["__type"] as? String) ?? header("x-amzn-errortype", in: headers) ?? xml["Code"]
        let code = rawType.map(normalise) ?? "HTTP \(status)"
        var message = (object?["message"] as? String) ?? (object?["Message"] as? String) ?? xml["Message"] ?? ""
        if object == nil, rawType == nil, !body.isEmpty {
            message = "unreadable error response (\(body.count) bytes, not JSON)"
        }
        return CognitoError(
            code: code, message: Redaction.scrub(message, secrets: secrets),
            errorClass: .classify(code: code, httpStatus: status),
            httpStatus: status, requestID: requestID, operation: operation)
    }

    /// `aws.protocoltests#Some:http://...` → `Some`: before the first `:`, after the last `#`.
    static func normalise(_ type: String) -> String {
        let beforeColon = type.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return String(beforeColon.split(separator: "#", omittingEmptySubsequences: false).last ?? "")
            .trimmingCharacters(in: .whitespaces)
    }

    static func header(_ name: String, in headers: [(name: String, value: String)]) -> String? {
        headers.first { $0.name.lowercased() == name }?.value
    }
}

/// Removes secrets from text that came from elsewhere (a server's error message may echo input).
enum Redaction {
    static func scrub(_ text: String, secrets: [String]) -> String {
        var text = text
        for secret in secrets where secret.count >= 4 {
            text = text.replacingOccurrences(of: secret, with: "<redacted>")
        }
        return text
    }
}
