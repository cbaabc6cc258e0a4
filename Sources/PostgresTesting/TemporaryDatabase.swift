import Foundation
public import Postgres

/// A throw-away database on the test server, so each test is isolated from every other one.
///
/// The server comes from `DATABASE_URL` (set by `scripts/test.sh`, which starts a private
/// PostgreSQL). The role it names must be allowed to create databases.
public struct TemporaryDatabase: Sendable {
    /// The new database's name.
    public let name: String
    /// Connection settings pointing at the new database.
    public let configuration: ConnectionConfiguration
    /// Settings for the server's maintenance database (where databases are created and dropped).
    public let adminConfiguration: ConnectionConfiguration

    /// The server to test against, or an error saying how to get one.
    public static func serverConfiguration() throws -> ConnectionConfiguration {
        guard let url = ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty else {
            throw PostgresError(
                code: .invalidConfiguration,
                message: "DATABASE_URL is not set: run the tests with scripts/test.sh, which starts a private PostgreSQL")
        }
        return try ConnectionConfiguration(url)
    }

    /// Creates a fresh database (optionally as a copy of `template`), runs `body` with it, and
    /// drops it afterwards whatever happens.
    public static func with<T>(
        template: String? = nil,
        _ body: (TemporaryDatabase) async throws -> T
    ) async throws -> T {
        let database = try await create(template: template)
        do {
            let value = try await body(database)
            try await database.drop()
            return value
        } catch {
            try? await database.drop()
            throw error
        }
    }

    /// Creates a fresh, empty database (or a copy of `template`). Drop it with `drop()`.
    public static func create(template: String? = nil, prefix: String = "test") async throws -> TemporaryDatabase {
        let admin = try serverConfiguration()
        let name = "\(prefix)_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))"
        let templateClause = template.map { " TEMPLATE \(PostgresQuery.quoteIdentifier($0))" } ?? ""
        try await execute(
            "CREATE DATABASE \(unescaped: PostgresQuery.quoteIdentifier(name))\(unescaped: templateClause)", on: admin)
        return TemporaryDatabase(
            name: name, configuration: admin.setting("dbname", to: name), adminConfiguration: admin)
    }

    /// Drops the database, disconnecting anyone still connected.
    public func drop() async throws {
        try await Self.execute(
            "DROP DATABASE IF EXISTS \(unescaped: PostgresQuery.quoteIdentifier(name)) WITH (FORCE)",
            on: adminConfiguration)
    }

    /// Runs one statement on a short-lived connection to the maintenance database.
    static func execute(_ query: PostgresQuery, on configuration: ConnectionConfiguration) async throws {
        let connection = try await PostgresConnection.connect(configuration)
        do {
            try await connection.execute(query)
            await connection.close()
        } catch {
            await connection.close()
            throw error
        }
    }

    /// Opens a connection to this database.
    public func connect() async throws -> PostgresConnection {
        try await PostgresConnection.connect(configuration)
    }
}
