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
                    try await run(as: role, """
                        INSERT INTO cognito_reset.imports (file_name, sha256) VALUES ('f.csv', repeat('a', 64)) RETURNING id
                        """, on: connection)[0].decode(Int64.self, at: 0)
                }
                let mine = try await newImport(as: a)
                let theirs = try await newImport(as: b)
                #expect(try await connection.scalar("SELECT created_by FROM cognito_reset.imports WHERE id = \(mine)", as: String.self) == a)
                #expect(try await run(as: a, "SELECT count(*) FROM cognito_reset.imports", on: connection)[0].decode(Int.self, at: 0) == 1)

                // B's import: its counters stay as they are, and A can attach nothing to it.
                let counted = try await run(as: a, """
                    UPDATE cognito_reset.imports SET rows_read = 1, rows_rejected = 1 WHERE id = \(theirs)
                    """, on: connection)
                #expect(counted.affectedRows == 0)
                #expect(try await connection.scalar("SELECT rows_read FROM cognito_reset.imports WHERE id = \(theirs)", as: Int.self) == 0)
                let rejection = try await #require(throws: PostgresError.self) {
                    try await run(as: a, """
                        INSERT INTO cognito_reset.import_rejections (import_id, line_number, reason) VALUES (\(theirs), 1, 'bad line')
                        """, on: connection)
                }
                #expect(rejection.sqlState == SQLState.insufficientPrivilege)
                let job = try await #require(throws: PostgresError.self) {
                    try await run(as: a, """
                        INSERT INTO cognito_reset.jobs (user_pool_id, username, import_id) VALUES (\(Self.pool), 'mallory', \(theirs))
                        """, on: connection)
                }
                #expect(job.sqlState == SQLState.insufficientPrivilege)
                // Nor can A claim an import in B's name.
                let forged = try await #require(throws: PostgresError.self) {
                    try await run(as: a, """
                        INSERT INTO cognito_reset.imports (file_name, sha256, created_by) VALUES ('f.csv', repeat('a', 64), \(b))
                        """, on: connection)
                }
                #expect(forged.sqlState == SQLState.insufficientPrivilege)

                // Its own import: all three, with the statements an import uses.
                #expect(try await run(as: a, """
                    UPDATE cognito_reset.imports SET rows_read = 3, rows_accepted = 2, rows_duplicate = 0, rows_rejected = 1
                    WHERE id = \(mine)
                    """, on: connection).affectedRows == 1)
                try await run(as: a, """
                    INSERT INTO cognito_reset.import_rejections (import_id, line_number, reason) VALUES (\(mine), 3, 'bad line')
                    """, on: connection)
                #expect(try await run(as: a, """
                    INSERT INTO cognito_reset.jobs (user_pool_id, username, import_id)
                    SELECT \(Self.pool), 'user' || g, \(mine) FROM generate_series(1, 2) g
                    ON CONFLICT DO NOTHING
                    """, on: connection).affectedRows == 2)
                try await run(as: a, """
                    INSERT INTO cognito_reset.jobs (user_pool_id, username, import_id) VALUES (\(Self.pool), 'user3', \(mine)) RETURNING id
                    """, on: connection)
                #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.jobs WHERE import_id = \(mine)", as: Int.self) == 3)

                // Each sees its own rejections only.
                try await run(as: b, """
                    INSERT INTO cognito_reset.import_rejections (import_id, line_number, reason) VALUES (\(theirs), 1, 'bad line')
                    """, on: connection)
                #expect(try await run(as: a, "SELECT count(*) FROM cognito_reset.import_rejections", on: connection)[0].decode(Int.self, at: 0) == 1)
                #expect(try await run(as: b, "SELECT count(*) FROM cognito_reset.import_rejections", on: connection)[0].decode(Int.self, at: 0) == 1)
            }
        }
    }

    /// Row security hides B's import from A, but "this file was imported already" still holds
    /// across roles, and tells A nothing of B's import but its id and time.
    @Test func aFileImportedByAnotherRoleIsStillKnownAsImported() async throws {
        try await withMigratedConnection { connection in
            try await withEnqueuers(2, on: connection) { roles in
                let theirs = try await run(as: roles[1], """
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
                try await pool.query("""
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
                let id = try await run(as: roles[0], """
                    INSERT INTO cognito_reset.imports (file_name, sha256, rate) VALUES ('f.csv', repeat('a', 64), 2) RETURNING id
                    """, on: connection)[0].decode(Int64.self, at: 0)
                try await run(as: roles[0], """
                    INSERT INTO cognito_reset.jobs (user_pool_id, username, import_id) VALUES (\(Self.pool), 'alice', \(id))
                    """, on: connection)
                let worker = "cognito_reset_worker"
                #expect(try await run(as: worker, "SELECT count(*) FROM cognito_reset.imports", on: connection)[0].decode(Int.self, at: 0) == 1)
                #expect(try await run(as: worker, """
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
            let returned = try await run(as: role, """
                INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(Self.pool), 'returning') RETURNING id
                """, on: connection)[0].decode(Int64.self, at: 0)
            let enqueued = try await run(as: role, #"""
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

    // MARK: Usernames

    /// A code point, shown as U+XXXX in test names (the characters themselves are invisible or
    /// reorder the text around them).
    struct CodePoint: Sendable, CustomTestStringConvertible {
        let value: UInt32
        var testDescription: String { "U+" + String(value, radix: 16, uppercase: true) }
    }

    /// No-break space, zero width space, right-to-left override, byte order mark, private use,
    /// unassigned (U+0378, U+FFFF), line separator, soft hyphen, a tag character.
    static let refusedCodePoints: [CodePoint] = ([0x00A0, 0x200B, 0x202E, 0xFEFF, 0xE000, 0x0378, 0xFFFF, 0x2028, 0x00AD, 0xE0041] as [UInt32])
        .map { CodePoint(value: $0) }

    @Test(arguments: refusedCodePoints)
    func aUsernameWithACharacterCognitoRefusesIsRefused(_ codePoint: CodePoint) async throws {
        let scalar = try #require(Unicode.Scalar(codePoint.value))
        let username = "bad" + String(Character(scalar)) + "name"
        try await withMigratedConnection { connection in
            let error = try await #require(throws: PostgresError.self) {
                try await connection.execute("INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(Self.pool), \(username))")
            }
            #expect(error.sqlState == SQLState.checkViolation)
            #expect(error.constraintName == "jobs_username_characters")
        }
    }

    /// The table and `Username` (what every enqueue and every Cognito call checks first) agree
    /// on every code point. The function's class was generated from the Unicode data of the Swift
    /// that builds this test: a newer Swift with newer Unicode fails here until the class is
    /// regenerated (scripts/gen-username-class.swift) and the function replaced in a migration.
    @Test func theTableAndTheSwiftValidatorRefuseTheSameCodePoints() async throws {
        try await withMigratedConnection { connection in
            // The check as the hot partition holds it (an ASCII fast path before the function),
            // evaluated for each code point as a one-character username.
            let check = try await connection.scalar("""
                SELECT pg_get_expr(conbin, conrelid) FROM pg_constraint
                WHERE conrelid = 'cognito_reset.jobs_active'::regclass AND conname = 'jobs_username_characters'
                """, as: String.self)
            // Refused code points as ranges "first-last" (or "first"), as PostgreSQL sees them.
            // The expression is the catalogue's own text, spliced into the statement (it cannot
            // be a parameter).
            let refusedSQL = """
                SELECT string_agg(CASE WHEN lo = hi THEN lo::text ELSE lo || '-' || hi END, ',' ORDER BY lo)
                FROM (SELECT min(cp) AS lo, max(cp) AS hi
                      FROM (SELECT cp, cp - row_number() OVER (ORDER BY cp) AS island
                            FROM generate_series(1, 1114111) AS cp, LATERAL (SELECT chr(cp) AS username) AS u
                            WHERE cp NOT BETWEEN 55296 AND 57343  -- surrogates: text cannot hold them
                              AND NOT (\(check))) AS refused
                      GROUP BY island) AS ranges
                """
            let table = try await connection.scalar(PostgresQuery(refusedSQL), as: String.self).split(separator: ",").map(String.init)
            var swift: [String] = []
            var start: UInt32?
            for value in UInt32(1)...0x11_0000 {  // one past the last code point closes the last range
                let refused: Bool
                if value <= 0x10_FFFF, let scalar = Unicode.Scalar(value) {
                    refused = (try? Username(String(Character(scalar)))) == nil
                } else {
                    refused = false  // a surrogate or past the end
                }
                if refused, start == nil { start = value }
                if !refused, let first = start {
                    swift.append(first == value - 1 ? "\(first)" : "\(first)-\(value - 1)")
                    start = nil
                }
            }
            let firstDifference = zip(swift, table).first { $0 != $1 }
            #expect(swift == table, "\(swift.count) ranges in Swift, \(table.count) in the table; first difference: \(String(describing: firstDifference))")
        }
    }

    @Test func lettersMarksSymbolsNumbersAndPunctuationAreAccepted() async throws {
        try await withMigratedConnection { connection in
            let usernames = ["ünïcødé", "u\u{0308}mlaut", "用户", "a+b@example.com", "😀", "Ω≈ç√∫", "٣٤٥", "(x)_[y]-{z}"]
            for username in usernames {
                try await run(as: "cognito_reset_enqueuer", """
                    INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(Self.pool), \(username))
                    """, on: connection)
            }
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.jobs", as: Int.self) == usernames.count)
        }
    }

    /// 128 UTF-16 code units, as Cognito counts: 64 emoji fit, 65 do not, though both are far
    /// below 128 code points.
    @Test func usernameLengthIsCountedInUTF16UnitsAsCognitoCounts() async throws {
        try await withMigratedConnection { connection in
            let fits = String(repeating: "😀", count: 64)
            let tooLong = String(repeating: "😀", count: 65)
            #expect((try? Username(fits)) != nil)
            #expect((try? Username(tooLong)) == nil)
            try await connection.execute("INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(Self.pool), \(fits))")
            let error = try await #require(throws: PostgresError.self) {
                try await connection.execute("INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(Self.pool), \(tooLong))")
            }
            #expect(error.constraintName == "jobs_username_utf16_length")
            // 128 characters of ASCII, or of 3-byte BMP text, still fit.
            for username in [String(repeating: "a", count: 128), String(repeating: "用", count: 128)] {
                try await connection.execute("""
                    INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('eu-west-1_b1', \(username))
                    """)
            }
        }
    }

    // MARK: Client metadata

    /// Metadata built in SQL (a quarter of a megabyte need not travel as a parameter), with the
    /// bytes of its keys and values.
    struct Metadata: Sendable, CustomTestStringConvertible {
        let testDescription: String
        let sql: String
    }

    static let metadataAtTheLimit: [Metadata] = [
        .init(testDescription: "262144 ASCII bytes", sql: "jsonb_build_object('k', repeat('v', 262143))"),
        .init(testDescription: "262144 bytes of two-byte characters", sql: "jsonb_build_object('ké', repeat('ü', 131070) || 'v')"),
        // Its text form, every quote escaped, is twice the limit: the exact count decides.
        .init(testDescription: "262144 bytes of quotes", sql: #"jsonb_build_object('k', repeat('"', 262143))"#),
        .init(testDescription: "262144 bytes over three keys",
              sql: "jsonb_build_object('a', repeat('v', 100000), 'b', repeat('v', 100000), 'c', repeat('v', 62141))"),
    ]

    static let metadataOverTheLimit: [Metadata] = [
        .init(testDescription: "262145 ASCII bytes", sql: "jsonb_build_object('k', repeat('v', 262144))"),
        .init(testDescription: "262145 bytes in 131073 characters", sql: "jsonb_build_object('k', repeat('ü', 131072))"),
        .init(testDescription: "262145 bytes over two keys", sql: "jsonb_build_object('a', repeat('v', 131071), 'b', repeat('v', 131072))"),
    ]

    @Test(arguments: metadataAtTheLimit)
    func metadataOfAtMost256KiBIsAccepted(_ metadata: Metadata) async throws {
        try await withMigratedConnection { connection in
            // An enqueuer inserts, a worker updates (claims): both may run the size check.
            try await run(as: "cognito_reset_enqueuer", """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, client_metadata) VALUES (\(Self.pool), 'alice', \(unescaped: metadata.sql))
                """, on: connection)
            #expect(try await connection.scalar(
                "SELECT cognito_reset.client_metadata_bytes(client_metadata) FROM cognito_reset.jobs", as: Int.self) == 262_144)
            try await run(as: "cognito_reset_worker", "SELECT * FROM cognito_reset.claim_paced('w', 1, 30, 'cognito:test', 25)", on: connection)
            #expect(try await connection.scalar("SELECT state FROM cognito_reset.jobs", as: String.self) == "running")
        }
    }

    @Test(arguments: metadataOverTheLimit)
    func metadataOverTheLimitIsRefused(_ metadata: Metadata) async throws {
        try await withMigratedConnection { connection in
            let error = try await #require(throws: PostgresError.self) {
                try await run(as: "cognito_reset_enqueuer", """
                    INSERT INTO cognito_reset.jobs (user_pool_id, username, client_metadata) VALUES (\(Self.pool), 'alice', \(unescaped: metadata.sql))
                    """, on: connection)
            }
            #expect(error.sqlState == SQLState.checkViolation)
            #expect(error.constraintName == "jobs_client_metadata_size")
        }
    }

    // MARK: run_at

    static let timesOutOfRange = ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59.999999Z", "3000-01-01T00:00:00Z", "10000-01-01T00:00:00Z"]

    @Test(arguments: timesOutOfRange)
    func aRunAtOutsideTheRangeIsRefused(_ time: String) async throws {
        try await withMigratedConnection { connection in
            let job = try await #require(throws: PostgresError.self) {
                try await connection.execute("INSERT INTO cognito_reset.jobs (user_pool_id, username, run_at) VALUES (\(Self.pool), 'alice', \(time))")
            }
            #expect(job.sqlState == SQLState.checkViolation)
            #expect(job.constraintName == "jobs_run_at_range")
            let anImport = try await #require(throws: PostgresError.self) {
                try await connection.execute("INSERT INTO cognito_reset.imports (file_name, sha256, run_at) VALUES ('f.csv', repeat('a', 64), \(time))")
            }
            #expect(anImport.sqlState == SQLState.checkViolation)
            #expect(anImport.constraintName == "imports_run_at_range")
        }
    }

    @Test func aRunAtFrom1970ToTheLastInstantOf2999IsAccepted() async throws {
        try await withMigratedConnection { connection in
            for (index, time) in ["1970-01-01T00:00:00Z", "2999-12-31T23:59:59.999999Z"].enumerated() {
                let username = "u\(index)"
                try await connection.execute("INSERT INTO cognito_reset.jobs (user_pool_id, username, run_at) VALUES (\(Self.pool), \(username), \(time))")
                try await connection.execute("INSERT INTO cognito_reset.imports (file_name, sha256, run_at) VALUES ('f.csv', repeat('a', 64), \(time))")
            }
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.jobs", as: Int.self) == 2)
        }
    }
}

/// 0005 applies to a database holding what the older schema let in, and leaves no active row
/// that a worker's next UPDATE would trip on (a NOT VALID check still applies to updates).
@Suite("Migration 0005")
struct Migration0005Tests {
    let logger = Logger(label: "test")

    func migrateToBefore0005(_ connection: PostgresConnection) async throws {
        let all = try CognitoResetSchema.embeddedMigrations()
        let before = try Migrator(
            migrations: all.filter { $0.fileName < "0005" }, schema: CognitoResetSchema.name,
            lockKey: CognitoResetSchema.migrationLockKey, logger: logger)
        _ = try await before.migrate(on: connection)
    }

    @Test func rowsTheOlderSchemaAllowedArePutRightAndWorkersKeepClaiming() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            try await migrateToBefore0005(connection)
            try await connection.execute("""
                INSERT INTO cognito_reset.imports (file_name, sha256, run_at) VALUES ('old.csv', repeat('a', 64), '0001-01-01T00:00:00Z')
                """)
            try await connection.execute("INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('eu-west-1_a1', \("zero\u{200B}width"))")
            try await connection.execute("""
                INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, finished_at)
                VALUES ('eu-west-1_a1', \("done\u{200B}width"), 'succeeded', 1, now())
                """)
            try await connection.execute("""
                INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, locked_by, lease_expires_at, started_at)
                VALUES ('eu-west-1_a1', \("no\u{00A0}break"), 'running', 1, 'w1', now() + interval '30 seconds', now())
                """)
            try await connection.execute("""
                INSERT INTO cognito_reset.jobs (user_pool_id, username, run_at) VALUES ('eu-west-1_a1', 'ancient', '0001-01-01T00:00:00Z'),
                    ('eu-west-1_a1', 'never', '20000-01-01T00:00:00Z')
                """)
            try await connection.execute("""
                INSERT INTO cognito_reset.jobs (user_pool_id, username, client_metadata)
                VALUES ('eu-west-1_a1', 'huge', jsonb_build_object('k', repeat('v', 300000)))
                """)

            let applied = try await CognitoResetSchema.migrator(logger: logger).migrate(on: connection)
            #expect(applied.map(\.fileName).contains { $0.hasPrefix("0005") })
            func job(_ username: String) async throws -> (state: String, code: String?, locked: Bool, runAtIsCreatedAt: Bool) {
                let row = try await connection.query("""
                    SELECT state, last_error_code, locked_by IS NOT NULL, run_at = created_at FROM cognito_reset.jobs WHERE username = \(username)
                    """)[0]
                return (try row.decode(String.self, at: 0), try row.decode(String?.self, at: 1), try row.decode(Bool.self, at: 2),
                        try row.decode(Bool.self, at: 3))
            }
            // Active jobs Cognito would refuse fail, as a worker would fail them.
            let waiting = try await job("zero\u{200B}width")
            #expect(waiting.state == "failed" && waiting.code == "InvalidInput")
            let running = try await job("no\u{00A0}break")
            #expect(running.state == "failed" && running.code == "InvalidInput" && !running.locked)
            #expect(try await job("huge").state == "failed")
            // A finished job stays as it was: the check is NOT VALID on history from before it
            // (since 0007, only the hot partition carries it).
            #expect(try await job("done\u{200B}width").state == "succeeded")
            #expect(try await connection.scalar("""
                SELECT count(*) FROM pg_constraint
                WHERE conname = 'jobs_username_characters' AND conrelid <> 'cognito_reset.jobs_active'::regclass
                """, as: Int.self) == 0)
            // Times out of range: before 1970 runs now, from the year 3000 on meant "never".
            let ancient = try await job("ancient")
            #expect(ancient.state == "pending" && ancient.runAtIsCreatedAt)
            #expect(try await job("never").state == "cancelled")
            #expect(try await connection.scalar("SELECT run_at = created_at FROM cognito_reset.imports", as: Bool.self))
            // Imports from before belong to the role that ran the migration.
            #expect(try await connection.scalar("SELECT created_by = current_user FROM cognito_reset.imports", as: Bool.self))

            // The fleet claims what is left, and nothing else.
            let claimed = try await connection.transaction { connection in
                try await connection.execute("SET LOCAL ROLE cognito_reset_worker")
                return try await connection.query("""
                    SELECT username FROM cognito_reset.claim_paced('w', 10, 30, 'cognito:test', 25) WHERE id IS NOT NULL
                    """).map { try $0.decode(String.self, at: 0) }
            }
            #expect(claimed == ["ancient"])
            await connection.close()
        }
    }

    /// Renaming a rate bucket is the operator's call (workers name theirs too): the migration
    /// stops, names the keys, and applies nothing until they are put right.
    @Test func aRateKeyItCannotKeepStopsTheMigrationWithTheKeyNamed() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            try await migrateToBefore0005(connection)
            try await connection.execute("INSERT INTO cognito_reset.rate_limits (key) VALUES ('two words')")
            let migrator = try CognitoResetSchema.migrator(logger: logger)
            let error = try await #require(throws: MigrationError.self) { try await migrator.migrate(on: connection) }
            #expect(error.code == .failed)
            #expect(error.underlying?.sqlState == SQLState.checkViolation)
            #expect(error.underlying?.message.contains(#""two words""#) == true)
            #expect(try await connection.scalar("SELECT max(version) FROM cognito_reset.schema_migrations", as: Int.self) == 4)
            #expect(try await connection.scalar("SELECT to_regproc('cognito_reset.client_metadata_bytes') IS NULL", as: Bool.self))

            try await connection.execute("UPDATE cognito_reset.rate_limits SET key = 'two-words'")
            #expect(try await migrator.migrate(on: connection).map(\.version).contains(5))
            await connection.close()
        }
    }
}
