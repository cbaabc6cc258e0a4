import Synchronization

/// Quick retries inside one call, after botocore's "standard" mode: up to `maxAttempts` attempts
/// for transient errors only, each delayed by full jitter `random × min(base × 2^(n-1), cap)`, and
/// only while the shared `RetryQuota` allows, so an outage does not multiply traffic.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration

    public init(maxAttempts: Int = 3, baseDelay: Duration = .seconds(1), maxDelay: Duration = .seconds(20)) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// The wait before retry `retry` (1 for the first retry), for `unitRandom` in [0, 1).
    public func delay(beforeRetry retry: Int, unitRandom: Double) -> Duration {
        let exponential = baseDelay * (1 << min(max(retry - 1, 0), 30))
        return min(exponential, maxDelay) * unitRandom
    }
}

/// botocore's retry quota: a bucket of 500 tokens shared by every call of a client. A retry
/// costs 5 (10 after a timeout); a success gives back what its retries cost, or 1. An empty
/// bucket means no more retries until calls succeed again.
public final class RetryQuota: Sendable {
    public static let capacity = 500
    public static let retryCost = 5
    public static let timeoutRetryCost = 10
    public static let noRetryIncrement = 1

    private let available: Mutex<Int>
    /// This bucket's size (the default, or what `init` was given).
    public let size: Int

    public init(capacity: Int = RetryQuota.capacity) {
        available = Mutex(capacity)
        size = capacity
    }

    public var tokens: Int { available.withLock { $0 } }

    /// Takes the cost of one retry; false (and nothing taken) if the quota is exhausted.
    func acquire(afterTimeout: Bool) -> Int? {
        let cost = afterTimeout ? Self.timeoutRetryCost : Self.retryCost
        return available.withLock { tokens in
            guard tokens >= cost else { return nil }
            tokens -= cost
            return cost
        }
    }

    /// A call succeeded: refund what its retries took, or add the small no-retry increment.
    func release(retryCost: Int) {
        available.withLock { tokens in
            tokens = min(size, tokens + (retryCost > 0 ? retryCost : Self.noRetryIncrement))
        }
    }
}
