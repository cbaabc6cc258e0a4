/// Exponential backoff with full jitter for reconnecting: attempt n waits a random time in
/// `[0, min(maximum, initial * 2^n)]`, so many clients reconnecting after a restart spread out.
public struct ReconnectBackoff: Sendable {
    public var initial: Duration
    public var maximum: Duration

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5)) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The delay before retry number `attempt` (0 for the first retry); `unitRandom` is in [0, 1).
    public func delay(attempt: Int, unitRandom: Double) -> Duration {
        let factor = Double(1 << min(attempt, 30))
        let ceiling = min(maximum / .seconds(1), initial / .seconds(1) * factor)
        return .seconds(ceiling * unitRandom)
    }

    /// As `delay(attempt:unitRandom:)`, drawing from the system random source.
    public func delay(attempt: Int) -> Duration {
        delay(attempt: attempt, unitRandom: Double.random(in: 0..<1))
    }
}
