/// What every Cognito call passes first. One implementation per process today; the shared,
/// fleet-wide bucket in PostgreSQL will be another behind the same seam.
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

/// The token bucket's arithmetic, free of clocks so tests can drive it with plain numbers.
///
/// Tokens refill at `rate` per second up to `burst`. A caller takes one token; when none is
/// left it reserves the next one (the balance goes negative) and is told how long to wait, so
/// concurrent callers queue up evenly spaced instead of stampeding. Throttling multiplies the
/// rate by `decrease` (not below `floor`); each success adds `ceiling × increase` back.
public struct TokenBucket: Sendable {
    public let ceiling: Double
    public let burst: Double
    public let floor: Double
    public let decrease: Double
    public let increase: Double
    public private(set) var rate: Double
    private(set) var tokens: Double
    private var last: Double?

    public init(ceiling: Double, burst: Double? = nil, floor: Double? = nil, decrease: Double = 0.7, increase: Double = 0.01) {
        self.ceiling = ceiling
        self.burst = max(1, burst ?? ceiling)
        self.floor = floor ?? max(0.5, ceiling * 0.05)
        self.decrease = decrease
        self.increase = increase
        self.rate = ceiling
        self.tokens = max(1, burst ?? ceiling)
    }

    /// Takes a token at time `now` (seconds, any origin) and returns how long to wait before using it.
    public mutating func take(now: Double) -> Double {
        refill(now: now)
        tokens -= 1
        return tokens >= 0 ? 0 : -tokens / rate
    }

    public mutating func throttled(now: Double) {
        refill(now: now)
        rate = max(floor, rate * decrease)
    }

    public mutating func succeeded(now: Double) {
        refill(now: now)
        rate = min(ceiling, rate + ceiling * increase)
    }

    private mutating func refill(now: Double) {
        if let last { tokens = min(burst, tokens + max(0, now - last) * rate) }
        last = now
    }
}

/// A per-process token bucket in front of every call (`--rate`, default 25/s: Cognito's quota
/// for admin user operations), adaptive on throttling.
public actor LocalRateLimiter: RateLimiter {
    private var bucket: TokenBucket
    private let start = ContinuousClock.now

    public init(requestsPerSecond: Double, burst: Double? = nil) {
        bucket = TokenBucket(ceiling: requestsPerSecond, burst: burst)
    }

    private var now: Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    public func reserve() -> Duration {
        .seconds(bucket.take(now: now))
    }

    public func recordThrottle() { bucket.throttled(now: now) }
    public func recordSuccess() { bucket.succeeded(now: now) }
    public var currentRate: Double? { bucket.rate }
}
