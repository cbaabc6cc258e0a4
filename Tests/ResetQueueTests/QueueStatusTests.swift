import Postgres
import PostgresTesting
import ResetQueue
import Testing

@Suite("queue_status view")
struct QueueStatusTests {
    @Test func summarisesTheQueue() async throws {
        try await withMigratedConnection { connection in
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, run_at, state, attempt, finished_at, locked_by, lease_expires_at, started_at)
                VALUES ('eu-west-1_a1', 'p1', now() - interval '90 seconds', 'pending', 0, NULL, NULL, NULL, NULL),
                       ('eu-west-1_a1', 'p2', now() + interval '1 hour', 'pending', 0, NULL, NULL, NULL, NULL),
                       ('eu-west-1_a1', 'r1', now() - interval '10 seconds', 'retrying', 1, NULL, NULL, NULL, NULL),
                       ('eu-west-1_a1', 'x1', now(), 'running', 1, NULL, 'w1', now() + interval '30 seconds', now()),
                       ('eu-west-1_a1', 's1', now(), 'succeeded', 1, now() - interval '10 seconds', NULL, NULL, NULL),
                       ('eu-west-1_a1', 's2', now(), 'succeeded', 1, now() - interval '2 hours', NULL, NULL, NULL),
                       ('eu-west-1_a1', 'f1', now(), 'failed', 1, now() - interval '30 minutes', NULL, NULL, NULL),
                       ('eu-west-1_a1', 'c1', now(), 'cancelled', 0, now(), NULL, NULL, NULL)
                """)
            try await connection.execute(
                """
                INSERT INTO cognito_reset.workers (id, host, pid, version) VALUES ('w1', 'h', 1, 'v');
                """)
            let row = try await connection.query("SELECT * FROM cognito_reset.queue_status")[0]
            let counts: [String: Int] = [
                "pending": 2, "running": 1, "retrying": 1, "succeeded": 2, "failed": 1, "cancelled": 1,
                "runnable_now": 2, "scheduled_later": 1, "succeeded_last_minute": 1, "succeeded_last_hour": 1,
                "failed_last_minute": 0, "failed_last_hour": 1, "workers_alive": 1,
            ]
            for (column, expected) in counts {
                #expect(try row.decode(Int.self, column) == expected, "\(column)")
            }
            let age = try row.decode(Double.self, "oldest_runnable_age_seconds")
            #expect(age >= 90 && age < 200)
            #expect(try row.decode(Double.self, "effective_rate") == 0)
        }
    }

    /// One definition of runnable: a queued job with no attempt left is runnable nowhere, not in
    /// queue_status, the metrics' gauges, --drain's check, nor the claim.
    @Test func aJobWithNoAttemptLeftIsRunnableNowhere() async throws {
        try await withMigratedDatabase { database in
            try await withConnection(to: database) { connection in
                try await connection.execute(
                    """
                    INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, max_attempts, run_at)
                    VALUES ('eu-west-1_a1', 'spent', 'retrying', 3, 3, now() - interval '1 minute'),
                           ('eu-west-1_a1', 'later', 'retrying', 3, 3, now() + interval '1 minute')
                    """)
                let row = try await connection.query("SELECT runnable_now, scheduled_later FROM cognito_reset.queue_status")[0]
                #expect(try row.decode(Int.self, at: 0) == 0)
                #expect(try row.decode(Int.self, at: 1) == 0)
            }
            let pool = ConnectionPool(configuration: database.configuration)
            let store = PostgresJobStore(pool: pool)
            let gauges = try await store.queueGauges()
            let runnable = try await store.anyRunnable()
            let next = try await store.nextRunAt()
            let claimed = try await store.claim(workerID: "w", limit: 10, lease: .seconds(30))
            await pool.close()
            #expect(gauges.runnable == 0 && !runnable && next == nil && claimed.isEmpty)
        }
    }
}
