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
        // A test that already holds a slot (a database within a database) does not wait for
        // another: it could wait for itself.
        if DatabaseSlots.held { return try await withDatabase(template: template, body) }
        await DatabaseSlots.shared.acquire()
        do {
            let value = try await DatabaseSlots.$held.withValue(true) { try await withDatabase(template: template, body) }
            await DatabaseSlots.shared.release()
            return value
        } catch {
            await DatabaseSlots.shared.release()
            throw error
        }
    }

    private static func withDatabase<T>(
        template: String?, _ body: (TemporaryDatabase) async throws -> T
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

/// How many temporary databases may be in use at once (`TEST_DATABASE_SLOTS`, default 32).
/// Swift Testing starts every test at once; each holds a few connections (a pool, the CLI it
/// runs, the admin connection), and together they would pass the server's `max_connections`
/// and load two cores with hundreds of processes, blurring what timing tests measure. Waiting
/// for a slot only delays a test.
actor DatabaseSlots {
    static let shared = DatabaseSlots(
        limit: ProcessInfo.processInfo.environment["TEST_DATABASE_SLOTS"].flatMap(Int.init).map { max(1, $0) } ?? 32)

    /// Whether the current task already holds a slot.
    @TaskLocal static var held = false

    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { free = limit }

    func acquire() async {
        if free > 0 {
            free -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            free += 1
        } else {
            waiting.removeFirst().resume()  // the slot passes straight to the next test
        }
    }
}
