/// Between attempts: when a job that did not succeed may run again (docs/design.md, "Retry").
///
/// - Transient errors and rejected credentials: exponential backoff with full jitter,
///   `random × min(cap, base × 2^(attempt-1))`; defaults 10 s base, 15 min cap. The attempt counts.
/// - Throttling (`TooManyRequestsException`): a short jittered pause, `throttleMinimum` plus up to
///   `throttleJitter`; the attempt is given back, so throttling never fails a job.
/// - Long throttling (`LimitExceededException`, a per-user limit): minutes, `limitExceededDelay`
///   plus jitter of the same size; the attempt counts, so a user stuck at a limit ends `failed`.
public struct JobRetryPolicy: Sendable {
    public var base: Duration
    public var cap: Duration
    public var throttleMinimum: Duration
    public var throttleJitter: Duration
    public var limitExceededDelay: Duration

    public init(
        base: Duration = .seconds(10), cap: Duration = .seconds(900), throttleMinimum: Duration = .seconds(1),
        throttleJitter: Duration = .seconds(4), limitExceededDelay: Duration = .seconds(300)
    ) {
        self.base = base
        self.cap = cap
        self.throttleMinimum = throttleMinimum
        self.throttleJitter = throttleJitter
        self.limitExceededDelay = limitExceededDelay
    }

    /// Delay after failed attempt number `attempt` (1-based), for `unitRandom` in [0, 1).
    public func backoff(afterAttempt attempt: Int, unitRandom: Double) -> Duration {
        let exponential = base * Double(1 << min(max(attempt - 1, 0), 30))
        return min(exponential, cap) * unitRandom
    }

    public func throttleDelay(unitRandom: Double) -> Duration {
        throttleMinimum + throttleJitter * unitRandom
    }

    public func limitExceededDelay(unitRandom: Double) -> Duration {
        limitExceededDelay + limitExceededDelay * unitRandom
    }
}
