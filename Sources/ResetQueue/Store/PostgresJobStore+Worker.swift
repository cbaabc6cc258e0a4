import Foundation
import Postgres

/// The worker's statements: each is one short, autocommitted statement, so no transaction is
/// ever open while Cognito is called, and every write is guarded by `locked_by`.
extension PostgresJobStore {
    enum WorkerSQL {
        /// Identifies one claim exactly (the claim's start, in microseconds): a write for an older
        /// claim of the same job never matches a newer one, even after a cancel and a retry.
        static let claimToken = "(extract(epoch FROM j.started_at) * 1000000)::bigint"

        /// Writes a batch of outcomes: every call is appended to the audit, and the job moves on only if it is still ours and still this attempt — a late
        /// result never overwrites a cancel, a rescue or a newer claim. Through `jobs`: a job that
        /// finishes moves from the hot partition to history.
        static let record = recordStatement(checkingWritten: false)

        /// `record` for a batch that may have been written already (its reply was lost and it is
        /// sent again): a call already in the audit is not appended twice.
        static let recordAgain = recordStatement(checkingWritten: true)

        static func recordStatement(checkingWritten: Bool) -> String {
            """
            WITH input AS (
                SELECT * FROM unnest($2::bigint[], $3::int[], $4::text[], $5::text[], $6::double precision[],
                                     $7::boolean[], $8::text[], $9::text[], $10::text[], $11::timestamptz[],
                                     $12::timestamptz[], $13::bigint[])
                    AS t(job_id, attempt, outcome, new_state, delay_seconds, gives_back, error_code,
                         error_message, request_id, started_at, finished_at, claim_token)
            ), audit AS (
                INSERT INTO cognito_reset.attempts
                    (job_id, attempt, worker_id, started_at, finished_at, outcome, error_code, error_message,
                     request_id, latency_ms)
                SELECT i.job_id, i.attempt, $1, i.started_at, greatest(i.finished_at, i.started_at), i.outcome,
                       i.error_code, i.error_message, i.request_id,
                       greatest(0, round(extract(epoch FROM i.finished_at - i.started_at) * 1000))::int
                FROM input i
                \(checkingWritten ? writtenAlready : "")
            )
            UPDATE cognito_reset.jobs AS j
            SET state = i.new_state,
                attempt = CASE WHEN i.gives_back THEN j.attempt - 1 ELSE j.attempt END,
                run_at = CASE WHEN i.new_state = 'retrying'
                              THEN now() + make_interval(secs => i.delay_seconds) ELSE j.run_at END,
                finished_at = CASE WHEN i.new_state IN ('succeeded', 'failed') THEN now() END,
                locked_by = NULL, lease_expires_at = NULL,
                last_error_code = i.error_code, last_error_message = i.error_message,
                cognito_request_id = coalesce(i.request_id, j.cognito_request_id)
            FROM input i
            WHERE j.id = i.job_id AND j.state = 'running' AND j.locked_by = $1 AND \(claimToken) = i.claim_token
            RETURNING j.id
            """
        }

        /// Written already: the batch committed but its reply was lost, and it is sent again.
        /// (finished_at bounds the audit partitions looked at.)
        static let writtenAlready = """
            WHERE NOT EXISTS (SELECT 1 FROM cognito_reset.attempts a
                              WHERE a.job_id = i.job_id AND a.attempt = i.attempt AND a.worker_id = $1
                                AND a.started_at = i.started_at AND a.finished_at >= i.started_at)
            """

        /// Creates history's daily partitions a few days ahead (the worker does it as it starts
        /// and every hour, so that finished jobs never pile up in the default partition).
        static let ensureHistoryPartitions = "SELECT cognito_reset.ensure_history_partitions()"

        /// Gives back jobs claimed but never called (shutdown): the attempt is returned too.
        static let release = """
            UPDATE cognito_reset.jobs_active AS j
            SET state = CASE WHEN j.attempt - 1 = 0 THEN 'pending' ELSE 'retrying' END,
                attempt = j.attempt - 1, locked_by = NULL, lease_expires_at = NULL
            FROM unnest($2::bigint[], $3::bigint[]) AS i(job_id, claim_token)
            WHERE j.id = i.job_id AND j.state = 'running' AND j.locked_by = $1 AND \(claimToken) = i.claim_token
            RETURNING j.id
            """

        /// Registers (or re-registers) this worker.
        static let register = """
            INSERT INTO cognito_reset.workers (id, host, pid, version, concurrency, regions, heartbeat_interval_ms)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (id) DO UPDATE
            SET heartbeat_at = now(), state = 'running', stopped_at = NULL, concurrency = excluded.concurrency,
                regions = excluded.regions, heartbeat_interval_ms = excluded.heartbeat_interval_ms
            """

        /// Renews the leases of the jobs this worker is working on ($8: their ids; a job whose
        /// claim committed but never reached the worker is not among them and expires) and its
        /// status row, in one statement; returns the ids renewed (a job cancelled or rescued
        /// meanwhile is not among them).
        static let heartbeat = """
            WITH beat AS (
                UPDATE cognito_reset.workers
                SET heartbeat_at = now(), state = $3, in_flight = $4, jobs_succeeded = $5, jobs_failed = $6,
                    jobs_retried = $7, stopped_at = NULL
                WHERE id = $1
            )
            UPDATE cognito_reset.jobs_active SET lease_expires_at = now() + make_interval(secs => $2)
            WHERE state = 'running' AND locked_by = $1 AND id = ANY($8::bigint[])
            RETURNING id
            """

        /// Returns jobs whose lease expired (their worker died or lost the database) to
        /// `retrying`, or `failed` if that was the last attempt, recording the lost call.
        ///
        /// Never the rescuing worker's own held jobs ($1, $2): it is alive, and its next heartbeat
        /// renews them (a stalled database can make a renewal land after its lease ran out).
        /// Its own claims it never received (a lost reply) are not held, so it rescues those too.
        static let rescue = """
            WITH expired AS (
                SELECT id FROM cognito_reset.jobs_active
                WHERE state = 'running' AND lease_expires_at < now()
                  AND NOT (locked_by = $1 AND ($3 OR id = ANY($2::bigint[])))
                ORDER BY lease_expires_at
                LIMIT 1000
                FOR UPDATE SKIP LOCKED
            ), audit AS (
                INSERT INTO cognito_reset.attempts
                    (job_id, attempt, worker_id, started_at, finished_at, outcome, error_code, error_message)
                SELECT j.id, j.attempt, j.locked_by, least(j.started_at, now()), now(), 'lease_expired',
                       'LeaseExpired', 'worker ' || j.locked_by || ' stopped renewing its lease'
                FROM cognito_reset.jobs_active j JOIN expired USING (id)
            )
            UPDATE cognito_reset.jobs AS j
            SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'failed' ELSE 'retrying' END,
                finished_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
                run_at = now(), locked_by = NULL, lease_expires_at = NULL,
                last_error_code = 'LeaseExpired', last_error_message = 'the worker stopped renewing its lease'
            FROM expired WHERE j.id = expired.id AND j.state = 'running'
            RETURNING j.id
            """

        /// Workers that stopped heart-beating long ago (killed) are marked stopped.
        static let markSilentWorkersStopped = """
            UPDATE cognito_reset.workers SET state = 'stopped', stopped_at = now(), in_flight = 0
            WHERE state <> 'stopped' AND heartbeat_at < now() - make_interval(secs => $1)
            """

        static let markStopped = """
            UPDATE cognito_reset.workers SET state = 'stopped', stopped_at = now(), in_flight = 0,
                heartbeat_at = now(), jobs_succeeded = $2, jobs_failed = $3, jobs_retried = $4
            WHERE id = $1
            """

        /// Seconds until the earliest job (of the regions served, $1; NULL: all) that is waiting
        /// for its run_at (nil: none waiting).
        static let nextRunAt = """
            SELECT extract(epoch FROM min(run_at) - now())::double precision FROM cognito_reset.queued_jobs
            WHERE run_at > now() AND ($1::text[] IS NULL OR cognito_reset.pool_region(user_pool_id) = ANY ($1))
            """

        /// Renews one claim's lease if the job is still running under it (not cancelled, not
        /// rescued): a worker whose lease may have lapsed takes its claim back before calling.
        static let renewLease = """
            UPDATE cognito_reset.jobs_active AS j SET lease_expires_at = now() + make_interval(secs => $4)
            WHERE j.id = $1 AND j.state = 'running' AND j.locked_by = $2 AND \(claimToken) = $3
            RETURNING 1
            """

        /// Whether this claim still holds the job (an operator may have cancelled it meanwhile).
        static let stillHeld = """
            SELECT EXISTS (SELECT 1 FROM cognito_reset.jobs_active AS j
                           WHERE j.id = $1 AND j.state = 'running' AND j.locked_by = $2 AND \(claimToken) = $3)
            """

        /// For a `--drain` run ($2), in one snapshot (a rescue committing in between cannot hide a
        /// job from both): whether anything is runnable in the regions served ($1; NULL: all), and
        /// how long it must still wait for running jobs of those regions that may come back to
        /// the queue; NULL when none can, only through live workers.
        /// Per job, by its worker:
        /// - gone, marked stopped, silent for three of the heartbeat intervals it recorded (10 s
        ///   assumed for a worker that recorded none), or the drain itself (which holds nothing
        ///   when it asks: a claim whose reply was lost): until its lease runs out, then rescue;
        /// - heartbeating since the drain started: live, no wait;
        /// - otherwise not known yet (just killed, or about to heartbeat): until it would count
        ///   as silent. The drain looks again every poll interval, so a live worker's next
        ///   heartbeat ends that wait.
        /// Negative: due already.
        static let drainOutlook = """
            SELECT EXISTS (SELECT 1 FROM cognito_reset.runnable_jobs r
                           WHERE $1::text[] IS NULL OR cognito_reset.pool_region(r.user_pool_id) = ANY ($1)),
                   extract(epoch FROM min(
                       CASE WHEN w.id IS NULL OR w.id = $2 OR w.state = 'stopped'
                                 OR w.heartbeat_at < now() - 3 * make_interval(secs => coalesce(w.heartbeat_interval_ms, 10000) / 1000.0)
                            THEN j.lease_expires_at
                            WHEN w.heartbeat_at >= (SELECT started_at FROM cognito_reset.workers WHERE id = $2)
                            THEN NULL
                            ELSE w.heartbeat_at + 3 * make_interval(secs => coalesce(w.heartbeat_interval_ms, 10000) / 1000.0)
                       END) - now())::double precision
            FROM cognito_reset.jobs_active j
            LEFT JOIN cognito_reset.workers w ON w.id = j.locked_by
            WHERE j.state = 'running'
              AND ($1::text[] IS NULL OR cognito_reset.pool_region(j.user_pool_id) = ANY ($1))
            """

        /// Whether anything is runnable now in the regions served ($1; NULL: all), for --drain:
        /// jobs of a region the worker does not serve are not its to wait for.
        static let anyRunnable = """
            SELECT EXISTS (SELECT 1 FROM cognito_reset.runnable_jobs
                           WHERE $1::text[] IS NULL OR cognito_reset.pool_region(user_pool_id) = ANY ($1))
            """
    }

    /// Claims up to `limit` runnable jobs for `workerID` with no rate limit (`--rate unlimited`:
    /// the shared claim without a bucket), in claim order.
    public func claim(workerID: String, limit: Int, lease: Duration) async throws -> [ClaimedJob] {
        try await claimPaced(workerID: workerID, limit: limit, lease: lease, rate: nil).jobs
            .map(\.job).sorted(by: ClaimedJob.inClaimOrder)
    }

    /// Creates history's partitions for the next days; returns how many were created.
    @discardableResult
    public func ensureHistoryPartitions() async throws -> Int {
        try await pool.query(PostgresQuery(WorkerSQL.ensureHistoryPartitions))[0].decode(Int.self, at: 0)
    }

    /// Writes outcomes; returns the ids whose job was still ours and moved on.
    /// `mayBeWritten`: the batch was sent before and its reply lost; calls already audited are
    /// not appended again (the check costs a lookup per call, so only then).
    @discardableResult
    public func record(_ records: [JobRecord], workerID: String, mayBeWritten: Bool = false) async throws -> Set<Int64> {
        guard !records.isEmpty else { return [] }
        let query = PostgresQuery(
            mayBeWritten ? WorkerSQL.recordAgain : WorkerSQL.record,
            [
                workerID, records.map(\.job.id), records.map(\.job.attempt), records.map(\.outcome.rawValue),
                records.map(\.newState.rawValue), records.map { $0.retryDelay / .seconds(1) }, records.map(\.givesBackAttempt),
                records.map(\.errorCode), records.map(\.errorMessage), records.map(\.requestID),
                records.map(\.startedAt), records.map(\.finishedAt), records.map(\.job.claimToken),
            ]
        ).prepared()
        return Set(try await pool.query(query).map { try $0.decode(Int64.self, at: 0) })
    }

    /// Gives back claimed jobs that were never called.
    @discardableResult
    public func release(_ jobs: [ClaimedJob], workerID: String) async throws -> Int {
        guard !jobs.isEmpty else { return 0 }
        return try await pool.query(PostgresQuery(WorkerSQL.release, [workerID, jobs.map(\.id), jobs.map(\.claimToken)]).prepared()).count
    }

    /// Registers the worker with the regions it serves (nil: every region), for `status`.
    public func registerWorker(
        id: String, host: String, pid: Int32, version: String, concurrency: Int, regions: [String]? = nil,
        heartbeatInterval: Duration = .seconds(10)
    ) async throws {
        try await pool.query(
            PostgresQuery(
                WorkerSQL.register,
                [
                    id, host, Int(pid), version, concurrency, regions, Int(max(1, heartbeatInterval / .milliseconds(1))),
                ]))
    }

    /// Renews leases and the status row; returns the ids whose lease was renewed.
    @discardableResult
    public func heartbeat(workerID: String, lease: Duration, status: WorkerStatus, holding jobs: [Int64]) async throws -> [Int64] {
        let rows = try await retryingMovedRows {
            try await pool.query(
                PostgresQuery(
                    WorkerSQL.heartbeat,
                    [
                        workerID, lease / .seconds(1), status.state, status.inFlight, status.succeeded, status.failed, status.retried, jobs,
                    ]
                ).prepared())
        }
        return try rows.map { try $0.decode(Int64.self, at: 0) }
    }

    /// Returns expired-lease jobs to the queue; returns how many.
    @discardableResult
    /// `workerID`'s jobs in `jobs` are skipped (it is alive and renews them), and all of its jobs
    /// when `claimInProgress`: a claim whose reply is still on its way looks like a lost one.
    public func rescueExpiredLeases(
        exceptHeldBy workerID: String = "", holding jobs: [Int64] = [], claimInProgress: Bool = false
    ) async throws -> Int {
        try await retryingMovedRows { try await pool.query(PostgresQuery(WorkerSQL.rescue, [workerID, jobs, claimInProgress]).prepared()) }.count
    }

    public func markSilentWorkersStopped(after silence: Duration) async throws {
        try await pool.query(PostgresQuery(WorkerSQL.markSilentWorkersStopped, [silence / .seconds(1)]))
    }

    public func markWorkerStopped(id: String, status: WorkerStatus) async throws {
        try await pool.query(PostgresQuery(WorkerSQL.markStopped, [id, status.succeeded, status.failed, status.retried]))
    }

    /// Time until the earliest waiting job may run, or nil if none is waiting.
    public func nextRunAt(regions: [String]? = nil) async throws -> Duration? {
        try await pool.query(PostgresQuery(WorkerSQL.nextRunAt, [regions]).prepared())[0].decode(Double?.self, at: 0).map { .seconds($0) }
    }

    /// Renews `job`'s lease if it is still running under this claim; false if it is not.
    public func renewLease(_ job: ClaimedJob, workerID: String, lease: Duration) async throws -> Bool {
        try await pool.query(PostgresQuery(WorkerSQL.renewLease, [job.id, workerID, job.claimToken, lease / .seconds(1)]).prepared()).count == 1
    }

    /// Whether `job` is still running under this claim.
    public func stillHeld(_ job: ClaimedJob, workerID: String) async throws -> Bool {
        try await pool.query(PostgresQuery(WorkerSQL.stillHeld, [job.id, workerID, job.claimToken]).prepared())[0].decode(Bool.self, at: 0)
    }

    /// For a `--drain` run, from one snapshot: whether anything in `regions` is runnable, and how
    /// long it must still wait for running jobs of `regions` that may come back to the queue
    /// (negative: due already; nil if none can). See `WorkerSQL.drainOutlook`.
    public func drainOutlook(workerID: String, regions: [String]? = nil) async throws -> (runnable: Bool, orphanedLeaseWait: Duration?) {
        let row = try await pool.query(PostgresQuery(WorkerSQL.drainOutlook, [regions, workerID]).prepared())[0]
        return (try row.decode(Bool.self, at: 0), try row.decode(Double?.self, at: 1).map { .seconds($0) })
    }

    /// Whether anything is runnable in `regions` (nil: every region).
    public func anyRunnable(regions: [String]? = nil) async throws -> Bool {
        try await pool.query(PostgresQuery(WorkerSQL.anyRunnable, [regions]).prepared())[0].decode(Bool.self, at: 0)
    }
}

/// What a worker reports in its `workers` row.
public struct WorkerStatus: Sendable {
    public var state = "running"
    public var inFlight = 0
    public var succeeded = 0
    public var failed = 0
    public var retried = 0

    public init() {}
}
