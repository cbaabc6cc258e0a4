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
        "ssl_min_protocol_version": ("PGSSLMINPROTOCOLVERSION", .oneOf(["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"])),
        "ssl_max_protocol_version": ("PGSSLMAXPROTOCOLVERSION", .oneOf(["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"])),
    ]

    enum Rule {
        /// A whole number (libpq allows surrounding spaces).
        case integer
        /// One port, or a comma list of ports (one per host), each 1-65535; empty means the default.
        case ports
        case oneOf([String])

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
            }
        }

        var description: String {
            switch self {
            case .integer: "must be a whole number"
            case .ports: "must be a port from 1 to 65535 (or a comma list of them, one per host)"
            case .oneOf(let values): "must be one of " + values.joined(separator: ", ")
            }
        }
    }

    /// Checks the explicit settings, then the `PG*` variables of the settings the string leaves out.
    static func check(_ settings: [String: String], environment: [String: String]) throws(PostgresError) {
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
}
