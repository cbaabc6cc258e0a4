import CoreMetrics
import Postgres
import ResetQueue

/// Connection-pool events as metrics.
enum DatabaseMetrics {
    /// The pool's event handler. A failed connect also beats `pulse`: a worker waiting out a
    /// database outage is retrying as designed, not wedged, so the watchdog must not restart it.
    static func observer(pulse: LoopPulse) -> @Sendable (ConnectionPool.Event) -> Void {
        let opened = Counter(label: "cognito_reset_database_connections_opened_total")
        let failed = Counter(label: "cognito_reset_database_connect_failures_total")
        let lost = Counter(label: "cognito_reset_database_connections_lost_total")
        return { event in
            switch event {
            case .connected: opened.increment()
            case .connectFailed:
                failed.increment()
                pulse.beat()
            case .discarded: lost.increment()
            }
        }
    }
}
