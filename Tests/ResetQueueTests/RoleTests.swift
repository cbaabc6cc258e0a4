import Postgres
import Testing

/// The NOLOGIN roles the migrations create hold exactly the privileges their users need.
@Suite("Roles")
struct RoleTests {
    /// Runs `sql` as `role` (in a transaction that is rolled back) and returns the SQLSTATE, or nil.
    func sqlState(as role: String, _ sql: String, on connection: PostgresConnection) async throws -> String? {
        struct Undo: Error {}
        do {
            try await connection.transaction { connection in
                try await connection.execute("SET LOCAL ROLE \(unescaped: role)")
                try await connection.execute(PostgresQuery(sql))
                throw Undo()
            }
        } catch is Undo {
            return nil
        } catch let error as PostgresError {
            return error.sqlState
        }
        return nil
    }

    static let seed = """
        INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('eu-west-1_a1', 'seed')
        """

    @Test func theEnqueuerCanEnqueueAndReadButNotClaimUpdateOrDelete() async throws {
        try await withMigratedConnection { connection in
            try await connection.execute(PostgresQuery(Self.seed))
            let role = "cognito_reset_enqueuer"
            #expect(try await sqlState(as: role, "SELECT cognito_reset.enqueue_reset('eu-west-1_a1', 'u1')", on: connection) == nil)
            #expect(try await sqlState(as: role, "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('eu-west-1_a1', 'u2')", on: connection) == nil)
            #expect(try await sqlState(as: role, "SELECT count(*) FROM cognito_reset.jobs", on: connection) == nil)
            #expect(try await sqlState(as: role, "SELECT * FROM cognito_reset.queue_status", on: connection) == nil)
            let denied = SQLState.insufficientPrivilege
            #expect(try await sqlState(as: role, "INSERT INTO cognito_reset.jobs (user_pool_id, username, state) VALUES ('eu-west-1_a1', 'u3', 'succeeded')", on: connection) == denied)
            #expect(try await sqlState(as: role, "UPDATE cognito_reset.jobs SET state = 'running'", on: connection) == denied)
            #expect(try await sqlState(as: role, "DELETE FROM cognito_reset.jobs", on: connection) == denied)
            #expect(try await sqlState(as: role, "SELECT * FROM cognito_reset.attempts", on: connection) == denied)
        }
    }

    @Test func theMonitorReadsStatusOnly() async throws {
        try await withMigratedConnection { (connection: PostgresConnection) async throws in
            let role = "cognito_reset_monitor"
            #expect(try await sqlState(as: role, "SELECT * FROM cognito_reset.queue_status", on: connection) == nil)
            #expect(try await sqlState(as: role, "SELECT * FROM cognito_reset.workers", on: connection) == nil)
            let denied = SQLState.insufficientPrivilege
            #expect(try await sqlState(as: role, "SELECT username FROM cognito_reset.jobs", on: connection) == denied)
            #expect(try await sqlState(as: role, "SELECT cognito_reset.enqueue_reset('eu-west-1_a1', 'u1')", on: connection) == denied)
        }
    }

    @Test func theWorkerWorksJobsButCannotRewriteTheAuditOrChangeTheSchema() async throws {
        try await withMigratedConnection { connection in
            try await connection.execute(PostgresQuery(Self.seed))
            let role = "cognito_reset_worker"
            #expect(try await sqlState(as: role, """
                UPDATE cognito_reset.jobs SET state = 'running', attempt = attempt + 1, locked_by = 'w1',
                    lease_expires_at = now() + interval '30 seconds', started_at = now()
                """, on: connection) == nil)
            #expect(try await sqlState(as: role, """
                INSERT INTO cognito_reset.attempts (job_id, attempt, worker_id, started_at, finished_at, outcome)
                SELECT id, 1, 'w1', now(), now(), 'succeeded' FROM cognito_reset.jobs
                """, on: connection) == nil)
            #expect(try await sqlState(as: role, "INSERT INTO cognito_reset.workers (id, host, pid, version) VALUES ('w1', 'h', 1, 'v')", on: connection) == nil)
            let denied = SQLState.insufficientPrivilege
            #expect(try await sqlState(as: role, "CREATE TABLE cognito_reset.x (n int)", on: connection) == denied)
            #expect(try await sqlState(as: role, "DROP TABLE cognito_reset.jobs", on: connection) == denied)
            #expect(try await sqlState(as: role, "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('eu-west-1_a1', 'new')", on: connection) == denied)
        }
    }
}
