import ArgumentParser
import Foundation
import Logging
import Postgres
import ResetQueue

/// `cognito-reset migrate [--dry-run]` and `cognito-reset migrate status`.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply the schema migrations (default), or show which are applied.",
        discussion: """
            The migration files are embedded in this binary; --migrations-dir (or \
            COGNITO_RESET_MIGRATIONS_DIR) reads a folder instead. Safe to run from several hosts at \
            once: an advisory lock makes the others wait, then find nothing to do.
            """,
        subcommands: [Apply.self, Status.self],
        defaultSubcommand: Apply.self
    )

    struct MigrationSource: ParsableArguments {
        @Option(help: ArgumentHelp("Read NNNN_name.sql files from this folder instead of the embedded ones.", valueName: "DIR"))
        var migrationsDir: String?

        func directory() -> URL? {
            (migrationsDir ?? ProcessInfo.processInfo.environment["COGNITO_RESET_MIGRATIONS_DIR"])
                .map { URL(fileURLWithPath: $0) }
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "apply", abstract: "Apply pending migrations in order, each in a transaction.")

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var source: MigrationSource
        @Flag(help: "List the migrations that would run, change nothing.")
        var dryRun = false

        func run() async throws {
            let (migrator, (applied, locks)) = try await withMigrator(database, source) { migrator, connection in
                let applied = try await migrator.migrate(on: connection, dryRun: dryRun)
                return (applied, dryRun ? [:] : try await Self.lockTimes(on: connection))
            }
            if applied.isEmpty {
                Terminal.say("Database is up to date (\(migrator.migrations.count) migration(s) known).")
            }
            for migration in applied {
                Terminal.say(dryRun ? "Would apply \(migration.fileName)" : "Applied \(migration.fileName)")
                if let held = locks[migration.version] {
                    Terminal.say("  held its exclusive locks on the jobs tables for \(held) ms")
                }
            }
        }

        /// How long each migration that records it (cognito_reset.migration_locks, from 0008 on)
        /// held its exclusive locks, in milliseconds, by version.
        static func lockTimes(on connection: PostgresConnection) async throws -> [Int: Int] {
            let exists = try await connection.query("SELECT to_regclass('cognito_reset.migration_locks') IS NOT NULL")[0]
                .decode(Bool.self, at: 0)
            guard exists else { return [:] }
            let rows = try await connection.query(
                """
                SELECT version, round(extract(epoch FROM released_at - acquired_at) * 1000)::bigint
                FROM cognito_reset.migration_locks WHERE released_at IS NOT NULL
                """)
            var times: [Int: Int] = [:]
            for row in rows {
                if let version = Int(try row.decode(String.self, at: 0)) {
                    times[version] = try row.decode(Int.self, at: 1)
                }
            }
            return times
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status", abstract: "Show every migration: applied, pending, changed or unknown.")

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var source: MigrationSource
        @Flag(help: "Print JSON for machines.")
        var json = false

        func run() async throws {
            let (_, status) = try await withMigrator(database, source) { migrator, connection in
                try await migrator.status(on: connection)
            }
            Terminal.say(json ? try Self.json(status) : Self.text(status))
        }

        static func text(_ status: Migrator.Status) -> String {
            var lines = status.entries.map { entry in
                let version = String(format: "%04d", entry.version)
                switch entry.state {
                case .applied(let record):
                    return "\(version)  \(entry.name)  applied \(record.appliedAt.formatted(.iso8601)) by \(record.appliedBy)"
                case .pending:
                    return "\(version)  \(entry.name)  pending"
                case .changed:
                    return "\(version)  \(entry.name)  CHANGED since applied (restore the file)"
                case .unknown(let record):
                    return "\(version)  \(record.name)  applied, unknown to this build (the database is newer)"
                }
            }
            lines.append(status.isCurrent ? "Up to date." : "\(status.pending.count) pending, \(status.changed.count) changed.")
            return lines.joined(separator: "\n")
        }

        static func json(_ status: Migrator.Status) throws -> String {
            struct Entry: Encodable {
                let version: Int
                let name: String
                let state: String
                let appliedAt: Date?
            }
            let entries = status.entries.map { entry in
                switch entry.state {
                case .applied(let record): Entry(version: entry.version, name: entry.name, state: "applied", appliedAt: record.appliedAt)
                case .pending: Entry(version: entry.version, name: entry.name, state: "pending", appliedAt: nil)
                case .changed(let record): Entry(version: entry.version, name: entry.name, state: "changed", appliedAt: record.appliedAt)
                case .unknown(let record): Entry(version: entry.version, name: entry.name, state: "unknown", appliedAt: record.appliedAt)
                }
            }
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys]
            return String(decoding: try encoder.encode(entries), as: UTF8.self)
        }
    }
}

/// The migrator for `source` and a connection for `body`, closed afterwards; errors mapped to exit codes.
private func withMigrator<T>(
    _ database: DatabaseOptions, _ source: MigrateCommand.MigrationSource,
    _ body: (Migrator, PostgresConnection) async throws -> T
) async throws -> (Migrator, T) {
    let logger = try database.logger()
    let migrator = try makeMigrator(source, logger: logger)
    let connection = try await database.connect(logger: logger)
    do {
        let value = try await runMigrations { try await body(migrator, connection) }
        await connection.close()
        return (migrator, value)
    } catch {
        await connection.close()
        throw error
    }
}

private func makeMigrator(_ source: MigrateCommand.MigrationSource, logger: Logger) throws -> Migrator {
    do {
        return try CognitoResetSchema.migrator(directory: source.directory(), logger: logger)
    } catch {
        throw CLIError.badInput(error.message)
    }
}

/// Maps migration errors: a changed applied file is refused with exit 2, a failing file exits 1.
private func runMigrations<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await mappingErrors(body)
    } catch let error as MigrationError {
        switch error.code {
        case .checksumMismatch, .invalidFile: throw CLIError.badInput(error.message)
        default:
            if error.underlying?.isConnectionError == true { throw CLIError.unavailable(error.message) }
            throw CLIError.failure(error.message)
        }
    }
}
