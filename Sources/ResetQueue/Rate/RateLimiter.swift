/// Per-call pacing inside one worker process, on top of what the claim allows. The fleet-wide
/// limit is not here: the shared bucket in PostgreSQL paces the claim itself (`SharedRateLimit`,
/// `claim_paced`), and production passes `UnlimitedRateLimiter`. The seam stays for tests, which
/// pace calls to hold claimed jobs back (a shutdown with claims not yet started).
public protocol RateLimiter: Sendable {
    /// Takes a token and returns how long the caller must wait before using it (zero: go now).
    /// The caller does the waiting, so it can stop waiting when the worker stops.
    func reserve() async -> Duration
    /// Cognito said TooManyRequests: slow down.
    func recordThrottle() async
    /// A call went through: speed back up toward the ceiling.
    func recordSuccess() async
    /// The rate currently allowed, in requests per second (nil: unlimited).
    var currentRate: Double? { get async }
}

/// No limit (benchmarks and emulators).
public struct UnlimitedRateLimiter: RateLimiter {
    public init() {}
    public func reserve() async -> Duration { .zero }
    public func recordThrottle() async {}
    public func recordSuccess() async {}
    public var currentRate: Double? { nil }
}
