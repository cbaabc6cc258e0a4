import CognitoClient
import CoreMetrics
import Daemon
import Foundation
import Logging
import Postgres
import ResetQueue
import ServiceLifecycle
import Synchronization

/// Everything around the worker that tells the outside how it is doing: systemd `STATUS=` lines
/// and watchdog pings, the queue gauges, `/metrics`, `/healthz` and `/readyz`. Sends `STOPPING=1`
/// the moment a graceful shutdown begins.
final class DaemonMonitor: Service {
    let worker: QueueWorker
    let store: PostgresJobStore
    let notifier: SystemdNotifier
    let watchdog: WatchdogSettings?
    let endpoint: HTTPEndpoint?
    let statusInterval: Duration
    let logger: Logger
    let health = HealthState()
    /// The worker's own evidence: statements that failed or overran their deadline.
    let database: DatabaseHealth

    private let runnable = Gauge(label: "cognito_reset_queue_runnable_jobs")
    private let oldestAge = Gauge(label: "cognito_reset_queue_oldest_runnable_age_seconds")
    private let rate = Gauge(label: "cognito_reset_rate_limit_per_second")
    private let databaseUp = Gauge(label: "cognito_reset_database_up")
    /// Per bucket key (operators' own, a handful per fleet: one per account and region), from
    /// `rate_limit_status`: what `rate show` prints, for alerts on a paused ceiling.
    private let ceilings = HandleCache { Gauge(label: "cognito_reset_rate_limit_ceiling_per_second", dimensions: [("key", $0)]) }
    private let inForce = HandleCache { Gauge(label: "cognito_reset_rate_limit_in_force_per_second", dimensions: [("key", $0)]) }

    init(
        worker: QueueWorker, store: PostgresJobStore, notifier: SystemdNotifier,
        watchdog: WatchdogSettings?, endpoint: HTTPEndpoint?, statusInterval: Duration, health: DatabaseHealth,
        logger: Logger
    ) {
        self.database = health
        self.worker = worker
        self.store = store
        self.notifier = notifier
        self.watchdog = watchdog
        self.endpoint = endpoint
        self.statusInterval = statusInterval
        self.logger = logger
    }

    /// Runs until the group shuts it down, which happens after the worker has finished (the
    /// monitor is listed before the worker): the watchdog keeps being fed while in-flight calls
    /// drain. `STOPPING=1` is sent by the worker's `.stopping` event, the moment it stops claiming.
    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.reportStatus() }
            if let watchdog = self.watchdog {
                group.addTask { await self.feedWatchdog(watchdog) }
            }
            if let endpoint = self.endpoint {
                group.addTask { await endpoint.run() }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    /// STATUS= and the gauges, every `statusInterval`, from one cheap query.
    private func reportStatus() async {
        while !Task.isCancelled {
            let status = await worker.snapshot()
            let stopping = await worker.isStopping ? "stopping: " : ""
            let currentRate = await worker.currentRate
            if let currentRate { rate.record(currentRate) }
            let rateText = currentRate.map { String(format: "%.1f req/s", $0) } ?? "unlimited rate"
            // Before the gauges' query, which a hung server holds for its 5 s: the gauge shows
            // the worker's own evidence as soon as /readyz does.
            if database.troubledRecently { databaseUp.record(0) }
            do {
                let gauges = try await withTimeout(.seconds(5)) { try await self.store.queueGauges() }
                runnable.record(gauges.runnable)
                oldestAge.record(gauges.oldestRunnableAgeSeconds ?? 0)
                // Reads can answer while the worker's writes time out (commits waiting for a
                // standby): the worker's own evidence counts too.
                let slow = database.troubledRecently
                databaseUp.record(slow ? 0 : 1)
                if await health.markDatabase(up: !slow) {
                    if slow {
                        logger.warning("the database is not answering the worker's statements in time; retrying")
                    } else {
                        logger.notice("database reachable again")
                    }
                }
                let prefix = slow ? "database not answering in time, retrying; " : ""
                await reportRateBuckets()
                notifier.send([
                    "STATUS=\(stopping)\(prefix)\(status.inFlight) in flight, \(gauges.runnable) runnable, \(rateText); \(status.succeeded) succeeded, \(status.failed) failed, \(status.retried) retried"
                ])
            } catch {
                // Not ready either: /readyz answers as STATUS= says.
                database.noteTrouble()
                databaseUp.record(0)
                if await health.markDatabase(up: false) {
                    logger.warning("database unreachable; retrying", metadata: ["error": "\(error)"])
                }
                notifier.send(["STATUS=\(stopping)database unreachable, retrying; \(status.inFlight) in flight, \(rateText)"])
            }
            try? await Task.sleep(for: statusInterval)
        }
    }

    /// The per-key rate gauges. A failure here says nothing the queue gauges' query did not:
    /// it is logged at debug and leaves the database's health alone.
    private func reportRateBuckets() async {
        do {
            for bucket in try await withTimeout(.seconds(5), { try await self.store.rateBuckets() }) {
                ceilings[bucket.key].record(bucket.ceiling)
                inForce[bucket.key].record(bucket.currentRate)
            }
        } catch {
            logger.debug("could not read the rate limits for their gauges", metadata: ["error": "\(error)"])
        }
    }

    /// `WATCHDOG=1` at half the timeout, only while the claim loop keeps turning: a wedged loop
    /// goes quiet and systemd restarts the service.
    private func feedWatchdog(_ watchdog: WatchdogSettings) async {
        while !Task.isCancelled {
            // While stopping, the claim loop has ended on purpose; the grace period (and
            // systemd's TimeoutStopSec) bound the drain instead.
            let stopping = await worker.isStopping
            if worker.pulse.age < watchdog.timeout || stopping {
                notifier.send(["WATCHDOG=1"])
            } else {
                logger.error(
                    "the claim loop has not turned for longer than the watchdog timeout; no longer feeding the watchdog",
                    metadata: ["silent_s": "\(Int64(worker.pulse.age / .seconds(1)))"])
            }
            try? await Task.sleep(for: watchdog.pingInterval)
        }
    }

    /// The endpoint's answers.
    static func respond(
        _ path: String, store: PostgresJobStore, health: DatabaseHealth, metrics: @Sendable () -> String
    ) async -> HTTPEndpoint.Response {
        switch path {
        case "/metrics":
            return .init(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics())
        case "/healthz":
            return .init(status: 200, body: "ok\n")
        case "/readyz":
            guard !health.troubledRecently else {
                return .init(status: 503, body: "database not answering the worker's statements in time\n")
            }
            let reachable = (try? await withTimeout(.seconds(2)) { try await store.pool.query("SELECT 1") }) != nil
            return reachable ? .init(status: 200, body: "ready\n") : .init(status: 503, body: "database unreachable\n")
        default:
            return .init(status: 404, body: "not found: try /metrics, /healthz or /readyz\n")
        }
    }
}

/// Whether the database answered the last sample; logs only the changes.
actor HealthState {
    private var databaseUp: Bool?

    /// Records the state; true when it changed from a known opposite state.
    func markDatabase(up: Bool) -> Bool {
        defer { databaseUp = up }
        return databaseUp == !up
    }
}
