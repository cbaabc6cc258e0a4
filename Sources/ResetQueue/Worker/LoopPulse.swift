import Synchronization

/// When a loop last went round, readable from any thread without waiting: systemd's watchdog
/// is only fed while the worker's claim loop keeps turning, so a wedged loop gets restarted.
public final class LoopPulse: Sendable {
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant
    /// Nanoseconds from `origin` to the last beat.
    private let last = Atomic<Int64>(0)

    public init() {
        origin = clock.now
    }

    /// The loop is alive now.
    public func beat() {
        last.store(Int64((clock.now - origin) / .nanoseconds(1)), ordering: .relaxed)
    }

    /// Time since the last beat (since creation if it never beat).
    public var age: Duration {
        clock.now - (origin + .nanoseconds(last.load(ordering: .relaxed)))
    }
}
