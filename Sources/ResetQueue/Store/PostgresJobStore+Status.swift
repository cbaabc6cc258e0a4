import Foundation
import Postgres

/// What `cognito-reset status` shows: the queue_status view, failures by code and the workers.
public struct QueueStatus: Sendable, Codable {
    public struct Counts: Sendable, Codable {
        public let pending, running, retrying, succeeded, failed, cancelled: Int
    }
    public struct Worker: Sendable, Codable {
        public let id: String
        public let host: String
        public let pid: Int
        public let version: String
        public let state: String
        public let inFlight: Int
        public let secondsSinceHeartbeat: Double
        public let succeeded: Int
        public let failed: Int
        public let retried: Int
    }

    /// Queued work of one region, and how many live workers serve it.
    public struct Region: Sendable, Codable {
        public let region: String
        public let runnableNow: Int
        public let scheduledLater: Int
        public let oldestRunnableAgeSeconds: Double?
        /// Live workers whose `COGNITO_RESET_REGIONS` include the region (or that serve every
        /// region). 0: its jobs wait until one does; they are never failed for it.
        public let workersServing: Int
    }

    public let counts: Counts
    public let runnableNow: Int
    public let scheduledLater: Int
    public let oldestRunnableAgeSeconds: Double?
    public let succeededLastMinute: Int
    public let succeededLastHour: Int
    public let failedLastMinute: Int
    public let failedLastHour: Int
    public let workersAlive: Int
    /// Failed jobs by their last error code, most frequent first (last 24 hours).
    public let failuresByCode: [String: Int]
    public let workers: [Worker]
    /// The shared rate buckets (`rate show`).
    public let rateLimits: [RateBucketStatus]
    /// Regions with queued jobs (`cognito_reset.region_status`).
    public let regions: [Region]

    /// Jobs still to do: runnable, scheduled, retrying or running.
    public var remaining: Int { counts.pending + counts.running + counts.retrying }

    /// Seconds to finish every remaining job (runnable, scheduled, retrying, running) at last
    /// minute's pace; nil when nothing finished in the last minute.
    public var drainETASeconds: Double? {
        guard succeededLastMinute + failedLastMinute > 0 else { return nil }
        return Double(remaining) / Double(succeededLastMinute + failedLastMinute) * 60
    }
}

extension PostgresJobStore {
    enum StatusSQL {
        static let summary = """
            SELECT pending, running, retrying, succeeded, failed, cancelled, runnable_now, scheduled_later,
                   oldest_runnable_age_seconds, succeeded_last_minute, succeeded_last_hour, failed_last_minute,
                   failed_last_hour, workers_alive
            FROM cognito_reset.queue_status
            """
        static let failures = """
            SELECT coalesce(last_error_code, 'unknown'), count(*) FROM cognito_reset.jobs
            WHERE state = 'failed' AND finished_at > now() - interval '24 hours'
            GROUP BY 1 ORDER BY 2 DESC LIMIT 20
            """
        static let workers = """
            SELECT id, host, pid, version, state, in_flight, extract(epoch FROM now() - heartbeat_at)::double precision,
                   jobs_succeeded, jobs_failed, jobs_retried
            FROM cognito_reset.workers
            WHERE state <> 'stopped' OR stopped_at > now() - interval '1 hour'
            ORDER BY state, started_at
            """
        static let regions = """
            SELECT region, runnable_now, scheduled_later, oldest_runnable_age_seconds, workers_serving
            FROM cognito_reset.region_status ORDER BY region
            """
    }

    public func status() async throws -> QueueStatus {
        try await pool.withConnection { connection in
            let row = try await connection.query(PostgresQuery(StatusSQL.summary))[0]
            func int(_ index: Int) throws -> Int { try row.decode(Int.self, at: index) }
            var failures: [String: Int] = [:]
            for failure in try await connection.query(PostgresQuery(StatusSQL.failures)) {
                failures[try failure.decode(String.self, at: 0)] = try failure.decode(Int.self, at: 1)
            }
            let workers = try await connection.query(PostgresQuery(StatusSQL.workers)).map { worker in
                QueueStatus.Worker(
                    id: try worker.decode(String.self, at: 0), host: try worker.decode(String.self, at: 1),
                    pid: try worker.decode(Int.self, at: 2), version: try worker.decode(String.self, at: 3),
                    state: try worker.decode(String.self, at: 4), inFlight: try worker.decode(Int.self, at: 5),
                    secondsSinceHeartbeat: try worker.decode(Double.self, at: 6), succeeded: try worker.decode(Int.self, at: 7),
                    failed: try worker.decode(Int.self, at: 8), retried: try worker.decode(Int.self, at: 9))
            }
            let buckets = try await connection.query(PostgresQuery(RateSQL.buckets, [String?.none])).map(Self.bucket)
            let regions = try await connection.query(PostgresQuery(StatusSQL.regions)).map { region in
                QueueStatus.Region(
                    region: try region.decode(String.self, at: 0), runnableNow: try region.decode(Int.self, at: 1),
                    scheduledLater: try region.decode(Int.self, at: 2), oldestRunnableAgeSeconds: try region.decode(Double?.self, at: 3),
                    workersServing: try region.decode(Int.self, at: 4))
            }
            return QueueStatus(
                counts: .init(
                    pending: try int(0), running: try int(1), retrying: try int(2), succeeded: try int(3),
                    failed: try int(4), cancelled: try int(5)),
                runnableNow: try int(6), scheduledLater: try int(7), oldestRunnableAgeSeconds: try row.decode(Double?.self, at: 8),
                succeededLastMinute: try int(9), succeededLastHour: try int(10), failedLastMinute: try int(11),
                failedLastHour: try int(12), workersAlive: try int(13), failuresByCode: failures, workers: workers,
                rateLimits: buckets, regions: regions)
        }
    }
}
