import CognitoClient
import Foundation
import Logging
import Postgres
import PostgresTesting
import ResetQueue
import Testing

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
            try await connection.execute(
                """
                INSERT INTO cognito_reset.imports (file_name, sha256, run_at) VALUES ('old.csv', repeat('a', 64), '0001-01-01T00:00:00Z')
                """)
            try await connection.execute("INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('eu-west-1_a1', \("zero\u{200B}width"))")
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, finished_at)
                VALUES ('eu-west-1_a1', \("done\u{200B}width"), 'succeeded', 1, now())
                """)
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, locked_by, lease_expires_at, started_at)
                VALUES ('eu-west-1_a1', \("no\u{00A0}break"), 'running', 1, 'w1', now() + interval '30 seconds', now())
                """)
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, run_at) VALUES ('eu-west-1_a1', 'ancient', '0001-01-01T00:00:00Z'),
                    ('eu-west-1_a1', 'never', '20000-01-01T00:00:00Z')
                """)
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, client_metadata)
                VALUES ('eu-west-1_a1', 'huge', jsonb_build_object('k', repeat('v', 300000)))
                """)

            let applied = try await CognitoResetSchema.migrator(logger: logger).migrate(on: connection)
            #expect(applied.map(\.fileName).contains { $0.hasPrefix("0005") })
            func job(_ username: String) async throws -> (state: String, code: String?, locked: Bool, runAtIsCreatedAt: Bool) {
                let row = try await connection.query(
                    """
                    SELECT state, last_error_code, locked_by IS NOT NULL, run_at = created_at FROM cognito_reset.jobs WHERE username = \(username)
                    """)[0]
                return (
                    try row.decode(String.self, at: 0), try row.decode(String?.self, at: 1), try row.decode(Bool.self, at: 2),
                    try row.decode(Bool.self, at: 3)
                )
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
            #expect(
                try await connection.scalar(
                    """
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
                return try await connection.query(
                    """
                    SELECT username FROM cognito_reset.claim_paced('w', 10, 30, 'cognito:test', 25) WHERE id IS NOT NULL
                    """
                ).map { try $0.decode(String.self, at: 0) }
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
