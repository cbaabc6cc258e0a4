import Foundation

/// A statement and its parameters. Values can only enter as bound parameters:
///
/// ```swift
/// let query: PostgresQuery = "SELECT id FROM cognito_reset.jobs WHERE username = \(name)"
/// // sent as "... WHERE username = $1" with `name` bound as parameter 1
/// ```
///
/// Statements kept as named constants use `init(_:_:)` with explicit `$n` placeholders. Raw SQL
/// text can only be interpolated with `\(unescaped:)`, which is for trusted identifiers, never data.
public struct PostgresQuery: Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    /// The SQL text with `$1`, `$2`... placeholders.
    public private(set) var sql: String
    public private(set) var parameters: [PostgresParameter]
    /// Whether the connection prepares the statement once (a named server-side statement) and
    /// reuses it: PostgreSQL then plans it once per connection instead of every time. For the
    /// statements a worker repeats many times a second.
    public private(set) var isPrepared = false

    /// A constant statement with `$n` placeholders and the values bound to them, in order.
    public init(_ sql: String, _ parameters: [any PostgresEncodable] = []) {
        self.sql = sql
        self.parameters = parameters.map(\.postgresParameter)
    }

    public init(stringLiteral value: String) {
        self.sql = value
        self.parameters = []
    }

    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.parameters = stringInterpolation.parameters
    }

    /// The SQL text only: parameters are never shown, so a query can be logged safely.
    public var description: String { sql }

    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var parameters: [PostgresParameter] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + 3 * interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) { sql += literal }

        /// Binds `value` as the next parameter.
        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            parameters.append(value.postgresParameter)
            sql += "$\(parameters.count)"
        }

        /// Binds `value`, or NULL when it is nil.
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value?) {
            parameters.append(value.postgresParameter)
            sql += "$\(parameters.count)"
        }

        /// Inserts trusted SQL text (an identifier known at compile time), never user data.
        public mutating func appendInterpolation(unescaped text: String) { sql += text }
    }
}

extension PostgresQuery {
    /// This statement, prepared once per connection and reused (see `isPrepared`).
    public func prepared() -> PostgresQuery {
        var query = self
        query.isPrepared = true
        return query
    }

    /// Quotes an identifier (schema, table, channel name) for SQL text: `my"name` → `"my""name"`.
    public static func quoteIdentifier(_ identifier: String) -> String {
        "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
