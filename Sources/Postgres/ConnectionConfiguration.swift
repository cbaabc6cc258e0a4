import CLibPQ
import Foundation

/// Where and how to connect: a libpq connection string (`key=value ...`) or URI
/// (`postgresql://...`), exactly as psql takes it.
///
/// Everything libpq resolves itself keeps working: the `PG*` environment variables, `~/.pgpass`,
/// service files, `sslmode=verify-full` and so on. The value is never printed: `description` shows
/// the parsed settings with the password removed.
public struct ConnectionConfiguration: Sendable, CustomStringConvertible {
    /// The connection string as given (may be empty: then libpq uses the environment and defaults).
    public let connectionString: String
    /// Settings that override the connection string (applied after it), e.g. `dbname` in tests.
    public private(set) var overrides: [(key: String, value: String)] = []
    /// Default for libpq's `connect_timeout` when neither the string nor `PGCONNECT_TIMEOUT` sets one:
    /// libpq's own default is to wait forever, which a daemon must not do.
    public var defaultConnectTimeoutSeconds = 10
    /// `application_name` unless the string or `PGAPPNAME` sets one.
    public var fallbackApplicationName = "cognito-reset"
    /// The server-side `statement_timeout` for every statement on these connections (nil: the
    /// server's own), sent in the startup packet's `options` so it costs no round trip. A pooler
    /// that refuses `options` (PgBouncer) gets connections without it: see `statementDeadline`.
    public var statementTimeout: Duration?
    /// The client-side bound on every statement (nil: none): past it a cancel request is sent,
    /// and a server that answers neither within `PostgresConnection.cancelGrace` loses the
    /// connection. It catches what `statement_timeout` cannot: a server that does not answer at
    /// all, and a commit waiting for a synchronous standby.
    public var statementDeadline: Duration?

    /// Parses the connection string now, so a malformed one fails at start-up with a clear error.
    /// Values libpq would only refuse when connecting (`sslmode=bogus`, `port=abc`) are refused
    /// here too: a malformed setting is bad input, not an unreachable database. The `PG*`
    /// variables libpq falls back to are checked the same way.
    public init(
        _ connectionString: String, environment: [String: String]? = nil
    ) throws(PostgresError) {
        self.connectionString = connectionString
        let settings = try Self.parse(connectionString)
        try ConnectionSettingRules.check(settings, environment: environment ?? ProcessInfo.processInfo.environment)
    }

    /// From `DATABASE_URL` if set, otherwise empty (libpq then reads `PG*` variables and defaults).
    public static func fromEnvironment(_ environment: [String: String]? = nil) throws(PostgresError)
        -> ConnectionConfiguration
    {
        let environment = environment ?? ProcessInfo.processInfo.environment
        return try ConnectionConfiguration(environment["DATABASE_URL"] ?? "", environment: environment)
    }

    /// A copy with `key` set to `value`, overriding the connection string (e.g. another `dbname`).
    public func setting(_ key: String, to value: String) -> ConnectionConfiguration {
        var copy = self
        copy.overrides.removeAll { $0.key == key }
        copy.overrides.append((key, value))
        return copy
    }

    /// The value libpq will use for `key` from the string and overrides (not the environment).
    public func value(for key: String) -> String? {
        if let override = overrides.last(where: { $0.key == key }) { return override.value }
        return (try? Self.parse(connectionString))?[key]
    }

    /// Settings whose values are secret: never shown, and scrubbed from libpq's messages.
    static let secretKeys: Set<String> = ["password", "sslpassword"]

    /// The secrets given in the string or overrides, used only to scrub them from error messages.
    var secretsForRedaction: [String] {
        (Self.secretKeys.compactMap { value(for: $0) } + Self.uriPasswords(connectionString)).filter { !$0.isEmpty }
    }

    /// A URI's password as written (percent-encoded, or cut at an unencoded `@`), which libpq's
    /// decoded `password` does not match: scrubbed from messages too.
    static func uriPasswords(_ text: String) -> [String] {
        guard let scheme = text.range(of: "://") else { return [] }
        let rest = text[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else { return [] }
        let written = String(authority[authority.index(after: colon)..<at])
        // An unencoded '@' splits the password where libpq splits it, at the first one.
        let firstPart = written.split(separator: "@", maxSplits: 1).first.map(String.init) ?? written
        return (firstPart == written ? [written] : [written, firstPart]).filter { $0.count >= 3 }
    }

    /// The string's settings with the overrides applied.
    private var mergedSettings: [String: String] {
        var settings = (try? Self.parse(connectionString)) ?? [:]
        for (key, value) in overrides { settings[key] = value }
        return settings
    }

    /// The settings (string and overrides) as one `key='value'` connection string, password
    /// included: for handing to a child process, never for printing.
    public func resolvedConnectionString() -> String {
        let settings = mergedSettings
        return settings.keys.sorted().map { key in
            let value = settings[key]!.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "'", with: "\\'")
            return "\(key)='\(value)'"
        }.joined(separator: " ")
    }

    /// The settings, password removed, for logs and error messages.
    public var description: String {
        let settings = mergedSettings
        return settings.keys.sorted()
            .map { key in Self.secretKeys.contains(key) ? "\(key)=<redacted>" : "\(key)=\(settings[key]!)" }
            .joined(separator: " ")
    }

    /// Keyword/value pairs for `PQconnectdbParams` with `expand_dbname = 1`. Entries before the
    /// expanded `dbname` are defaults the string may override; entries after it override the string.
    func connectParameters(
        environment: [String: String] = ProcessInfo.processInfo.environment, sendingStatementTimeout: Bool = true
    ) -> [(String, String)] {
        var parameters: [(String, String)] = [("fallback_application_name", fallbackApplicationName)]
        if environment["PGCONNECT_TIMEOUT"] == nil {
            parameters.append(("connect_timeout", String(defaultConnectTimeoutSeconds)))
        }
        // Notice a silently vanished server (no FIN, no RST) within about a minute instead of
        // TCP's retransmission timeout of a quarter of an hour. The string may override these.
        parameters += [
            ("keepalives", "1"), ("keepalives_idle", "30"), ("keepalives_interval", "10"),
            ("keepalives_count", "3"), ("tcp_user_timeout", "60000"),
        ]
        parameters.append(("dbname", connectionString))
        parameters += overrides.map { ($0.key, $0.value) }
        if sendingStatementTimeout, let statementTimeout {
            // Added to whatever `options` the string or PGOPTIONS carry, never replacing them.
            let given = value(for: "options") ?? environment["PGOPTIONS"] ?? ""
            let timeout = "-c statement_timeout=\(max(1, Int64(statementTimeout / .milliseconds(1))))"
            parameters.append(("options", given.isEmpty ? timeout : given + " " + timeout))
        }
        // Text results and parameters are decoded as UTF-8; another client encoding would garble them.
        parameters.append(("client_encoding", "UTF8"))
        return parameters
    }

    /// The explicit settings of a connection string, via libpq's own parser.
    static func parse(_ connectionString: String) throws(PostgresError) -> [String: String] {
        var errorMessage: UnsafeMutablePointer<CChar>?
        // A plain database name (no `=`, no URI scheme) is what libpq treats as `dbname`.
        let looksLikeConninfo =
            connectionString.contains("=") || connectionString.hasPrefix("postgresql://")
            || connectionString.hasPrefix("postgres://")
        guard looksLikeConninfo else {
            if connectionString.isEmpty { return [:] }
            // libpq takes anything else as a database name and the server quotes it back in its
            // error ("database ... does not exist"): a mistyped URI (`postgress://app:pw@host`,
            // `mysql://...`, a leading space, `postgres:/...`) would print its password. A real
            // database name has none of these characters.
            guard !connectionString.contains(where: { ":/@?".contains($0) || $0.isWhitespace || $0.isNewline }) else {
                throw PostgresError(
                    code: .invalidConfiguration,
                    message: "must be a postgresql:// or postgres:// URI, key=value settings or a plain database name "
                        + "(the value is not shown: it may hold a password)")
            }
            return ["dbname": connectionString]
        }
        guard let options = PQconninfoParse(connectionString, &errorMessage) else {
            let message = errorMessage.map { String(cString: $0) } ?? "out of memory"
            if let errorMessage { PQfreemem(errorMessage) }
            throw PostgresError(
                code: .invalidConfiguration,
                message: "invalid connection string: \(Self.removingQuotedFragments(message))")
        }
        defer { PQconninfoFree(options) }
        var settings: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val {
                settings[String(cString: keyword)] = String(cString: value)
            }
            option += 1
        }
        return settings
    }

    /// libpq quotes the offending fragment of a malformed string, which may be part of a password.
    static func removingQuotedFragments(_ message: String) -> String {
        message.replacingOccurrences(of: #""[^"]*""#, with: "\"…\"", options: .regularExpression)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
