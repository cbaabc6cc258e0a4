import Foundation

/// EC2 instance metadata, IMDSv2: a session token from `PUT /latest/api/token`, then the role name
/// and its credentials under `/latest/meta-data/iam/security-credentials/`. One-second timeouts;
/// no answer means "not on EC2" (nil), so the chain ends cleanly elsewhere.
/// `AWS_EC2_METADATA_DISABLED=true` turns it off; `AWS_EC2_METADATA_SERVICE_ENDPOINT` moves it.
public struct InstanceMetadataCredentialProvider: CredentialProvider {
    let environment: [String: String]
    let transport: HTTPTransport
    /// Per request; the SDKs use one second, so hosts without IMDS do not wait long.
    let timeout: Duration
    public var name: String { "imds" }

    public init(environment: [String: String], transport: HTTPTransport, timeout: Duration = .seconds(1)) {
        self.environment = environment
        self.transport = transport
        self.timeout = timeout
    }

    var base: String {
        let configured = environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 }
        return (configured ?? "http://169.254.169.254").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
    }

    /// `base` + `path`, or a configuration error naming the variable (it is the only input here).
    private func url(_ path: String) throws(CredentialError) -> URL {
        guard let url = URL(string: base + path), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            url.host != nil
        else {
            throw CredentialError(provider: name, message: "AWS_EC2_METADATA_SERVICE_ENDPOINT: must be an http(s) URL")
        }
        return url
    }

    public func credentials() async throws(CredentialError) -> AWSCredentials? {
        if environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() == "true" { return nil }
        let tokenURL = try url("/latest/api/token")
        guard
            let tokenResponse = try? await transport.send(
                method: "PUT", url: tokenURL,
                headers: [("x-aws-ec2-metadata-token-ttl-seconds", "21600")], timeout: timeout),
            tokenResponse.status == 200
        else { return nil }  // no IMDS here
        let token = String(decoding: tokenResponse.body, as: UTF8.self)
        let headers = [(name: "x-aws-ec2-metadata-token", value: token)]
        /// A GET of the metadata service with the session token; unreachable is the chain's error.
        func get(_ path: String) async throws(CredentialError) -> HTTPResponseData {
            let target = try url(path)
            do {
                return try await transport.send(method: "GET", url: target, headers: headers, timeout: timeout)
            } catch {
                throw .unreachable(name, "instance metadata", error)
            }
        }
        let listing = try await get("/latest/meta-data/iam/security-credentials/")
        guard listing.status == 200,
            let role = String(decoding: listing.body, as: UTF8.self).split(whereSeparator: \.isNewline).first
        else {
            if listing.status == 404 { return nil }  // an instance without a role
            throw .answered(name, status: listing.status, "instance metadata answered HTTP \(listing.status)")
        }
        let document = try await get("/latest/meta-data/iam/security-credentials/\(role)")
        guard document.status == 200 else {
            throw .answered(name, status: document.status, "instance metadata answered HTTP \(document.status) for the role")
        }
        return try JSONCredentials.decode(document.body, tokenKey: "Token", provider: name)
    }
}
