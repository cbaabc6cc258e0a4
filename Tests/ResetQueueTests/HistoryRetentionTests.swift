import Postgres
import PostgresTesting
import ResetQueue
import Testing

/// Retention on the partitioned history (migration 0008, `prune_history`): whole days go, the
/// audit of a job still kept is never cut short, and keys are forgotten with their job.
///
/// Partitions are daily by `finished_at`, and a test cannot wait for days to pass, so the history
/// here lies in the coming days (day D = the day after tomorrow) and the cutoff after it.
@Suite("History retention")
struct HistoryRetentionTests {
    static func day(_ days: Int) -> String {
        "(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '\(days) days')"
    }
    static let dayD = day(2)

    /// Inserts `count` jobs finished during day D (+ `offset`), each with one audit row.
    func finishedJobs(_ connection: PostgresConnection, count: Int, user: String, key: Bool = false, on dayD: String = Self.dayD) async throws {
        try await connection.query(
            PostgresQuery(
                """
                WITH j AS (
                    INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, created_at, started_at, finished_at, idempotency_key)
                    SELECT 'eu-west-1_Ret', $1 || g, 'succeeded', 1, \(dayD) + interval '1 hour',
                           \(dayD) + interval '2 hours', \(dayD) + interval '3 hours',
                           CASE WHEN $3 THEN 'key-' || $1 || g END
                    FROM generate_series(1, $2::int) g RETURNING id, started_at, finished_at
                )
                INSERT INTO cognito_reset.attempts (job_id, attempt, worker_id, started_at, finished_at, outcome)
                SELECT id, 1, 'w', started_at, finished_at, 'succeeded' FROM j
                """, [user, count, key]))
    }

    func prune(_ connection: PostgresConnection, dryRun: Bool = false, after dayD: String = Self.dayD) async throws -> (jobs: Int, attempts: Int) {
        let row = try await connection.query(
            PostgresQuery(
                "SELECT jobs, attempts FROM cognito_reset.prune_history(\(dayD) + interval '1 day', $1)", [dryRun]))[0]
        return (try row.decode(Int.self, at: 0), try row.decode(Int.self, at: 1))
    }

    @Test func aWholeDayIsDroppedWithItsAuditAndKeys() async throws {
        try await withMigratedConnection { connection in
            try await connection.query("SELECT cognito_reset.ensure_history_partitions(4)")
            // Day D only (the queue's active jobs are created after it).
            try await finishedJobs(connection, count: 500, user: "gone", key: true)
            try await connection.query(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, created_at) VALUES ('eu-west-1_Ret', 'later', now() + interval '5 days')
                """)
            let partition = try await connection.scalar(
                """
                SELECT tableoid::regclass::text FROM cognito_reset.jobs WHERE username = 'gone1'
                """, as: String.self)
            #expect(partition.hasPrefix("cognito_reset.jobs_finished_p"))

            #expect(try await prune(connection, dryRun: true) == (500, 500))
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.jobs", as: Int.self) == 501)
            #expect(try await prune(connection) == (500, 500))
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.jobs", as: Int.self) == 1)
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.attempts", as: Int.self) == 0)
            // The day's tables are gone, not emptied row by row.
            #expect(
                try await connection.query(PostgresQuery("SELECT to_regclass($1)::text", [partition]))[0]
                    .decode(String?.self, at: 0) == nil)
            // Keys are forgotten with their job: the same key makes a new job.
            let again = try await connection.scalar(
                """
                SELECT cognito_reset.enqueue_reset('eu-west-1_Ret', 'gone1', idempotency_key => 'key-gone1')
                """, as: Int64.self)
            #expect(
                try await connection.scalar(
                    "SELECT count(*) FROM cognito_reset.jobs WHERE id = \(again) AND state = 'pending'", as: Int.self) == 1)
        }
    }

    @Test func aKeptJobKeepsItsWholeAudit() async throws {
        try await withMigratedConnection { connection in
            try await connection.query("SELECT cognito_reset.ensure_history_partitions(4)")
            try await finishedJobs(connection, count: 20, user: "gone")
            // A job created during day D, called then and still retrying: its call on day D stays.
            try await connection.query(
                """
                WITH j AS (
                    INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, created_at, started_at, run_at)
                    VALUES ('eu-west-1_Ret', 'kept', 'retrying', 1, \(unescaped: Self.dayD) + interval '30 minutes',
                            \(unescaped: Self.dayD) + interval '40 minutes', \(unescaped: Self.dayD) + interval '4 days')
                    RETURNING id
                )
                INSERT INTO cognito_reset.attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, error_code)
                SELECT id, 1, 'w', \(unescaped: Self.dayD) + interval '40 minutes', \(unescaped: Self.dayD) + interval '41 minutes',
                       'transient_error', 'InternalErrorException' FROM j
                """)
            #expect(try await prune(connection) == (20, 20))
            #expect(
                try await connection.scalar(
                    """
                    SELECT count(*) FROM cognito_reset.attempts a JOIN cognito_reset.jobs j ON j.id = a.job_id WHERE j.username = 'kept'
                    """, as: Int.self) == 1)
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.attempts", as: Int.self) == 1)
        }
    }

    @Test func rowsInTheDefaultPartitionArePrunedRowByRow() async throws {
        try await withMigratedConnection { connection in
            // No partition for a day ten days ahead: its rows land in the default partition.
            try await finishedJobs(connection, count: 10, user: "stray", on: Self.day(10))
            #expect(
                try await connection.scalar(
                    "SELECT count(*) FROM cognito_reset.jobs_finished_default", as: Int.self) == 10)
            #expect(try await prune(connection, after: Self.day(10)) == (10, 10))
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.jobs", as: Int.self) == 0)
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.attempts", as: Int.self) == 0)
        }
    }
}
