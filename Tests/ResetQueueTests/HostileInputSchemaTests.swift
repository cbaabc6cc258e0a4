import CognitoClient
import Foundation
import Logging
import Postgres
import PostgresTesting
import ResetQueue
import Testing

/// What another system can write with plain SQL: the table refuses what Cognito would, and an
/// enqueuer reaches only its own imports.
@Suite("Schema against hostile input")
struct HostileInputSchemaTests {
    static let pool = "eu-west-1_AbC123"

    /// Runs `query` as `role` in a transaction of its own, committed when it succeeds.
    @discardableResult
    func run(as role: String, _ query: PostgresQuery, on connection: PostgresConnection) async throws -> PostgresResult {
        try await connection.transaction { connection in
            try await connection.execute("SET LOCAL ROLE \(unescaped: role)")
            return try await connection.query(query)
        }
    }

    /// Runs `body` with `count` new members of cognito_reset_enqueuer, standing in for other
    /// systems' login roles. Roles belong to the whole server, not to the test's database: they
    /// are dropped afterwards whether or not `body` throws.
    func withEnqueuers(_ count: Int, on connection: PostgresConnection, _ body: ([String]) async throws -> Void) async throws {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        var created: [String] = []
        do {
            for index in 0..<count {
                let role = "hostile_\(index)_\(suffix)"
                try await connection.execute("CREATE ROLE \(unescaped: role) NOLOGIN IN ROLE cognito_reset_enqueuer")
                created.append(role)
            }
            try await body(created)
        } catch {
            for role in created { _ = try? await connection.execute("DROP ROLE \(unescaped: role)") }
            throw error
        }
        for role in created { try await connection.execute("DROP ROLE \(unescaped: role)") }
    }

    // MARK: Imports belong to the role that created them

    @Test func anEnqueuerReachesOnlyItsOwnImports() async throws {
        try await withMigratedConnection { connection in
            try await withEnqueuers(2, on: connection) { roles in
                let (a, b) = (roles[0], roles[1])
                func newImport(as role: String) async throws -> Int64 {
                    try await run(
                        as: role,
                        """
                        INSERT INTO cognito_reset.imports (file_name, sha256) VALUES ('f.csv', repeat('a', 64)) RETURNING id
                        """, on: connection)[0].decode(Int64.self, at: 0)
                }
                let mine = try await newImport(as: a)
                let theirs = try await newImport(as: b)
                #expect(try await connection.scalar("SELECT created_by FROM cognito_reset.imports WHERE id = \(mine)", as: String.self) == a)
                #expect(try await run(as: a, "SELECT count(*) FROM cognito_reset.imports", on: connection)[0].decode(Int.self, at: 0) == 1)

                // B's import: its counters stay as they are, and A can attach nothing to it.
                let counted = try await run(
                    as: a,
                    """
                    UPDATE cognito_reset.imports SET rows_read = 1, rows_rejected = 1 WHERE id = \(theirs)
                    """, on: connection)
                #expect(counted.affectedRows == 0)
                #expect(try await connection.scalar("SELECT rows_read FROM cognito_reset.imports WHERE id = \(theirs)", as: Int.self) == 0)
                let rejection = try await #require(throws: PostgresError.self) {
                    try await run(
                        as: a,
                        """
                        INSERT INTO cognito_reset.import_rejections (import_id, line_number, reason) VALUES (\(theirs), 1, 'bad line')
                        """, on: connection)
                }
                #expect(rejection.sqlState == SQLState.insufficientPrivilege)
                let job = try await #require(throws: PostgresError.self) {
                    try await run(
                        as: a,
                        """
                        INSERT INTO cognito_reset.jobs (user_pool_id, username, import_id) VALUES (\(Self.pool), 'mallory', \(theirs))
                        """, on: connection)
                }
                #expect(job.sqlState == SQLState.insufficientPrivilege)
                // Nor can A claim an import in B's name.
                let forged = try await #require(throws: PostgresError.self) {
                    try await run(
                        as: a,
                        """
                        INSERT INTO cognito_reset.imports (file_name, sha256, created_by) VALUES ('f.csv', repeat('a', 64), \(b))
                        """, on: connection)
                }
                #expect(forged.sqlState == SQLState.insufficientPrivilege)

                // Its own import: all three, with the statements an import uses.
                #expect(
                    try await run(
                        as: a,
                        """
                        UPDATE cognito_reset.imports SET rows_read = 3, rows_accepted = 2, rows_duplicate = 0, rows_rejected = 1
                        WHERE id = \(mine)
                        """, on: connection
                    ).affectedRows == 1)
                try await run(
                    as: a,
                    """
                    INSERT INTO cognito_reset.import_rejections (import_id, line_number, reason) VALUES (\(mine), 3, 'bad line')
                    """, on: connection)
                #expect(
                    try await run(
                        as: a,
                        """
                        INSERT INTO cognito_reset.jobs (user_pool_id, username, import_id)
                        SELECT \(Self.pool), 'user' || g, \(mine) FROM generate_series(1, 2) g
                        ON CONFLICT DO NOTHING
                        """, on: connection
                    ).affectedRows == 2)
                try await run(
                    as: a,
                    """
                    INSERT INTO cognito_reset.jobs (user_pool_id, username, import_id) VALUES (\(Self.pool), 'user3', \(mine)) RETURNING id
                    """, on: connection)
                #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.jobs WHERE import_id = \(mine)", as: Int.self) == 3)

                // Each sees its own rejections only.
                try await run(
                    as: b,
                    """
                    INSERT INTO cognito_reset.import_rejections (import_id, line_number, reason) VALUES (\(theirs), 1, 'bad line')
                    """, on: connection)
                #expect(try await run(as: a, "SELECT count(*) FROM cognito_reset.import_rejections", on: connection)[0].decode(Int.self, at: 0) == 1)
                #expect(try await run(as: b, "SELECT count(*) FROM cognito_reset.import_rejections", on: connection)[0].decode(Int.self, at: 0) == 1)
            }
        }
    }

    /// Row security keeps an enqueuer to its own imports; the foreign key behind it holds for
    /// every role, the schema's owner included, and for deletes: a job naming an import that does
    /// not exist would never be claimed (the claim reads each import's own rate from its record).
    @Test func aJobNamesOnlyAnImportThatExists() async throws {
        try await withMigratedConnection { connection in
            let missing = try await #require(throws: PostgresError.self) {
                try await connection.execute(
                    "INSERT INTO cognito_reset.jobs (user_pool_id, username, import_id) VALUES (\(Self.pool), 'nobody', 987654321)")
            }
            #expect(missing.sqlState == SQLState.foreignKeyViolation)
            let importID = try await connection.scalar(
                "INSERT INTO cognito_reset.imports (file_name, sha256) VALUES ('f.csv', repeat('b', 64)) RETURNING id", as: Int64.self)
            try await connection.execute(
                "INSERT INTO cognito_reset.jobs (user_pool_id, username, import_id) VALUES (\(Self.pool), 'somebody', \(importID))")
            let gone = try await #require(throws: PostgresError.self) {
                try await connection.execute("DELETE FROM cognito_reset.imports WHERE id = \(importID)")
            }
            #expect(gone.sqlState == SQLState.foreignKeyViolation)
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.jobs", as: Int.self) == 1)
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.imports", as: Int.self) == 1)
        }
    }

    /// Row security hides B's import from A, but "this file was imported already" still holds
    /// across roles, and tells A nothing of B's import but its id and time.
    @Test func aFileImportedByAnotherRoleIsStillKnownAsImported() async throws {
        try await withMigratedConnection { connection in
            try await withEnqueuers(2, on: connection) { roles in
                let theirs = try await run(
                    as: roles[1],
                    """
                    INSERT INTO cognito_reset.imports (file_name, sha256) VALUES ('f.csv', repeat('b', 64)) RETURNING id
                    """, on: connection)[0].decode(Int64.self, at: 0)
                let seen = try await run(as: roles[0], "SELECT count(*) FROM cognito_reset.imports", on: connection)[0]
                #expect(try seen.decode(Int.self, at: 0) == 0)
                let previous = try await run(as: roles[0], "SELECT id FROM cognito_reset.previous_import(repeat('b', 64))", on: connection)
                #expect(try previous.first?.decode(Int64.self, at: 0) == theirs)
                #expect(try await run(as: roles[0], "SELECT id FROM cognito_reset.previous_import(repeat('c', 64))", on: connection).isEmpty)
            }
        }
    }

    /// `jobs retry --state failed` leaves jobs refused as invalid input (they would fail again
    /// without a call, and the table's checks refuse them back into the queue).
    @Test func retryingFailedJobsLeavesThoseRefusedAsInvalidInput() async throws {
        try await withMigratedDatabase { database in
            let pool = ConnectionPool(configuration: database.configuration, options: .init(maximumConnections: 2, connectDeadline: .seconds(5)))
            let store = PostgresJobStore(pool: pool)
            do {
                // History does not carry 0005's checks (rows from before them may break them).
                try await pool.query(
                    """
                    INSERT INTO cognito_reset.jobs (user_pool_id, username, state, finished_at, attempt, last_error_code)
                    VALUES ('eu-west-1_a1', 'bad\u{200B}name', 'failed', now(), 0, 'InvalidInput'),
                           ('eu-west-1_a1', 'good', 'failed', now(), 1, 'UserNotFoundException')
                    """)
                #expect(try await store.retry(state: .failed, pool: nil) == 1)
                let pending = try await pool.query("SELECT username FROM cognito_reset.jobs WHERE state = 'pending'")
                #expect(try pending.map { try $0.decode(String.self, at: 0) } == ["good"])
            } catch {
                await pool.close()
                throw error
            }
            await pool.close()
        }
    }

    @Test func workersStillReachEveryImportAndTheMonitorNone() async throws {
        try await withMigratedConnection { connection in
            try await withEnqueuers(1, on: connection) { roles in
                let id = try await run(
                    as: roles[0],
                    """
                    INSERT INTO cognito_reset.imports (file_name, sha256, rate) VALUES ('f.csv', repeat('a', 64), 2) RETURNING id
                    """, on: connection)[0].decode(Int64.self, at: 0)
                try await run(
                    as: roles[0],
                    """
                    INSERT INTO cognito_reset.jobs (user_pool_id, username, import_id) VALUES (\(Self.pool), 'alice', \(id))
                    """, on: connection)
                let worker = "cognito_reset_worker"
                #expect(try await run(as: worker, "SELECT count(*) FROM cognito_reset.imports", on: connection)[0].decode(Int.self, at: 0) == 1)
                #expect(
                    try await run(
                        as: worker,
                        """
                        SELECT count(*) FROM cognito_reset.claim_paced('w', 4, 30, 'cognito:test', 25) WHERE id IS NOT NULL
                        """, on: connection)[0].decode(Int.self, at: 0) == 1)
                #expect(try await run(as: worker, "UPDATE cognito_reset.imports SET rate = 5 WHERE id = \(id)", on: connection).affectedRows == 1)
                try await run(as: worker, "DELETE FROM cognito_reset.jobs", on: connection)
                #expect(try await run(as: worker, "DELETE FROM cognito_reset.imports", on: connection).affectedRows == 1)
                let monitor = try await #require(throws: PostgresError.self) {
                    try await run(as: "cognito_reset_monitor", "SELECT count(*) FROM cognito_reset.imports", on: connection)
                }
                #expect(monitor.sqlState == SQLState.insufficientPrivilege)
            }
        }
    }

    /// Other systems' SQL keeps working as documented.
    @Test func thePlainSQLContractStillHolds() async throws {
        try await withMigratedConnection { connection in
            let role = "cognito_reset_enqueuer"
            try await run(as: role, "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(Self.pool), 'plain')", on: connection)
            let returned = try await run(
                as: role,
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(Self.pool), 'returning') RETURNING id
                """, on: connection)[0].decode(Int64.self, at: 0)
            let enqueued = try await run(
                as: role,
                #"""
                SELECT cognito_reset.enqueue_reset('eu-west-1_AbC123', 'function', client_metadata => '{"ticket": "T-1"}')
                """#, on: connection)[0].decode(Int64.self, at: 0)
            #expect(returned != enqueued)
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.jobs", as: Int.self) == 3)
        }
    }

    // MARK: Rate keys

    static let refusedKeys = ["esc\u{1B}[2J", "two words", "tab\tkey", "clé", "del\u{7F}"]

    @Test(arguments: refusedKeys)
    func aRateKeyThatIsNotPrintableASCIIIsRefused(_ key: String) async throws {
        try await withMigratedConnection { connection in
            let error = try await #require(throws: PostgresError.self) {
                try await connection.execute("INSERT INTO cognito_reset.rate_limits (key) VALUES (\(key))")
            }
            #expect(error.sqlState == SQLState.checkViolation)
            #expect(error.constraintName == "rate_limits_key_printable")
            // A worker's claim creates its bucket when missing (for a route with runnable jobs):
            // the same check guards it.
            try await connection.execute("INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('eu-west-1_a1', 'u')")
            let claim = try await #require(throws: PostgresError.self) {
                try await run(as: "cognito_reset_worker", "SELECT * FROM cognito_reset.claim_paced('w', 1, 30, \(key), 25)", on: connection)
            }
            #expect(claim.sqlState == SQLState.checkViolation)
            #expect(claim.constraintName == "rate_limits_key_printable")
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.rate_limits", as: Int.self) == 0)
        }
    }

    @Test func printableRateKeysUpTo200CharactersAreAccepted() async throws {
        try await withMigratedConnection { connection in
            for key in ["cognito:eu-west-1", "cognito:123456789012:eu-west-1", "!~", String(repeating: "k", count: 200)] {
                try await connection.execute("INSERT INTO cognito_reset.rate_limits (key) VALUES (\(key))")
            }
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.rate_limits", as: Int.self) == 4)
        }
    }
}
