import Logging
import Postgres
import PostgresTesting
import ResetQueue

/// A database migrated to the current schema, created once per test run and copied (as a
/// template) for each test, so every test gets its own fresh, fully migrated database quickly.
actor MigratedTemplate {
    static let shared = MigratedTemplate()
    private var creation: Task<String, any Error>?

    func name() async throws -> String {
        if let creation { return try await creation.value }
        let task = Task {
            let database = try await TemporaryDatabase.create(prefix: "template")
            let connection = try await database.connect()
            try await CognitoResetSchema.migrator(logger: Logger(label: "test")).migrate(on: connection)
            await connection.close()
            return database.name
        }
        creation = task
        return try await task.value
    }
}

/// Runs `body` with a fresh database holding the current `cognito_reset` schema.
func withMigratedDatabase<T>(_ body: (TemporaryDatabase) async throws -> T) async throws -> T {
    let template = try await MigratedTemplate.shared.name()
    return try await TemporaryDatabase.with(template: template, body)
}

/// Runs `body` on one connection to a fresh migrated database.
func withMigratedConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
    try await withMigratedDatabase { database in try await withConnection(to: database, body) }
}

/// Runs `body` on a new connection to `database`, closed afterwards.
func withConnection<T>(to database: TemporaryDatabase, _ body: (PostgresConnection) async throws -> T) async throws -> T {
    let connection = try await database.connect()
    do {
        let value = try await body(connection)
        await connection.close()
        return value
    } catch {
        await connection.close()
        throw error
    }
}

extension PostgresConnection {
    /// The single value of a one-row, one-column query.
    func scalar<T: PostgresDecodable>(_ query: PostgresQuery, as type: T.Type = T.self) async throws -> T {
        try await self.query(query)[0].decode(T.self, at: 0)
    }
}
