/// The worker's time, from a clock it is given: production passes `ContinuousClock`, tests a
/// manual clock they move by hand, so the claim loop, the stop and the grace period can be
/// tested without waiting in real time. (The database keeps its own time for leases and
/// `run_at`; that part is tested against the real server.)
///
/// A moment is how long after the clock was wrapped it is, so moments can be stored and compared
/// whatever the clock's type (moments of two wrappers do not compare: give every part of one
/// worker the same clock).
///
/// On a manual clock nothing timed happens until the test moves it: the claim loop's polls, the
/// heartbeat, and the outcome recorder's gathering interval (outcomes are then written when
/// `eagerCount` of them wait, or at the stop). The safety timeouts of the stop itself measure
/// real time: they guard against a database that does not answer, whatever the clock.
public struct WorkerClock: Sendable {
    /// A point in the worker's time: the duration since the clock was wrapped.
    public typealias Moment = Duration

    private let read: @Sendable () -> Duration
    private let sleeper: @Sendable (Duration) async throws -> Void

    /// Wraps `clock`; its moments count from now.
    public init(_ clock: any Clock<Duration>) {
        self = Self.wrapping(clock)
    }

    private init(read: @escaping @Sendable () -> Duration, sleeper: @escaping @Sendable (Duration) async throws -> Void) {
        self.read = read
        self.sleeper = sleeper
    }

    private static func wrapping<C: Clock<Duration>>(_ clock: C) -> WorkerClock {
        let origin = clock.now
        return WorkerClock(
            read: { origin.duration(to: clock.now) },
            sleeper: { duration in try await clock.sleep(until: clock.now.advanced(by: duration), tolerance: nil) })
    }

    /// Real time, for production: one wrapper, so every user of it shares one origin and its
    /// moments compare.
    public static let continuous = WorkerClock(ContinuousClock())

    /// Now, on this clock.
    public var now: Moment { read() }

    /// Sleeps `duration` on this clock; throws `CancellationError` if the task is cancelled.
    public func sleep(for duration: Duration) async throws {
        try await sleeper(duration)
    }

    /// The timer behind every wait of the worker that also ends early (a wake-up, a pause, the
    /// wait for idle): calls `expire` after `duration` on this clock, unless the returned task
    /// is cancelled first, which is what the wait does once it ended the other way.
    func timer(after duration: Duration, _ expire: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        Task {
            guard (try? await sleep(for: duration)) != nil else { return }
            await expire()
        }
    }
}
