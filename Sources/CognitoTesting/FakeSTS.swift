public import Foundation

/// STS as the fake server answers it (the same server can play STS and Cognito: STS requests are
/// forms, Cognito's JSON).
extension FakeHTTPServer.Reply {
    /// An `AssumeRole` success with these temporary credentials.
    public static func stsCredentials(
        accessKeyID: String, secretAccessKey: String = "fake-secret", sessionToken: String = "fake-session-token",
        expiration: Date = Date().addingTimeInterval(3600)
    ) -> Self {
        let expires = expiration.formatted(.iso8601)
        return .respond(
            status: 200, headers: [("Content-Type", "text/xml")],
            body: """
                <AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>\
                <AccessKeyId>\(accessKeyID)</AccessKeyId><SecretAccessKey>\(secretAccessKey)</SecretAccessKey>\
                <SessionToken>\(sessionToken)</SessionToken><Expiration>\(expires)</Expiration>\
                </Credentials></AssumeRoleResult></AssumeRoleResponse>
                """)
    }

    /// An STS error, e.g. 403 `AccessDenied`.
    public static func stsError(_ status: Int, code: String, message: String = "refused") -> Self {
        .respond(
            status: status, headers: [("Content-Type", "text/xml")],
            body: """
                <ErrorResponse><Error><Type>Sender</Type><Code>\(code)</Code><Message>\(message)</Message></Error>\
                <RequestId>sts-req</RequestId></ErrorResponse>
                """)
    }
}

extension FakeHTTPServer.RecordedRequest {
    /// An STS call (a form post), not a Cognito one.
    public var isSTS: Bool { body.hasPrefix("Action=") }

    /// A form field of an STS call, decoded.
    public func formField(_ name: String) -> String? {
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == name { return String(parts[1]).removingPercentEncoding }
        }
        return nil
    }

    /// The access key id the request was signed with (`Credential=KEY/...` of Authorization).
    public var accessKeyID: String? {
        guard let authorization = header("Authorization"), let range = authorization.range(of: "Credential=") else { return nil }
        return authorization[range.upperBound...].split(separator: "/").first.map(String.init)
    }

    /// The region of the signature's scope (`Credential=KEY/DAY/REGION/SERVICE/aws4_request`).
    public var signingRegion: String? {
        guard let authorization = header("Authorization"), let range = authorization.range(of: "Credential=") else { return nil }
        let scope = authorization[range.upperBound...].split(separator: ",")[0].split(separator: "/")
        return scope.count >= 4 ? String(scope[2]) : nil
    }

    /// The service of the signature's scope (`cognito-idp`, `sts`).
    public var signingService: String? {
        guard let authorization = header("Authorization"), let range = authorization.range(of: "Credential=") else { return nil }
        let scope = authorization[range.upperBound...].split(separator: ",")[0].split(separator: "/")
        return scope.count >= 5 ? String(scope[3]) : nil
    }
}
