public import Foundation

/// Web identity (EKS IRSA and the like): `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (+
/// `AWS_ROLE_SESSION_NAME`), exchanged for temporary credentials with an unsigned STS
/// `AssumeRoleWithWebIdentity` call. STS endpoint: `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, or
/// `https://sts.{region}.amazonaws.com`.
public struct WebIdentityCredentialProvider: CredentialProvider {
    let environment: [String: String]
    let transport: HTTPTransport
    let region: String?
    let now: @Sendable () -> Date
    public var name: String { "web identity" }

    public init(environment: [String: String], transport: HTTPTransport, region: String?, now: @escaping @Sendable () -> Date = Date.init) {
        self.environment = environment
        self.transport = transport
        self.region = region
        self.now = now
    }

    var endpoint: URL {
        STSEndpoint(environment: environment).url(region: region)
    }

    public func credentials() async throws(CredentialError) -> AWSCredentials? {
        guard let tokenFile = environment["AWS_WEB_IDENTITY_TOKEN_FILE"], !tokenFile.isEmpty,
            let roleARN = environment["AWS_ROLE_ARN"], !roleARN.isEmpty
        else { return nil }
        guard let data = FileManager.default.contents(atPath: tokenFile),
            let token = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty
        else {
            throw CredentialError(provider: name, message: "cannot read the token file \(tokenFile)")
        }
        let session =
            environment["AWS_ROLE_SESSION_NAME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "cognito-reset-\(Int(now().timeIntervalSince1970))"
        let form = [
            ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", roleARN),
            ("RoleSessionName", session), ("WebIdentityToken", token),
        ].map { "\($0.0)=\(Self.formEncode($0.1))" }.joined(separator: "&")
        let response: HTTPResponseData
        do {
            response = try await transport.send(
                method: "POST", url: endpoint,
                headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Accept", "application/xml")],
                body: Array(form.utf8))
        } catch {
            throw .unreachable(name, "STS", error)
        }
        let fields = SimpleXML.fields(in: response.body, named: ["AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration", "Code", "Message"])
        guard response.status == 200 else {
            let code = fields["Code"] ?? "HTTP \(response.status)"
            throw .answered(
                name, status: response.status, code: fields["Code"],
                "STS refused AssumeRoleWithWebIdentity: \(code) \(fields["Message"] ?? "")")
        }
        guard let key = fields["AccessKeyId"], let secret = fields["SecretAccessKey"], let sessionToken = fields["SessionToken"] else {
            throw CredentialError(provider: name, message: "STS response without credentials")
        }
        return AWSCredentials(
            accessKeyID: key, secretAccessKey: secret, sessionToken: sessionToken,
            expiration: fields["Expiration"].flatMap(Timestamps.parse), source: name)
    }

    /// application/x-www-form-urlencoded value encoding.
    static func formEncode(_ value: String) -> String {
        SigV4Signer.uriEncode(value)
    }
}

/// Reads the text of a few named elements out of a small, flat XML document (STS replies),
/// decoding the five predefined entities. Enough for STS; not a general XML parser.
enum SimpleXML {
    static func fields(in bytes: [UInt8], named names: Set<String>) -> [String: String] {
        let text = String(decoding: bytes, as: UTF8.self)
        var values: [String: String] = [:]
        for name in names {
            guard let open = text.range(of: "<\(name)>"),
                let close = text.range(of: "</\(name)>", range: open.upperBound..<text.endIndex)
            else { continue }
            values[name] = decodeEntities(String(text[open.upperBound..<close.lowerBound]))
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return values
    }

    static func decodeEntities(_ text: String) -> String {
        text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}

/// ISO 8601 timestamps as AWS sends them, with or without fractional seconds.
enum Timestamps {
    static func parse(_ text: String) -> Date? {
        for style in [Date.ISO8601FormatStyle(includingFractionalSeconds: false), Date.ISO8601FormatStyle(includingFractionalSeconds: true)] {
            if let date = try? style.parse(text) { return date }
        }
        return nil
    }
}
