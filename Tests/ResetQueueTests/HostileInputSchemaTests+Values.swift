import CognitoClient
import Foundation
import Logging
import Postgres
import PostgresTesting
import ResetQueue
import Testing

extension HostileInputSchemaTests {
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
            let check = try await connection.scalar(
                """
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
                try await run(
                    as: "cognito_reset_enqueuer",
                    """
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
                try await connection.execute(
                    """
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
        .init(
            testDescription: "262144 bytes over three keys",
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
            try await run(
                as: "cognito_reset_enqueuer",
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, client_metadata) VALUES (\(Self.pool), 'alice', \(unescaped: metadata.sql))
                """, on: connection)
            #expect(
                try await connection.scalar(
                    "SELECT cognito_reset.client_metadata_bytes(client_metadata) FROM cognito_reset.jobs", as: Int.self) == 262_144)
            try await run(as: "cognito_reset_worker", "SELECT * FROM cognito_reset.claim_paced('w', 1, 30, 'cognito:test', 25)", on: connection)
            #expect(try await connection.scalar("SELECT state FROM cognito_reset.jobs", as: String.self) == "running")
        }
    }

    @Test(arguments: metadataOverTheLimit)
    func metadataOverTheLimitIsRefused(_ metadata: Metadata) async throws {
        try await withMigratedConnection { connection in
            let error = try await #require(throws: PostgresError.self) {
                try await run(
                    as: "cognito_reset_enqueuer",
                    """
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
