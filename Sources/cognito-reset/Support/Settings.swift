import Foundation

/// The daemon's settings from the environment and an optional config file (`--config` or
/// `COGNITO_RESET_CONFIG`): `KEY=VALUE` lines, `#` comments, the same names as the environment,
/// so one file serves as systemd `EnvironmentFile=` and as `--config`. Flags win over the
/// environment, which wins over the file.
///
/// An unknown `COGNITO_RESET_*` name, in the environment or the file, is refused: a typo such as
/// `COGNITO_RESET_CONCURENCY=64` would otherwise run silently with the default.
struct Settings {
    /// Every setting the commands read, with what it means (for the error message and docs).
    static let known: [String: String] = [
        "COGNITO_RESET_CONFIG": "config file",
        "COGNITO_RESET_CONCURRENCY": "worker: calls in flight",
        "COGNITO_RESET_RATE": "worker: initial ceiling of the shared rate (requests/s) or unlimited",
        "COGNITO_RESET_RATE_KEY": "worker, rate: the shared rate bucket's key ({region}: each pool's region)",
        "COGNITO_RESET_REGIONS": "worker: the regions whose pools it serves (comma list; default every region)",
        "COGNITO_RESET_LEASE": "worker: lease on claimed jobs",
        "COGNITO_RESET_HEARTBEAT": "worker: lease renewal interval",
        "COGNITO_RESET_POLL": "worker: poll interval",
        "COGNITO_RESET_GRACE": "worker: time in-flight calls get on SIGTERM",
        "COGNITO_RESET_STATUS_INTERVAL": "worker: systemd STATUS and queue gauges interval",
        "COGNITO_RESET_METRICS_ADDRESS": "worker: host:port of the metrics and health endpoint",
        "COGNITO_RESET_STATEMENT_TIMEOUT": "worker: server-side statement_timeout of its statements (the client gives up a little later)",
        "COGNITO_RESET_LISTEN_URL": "worker: a direct connection for LISTEN only (behind a pooler), or none",
        "COGNITO_RESET_LOG_LEVEL": "log level",
        "COGNITO_RESET_LOG_FORMAT": "log format",
        "COGNITO_RESET_LOG_USERNAMES": "log usernames unmasked",
        "COGNITO_RESET_RETENTION": "prune: age of finished jobs to delete",
        "COGNITO_RESET_MIGRATIONS_DIR": "migrate: folder of migration files",
    ]

    private let values: [String: String]

    /// Reads the file (if any, and if `readingFile`) and checks every name. Bad input throws
    /// `CLIError` (exit 2).
    init(environment: [String: String], configFile: String?, readingFile: Bool = true) throws {
        for name in environment.keys.sorted() where name.hasPrefix("COGNITO_RESET_") && Self.known[name] == nil {
            throw CLIError.badInput("\(name): unknown setting in the environment (known: \(Self.known.keys.sorted().joined(separator: ", ")))")
        }
        var values: [String: String] = [:]
        if readingFile, let path = configFile ?? environment["COGNITO_RESET_CONFIG"].flatMap({ $0.isEmpty ? nil : $0 }) {
            values = try Self.read(path)
        }
        for (name, value) in environment where Self.known[name] != nil {
            values[name] = value
        }
        self.values = values
    }

    /// Checks every `COGNITO_RESET_*` variable of the environment, names and values, for every
    /// command: a typo or a bad value is refused (exit 2) whichever command runs, not only by the
    /// commands that read that setting. Config files are checked by the commands that read them.
    static func checkEnvironment(_ environment: [String: String]) throws {
        let settings = try Settings(environment: environment, configFile: nil, readingFile: false)
        try settings.checkValues()
    }

    /// Each setting that is set parses as its kind of value; the error names the setting.
    func checkValues() throws {
        for (name, flag) in [
            ("COGNITO_RESET_LEASE", "--lease"), ("COGNITO_RESET_HEARTBEAT", "--heartbeat"),
            ("COGNITO_RESET_POLL", "--poll"), ("COGNITO_RESET_GRACE", "--grace"),
            ("COGNITO_RESET_STATUS_INTERVAL", "--status-interval"), ("COGNITO_RESET_RETENTION", "--older-than"),
        ] {
            _ = try duration(nil, name, flagName: flag, default: .zero)
        }
        _ = try bool("COGNITO_RESET_LOG_USERNAMES", default: false)
        // Each text setting and the one validator its flag uses too ("unlimited" and "none" are
        // words of their own, not values to parse).
        let checks: [(String, (String, String) throws -> Void)] = [
            ("COGNITO_RESET_CONCURRENCY", { _ = try WorkerCommand.parseConcurrency($0, field: $1) }),
            ("COGNITO_RESET_RATE", { text, field in if text != "unlimited" { _ = try RateArgument.parse(text, field: field) } }),
            ("COGNITO_RESET_RATE_KEY", { _ = try RateArgument.workerKey($0, field: $1) }),
            ("COGNITO_RESET_REGIONS", { _ = try WorkerCommand.parseRegions($0, field: $1) }),
            ("COGNITO_RESET_METRICS_ADDRESS", { _ = try WorkerCommand.parseAddress($0, field: $1) }),
            (
                "COGNITO_RESET_STATEMENT_TIMEOUT",
                { _, field in
                    let timeout = try duration(nil, field, flagName: "--statement-timeout", default: .zero)
                    try WorkerCommand.checkStatementTimeout(timeout, field: field)
                }
            ),
            ("COGNITO_RESET_LISTEN_URL", { text, field in if text != "none" { _ = try DatabaseOptions.configuration(text, field: field) } }),
            ("COGNITO_RESET_LOG_LEVEL", { _ = try LoggingOptions.parseLevel($0, field: $1) }),
            ("COGNITO_RESET_LOG_FORMAT", { _ = try LoggingOptions.parseFormat($0, field: $1) }),
        ]
        for (name, check) in checks {
            if let text = self[name] { try check(text, name) }
        }
    }

    /// The value of `name`, nil when unset or empty.
    subscript(_ name: String) -> String? {
        precondition(Self.known[name] != nil, "\(name) is not a known setting")
        return values[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Parses a config file; every line is an assignment, a comment or blank.
    static func read(_ path: String) throws -> [String: String] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw CLIError.badInput("--config: cannot read \(path): \((error as NSError).localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIError.badInput("--config: \(path) is not UTF-8 text")
        }
        var values: [String: String] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            let place = "\(path), line \(index + 1)"
            guard let equals = line.firstIndex(of: "=") else {
                throw CLIError.badInput("--config: \(place): expected NAME=value")
            }
            let name = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let quote = value.first, quote == "\"" || quote == "'", value.last == quote {
                value = String(value.dropFirst().dropLast())
            }
            guard name.hasPrefix("COGNITO_RESET_") else {
                // DATABASE_URL, AWS_* and the like belong in the environment (EnvironmentFile=),
                // where libpq and the AWS credential chain read them.
                throw CLIError.badInput("--config: \(place): \(name) is not a cognito-reset setting; set it in the environment")
            }
            guard known[name] != nil, name != "COGNITO_RESET_CONFIG" else {
                throw CLIError.badInput("--config: \(place): \(name): unknown setting")
            }
            values[name] = value
        }
        return values
    }

    /// A duration setting: the flag, else `name`, else `fallback`; bad text names the setting.
    func duration(_ flag: DurationArgument?, _ name: String, flagName: String, default fallback: Duration) throws -> Duration {
        if let flag { return flag.duration }
        guard let text = self[name] else { return fallback }
        guard let parsed = DurationArgument(argument: text) else {
            throw CLIError.badInput("\(name): must be a duration such as 500ms, 30s, 5m or 1h, at most 36500d (or \(flagName))")
        }
        return parsed.duration
    }

    /// A true/false setting.
    func bool(_ name: String, default fallback: Bool) throws -> Bool {
        guard let text = self[name]?.lowercased() else { return fallback }
        switch text {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw CLIError.badInput("\(name): must be true or false")
        }
    }
}
