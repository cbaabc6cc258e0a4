import ArgumentParser
import Foundation
import Logging
import Postgres
import ResetQueue

/// Options shared by the commands that talk to PostgreSQL.
struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .customLong("database-url"),
        help: ArgumentHelp("libpq URI or conninfo (default: $DATABASE_URL, then PG* variables).", valueName: "URL"))
    var databaseURL: String?

    @OptionGroup var logging: LoggingOptions

    /// The connection settings; a malformed string is bad input (exit 2).
    func configuration() throws -> ConnectionConfiguration {
        do {
            if let databaseURL { return try ConnectionConfiguration(databaseURL) }
            return try ConnectionConfiguration.fromEnvironment()
        } catch {
            throw CLIError(error)
        }
    }

    /// Sets up logging to stderr once per process and returns the command's logger.
    func logger() throws -> Logger {
        try logging.bootstrap()
    }

    /// Runs `body` with a job store on a one-connection pool (one-shot commands), closing it
    /// afterwards; database errors map to exit codes.
    func withJobStore<T>(logger: Logger, _ body: (PostgresJobStore) async throws -> T) async throws -> T {
        let pool = ConnectionPool(
            configuration: try configuration(), options: .init(maximumConnections: 1, connectDeadline: .seconds(10)),
            logger: logger)
        do {
            let value = try await mappingErrors { try await body(PostgresJobStore(pool: pool)) }
            await pool.close()
            return value
        } catch {
            await pool.close()
            throw error
        }
    }

    /// A single connection for a one-shot command; unreachable → exit 3.
    func connect(logger: Logger) async throws -> PostgresConnection {
        let configuration = try configuration()
        do {
            return try await PostgresConnection.connect(configuration, logger: logger)
        } catch {
            throw CLIError(error)
        }
    }
}

/// Logging for the command line: stderr, level from `--log-level` or `COGNITO_RESET_LOG_LEVEL`.
struct LoggingOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "LEVEL"))
    var logLevel: String?

    /// Sets up logging to stderr once per process and returns the command's logger.
    func bootstrap() throws -> Logger {
        let name = logLevel ?? ProcessInfo.processInfo.environment["COGNITO_RESET_LOG_LEVEL"] ?? "warning"
        guard let level = Logger.Level(rawValue: name.lowercased()) else {
            throw CLIError.badInput("--log-level: must be one of trace, debug, info, notice, warning, error, critical")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "cognito-reset")
    }
}
