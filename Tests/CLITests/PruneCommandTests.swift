import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import SystemTesting
import Testing

/// `cognito-reset prune`: retention that never touches live work.
@Suite("cognito-reset prune")
struct PruneCommandTests {
    @Test func deletesOnlyOldFinishedJobsInBatchesAsTheWorkerRole() async throws {
        try await TemporaryDatabase.with { database in
            let admin = ["DATABASE_URL": database.configuration.resolvedConnectionString()]
            #expect(try await CognitoResetBinary.run(["migrate"], environment: admin).status == 0)
            let connection = try await database.connect()
            // 25 old finished jobs with two attempts each, and what must survive: old pending,
            // retrying and running jobs, and recently finished ones.
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, created_at, finished_at)
                SELECT 'eu-west-1_Old', 'old' || g, (ARRAY['succeeded', 'failed', 'cancelled'])[1 + g % 3], 1,
                       now() - interval '41 days', now() - interval '40 days'
                FROM generate_series(1, 25) g
                """)
            try await connection.execute(
                """
                INSERT INTO cognito_reset.attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, error_code)
                SELECT id, 1, 'w', finished_at, finished_at, 'transient_error', 'X' FROM cognito_reset.jobs
                UNION ALL
                SELECT id, 1, 'w', finished_at, finished_at, 'succeeded', NULL FROM cognito_reset.jobs
                """)
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, created_at, run_at, finished_at, locked_by, lease_expires_at, started_at)
                VALUES ('eu-west-1_Old', 'waiting', 'pending', 0, now() - interval '90 days', now() - interval '90 days', NULL, NULL, NULL, NULL),
                       ('eu-west-1_Old', 'again', 'retrying', 1, now() - interval '90 days', now() - interval '90 days', NULL, NULL, NULL, NULL),
                       ('eu-west-1_Old', 'busy', 'running', 1, now() - interval '90 days', now() - interval '90 days', NULL, 'w', now() + interval '1 minute', now()),
                       ('eu-west-1_Old', 'recent', 'succeeded', 1, now() - interval '2 days', now() - interval '2 days', now() - interval '1 day', NULL, NULL, NULL)
                """)
            try await connection.execute(
                """
                INSERT INTO cognito_reset.workers (id, host, pid, version, state, started_at, heartbeat_at, stopped_at)
                VALUES ('gone', 'h', 1, 'v', 'stopped', now() - interval '60 days', now() - interval '60 days', now() - interval '60 days'),
                       ('alive', 'h', 2, 'v', 'running', now(), now(), NULL)
                """)
            // Prune runs with the daemon's credentials: a login role in cognito_reset_worker.
            try await TestRole.with("prune", on: database.configuration, memberOf: ["cognito_reset_worker"]) { role in
                let worker = ["DATABASE_URL": role.configuration.resolvedConnectionString()]

                let dryRun = try await CognitoResetBinary.run(["prune", "--dry-run", "--json"], environment: worker)
                #expect(dryRun.status == 0, "\(dryRun.stderr)")
                let planned = try JSONSerialization.jsonObject(with: Data(dryRun.stdout.utf8)) as? [String: Any]
                #expect(planned?["jobs"] as? Int == 25)
                #expect(planned?["attempts"] as? Int == 50)
                #expect(planned?["workers"] as? Int == 1)
                #expect(try await count("SELECT count(*) FROM cognito_reset.jobs", connection) == 29, "a dry run deletes nothing")

                let pruned = try await CognitoResetBinary.run(["prune", "--older-than", "30d", "--batch-size", "7"], environment: worker)
                #expect(pruned.status == 0, "\(pruned.stderr)")
                #expect(pruned.stdout.contains("deleted 25 finished jobs, 50 attempts, 1 stopped workers"), "\(pruned.stdout)")
                let left = try await connection.query("SELECT username FROM cognito_reset.jobs ORDER BY username").map { try $0.decode(String.self, at: 0) }
                #expect(left == ["again", "busy", "recent", "waiting"])
                #expect(try await count("SELECT count(*) FROM cognito_reset.attempts", connection) == 0)
                #expect(try await count("SELECT count(*) FROM cognito_reset.workers", connection) == 1)

                let again = try await CognitoResetBinary.run(["prune"], environment: worker)
                #expect(again.stdout.hasPrefix("deleted 0 finished jobs"), "a second run finds nothing: \(again.stdout)")
            }
            await connection.close()
        }
    }

    @Test(arguments: [
        (["prune", "--older-than", "10m"], "--older-than: must be at least 1h"),
        (["prune", "--older-than", "soon"], "--older-than"),
        (["prune", "--older-than", "1e30"], "--older-than"),
        (["prune", "--older-than", "36501d"], "--older-than"),
        (["prune", "--batch-size", "0"], "--batch-size: must be an integer from 1 to 100000"),
    ])
    func badValuesAreRefused(_ arguments: [String], _ message: String) async throws {
        let result = try await CognitoResetBinary.run(arguments, environment: ["DATABASE_URL": "postgresql://127.0.0.1:1/none"])
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("error: ") && result.stderr.contains(message), "\(result.stderr)")
    }

    @Test func theRetentionComesFromTheEnvironmentToo() async throws {
        let result = try await CognitoResetBinary.run(
            ["prune"], environment: ["DATABASE_URL": "postgresql://127.0.0.1:1/none", "COGNITO_RESET_RETENTION": "5m"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("must be at least 1h"))
    }

    func count(_ sql: String, _ connection: PostgresConnection) async throws -> Int {
        try await connection.query(PostgresQuery(sql))[0].decode(Int.self, at: 0)
    }
}
