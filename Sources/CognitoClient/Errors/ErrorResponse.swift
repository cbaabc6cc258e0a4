import Foundation

/// Decodes a Cognito error response: `X-Amzn-ErrorType` and/or a JSON body with `__type` and
/// `message`/`Message`. A body that is not JSON, or is cut short, still yields an error with
/// the HTTP status; nothing here can crash on what a server sends.
enum ErrorResponse {
    /// The one place that decides what an answer means. Success is only what the protocol calls
    /// success: a 2xx whose body is a JSON object with no error type (`__type` or `code`) and no
    /// `X-Amzn-ErrorType` header. A 2xx carrying an error type is that error; a 2xx whose body is not a JSON object
    /// (an HTML login page of a proxy or captive portal, an empty or cut body) is a transient
    /// `InvalidResponse`; a 3xx (never followed) is a transient `Redirect`; everything else is
    /// decoded as an error response.
    static func outcome(
        of response: HTTPResponseData, operation: String, secrets: [String]
    ) -> Result<String?, CognitoError> {
        let requestID = header("x-amzn-requestid", in: response.headers).map(safeRequestID)
        switch response.status {
        case 200..<300:
            let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
            guard let object else {
                return .failure(
                    CognitoError(
                        code: CognitoError.invalidResponse,
                        message: "HTTP \(response.status) without a JSON object (\(response.body.count) bytes): not an answer from Cognito",
                        errorClass: .transient, httpStatus: response.status, requestID: requestID, operation: operation))
            }
            if object["__type"] != nil || object["code"] != nil || header("x-amzn-errortype", in: response.headers) != nil {
                return .failure(
                    error(
                        status: response.status, headers: response.headers, body: response.body, operation: operation,
                        secrets: secrets))
            }
            return .success(requestID)
        case 300..<400:
            return .failure(
                CognitoError(
                    code: CognitoError.redirect,
                    message: "HTTP \(response.status): the endpoint redirected the call, which is never followed (check the endpoint URL or proxy)",
                    errorClass: .transient, httpStatus: response.status, requestID: requestID, operation: operation))
        default:
            return .failure(
                error(
                    status: response.status, headers: response.headers, body: response.body, operation: operation,
                    secrets: secrets))
        }
    }

    static func error(
        status: Int, headers: [(name: String, value: String)], body: [UInt8], operation: String, secrets: [String]
    ) -> CognitoError {
        let requestID = (header("x-amzn-requestid", in: headers) ?? header("x-amz-request-id", in: headers))
            .map(safeRequestID)
        let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        // Signature and authorization failures can come as XML from the AWS front end.
        let xml =
            object == nil && body.first == UInt8(ascii: "<")
            ? SimpleXML.fields(in: body, named: ["Code", "Message"]) : [:]
        // JSON 1.1 names the type in `__type`; other AWS JSON protocols use `code`.
        let rawType =
            (object?["__type"] as? String) ?? (object?["code"] as? String)
            ?? header("x-amzn-errortype", in: headers) ?? xml["Code"]
        // The type and message are the server's text: bounded and escaped, they go into the
        // database, logs and terminals.
        let code =
            rawType.map(normalise).map { String(SafeText.escaped($0).prefix(128)) }.flatMap { $0.isEmpty ? nil : $0 }
            ?? "HTTP \(status)"
        var message = (object?["message"] as? String) ?? (object?["Message"] as? String) ?? xml["Message"] ?? ""
        if object == nil, rawType == nil, !body.isEmpty {
            message = "unreadable error response (\(body.count) bytes, not JSON)"
        }
        // Secrets are removed before the message is cut, so no part of one can remain.
        message = String(SafeText.escaped(Redaction.scrub(message, secrets: secrets)).prefix(1000))
        return CognitoError(
            code: code, message: message,
            errorClass: errorClass(code: code, status: status),
            httpStatus: status, requestID: requestID, operation: operation)
    }

    /// A request id as the server sent it, escaped and bounded (the audit's column holds 200).
    static func safeRequestID(_ value: String) -> String {
        String(SafeText.escaped(value).prefix(200))
    }

    /// The class of an error response. An error type on a 2xx is not how Cognito answers (a
    /// proxy or a broken intermediary is likelier): throttling and credential errors keep their
    /// class, but nothing on a 2xx fails a job for good.
    static func errorClass(code: String, status: Int) -> CognitoError.ErrorClass {
        let errorClass = CognitoError.ErrorClass.classify(code: code, httpStatus: status)
        return (200..<300).contains(status) && errorClass == .permanent ? .transient : errorClass
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
