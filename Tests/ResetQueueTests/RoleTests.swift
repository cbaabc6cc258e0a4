import Foundation
import Postgres
import PostgresTesting
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

    /// The daemon checks the schema version before READY=1 and prunes with its own role.
    @Test func theWorkerReadsTheMigrationsAndPrunesFinishedJobs() async throws {
        try await withMigratedConnection { connection in
            try await connection.execute(PostgresQuery(Self.seed))
            let worker = "cognito_reset_worker"
            #expect(try await sqlState(as: worker, "SELECT count(*) FROM cognito_reset.schema_migrations", on: connection) == nil)
            #expect(try await sqlState(as: worker, "DELETE FROM cognito_reset.jobs WHERE state = 'succeeded'", on: connection) == nil)
            #expect(try await sqlState(as: worker, "DELETE FROM cognito_reset.schema_migrations", on: connection) == SQLState.insufficientPrivilege)
            #expect(try await sqlState(as: "cognito_reset_monitor", "SELECT count(*) FROM cognito_reset.schema_migrations", on: connection) == nil)
            #expect(
                try await sqlState(as: "cognito_reset_enqueuer", "SELECT count(*) FROM cognito_reset.schema_migrations", on: connection)
                    == SQLState.insufficientPrivilege)
        }
    }

    @Test func theEnqueuerCanEnqueueAndReadButNotClaimUpdateOrDelete() async throws {
        try await withMigratedConnection { connection in
            try await connection.execute(PostgresQuery(Self.seed))
            let role = "cognito_reset_enqueuer"
            #expect(try await sqlState(as: role, "SELECT cognito_reset.enqueue_reset('eu-west-1_a1', 'u1')", on: connection) == nil)
            #expect(
                try await sqlState(as: role, "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('eu-west-1_a1', 'u2')", on: connection) == nil)
            #expect(try await sqlState(as: role, "SELECT count(*) FROM cognito_reset.jobs", on: connection) == nil)
            #expect(try await sqlState(as: role, "SELECT * FROM cognito_reset.queue_status", on: connection) == nil)
            #expect(
                try await sqlState(
                    as: role, "INSERT INTO cognito_reset.jobs (user_pool_id, username, enqueued_by) VALUES ('eu-west-1_a1', 'u4', 'x')", on: connection)
                    == SQLState.insufficientPrivilege)
            let denied = SQLState.insufficientPrivilege
            #expect(
                try await sqlState(
                    as: role, "INSERT INTO cognito_reset.jobs (user_pool_id, username, state) VALUES ('eu-west-1_a1', 'u3', 'succeeded')", on: connection)
                    == denied)
            #expect(try await sqlState(as: role, "UPDATE cognito_reset.jobs SET state = 'running'", on: connection) == denied)
            #expect(try await sqlState(as: role, "DELETE FROM cognito_reset.jobs", on: connection) == denied)
            #expect(try await sqlState(as: role, "SELECT * FROM cognito_reset.attempts", on: connection) == denied)
            // An import's own columns, yes; its rate schedule, which the workers keep, no.
            #expect(
                try await sqlState(as: role, "INSERT INTO cognito_reset.imports (file_name, sha256, rate) VALUES ('f.csv', repeat('a', 64), 5)", on: connection)
                    == nil)
            #expect(
                try await sqlState(
                    as: role, "INSERT INTO cognito_reset.imports (file_name, sha256, next_slot_at) VALUES ('f.csv', repeat('a', 64), now())", on: connection)
                    == denied)
        }
    }

    /// Paced claims, throttle reports and the rate view work with the roles' own grants (the
    /// functions run as the caller); the monitor and the enqueuer cannot take or change the rate.
    @Test func theWorkerDrawsFromTheSharedRateAndTheMonitorOnlyReadsIt() async throws {
        try await withMigratedConnection { connection in
            try await connection.execute(
                """
                INSERT INTO cognito_reset.imports (file_name, sha256, rate) VALUES ('a.csv', repeat('a', 64), 2)
                """)
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, import_id)
                SELECT 'eu-west-1_a1', 'u' || g, (SELECT max(id) FROM cognito_reset.imports) FROM generate_series(1, 5) g
                """)
            let worker = "cognito_reset_worker"
            let claim = "SELECT * FROM cognito_reset.claim_paced('w', 4, 30, 'cognito:test', 25)"
            #expect(try await sqlState(as: worker, claim, on: connection) == nil)
            #expect(try await sqlState(as: worker, "SELECT cognito_reset.report_throttles('cognito:test', 1)", on: connection) == nil)
            #expect(try await sqlState(as: worker, "SELECT * FROM cognito_reset.rate_limit_status", on: connection) == nil)
            let monitor = "cognito_reset_monitor"
            let denied = SQLState.insufficientPrivilege
            #expect(try await sqlState(as: monitor, "SELECT * FROM cognito_reset.rate_limit_status", on: connection) == nil)
            #expect(try await sqlState(as: monitor, claim, on: connection) == denied)
            #expect(try await sqlState(as: monitor, "UPDATE cognito_reset.rate_limits SET rate = 0", on: connection) == denied)
            #expect(try await sqlState(as: "cognito_reset_enqueuer", claim, on: connection) == denied)
            #expect(try await sqlState(as: "cognito_reset_enqueuer", "SELECT cognito_reset.report_throttles('cognito:test', 1)", on: connection) == denied)
        }
    }

    /// Pool roles decide which account a pool's calls act in: only the owner and the admin role
    /// change them; workers and the monitor read them; enqueuers do not see them.
    @Test func onlyTheAdminRoleMapsPoolsToRoles() async throws {
        try await withMigratedConnection { connection in
            let insert = """
                INSERT INTO cognito_reset.pool_roles (user_pool_id, role_arn) VALUES ('eu-west-1_a1', 'arn:aws:iam::111111111111:role/r')
                """
            let denied = SQLState.insufficientPrivilege
            #expect(try await sqlState(as: "cognito_reset_admin", insert, on: connection) == nil)
            for role in ["cognito_reset_worker", "cognito_reset_monitor", "cognito_reset_enqueuer"] {
                #expect(try await sqlState(as: role, insert, on: connection) == denied, "\(role)")
            }
            try await connection.execute(PostgresQuery(insert))
            for role in ["cognito_reset_worker", "cognito_reset_monitor", "cognito_reset_admin"] {
                #expect(try await sqlState(as: role, "SELECT * FROM cognito_reset.pool_roles", on: connection) == nil, "\(role)")
                #expect(try await sqlState(as: role, "SELECT * FROM cognito_reset.region_status", on: connection) == nil, "\(role)")
            }
            #expect(try await sqlState(as: "cognito_reset_enqueuer", "SELECT * FROM cognito_reset.pool_roles", on: connection) == denied)
            #expect(try await sqlState(as: "cognito_reset_worker", "DELETE FROM cognito_reset.pool_roles", on: connection) == denied)
            #expect(try await sqlState(as: "cognito_reset_admin", "DELETE FROM cognito_reset.pool_roles", on: connection) == nil)
            // The role's account is derived, never written.
            #expect(try await sqlState(as: "cognito_reset_admin", "UPDATE cognito_reset.pool_roles SET account_id = '1'", on: connection) != nil)
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
            #expect(
                try await sqlState(
                    as: role,
                    """
                    UPDATE cognito_reset.jobs SET state = 'running', attempt = attempt + 1, locked_by = 'w1',
                        lease_expires_at = now() + interval '30 seconds', started_at = now()
                    """, on: connection) == nil)
            #expect(
                try await sqlState(
                    as: role,
                    """
                    INSERT INTO cognito_reset.attempts (job_id, attempt, worker_id, started_at, finished_at, outcome)
                    SELECT id, 1, 'w1', now(), now(), 'succeeded' FROM cognito_reset.jobs
                    """, on: connection) == nil)
            #expect(
                try await sqlState(as: role, "INSERT INTO cognito_reset.workers (id, host, pid, version) VALUES ('w1', 'h', 1, 'v')", on: connection) == nil)
            let denied = SQLState.insufficientPrivilege
            #expect(try await sqlState(as: role, "CREATE TABLE cognito_reset.x (n int)", on: connection) == denied)
            #expect(try await sqlState(as: role, "DROP TABLE cognito_reset.jobs", on: connection) == denied)
            #expect(
                try await sqlState(as: role, "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('eu-west-1_a1', 'new')", on: connection) == denied
            )
        }
    }
}

/// Row security: each system that enqueues sees only its own jobs, yet one user never gets two
/// active jobs however many systems ask.
@Suite("Row security for enqueuers")
struct EnqueuerIsolationTests {
    @Test func enqueuersSeeOnlyTheirOwnJobsButShareTheDedupe() async throws {
        try await withMigratedDatabase { database in
            let enqueuer = ["cognito_reset_enqueuer"]
            try await TestRole.with("app_a", on: database.configuration, login: false, memberOf: enqueuer) { a in
                try await TestRole.with("app_b", on: database.configuration, login: false, memberOf: enqueuer) { b in
                    try await withConnection(to: database) { connection in try await Self.isolate(connection, a.name, b.name) }
                }
            }
        }
    }

    /// Two enqueuer roles `a` and `b` (NOLOGIN: the owner's connection sets them locally).
    static func isolate(_ connection: PostgresConnection, _ a: String, _ b: String) async throws {
        func asRole<T: PostgresDecodable>(_ role: String, _ sql: String, as type: T.Type) async throws -> T {
            try await connection.transaction { connection in
                try await connection.execute("SET LOCAL ROLE \(unescaped: role)")
                return try await connection.query(PostgresQuery(sql))[0].decode(T.self, at: 0)
            }
        }
        let first = try await asRole(a, "SELECT cognito_reset.enqueue_reset('eu-west-1_a1', 'alice')", as: Int64.self)
        #expect(try await asRole(a, "SELECT count(*) FROM cognito_reset.jobs", as: Int.self) == 1)
        #expect(try await asRole(b, "SELECT count(*) FROM cognito_reset.jobs", as: Int.self) == 0)
        // B asks for the same user: A's active job is returned, nothing new is created.
        #expect(try await asRole(b, "SELECT cognito_reset.enqueue_reset('eu-west-1_a1', 'alice')", as: Int64.self) == first)
        #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.jobs", as: Int.self) == 1)
        #expect(try await connection.scalar("SELECT enqueued_by FROM cognito_reset.jobs", as: String.self) == a)
        // Nobody can enqueue in another's name.
        let forged = try await #require(throws: PostgresError.self) {
            try await asRole(
                b, "INSERT INTO cognito_reset.jobs (user_pool_id, username, enqueued_by) VALUES ('eu-west-1_a1', 'bob', '\(a)') RETURNING 1", as: Int.self)
        }
        #expect(forged.sqlState == SQLState.insufficientPrivilege)
        // An idempotency key tells B only whether it names a job for the same user, never whose.
        _ = try await asRole(a, "SELECT cognito_reset.enqueue_reset('eu-west-1_a1', 'carol', idempotency_key => 'ticket-1')", as: Int64.self)
        #expect(try await asRole(b, "SELECT same_user FROM cognito_reset.idempotency_key_job('ticket-1', 'eu-west-1_a1', 'dave')", as: Bool.self) == false)
        let columns = try await connection.query(
            """
            SELECT string_agg(parameter_name, ',' ORDER BY ordinal_position) FROM information_schema.parameters
            WHERE specific_schema = 'cognito_reset' AND specific_name LIKE 'idempotency_key_job%' AND parameter_mode = 'OUT'
            """)[0].decode(String.self, at: 0)
        #expect(columns == "job_id,same_user")
        let reused = try await #require(throws: PostgresError.self) {
            try await asRole(b, "SELECT cognito_reset.enqueue_reset('eu-west-1_a1', 'dave', idempotency_key => 'ticket-1')", as: Int64.self)
        }
        #expect(reused.constraintName == "jobs_idempotency_key_unique")
    }
}
