import Foundation

/// The values libpq accepts for the settings it checks only when it connects. libpq parses a
/// connection string without looking at values, so `sslmode=bogus` or `port=abc` would otherwise
/// surface as a failed connection (retried as if the server were down) instead of bad input.
enum ConnectionSettingRules {
    /// Setting → (the `PG*` variable libpq falls back to, the rule).
    static let rules: [String: (variable: String?, rule: Rule)] = [
        "port": ("PGPORT", .ports),
        "connect_timeout": ("PGCONNECT_TIMEOUT", .integer),
        "keepalives": (nil, .integer),
        "keepalives_idle": (nil, .integer),
        "keepalives_interval": (nil, .integer),
        "keepalives_count": (nil, .integer),
        "tcp_user_timeout": (nil, .integer),
        "sslmode": ("PGSSLMODE", .oneOf(["disable", "allow", "prefer", "require", "verify-ca", "verify-full"])),
        "gssencmode": ("PGGSSENCMODE", .oneOf(["disable", "prefer", "require"])),
        "channel_binding": ("PGCHANNELBINDING", .oneOf(["disable", "prefer", "require"])),
        "target_session_attrs": (
            "PGTARGETSESSIONATTRS", .oneOf(["any", "read-write", "read-only", "primary", "standby", "prefer-standby"])
        ),
        // libpq compares these without case and takes an empty value as "no bound".
        "ssl_min_protocol_version": ("PGSSLMINPROTOCOLVERSION", .tlsVersion),
        "ssl_max_protocol_version": ("PGSSLMAXPROTOCOLVERSION", .tlsVersion),
        "hostaddr": ("PGHOSTADDR", .addresses),
    ]

    enum Rule {
        /// A whole number (libpq allows surrounding spaces).
        case integer
        /// One port, or a comma list of ports (one per host), each 1-65535; empty means the default.
        case ports
        case oneOf([String])
        /// TLSv1 to TLSv1.3 in any case, or empty.
        case tlsVersion
        /// An IPv4 or IPv6 address, or a comma list of them (one per host); empty entries allowed.
        case addresses

        func accepts(_ value: String) -> Bool {
            switch self {
            case .integer:
                return Int(value.trimmingCharacters(in: .whitespaces)) != nil
            case .ports:
                return value.split(separator: ",", omittingEmptySubsequences: false).allSatisfy { port in
                    let text = port.trimmingCharacters(in: .whitespaces)
                    return text.isEmpty || Int(text).map { (1...65535).contains($0) } == true
                }
            case .oneOf(let values):
                return values.contains(value)
            case .tlsVersion:
                return value.isEmpty || ["tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3"].contains(value.lowercased())
            case .addresses:
                return value.split(separator: ",", omittingEmptySubsequences: false).allSatisfy { address in
                    let text = address.trimmingCharacters(in: .whitespaces)
                    var v4 = in_addr()
                    var v6 = in6_addr()
                    return text.isEmpty || inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
                }
            }
        }

        var description: String {
            switch self {
            case .integer: "must be a whole number"
            case .ports: "must be a port from 1 to 65535 (or a comma list of them, one per host)"
            case .oneOf(let values): "must be one of " + values.joined(separator: ", ")
            case .tlsVersion: "must be one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 (or empty)"
            case .addresses: "must be an IP address (or a comma list of them, one per host)"
            }
        }
    }

    /// Checks the explicit settings, then the `PG*` variables of the settings the string leaves
    /// out; then what libpq would take apart wrongly and quote back in its errors.
    static func check(_ settings: [String: String], environment: [String: String]) throws(PostgresError) {
        try checkValues(settings, environment: environment)
        try checkShapes(settings, environment: environment)
    }

    private static func checkValues(_ settings: [String: String], environment: [String: String]) throws(PostgresError) {
        for key in rules.keys.sorted() {
            let (variable, rule) = rules[key]!
            if let value = settings[key] {
                guard rule.accepts(value) else {
                    throw PostgresError(code: .invalidConfiguration, message: "\(key): \(rule.description)")
                }
            } else if let variable, let value = environment[variable], !value.isEmpty, !rule.accepts(value) {
                throw PostgresError(code: .invalidConfiguration, message: "\(variable): \(rule.description)")
            }
        }
    }

    /// A database name that holds a URI, or a host with an `@`, is a connection string gone wrong
    /// (a URI inside `dbname=`, a password with an unencoded `@`): libpq would send it on as a
    /// name and the server or resolver would quote it back, password and all. The value is not
    /// shown. A host list and a port list must pair up (one port, or one per host).
    private static func checkShapes(_ settings: [String: String], environment: [String: String]) throws(PostgresError) {
        let hidden = " (the value is not shown: it may hold a password)"
        let database = settings["dbname"] ?? environment["PGDATABASE"]
        if let database, database.contains("://") || database.contains("@") {
            let source = settings["dbname"] != nil ? "dbname" : "PGDATABASE"
            throw PostgresError(
                code: .invalidConfiguration, message: "\(source): must be a database name, not a URI or user@host\(hidden)")
        }
        for (key, variable) in [("host", "PGHOST"), ("hostaddr", "PGHOSTADDR")] {
            if let value = settings[key] ?? environment[variable], value.contains("@") {
                let source = settings[key] != nil ? key : variable
                throw PostgresError(
                    code: .invalidConfiguration,
                    message: "\(source): must be host names or addresses; an '@' in a password must be written %40 in a URI\(hidden)")
            }
        }
        let hosts =
            (settings["host"] ?? settings["hostaddr"] ?? environment["PGHOST"] ?? environment["PGHOSTADDR"])
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).count } ?? 1
        let ports = (settings["port"] ?? environment["PGPORT"]).map { $0.split(separator: ",", omittingEmptySubsequences: false).count } ?? 1
        guard ports == 1 || ports == hosts else {
            throw PostgresError(
                code: .invalidConfiguration, message: "port: must be one port, or one per host (\(hosts) hosts, \(ports) ports)")
        }
    }
}
