import Foundation

/// ECS/EKS container credentials: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on
/// `http://169.254.170.2`) or `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with an `Authorization` header
/// from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
/// A full URI over plain http must point at a loopback or the container agents' link-local address.
public struct ContainerCredentialProvider: CredentialProvider {
    let environment: [String: String]
    let transport: HTTPTransport
    let timeout: Duration
    public var name: String { "container" }

    /// - Parameter timeout: how long the credentials endpoint may take to answer. The agent is
    ///   local, so 5 s is long; tests on a busy machine pass more.
    public init(environment: [String: String], transport: HTTPTransport, timeout: Duration = .seconds(5)) {
        self.environment = environment
        self.transport = transport
        self.timeout = timeout
    }

    func endpoint() throws(CredentialError) -> URL? {
        if let relative = environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"], !relative.isEmpty {
            return URL(string: "http://169.254.170.2" + relative)
        }
        guard let full = environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"], !full.isEmpty else { return nil }
        guard let url = URL(string: full), let host = url.host else {
            throw CredentialError(provider: name, message: "AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL")
        }
        let allowedPlainHosts: Set<String> = ["127.0.0.1", "localhost", "::1", "[::1]", "169.254.170.2", "169.254.170.23", "fd00:ec2::23"]
        guard url.scheme == "https" || (url.scheme == "http" && (allowedPlainHosts.contains(host) || host.hasPrefix("127."))) else {
            throw CredentialError(provider: name, message: "AWS_CONTAINER_CREDENTIALS_FULL_URI over http must be a loopback or container-agent address")
        }
        return url
    }

    public func credentials() async throws(CredentialError) -> AWSCredentials? {
        guard let url = try endpoint() else { return nil }
        var headers: [(name: String, value: String)] = [("Accept", "application/json")]
        if let file = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"], !file.isEmpty {
            guard let data = FileManager.default.contents(atPath: file), let token = String(data: data, encoding: .utf8) else {
                throw CredentialError(provider: name, message: "cannot read \(file)")
            }
            headers.append(("Authorization", token.trimmingCharacters(in: .whitespacesAndNewlines)))
        } else if let token = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"], !token.isEmpty {
            headers.append(("Authorization", token))
        }
        let response: HTTPResponseData
        do {
            response = try await transport.send(method: "GET", url: url, headers: headers, timeout: timeout)
        } catch {
            throw .unreachable(name, "credentials endpoint", error)
        }
        guard response.status == 200 else {
            throw .answered(name, status: response.status, "credentials endpoint answered HTTP \(response.status)")
        }
        return try JSONCredentials.decode(response.body, tokenKey: "Token", provider: name)
    }
}

/// The JSON credential documents of the container and instance metadata services.
enum JSONCredentials {
    static func decode(_ body: [UInt8], tokenKey: String, provider: String) throws(CredentialError) -> AWSCredentials {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any],
            let key = object["AccessKeyId"] as? String, let secret = object["SecretAccessKey"] as? String
        else {
            throw CredentialError(provider: provider, message: "the credentials document is not valid")
        }
        return AWSCredentials(
            accessKeyID: key, secretAccessKey: secret, sessionToken: object[tokenKey] as? String,
            expiration: (object["Expiration"] as? String).flatMap(Timestamps.parse), source: provider)
    }
}
