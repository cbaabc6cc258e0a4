public import Foundation
public import Logging

/// Applies `Migration`s in version order and records each, with its checksum, in
/// `<schema>.schema_migrations`.
///
/// - Each file runs in its own transaction together with its bookkeeping row: it is applied
///   entirely or not at all.
/// - An advisory lock serialises migrators, so two hosts migrating at once apply each file
///   exactly once (the second waits, then finds nothing to do). It is transaction-scoped, held
///   by an open transaction on a connection of its own for the whole run: a session-level lock
///   could stay behind on a server connection a pooler in transaction mode (PgBouncer) hands to
///   someone else, and a lost connection or a killed process releases it either way.
/// - A file whose checksum differs from the one recorded when it was applied is refused before
///   anything runs: the database would no longer match what the files say.
public struct Migrator: Sendable {
    public let migrations: [Migration]
    /// Schema holding the bookkeeping table (created if missing).
    public let schema: String
    public let lockKey: Int64
    let logger: Logger

    public init(migrations: [Migration], schema: String, lockKey: Int64, logger: Logger) throws(MigrationError) {
        self.migrations = try Migration.ordered(migrations)
        self.schema = schema
        self.lockKey = lockKey
        self.logger = logger
    }

    /// A migration recorded in the database.
    public struct AppliedMigration: Sendable {
        public let version: Int
        public let name: String
        public let checksum: String
        public let appliedAt: Date
        public let appliedBy: String
    }

    /// Where one migration stands.
    public enum State: Sendable {
        case applied(AppliedMigration)
        case pending
        /// Applied, but the file changed since: refused until the file is restored.
        case changed(AppliedMigration)
        /// Recorded in the database but not known to this build (the database is newer).
        case unknown(AppliedMigration)
    }

    /// Every migration known to the files or the database, in version order.
    public struct Status: Sendable {
        public let entries: [(version: Int, name: String, state: State)]

        public var pending: [Int] {
            entries.compactMap { if case .pending = $0.state { $0.version } else { nil } }
        }
        public var changed: [(version: Int, name: String)] {
            entries.compactMap { if case .changed = $0.state { ($0.version, $0.name) } else { nil } }
        }
        /// True when every known migration is applied unchanged.
        public var isCurrent: Bool { pending.isEmpty && changed.isEmpty }
    }

    private var table: String {
        "\(PostgresQuery.quoteIdentifier(schema)).\(PostgresQuery.quoteIdentifier("schema_migrations"))"
    }

    /// Compares the files with what the database recorded. Reads only.
    public func status(on connection: PostgresConnection) async throws -> Status {
        let applied = try await appliedMigrations(on: connection)
        var entries: [(version: Int, name: String, state: State)] = []
        for migration in migrations {
            if let record = applied[migration.version] {
                let state: State = record.checksum == migration.checksum ? .applied(record) : .changed(record)
                entries.append((migration.version, migration.name, state))
            } else {
                entries.append((migration.version, migration.name, .pending))
            }
        }
        let known = Set(migrations.map(\.version))
        for record in applied.values where !known.contains(record.version) {
            entries.append((record.version, record.name, .unknown(record)))
        }
        return Status(entries: entries.sorted { $0.version < $1.version })
    }

    /// Applies every pending migration, or with `dryRun` only reports which would run.
    /// Returns the migrations applied (or, for a dry run, those that would be).
    @discardableResult
    public func migrate(on connection: PostgresConnection, dryRun: Bool = false) async throws -> [Migration] {
        if dryRun { return try await pending(on: connection) }
        let lock = try await PostgresConnection.connect(connection.configuration, logger: logger)
        do {
            // The simple query protocol: an extended-protocol statement would leave its portal,
            // and with it a snapshot, open in the idle transaction, and CREATE INDEX
            // CONCURRENTLY in a migration would wait for that snapshot forever.
            // No idle or statement timeout may end the lock's transaction while files run.
            try await lock.executeScript(
                """
                BEGIN; SET LOCAL idle_in_transaction_session_timeout = 0; SET LOCAL statement_timeout = 0;
                SELECT pg_advisory_xact_lock(\(lockKey))
                """)
            let applied = try await applyPending(on: connection, lock: lock)
            try await lock.execute("COMMIT")
            await lock.close()
            return applied
        } catch {
            // Closing the connection ends its transaction, and the lock with it.
            await lock.close()
            throw error
        }
    }

    private func pending(on connection: PostgresConnection) async throws -> [Migration] {
        let status = try await status(on: connection)
        if let changed = status.changed.first {
            throw checksumError(changed.version)
        }
        let pending = Set(status.pending)
        return migrations.filter { pending.contains($0.version) }
    }

    private func applyPending(on connection: PostgresConnection, lock: PostgresConnection) async throws -> [Migration] {
        try await connection.executeScript(
            """
            CREATE SCHEMA IF NOT EXISTS \(PostgresQuery.quoteIdentifier(schema));
            CREATE TABLE IF NOT EXISTS \(table) (
                version    integer PRIMARY KEY CHECK (version > 0),
                name       text NOT NULL,
                checksum   text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
                applied_at timestamptz NOT NULL DEFAULT now(),
                applied_by text NOT NULL DEFAULT current_user,
                duration_ms integer NOT NULL CHECK (duration_ms >= 0)
            );
            """)
        var applied: [Migration] = []
        for migration in try await pending(on: connection) {
            // A lock connection lost (terminated, cut off) has released the lock: stop rather
            // than run files beside another migrator. (Simple protocol: no snapshot kept.)
            do {
                try await lock.executeScript("SELECT 1")
            } catch {
                throw MigrationError(
                    code: .failed, message: "the connection holding the migration lock was lost before \(migration.fileName): \(error)",
                    underlying: error)
            }
            let started = ContinuousClock.now
            logger.info("applying migration", metadata: ["migration": "\(migration.fileName)"])
            do {
                if migration.runsInTransaction {
                    try await connection.transaction { connection in
                        try await connection.executeScript(migration.sql)
                        try await record(migration, since: started, on: connection)
                    }
                } else {
                    try await connection.executeScript(migration.sql)
                    try await record(migration, since: started, on: connection)
                }
            } catch let error as PostgresError {
                throw MigrationError(
                    code: .failed, message: "\(migration.fileName) failed: \(error)", underlying: error)
            }
            applied.append(migration)
        }
        return applied
    }

    private func record(_ migration: Migration, since started: ContinuousClock.Instant, on connection: PostgresConnection) async throws {
        let milliseconds = Int64((ContinuousClock.now - started) / .milliseconds(1))
        try await connection.execute(
            """
            INSERT INTO \(unescaped: table) (version, name, checksum, duration_ms)
            VALUES (\(migration.version), \(migration.name), \(migration.checksum), \(Int(milliseconds)))
            """)
    }

    private func checksumError(_ version: Int) -> MigrationError {
        let file = migrations.first { $0.version == version }?.fileName ?? "version \(version)"
        return MigrationError(
            code: .checksumMismatch,
            message: "migration \(file) was changed after it was applied; restore the original file "
                + "and add a new migration for the change")
    }

    private func appliedMigrations(on connection: PostgresConnection) async throws -> [Int: AppliedMigration] {
        let exists = try await connection.query("SELECT to_regclass(\(table)) IS NOT NULL")
        guard try exists[0].decode(Bool.self, at: 0) else { return [:] }
        let rows = try await connection.query(
            "SELECT version, name, checksum, applied_at, applied_by FROM \(unescaped: table) ORDER BY version")
        var applied: [Int: AppliedMigration] = [:]
        for row in rows {
            let record = AppliedMigration(
                version: try row.decode(Int.self, at: 0), name: try row.decode(String.self, at: 1),
                checksum: try row.decode(String.self, at: 2), appliedAt: try row.decode(Date.self, at: 3),
                appliedBy: try row.decode(String.self, at: 4))
            applied[record.version] = record
        }
        return applied
    }
}
