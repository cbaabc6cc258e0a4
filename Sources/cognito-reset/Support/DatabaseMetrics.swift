import CoreMetrics
import Postgres
import ResetQueue

/// Connection-pool events as metrics.
enum DatabaseMetrics {
    /// The pool's event handler. A failed connect also beats `pulse`: a worker waiting out a
    /// database outage is retrying as designed, not wedged, so the watchdog must not restart it.
    /// Failed connects and statements past their deadline are noted in `health`.
    static func observer(pulse: LoopPulse, health: DatabaseHealth) -> @Sendable (ConnectionPool.Event) -> Void {
        let opened = Counter(label: "cognito_reset_database_connections_opened_total")
        let failed = Counter(label: "cognito_reset_database_connect_failures_total")
        let lost = Counter(label: "cognito_reset_database_connections_lost_total")
        let overran = Counter(label: "cognito_reset_database_statement_deadline_exceeded_total")
        return { event in
            switch event {
            case .connected: opened.increment()
            case .connectFailed:
                failed.increment()
                health.noteTrouble()
                pulse.beat()
            case .discarded: lost.increment()
            case .statementDeadlineExceeded:
                // Waiting on the database is not a wedged loop either.
                overran.increment()
                health.noteTrouble()
                pulse.beat()
            }
        }
    }
}
