public import Foundation

/// A source of AWS credentials. Returns nil when it is not configured at all (so the chain moves
/// on to the next source) and throws when it is configured but broken (so a typo is not silently
/// replaced by other credentials).
public protocol CredentialProvider: Sendable {
    /// A short name for logs and errors, e.g. "environment".
    var name: String { get }
    func credentials() async throws(CredentialError) -> AWSCredentials?
}

/// Why credentials could not be had. Never contains a secret.
public struct CredentialError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, for the caller to decide between failing, retrying and stopping.
    public enum Kind: Sendable, Equatable {
        /// Missing or broken configuration (a typo, an unreadable file, no source at all).
        case misconfigured
        /// The source is configured but could not be reached (STS, container endpoint, instance
        /// metadata): a dependency is down, not a configuration mistake.
        case unreachable
        /// STS answered and refused to let us assume a pool's role.
        case refused
    }

    public let provider: String
    public let message: String
    public var kind: Kind

    /// True when the source is configured but could not be reached.
    public var isUnreachable: Bool { kind == .unreachable }

    public init(provider: String, message: String, isUnreachable: Bool = false) {
        self.provider = provider
        self.message = message
        self.kind = isUnreachable ? .unreachable : .misconfigured
    }

    /// A configured source that did not answer.
    static func unreachable(_ provider: String, _ what: String, _ error: TransportError) -> CredentialError {
        CredentialError(provider: provider, message: "\(what) unreachable: \(error.kind.rawValue)", isUnreachable: true)
    }

    /// A configured source that answered with an error. A server error (5xx), 429 or a
    /// throttling code is the source having a bad moment, reported as unreachable (the caller
    /// retries, a daemon stays up); anything else (403, a bad role) is a configuration mistake.
    static func answered(_ provider: String, status: Int, code: String? = nil, _ message: String) -> CredentialError {
        let passing = status >= 500 || status == 429 || (code.map { $0.hasPrefix("Throttl") || $0 == "RequestLimitExceeded" } ?? false)
        return CredentialError(provider: provider, message: message, isUnreachable: passing)
    }

    public var description: String { "\(provider) credentials: \(message)" }
}

/// The SDKs' default chain: environment; systemd `LoadCredential=`; web identity (STS);
/// shared credentials and config files; container; EC2 instance metadata (IMDSv2). The first
/// source that is configured answers.
public struct CredentialChain: CredentialProvider {
    public let providers: [any CredentialProvider]
    public var name: String { "chain" }

    public init(providers: [any CredentialProvider]) {
        self.providers = providers
    }

    /// The default chain for `environment`, using `transport` for STS, container and IMDS calls.
    public static func standard(
        environment: [String: String], transport: HTTPTransport, region: String?,
        now: @escaping @Sendable () -> Date = Date.init, metadataTimeout: Duration = .seconds(1)
    ) -> CredentialChain {
        CredentialChain(providers: [
            EnvironmentCredentialProvider(environment: environment),
            SystemdCredentialProvider(environment: environment),
            WebIdentityCredentialProvider(environment: environment, transport: transport, region: region, now: now),
            SharedFilesCredentialProvider(environment: environment),
            ContainerCredentialProvider(environment: environment, transport: transport),
            InstanceMetadataCredentialProvider(environment: environment, transport: transport, timeout: metadataTimeout),
        ])
    }

    public func credentials() async throws(CredentialError) -> AWSCredentials? {
        for provider in providers {
            if let found = try await provider.credentials() { return found }
        }
        return nil
    }
}

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional `AWS_SESSION_TOKEN`.
public struct EnvironmentCredentialProvider: CredentialProvider {
    let environment: [String: String]
    public var name: String { "environment" }

    public init(environment: [String: String]) { self.environment = environment }

    public func credentials() async throws(CredentialError) -> AWSCredentials? {
        let key = environment["AWS_ACCESS_KEY_ID"].flatMap { $0.isEmpty ? nil : $0 }
        let secret = environment["AWS_SECRET_ACCESS_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        switch (key, secret) {
        case (nil, nil):
            return nil
        case (let key?, let secret?):
            return AWSCredentials(
                accessKeyID: key, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"], source: name)
        default:
            throw CredentialError(
                provider: name, message: "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
        }
    }
}
