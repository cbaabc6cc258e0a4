import CognitoClient
import Dispatch
import Foundation
import Postgres
import Synchronization

extension PostgresJobStore {
    enum ImportSQL {
        static let staging = """
            CREATE TEMP TABLE import_staging (
                line bigint NOT NULL, user_pool_id text, username text, client_metadata jsonb,
                run_at timestamptz, reason text
            ) ON COMMIT DROP
            """
        static let copy = "COPY import_staging (line, user_pool_id, username, client_metadata, run_at, reason) FROM STDIN"
        /// Any role's import of the same file (row security shows an enqueuer only its own).
        static let previous = """
            SELECT id, created_at FROM cognito_reset.previous_import($1)
            """
        static let insertImport = """
            INSERT INTO cognito_reset.imports (file_name, sha256, user_pool_id, run_at, priority, max_attempts, requested_by, rate)
            VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, current_user::text), $8)
            RETURNING id
            """
        /// One set-based insert: the first line for each user wins, users with an active job
        /// already (any enqueuer's: the unique index sees them all) are skipped.
        static let insertJobs = """
            INSERT INTO cognito_reset.jobs
                (user_pool_id, username, client_metadata, priority, max_attempts, run_at, requested_by, import_id)
            SELECT s.user_pool_id, s.username, s.client_metadata, $2, $3, coalesce(s.run_at, now()),
                   coalesce($4, current_user::text), $1
            FROM import_staging s
            WHERE s.reason IS NULL
            ORDER BY s.line
            -- No conflict target: `jobs` is partitioned, and only its hot partition has the
            -- unique index of active users (jobs_one_active_per_user) this conflicts on.
            ON CONFLICT DO NOTHING
            """
        /// The common case: a plain insert of the lines whose user has no active job (an
        /// anti-join), about a quarter faster than ON CONFLICT's speculative insertion of every
        /// row. A user repeated in the file keeps its first line (DISTINCT ON, in the sort the
        /// insert needs anyway, so the file is not sorted twice). A job enqueued meanwhile for
        /// one of these users makes it fail on the unique index; the import then falls back to
        /// `insertJobs`.
        ///
        /// Rows go in sorted by user: the two indexes on (user_pool_id, username) then grow at
        /// their right edge like the id indexes, instead of splitting pages all over (about a
        /// third faster for a million lines). Ids, and so claim order within the import, follow
        /// the usernames rather than the file's order.
        ///
        /// The active users are read once, up front (a materialised CTE): a plan that scanned
        /// `jobs` per staged line would also walk the pages this very insert is filling, which is
        /// quadratic.
        static let insertNewUsers = """
            WITH active AS MATERIALIZED (
                SELECT user_pool_id, username FROM cognito_reset.jobs WHERE state IN ('pending', 'running', 'retrying')
            )
            INSERT INTO cognito_reset.jobs
                (user_pool_id, username, client_metadata, priority, max_attempts, run_at, requested_by, import_id)
            SELECT DISTINCT ON (s.user_pool_id, s.username)
                   s.user_pool_id, s.username, s.client_metadata, $2, $3, coalesce(s.run_at, now()),
                   coalesce($4, current_user::text), $1
            FROM import_staging s
            WHERE s.reason IS NULL
              AND NOT EXISTS (SELECT 1 FROM active a WHERE a.user_pool_id = s.user_pool_id AND a.username = s.username)
            ORDER BY s.user_pool_id, s.username, s.line
            """
        static let insertRejections = """
            INSERT INTO cognito_reset.import_rejections (import_id, line_number, reason)
            SELECT $1, line, reason FROM import_staging WHERE reason IS NOT NULL
            """
        static let counts = """
            SELECT count(*), count(*) FILTER (WHERE reason IS NOT NULL) FROM import_staging
            """
        /// For a dry run only (a sort of the whole file, which a real import's insert does anyway).
        static let distinctValid = """
            SELECT count(*) FROM (SELECT DISTINCT user_pool_id, username FROM import_staging WHERE reason IS NULL) s
            """
        /// For a dry run: distinct valid users who already have an active job, anyone's (the
        /// function sees past an enqueuer's row security, as the unique index does).
        static let activeAlready = """
            SELECT count(*) FROM (SELECT DISTINCT user_pool_id, username FROM import_staging WHERE reason IS NULL) s
            WHERE cognito_reset.active_job_id(s.user_pool_id, s.username) IS NOT NULL
            """
        static let firstRejections = """
            SELECT line, reason FROM import_staging WHERE reason IS NOT NULL ORDER BY line LIMIT \(ImportReport.rejectionsShown)
            """
        static let updateCounts = """
            UPDATE cognito_reset.imports SET rows_read = $2, rows_accepted = $3, rows_duplicate = $4, rows_rejected = $5
            WHERE id = $1
            """
    }

    /// Thrown inside the transaction to roll it back and report without writing.
    private struct RollBack: Error {
        let report: ImportReport
    }

    /// Imports the CSV read from `descriptor` in one transaction: every valid line or none.
    ///
    /// Lines stream through COPY into a temporary staging table (memory stays flat whatever the
    /// size), then one set-based insert adds the jobs and another records the rejected lines.
    /// A file imported before (same SHA-256) adds nothing unless `force`. `dryRun` checks and
    /// counts, then rolls back. `onProgress` sees the bytes read so far, from the reading thread.
    public func importCSV(
        descriptor: Int32, fileName: String, settings: ImportSettings, dryRun: Bool = false, force: Bool = false,
        onProgress: (@Sendable (Int64) -> Void)? = nil
    ) async throws -> ImportReport {
        do {
            return try await pool.transaction { connection in
                try await connection.execute(PostgresQuery(ImportSQL.staging))
                let stream = ValidatingInputStream(descriptor: descriptor)
                stream.onProgress = onProgress
                let lines = try await Self.stage(stream, settings: settings, into: connection)
                // Row counts and value spread for the planner: a temporary table has no statistics.
                try await connection.execute("ANALYZE import_staging")
                var report = ImportReport(fileName: fileName, sha256: lines.sha256, dryRun: dryRun)
                let counts = try await connection.query(PostgresQuery(ImportSQL.counts))[0]
                report.read = try counts.decode(Int.self, at: 0)
                report.rejected = try counts.decode(Int.self, at: 1)
                if report.rejected > 0 {
                    report.rejections = try await connection.query(PostgresQuery(ImportSQL.firstRejections)).map {
                        ImportReport.Rejection(line: try $0.decode(Int.self, at: 0), reason: try $0.decode(String.self, at: 1))
                    }
                }
                if !force, let previous = try await connection.query(PostgresQuery(ImportSQL.previous, [report.sha256])).first {
                    report.previousImportID = try previous.decode(Int64.self, at: 0)
                    report.previousImportAt = try previous.decode(Date.self, at: 1)
                    throw RollBack(report: report)
                }
                if dryRun || report.read == 0 {
                    let distinctValid = try await connection.query(PostgresQuery(ImportSQL.distinctValid))[0].decode(Int.self, at: 0)
                    let active = try await connection.query(PostgresQuery(ImportSQL.activeAlready))[0].decode(Int.self, at: 0)
                    report.accepted = distinctValid - active
                    report.duplicate = report.read - report.rejected - report.accepted
                    throw RollBack(report: report)
                }
                let importID = try await connection.query(
                    PostgresQuery(
                        ImportSQL.insertImport,
                        [
                            fileName, report.sha256, settings.pool?.rawValue, settings.runAt, settings.priority, settings.maxAttempts,
                            settings.requestedBy, settings.rate,
                        ]))[0].decode(Int64.self, at: 0)
                report.importID = importID
                let jobValues: [any PostgresEncodable] = [importID, settings.priority, settings.maxAttempts, settings.requestedBy]
                report.accepted = try await Self.insertJobs(on: connection, values: jobValues)
                report.duplicate = report.read - report.rejected - report.accepted
                if report.rejected > 0 {
                    try await connection.query(PostgresQuery(ImportSQL.insertRejections, [importID]))
                }
                try await connection.query(
                    PostgresQuery(
                        ImportSQL.updateCounts,
                        [
                            importID, report.read, report.accepted, report.duplicate, report.rejected,
                        ]))
                return report
            }
        } catch let rollBack as RollBack {
            return rollBack.report
        }
    }

    /// Adds the staged jobs; returns how many.
    static func insertJobs(on connection: PostgresConnection, values: [any PostgresEncodable]) async throws -> Int {
        try await connection.execute("SAVEPOINT import_jobs")
        do {
            let inserted = try await connection.query(PostgresQuery(ImportSQL.insertNewUsers, values)).affectedRows ?? 0
            try await connection.execute("RELEASE SAVEPOINT import_jobs")
            return inserted
        } catch let error as PostgresError where error.sqlState == SQLState.uniqueViolation {
            // Another system enqueued one of these users meanwhile: take the careful path.
            try await connection.execute("ROLLBACK TO SAVEPOINT import_jobs")
        }
        return try await connection.query(PostgresQuery(ImportSQL.insertJobs, values)).affectedRows ?? 0
    }

    /// A batch of staged lines is handed over at this many lines...
    static let batchLines = 2000
    /// ...or this many bytes of values, whichever comes first: lines with large client metadata
    /// (up to 256 KiB each) must not make a few batches hold gigabytes.
    static let batchBytes = 4 << 20

    /// Parses on a thread of its own (the file is read with blocking calls) and COPYs the lines
    /// into the staging table as they come; at most a few batches wait in memory.
    static func stage(
        _ stream: ValidatingInputStream, settings: ImportSettings, into connection: PostgresConnection
    ) async throws -> (sha256: String, lines: Int) {
        let (batches, continuation) = AsyncStream.makeStream(of: Result<[StagedRow], any Error>.self)
        let room = DispatchSemaphore(value: 4)
        let consumerGone = Flag()
        let handoff = Handoff(stream)
        let producer = Thread {
            defer { continuation.finish() }
            do {
                let parser = try CSVImportParser(stream: handoff.value, settings: settings)
                var batch: [StagedRow] = []
                batch.reserveCapacity(batchLines)
                var bytes = 0
                while let row = try parser.next() {
                    batch.append(row)
                    bytes += (row.username?.utf8.count ?? 0) + (row.metadataJSON?.utf8.count ?? 0) + (row.reason?.utf8.count ?? 0)
                    if batch.count == batchLines || bytes >= batchBytes {
                        room.wait()
                        if consumerGone.isSet { return }
                        continuation.yield(.success(batch))
                        batch.removeAll(keepingCapacity: true)
                        bytes = 0
                    }
                }
                if !batch.isEmpty { continuation.yield(.success(batch)) }
            } catch {
                continuation.yield(.failure(error))
            }
        }
        producer.start()
        defer {
            consumerGone.set()
            room.signal()  // a producer waiting for room sees the flag and ends
        }
        var lines = 0
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        _ = try await connection.copyIn(ImportSQL.copy) { writer in
            for await result in batches {
                let batch = try result.get()
                for row in batch {
                    try await writer.writeRow([
                        String(row.line), row.pool, row.username, row.metadataJSON, row.runAt.map { formatter.string(from: $0) },
                        row.reason,
                    ])
                }
                lines += batch.count
                room.signal()
            }
        }
        return (stream.digest(), lines)
    }
}

/// Moves a non-Sendable value to another thread.
///
/// @unchecked Sendable: used for the input stream only, which the reading thread alone touches
/// until it ends; the task reads the stream's digest only after the batch stream finished, which
/// the thread does as its very last step.
final class Handoff<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// A one-way flag shared between the reading thread and the importing task.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
