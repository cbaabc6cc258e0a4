import ArgumentParser
import Daemon
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
        let configuration: ConnectionConfiguration
        do throws(PostgresError) {
            if let databaseURL {
                configuration = try ConnectionConfiguration(databaseURL)
            } else {
                configuration = try ConnectionConfiguration.fromEnvironment()
            }
        } catch  where error.code == .invalidConfiguration {
            // Name where the bad value came from: the flag, a PG* variable, or DATABASE_URL.
            let source = databaseURL != nil ? "--database-url" : "DATABASE_URL"
            throw CLIError.badInput(error.message.hasPrefix("PG") ? error.message : "\(source): \(error.message)")
        } catch {
            throw CLIError(error)
        }
        return try Self.withCredentialPassword(configuration, environment: ProcessInfo.processInfo.environment)
    }

    /// Another connection string (e.g. `COGNITO_RESET_LISTEN_URL`), checked like DATABASE_URL;
    /// errors name `field` and never show the value (it may hold a password).
    static func configuration(_ text: String, field: String) throws -> ConnectionConfiguration {
        let configuration: ConnectionConfiguration
        do throws(PostgresError) {
            configuration = try ConnectionConfiguration(text)
        } catch  where error.code == .invalidConfiguration {
            throw CLIError.badInput("\(field): \(error.message)")
        } catch {
            throw CLIError(error)
        }
        return try withCredentialPassword(configuration, environment: ProcessInfo.processInfo.environment)
    }

    /// systemd `LoadCredential=database-password:…`: the password comes from
    /// `$CREDENTIALS_DIRECTORY/database-password` (never from the environment, which
    /// `systemctl show` reveals) unless the connection string carries one itself.
    static func withCredentialPassword(
        _ configuration: ConnectionConfiguration, environment: [String: String]
    ) throws -> ConnectionConfiguration {
        guard configuration.value(for: "password") == nil,
            let folder = environment["CREDENTIALS_DIRECTORY"], !folder.isEmpty
        else { return configuration }
        let path = URL(fileURLWithPath: folder).appending(path: "database-password").path
        guard FileManager.default.fileExists(atPath: path) else { return configuration }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw CLIError.badInput("database-password credential: cannot read it as UTF-8 text")
        }
        let password = text.trimmingCharacters(in: .newlines)
        return password.isEmpty ? configuration : configuration.setting("password", to: password)
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

/// Logging for the command line: one line per event on stderr (logfmt or JSON); under systemd
/// each line carries its journald priority.
struct LoggingOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "LEVEL"))
    var logLevel: String?

    @Option(help: ArgumentHelp("Log lines as logfmt (default) or json.", valueName: "FORMAT"))
    var logFormat: String?

    /// Sets up logging once per process and returns the command's logger. `settings` supplies
    /// `COGNITO_RESET_LOG_*` (environment and config file); without it, the environment.
    func bootstrap(settings: Settings? = nil, defaultLevel: Logger.Level = .warning) throws -> Logger {
        let environment = ProcessInfo.processInfo.environment
        let levelName = logLevel ?? (settings.map { $0["COGNITO_RESET_LOG_LEVEL"] } ?? environment["COGNITO_RESET_LOG_LEVEL"])
        let level = try levelName.map { try Self.parseLevel($0, field: "--log-level") } ?? defaultLevel
        let formatName = logFormat ?? (settings.map { $0["COGNITO_RESET_LOG_FORMAT"] } ?? environment["COGNITO_RESET_LOG_FORMAT"]) ?? "logfmt"
        let format = try Self.parseFormat(formatName, field: "--log-format")
        let journald = Self.stderrIsJournal(environment)
        LoggingSystem.bootstrap { label in
            LineLogHandler(label: label, level: level, format: format, journald: journald)
        }
        return Logger(label: "cognito-reset")
    }

    /// A log level by name, any case; bad text names `field`.
    static func parseLevel(_ name: String, field: String) throws -> Logger.Level {
        guard let level = Logger.Level(rawValue: name.lowercased()) else {
            throw CLIError.badInput("\(field): must be one of trace, debug, info, notice, warning, error, critical")
        }
        return level
    }

    /// `logfmt` or `json`, any case; bad text names `field`.
    static func parseFormat(_ name: String, field: String) throws -> LogFormat {
        guard let format = LogFormat(rawValue: name.lowercased()) else {
            throw CLIError.badInput("\(field): must be logfmt or json")
        }
        return format
    }

    /// systemd sets `$JOURNAL_STREAM` to the device and inode of the journal stream it connected;
    /// stderr is the journal only if it still is that stream (not redirected since).
    static func stderrIsJournal(_ environment: [String: String]) -> Bool {
        guard let stream = environment["JOURNAL_STREAM"] else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return stream == "\(info.st_dev):\(info.st_ino)"
    }
}
