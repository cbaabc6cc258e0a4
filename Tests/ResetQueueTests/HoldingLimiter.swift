import ResetQueue
import Synchronization

/// Lets the first `immediate` calls go at once and makes every later one wait `thenWait`: a
/// worker then holds claimed jobs it has not started (what a shutdown must give back).
final class HoldingLimiter: RateLimiter {
    private let immediate: Int
    private let thenWait: Duration
    private let taken = Mutex(0)

    init(immediate: Int, thenWait: Duration) {
        self.immediate = immediate
        self.thenWait = thenWait
    }

    func reserve() async -> Duration {
        taken.withLock { taken in
            taken += 1
            return taken <= immediate ? .zero : thenWait
        }
    }

    func recordThrottle() async {}
    func recordSuccess() async {}
    var currentRate: Double? { nil }
}
