/// An error from the database layer, carrying what an operator needs and never a secret.
///
/// Server errors keep the fields PostgreSQL reports (SQLSTATE, message, detail, hint, constraint,
/// table, column). `description` is deliberately terse: it leaves out `detail`, which may quote row
/// values (usernames, metadata), and never contains query parameters or the connection password.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. An open set of static values rather than an enum, so new kinds
    /// can be added without breaking callers that switch over the known ones.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public var description: String { name }

        /// The connection could not be opened (server down, refused, bad credentials, TLS...).
        public static let connectionFailed = Code(name: "connectionFailed")
        /// An open connection broke (server restart, `pg_terminate_backend`, network drop).
        public static let connectionLost = Code(name: "connectionLost")
        /// The server rejected a statement; see `sqlState`.
        public static let server = Code(name: "server")
        /// A value could not be decoded into the requested Swift type.
        public static let decoding = Code(name: "decoding")
        /// A parameter cannot be sent (e.g. text with a NUL byte).
        public static let invalidParameter = Code(name: "invalidParameter")
        /// The connection string is malformed.
        public static let invalidConfiguration = Code(name: "invalidConfiguration")
        /// The connection or pool was closed by its owner.
        public static let closed = Code(name: "closed")
        /// libpq returned something this layer does not expect (a protocol-level surprise).
        public static let unexpectedResult = Code(name: "unexpectedResult")
        /// The server did not answer a statement within its client-side deadline, nor a cancel
        /// request soon after (a hung or stopped server, a lost network): the connection was given up.
        public static let timedOut = Code(name: "timedOut")
    }

    public var code: Code
    /// The primary message (from the server, libpq, or this layer).
    public var message: String
    /// Five-character SQLSTATE for server errors, e.g. `23505` for a unique violation.
    public var sqlState: String?
    public var severity: String?
    /// The server's detail line. May quote row values: log it only at debug, never by default.
    public var detail: String?
    public var hint: String?
    public var schemaName: String?
    public var tableName: String?
    public var columnName: String?
    /// The violated constraint, for integrity errors.
    public var constraintName: String?
    /// For connection errors: the host and port libpq tried.
    public var host: String?
    public var port: String?

    public init(code: Code, message: String, sqlState: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
    }

    /// True when the connection this came from can no longer be used.
    public var isConnectionError: Bool {
        code == .connectionFailed || code == .connectionLost || code == .timedOut
            || (sqlState.map { $0.hasPrefix("08") || $0 == SQLState.adminShutdown } ?? false)
    }

    /// True when the statement was refused for the data it carried (SQLSTATE classes 22, data
    /// exception, and 23, integrity constraint violation): the same values fail again however
    /// often they are retried. Timeouts, lock waits, a read-only or full database and the like
    /// are not: they pass.
    public var isDataError: Bool {
        sqlState.map { $0.hasPrefix("22") || $0.hasPrefix("23") } ?? false
    }

    public var description: String {
        var parts: [String] = []
        if let sqlState { parts.append("SQLSTATE \(sqlState)") }
        if let constraintName { parts.append("constraint \(constraintName)") }
        if let host {
            parts.append(port.map { "server \(host):\($0)" } ?? "server \(host)")
        }
        let context = parts.isEmpty ? "" : " (\(parts.joined(separator: ", ")))"
        return "\(code): \(message)\(context)"
    }
}

/// SQLSTATE values this project reacts to. See PostgreSQL's Appendix A.
public enum SQLState {
    public static let uniqueViolation = "23505"
    public static let checkViolation = "23514"
    public static let notNullViolation = "23502"
    public static let foreignKeyViolation = "23503"
    public static let invalidTextRepresentation = "22P02"
    public static let insufficientPrivilege = "42501"
    public static let undefinedTable = "42P01"
    public static let undefinedFunction = "42883"
    public static let undefinedColumn = "42703"
    public static let invalidSchemaName = "3F000"
    public static let queryCanceled = "57014"
    public static let adminShutdown = "57P01"
    public static let lockNotAvailable = "55P03"
    public static let serializationFailure = "40001"
    public static let deadlockDetected = "40P01"
    public static let undefinedPreparedStatement = "26000"
    public static let duplicatePreparedStatement = "42P05"
    /// The startup packet carried a parameter the server (or a pooler posing as one) refuses.
    public static let protocolViolation = "08P01"
}
