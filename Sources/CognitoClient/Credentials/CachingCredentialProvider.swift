public import Foundation

/// Caches what another provider returns and refreshes temporary credentials ahead of expiry
/// (botocore's windows: try from 15 minutes before; must from 10 minutes before). Concurrent
/// callers share one refresh: a burst of requests causes one call to STS or IMDS, not many.
public actor CachingCredentialProvider {
    public let base: any CredentialProvider
    let now: @Sendable () -> Date
    let advisoryWindow: TimeInterval = 15 * 60
    let mandatoryWindow: TimeInterval = 10 * 60

    private var cached: AWSCredentials?
    private var refreshing: Task<AWSCredentials, any Error>?
    /// How many times the base provider was asked (for tests and metrics).
    public private(set) var fetchCount = 0

    public init(base: any CredentialProvider, now: @escaping @Sendable () -> Date = Date.init) {
        self.base = base
        self.now = now
    }

    /// Current credentials, refreshed if they are about to expire.
    public func credentials() async throws(CredentialError) -> AWSCredentials {
        if let cached {
            guard let expiration = cached.expiration else { return cached }
            let remaining = expiration.timeIntervalSince(now())
            if remaining > advisoryWindow { return cached }
            do {
                return try await refresh()
            } catch {
                // Within the advisory window the old credentials are still good for a while.
                if remaining > mandatoryWindow { return cached }
                throw error
            }
        }
        return try await refresh()
    }

    /// Forgets the cached credentials (after the service rejected them), so the next call fetches.
    public func invalidate() {
        cached = nil
    }

    private func refresh() async throws(CredentialError) -> AWSCredentials {
        if let refreshing {
            do { return try await refreshing.value } catch { throw Self.credentialError(error) }
        }
        let base = self.base
        let task = Task<AWSCredentials, any Error> {
            guard let found = try await base.credentials() else {
                throw CredentialError(
                    provider: "chain",
                    message: "no AWS credentials found (environment, systemd credentials, web identity, "
                        + "shared files, container, instance metadata)")
            }
            return found
        }
        refreshing = task
        fetchCount += 1
        defer { refreshing = nil }
        do {
            let found = try await task.value
            cached = found
            return found
        } catch {
            throw Self.credentialError(error)
        }
    }

    private static func credentialError(_ error: any Error) -> CredentialError {
        error as? CredentialError ?? CredentialError(provider: "chain", message: "\(type(of: error))", isUnreachable: true)
    }
}
