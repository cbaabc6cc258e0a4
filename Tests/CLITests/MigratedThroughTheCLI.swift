import CognitoTesting
import Postgres
import PostgresTesting
import SystemTesting
import Testing

/// Runs `body` with a fresh database migrated through the CLI itself, and the environment that
/// points the CLI at it.
func withMigrated(_ body: ([String: String], TemporaryDatabase) async throws -> Void) async throws {
    try await TemporaryDatabase.with { database in
        let environment = ["DATABASE_URL": database.configuration.resolvedConnectionString()]
        let migrated = try await CognitoResetBinary.run(["migrate"], environment: environment)
        try #require(migrated.status == 0, "\(migrated.stderr)")
        try await body(environment, database)
    }
}

/// How many jobs the database holds, whoever enqueued them.
func jobCount(_ database: TemporaryDatabase) async throws -> Int {
    let connection = try await database.connect()
    let count = try await connection.query("SELECT count(*) FROM cognito_reset.jobs")[0].decode(Int.self, at: 0)
    await connection.close()
    return count
}
