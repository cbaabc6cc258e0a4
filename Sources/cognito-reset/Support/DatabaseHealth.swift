import ResetQueue
import Synchronization

/// Whether the database has been answering the worker in time: any statement that failed,
/// overran its deadline or could not connect within `window` (unless a heartbeat begun after it
/// was answered in full) makes the daemon not ready
/// (`/readyz` 503, `cognito_reset_database_up` 0, systemd `STATUS=`). A quick read is not enough
/// evidence: a primary whose commits wait for a standby that is gone answers `SELECT 1` at once
/// while every write of the worker hangs.
final class DatabaseHealth: Sendable {
    let window: Duration
    /// The worker's clock: the moments its heartbeats report are on it.
    let clock: WorkerClock
    private let lastTrouble = Mutex<WorkerClock.Moment?>(nil)

    init(window: Duration, clock: WorkerClock) {
        self.window = window
        self.clock = clock
    }

    /// A statement failed, overran its deadline, or a connection could not be opened.
    func noteTrouble() {
        let now = clock.now
        lastTrouble.withLock { $0 = now }
    }

    /// Statements begun at `start` were all answered in time: trouble noted before then is over.
    func noteAnswered(since start: WorkerClock.Moment) {
        lastTrouble.withLock { last in
            if let noted = last, noted < start { last = nil }
        }
    }

    /// True if trouble was noted within `window` and not answered since.
    var troubledRecently: Bool {
        guard let last = lastTrouble.withLock({ $0 }) else { return false }
        return clock.now - last < window
    }
}
