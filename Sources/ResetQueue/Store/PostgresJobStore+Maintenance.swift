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
        /// Finished jobs older than the retention and their audit rows: whole days of history
        /// are dropped, the day that straddles the cutoff is deleted row by row (migration 0008,
        /// `prune_history`). $2: count only.
        static let jobs = """
            SELECT jobs, attempts FROM cognito_reset.prune_history(now() - make_interval(secs => $1), $2)
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
            FROM cognito_reset.runnable_jobs
            """
    }

    /// Deletes finished jobs older than `retention` (with their attempts), stopped workers' rows
    /// and emptied import records. History goes by whole days (a partition dropped) and only the
    /// day that straddles the cutoff row by row, so workers carry on meanwhile. `onBatch` sees
    /// the totals once the jobs are gone. (`batchSize` is kept for callers; history no longer
    /// goes in batches.)
    public func prune(
        olderThan retention: Duration, batchSize: Int = 1000, dryRun: Bool = false,
        onBatch: (PruneReport) -> Void = { _ in }
    ) async throws -> PruneReport {
        var report = PruneReport()
        let seconds = retention / .seconds(1)
        let row = try await pool.query(PostgresQuery(MaintenanceSQL.jobs, [seconds, dryRun]))[0]
        report.jobs = try row.decode(Int.self, at: 0)
        report.attempts = try row.decode(Int.self, at: 1)
        if dryRun {
            report.workers = try await pool.query(PostgresQuery(MaintenanceSQL.countWorkers, [seconds]))[0].decode(Int.self, at: 0)
            report.imports = try await pool.query(PostgresQuery(MaintenanceSQL.countImports, [seconds]))[0].decode(Int.self, at: 0)
            return report
        }
        onBatch(report)
        try await ensureHistoryPartitions()
        report.workers = try await pool.query(PostgresQuery(MaintenanceSQL.workers, [seconds])).affectedRows ?? 0
        report.imports = try await pool.query(PostgresQuery(MaintenanceSQL.imports, [seconds])).affectedRows ?? 0
        return report
    }

    /// Runnable jobs and the age of the oldest.
    public func queueGauges() async throws -> QueueGauges {
        let row = try await pool.query(PostgresQuery(MaintenanceSQL.gauges).prepared())[0]
        return QueueGauges(runnable: try row.decode(Int.self, at: 0), oldestRunnableAgeSeconds: try row.decode(Double?.self, at: 1))
    }
}
