import Postgres

/// What `cognito-reset prune` removed (or, in a dry run, would remove).
public struct PruneReport: Sendable, Codable, Equatable {
    public var jobs = 0
    public var attempts = 0
    public var workers = 0
    public var imports = 0
    public init() {}
}

/// Queue figures for metrics and systemd's STATUS line: cheap enough to sample every few seconds.
public struct QueueGauges: Sendable, Equatable {
    public let runnable: Int
    public let oldestRunnableAgeSeconds: Double?
}

extension PostgresJobStore {
    enum MaintenanceSQL {
        /// One batch of finished jobs and their audit rows. Only finished states: a pending,
        /// running or retrying job is never touched. SKIP LOCKED: a row an operator is retrying
        /// right now is left for the next run instead of waited for.
        static let jobs = """
            WITH doomed AS (
                SELECT id FROM cognito_reset.jobs
                WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < now() - make_interval(secs => $1)
                ORDER BY finished_at
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            ), audit AS (
                DELETE FROM cognito_reset.attempts a USING doomed d WHERE a.job_id = d.id RETURNING 1
            ), gone AS (
                DELETE FROM cognito_reset.jobs j USING doomed d WHERE j.id = d.id RETURNING 1
            )
            SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM audit)
            """
        static let workers = """
            DELETE FROM cognito_reset.workers
            WHERE state = 'stopped' AND coalesce(stopped_at, heartbeat_at) < now() - make_interval(secs => $1)
            """
        /// Import records (and their rejected lines) once none of their jobs is left.
        static let imports = """
            DELETE FROM cognito_reset.imports i
            WHERE i.created_at < now() - make_interval(secs => $1)
              AND NOT EXISTS (SELECT 1 FROM cognito_reset.jobs j WHERE j.import_id = i.id)
            """
        static let countJobs = """
            SELECT count(*), coalesce(sum((SELECT count(*) FROM cognito_reset.attempts a WHERE a.job_id = j.id)), 0)::bigint
            FROM cognito_reset.jobs j
            WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < now() - make_interval(secs => $1)
            """
        static let countWorkers = """
            SELECT count(*) FROM cognito_reset.workers
            WHERE state = 'stopped' AND coalesce(stopped_at, heartbeat_at) < now() - make_interval(secs => $1)
            """
        /// Imports the real run would remove: old, and no job of theirs would remain.
        static let countImports = """
            SELECT count(*) FROM cognito_reset.imports i
            WHERE i.created_at < now() - make_interval(secs => $1)
              AND NOT EXISTS (SELECT 1 FROM cognito_reset.jobs j WHERE j.import_id = i.id
                              AND NOT (j.state IN ('succeeded', 'failed', 'cancelled')
                                       AND j.finished_at < now() - make_interval(secs => $1)))
            """
        static let gauges = """
            SELECT count(*), extract(epoch FROM now() - min(run_at))::double precision
            FROM cognito_reset.jobs
            WHERE state IN ('pending', 'retrying') AND run_at <= now() AND attempt < max_attempts
            """
    }

    /// Deletes finished jobs older than `retention` (with their attempts), stopped workers' rows
    /// and emptied import records, `batchSize` jobs per statement so no lock is held for long
    /// and workers carry on meanwhile. `onBatch` sees the running totals.
    public func prune(
        olderThan retention: Duration, batchSize: Int = 1000, dryRun: Bool = false,
        onBatch: (PruneReport) -> Void = { _ in }
    ) async throws -> PruneReport {
        var report = PruneReport()
        let seconds = retention.seconds
        if dryRun {
            let row = try await pool.query(PostgresQuery(MaintenanceSQL.countJobs, [seconds]))[0]
            report.jobs = try row.decode(Int.self, at: 0)
            report.attempts = try row.decode(Int.self, at: 1)
            report.workers = try await pool.query(PostgresQuery(MaintenanceSQL.countWorkers, [seconds]))[0].decode(Int.self, at: 0)
            report.imports = try await pool.query(PostgresQuery(MaintenanceSQL.countImports, [seconds]))[0].decode(Int.self, at: 0)
            return report
        }
        while true {
            let row = try await pool.query(PostgresQuery(MaintenanceSQL.jobs, [seconds, batchSize]))[0]
            let jobs = try row.decode(Int.self, at: 0)
            report.jobs += jobs
            report.attempts += try row.decode(Int.self, at: 1)
            onBatch(report)
            if jobs < batchSize { break }
        }
        report.workers = try await pool.query(PostgresQuery(MaintenanceSQL.workers, [seconds])).affectedRows ?? 0
        report.imports = try await pool.query(PostgresQuery(MaintenanceSQL.imports, [seconds])).affectedRows ?? 0
        return report
    }

    /// Runnable jobs and the age of the oldest.
    public func queueGauges() async throws -> QueueGauges {
        let row = try await pool.query(PostgresQuery(MaintenanceSQL.gauges))[0]
        return QueueGauges(runnable: try row.decode(Int.self, at: 0), oldestRunnableAgeSeconds: try row.decode(Double?.self, at: 1))
    }
}
