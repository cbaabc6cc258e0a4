import Foundation
import Logging
import Postgres
import PostgresTesting
import Synchronization
import Testing

@testable import ResetQueue

/// Migrations 0006-0009 (the lean queue) on a live database: 1,000,000 finished and 100,000 active
/// jobs (`LIVE_MIGRATION_FINISHED`, `LIVE_MIGRATION_ACTIVE`), a worker of the previous version
/// claiming and recording meanwhile, another system enqueuing, and a reader looking up a finished
/// job by id. Nothing is lost, every outcome is audited once, history stays readable throughout,
/// and the time the switch held its exclusive locks is printed (the goal is under a second), with
/// that of 0016, which moves checks between the partitions in the same run.
@Suite("Live migration to the lean queue")
struct LiveMigrationTests {
    let logger = Logger(label: "test")

    /// The previous version's claim and record statements (before the lean queue), as its workers send
    /// them: they keep working on the new tables (row movement carries a finished job to history).
    static let oldClaim = """
        WITH next AS (
            SELECT id FROM cognito_reset.jobs
            WHERE state IN ('pending', 'retrying') AND run_at <= now() AND attempt < max_attempts
            ORDER BY priority, run_at, id LIMIT 16 FOR UPDATE SKIP LOCKED
        )
        UPDATE cognito_reset.jobs AS j
        SET state = 'running', locked_by = $1, attempt = j.attempt + 1, started_at = now(),
            lease_expires_at = now() + interval '30 seconds'
        FROM next WHERE j.id = next.id
        RETURNING j.id
        """
    static let oldRecord = """
        WITH done AS (
            UPDATE cognito_reset.jobs AS j
            SET state = 'succeeded', finished_at = now(), locked_by = NULL, lease_expires_at = NULL,
                cognito_request_id = 'old-worker'
            WHERE j.id = ANY($2::bigint[]) AND j.state = 'running' AND j.locked_by = $1
            RETURNING j.id, j.attempt, j.started_at
        )
        INSERT INTO cognito_reset.attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, request_id, latency_ms)
        SELECT id, attempt, $1, started_at, greatest(now(), started_at), 'succeeded', 'old-worker', 1 FROM done
        RETURNING job_id
        """

    static func size(_ name: String, default value: Int) -> Int {
        ProcessInfo.processInfo.environment[name].flatMap(Int.init) ?? value
    }

    @Test func theSwitchKeepsEveryJobAndAuditsEachOutcomeOnce() async throws {
        let finished = Self.size("LIVE_MIGRATION_FINISHED", default: 1_000_000)
        let active = Self.size("LIVE_MIGRATION_ACTIVE", default: 100_000)
        try await TemporaryDatabase.with { database in
            try await withConnection(to: database) { admin in
                let all = try CognitoResetSchema.embeddedMigrations()
                _ = try await Migrator(
                    migrations: all.filter { $0.fileName < "0006" }, schema: CognitoResetSchema.name,
                    lockKey: CognitoResetSchema.migrationLockKey, logger: logger
                ).migrate(on: admin)
                try await admin.query(
                    PostgresQuery(
                        """
                        INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, created_at, started_at, finished_at, cognito_request_id)
                        SELECT 'eu-west-1_History', 'old' || g, 'succeeded', 1, now() - interval '3 days', now() - interval '2 days',
                               now() - interval '1 day' + g * interval '1 ms', 'r' || g
                        FROM generate_series(1, $1::int) g
                        """, [finished]))
                try await admin.query(
                    """
                    INSERT INTO cognito_reset.attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, request_id, latency_ms)
                    SELECT id, 1, 'w0', started_at, finished_at, 'succeeded', cognito_request_id, 30 FROM cognito_reset.jobs
                    """)
                try await admin.query(
                    PostgresQuery(
                        """
                        INSERT INTO cognito_reset.jobs (user_pool_id, username, idempotency_key)
                        SELECT 'eu-west-1_Live', 'live' || g, CASE WHEN g % 100 = 0 THEN 'key' || g END FROM generate_series(1, $1::int) g
                        """, [active]))
                try await admin.query("VACUUM ANALYZE")
                let oldest = try await admin.query("SELECT min(id) FROM cognito_reset.jobs")[0].decode(Int64.self, at: 0)

                let stop = StopFlag()
                let oldWorker = Task { () throws -> Int in
                    try await withConnection(to: database) { connection in
                        var recorded = 0
                        while !stop.isSet {
                            let ids = try await connection.query(PostgresQuery(Self.oldClaim, ["old-worker"])).map { try $0.decode(Int64.self, at: 0) }
                            if ids.isEmpty { continue }
                            recorded += try await connection.query(PostgresQuery(Self.oldRecord, ["old-worker", ids])).count
                        }
                        return recorded
                    }
                }
                let enqueuer = Task { () throws -> Int in
                    try await withConnection(to: database) { connection in
                        var enqueued = 0
                        while !stop.isSet {
                            enqueued += try await connection.query(
                                PostgresQuery(
                                    "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('eu-west-1_New', $1) RETURNING id",
                                    ["new\(enqueued)"])
                            ).count
                        }
                        return enqueued
                    }
                }
                // Looks a finished job up by id over and over: it must be found every time, and the
                // longest wait is what another system sees of the switch.
                let reader = Task { () throws -> (misses: Int, longest: Duration) in
                    try await withConnection(to: database) { connection in
                        var misses = 0
                        var longest = Duration.zero
                        while !stop.isSet {
                            let started = ContinuousClock.now
                            let rows = try await connection.query(
                                PostgresQuery(
                                    "SELECT state FROM cognito_reset.jobs WHERE id = $1", [oldest]))
                            longest = max(longest, .now - started)
                            if rows.count != 1 { misses += 1 }
                        }
                        return (misses, longest)
                    }
                }

                let applied = try await withConnection(to: database) { migrating in
                    try await CognitoResetSchema.migrator(logger: logger).migrate(on: migrating)
                }
                #expect(applied.map(\.fileName).contains("0008_lean_queue.sql"))
                #expect(applied.map(\.fileName).contains("0016_checks_where_rows_come_in.sql"))
                // A little more work on the new tables before stopping.
                try await Task.sleep(for: .milliseconds(300))
                stop.set()
                let recorded = try await oldWorker.value
                let enqueued = try await enqueuer.value
                let read = try await reader.value

                func held(_ version: String) async throws -> Int {
                    let seconds = try await admin.query(
                        PostgresQuery(
                            "SELECT extract(epoch FROM released_at - acquired_at)::double precision FROM cognito_reset.migration_locks WHERE version = $1",
                            [version]))[0].decode(Double.self, at: 0)
                    return Int(seconds * 1000)
                }
                print(
                    "live migration: \(finished) finished and \(active) active jobs; 0008 held its exclusive locks for "
                        + "\(try await held("0008")) ms, 0016 for \(try await held("0016")) ms; the longest lookup of a finished job "
                        + "took \(read.longest); the old worker recorded \(recorded) jobs and \(enqueued) were enqueued meanwhile")

                #expect(read.misses == 0)
                #expect(recorded > 0 && enqueued > 0)
                // Nothing lost: every job is still there, in the partition its state says.
                #expect(try await admin.scalar("SELECT count(*) FROM cognito_reset.jobs", as: Int.self) == finished + active + enqueued)
                #expect(try await admin.scalar("SELECT count(*) FROM cognito_reset.jobs_finished", as: Int.self) == finished + recorded)
                #expect(try await admin.scalar("SELECT count(*) FROM ONLY cognito_reset.jobs_active", as: Int.self) == active + enqueued - recorded)
                // Each outcome audited exactly once, and the history's audit kept.
                #expect(
                    try await admin.scalar(
                        "SELECT count(*) FROM cognito_reset.attempts WHERE worker_id = 'old-worker'", as: Int.self) == recorded)
                #expect(
                    try await admin.scalar(
                        """
                        SELECT count(*) FROM (SELECT job_id FROM cognito_reset.attempts GROUP BY job_id HAVING count(*) > 1) d
                        """, as: Int.self) == 0)
                #expect(try await admin.scalar("SELECT count(*) FROM cognito_reset.attempts", as: Int.self) == finished + recorded)
                // Keys moved with their jobs: enqueue_reset returns the same job for one.
                let keyed = try await admin.scalar("SELECT id FROM cognito_reset.jobs WHERE idempotency_key = 'key100'", as: Int64.self)
                #expect(
                    try await admin.scalar(
                        "SELECT cognito_reset.enqueue_reset('eu-west-1_Live', 'live100', idempotency_key => 'key100')", as: Int64.self) == keyed)
                // The new claim works on what the switch left.
                let pool = ConnectionPool(configuration: database.configuration)
                let claimed = try await PostgresJobStore(pool: pool).claim(workerID: "new-worker", limit: 10, lease: .seconds(30))
                await pool.close()
                #expect(claimed.count == 10)
            }
        }
    }

    /// Tells the background loops to stop.
    final class StopFlag: Sendable {
        private let flag = Atomic<Bool>(false)
        var isSet: Bool { flag.load(ordering: .relaxed) }
        func set() { flag.store(true, ordering: .relaxed) }
    }
}
