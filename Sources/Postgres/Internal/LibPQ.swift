import CLibPQ
import Foundation

/// Small helpers over libpq's C API, shared by connections and the listener. Every function here
/// runs on the thread that owns the `PGconn`.
enum LibPQ {
    /// Opens a connection with `PQconnectdbParams` (blocking; run it on a dedicated thread).
    ///
    /// A server that refuses the `options` startup parameter carrying `statement_timeout` is a
    /// pooler (PgBouncer refuses it): the connection is opened again without it, and the client-side
    /// deadline alone bounds statements.
    static func connect(_ configuration: ConnectionConfiguration) throws(PostgresError) -> OpaquePointer {
        do {
            return try connect(configuration, parameters: configuration.connectParameters())
        } catch let error where configuration.statementTimeout != nil && error.message.contains("unsupported startup parameter") {
            return try connect(configuration, parameters: configuration.connectParameters(sendingStatementTimeout: false))
        }
    }

    private static func connect(
        _ configuration: ConnectionConfiguration, parameters: [(String, String)]
    ) throws(PostgresError) -> OpaquePointer {
        let keywords = parameters.map { strdup($0.0) }
        let values = parameters.map { strdup($0.1) }
        defer {
            for keyword in keywords { free(keyword) }
            for value in values { free(value) }
        }
        let keywordArray = keywords.map { UnsafePointer($0) } + [nil]
        let valueArray = values.map { UnsafePointer($0) } + [nil]
        guard let connection = PQconnectdbParams(keywordArray, valueArray, 1) else {
            throw PostgresError(code: .connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            var error = PostgresError(
                code: .connectionFailed,
                message: connectionMessage(connection, redacting: configuration.secretsForRedaction))
            error.host = PQhost(connection).map { String(cString: $0) }
            error.port = PQport(connection).map { String(cString: $0) }
            PQfinish(connection)
            throw error
        }
        return connection
    }

    /// libpq's last error message, one line, with the password (if libpq ever echoed it) removed.
    static func connectionMessage(_ connection: OpaquePointer, redacting secrets: [String]) -> String {
        var message = String(cString: PQerrorMessage(connection))
            .split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .joined(separator: "; ")
        for secret in secrets { message = message.replacingOccurrences(of: secret, with: "<redacted>") }
        return message.isEmpty ? "connection failed" : message
    }

    /// The error of a failed statement, with the server's fields. A connection that broke while
    /// the statement ran gives `.connectionLost` (keeping the server's SQLSTATE, e.g. 57P01).
    static func statementError(
        _ result: OpaquePointer?, connection: OpaquePointer, password secrets: [String]
    ) -> PostgresError {
        let broken = PQstatus(connection) == CONNECTION_BAD
        guard let result else {
            return PostgresError(
                code: broken ? .connectionLost : .unexpectedResult,
                message: connectionMessage(connection, redacting: secrets))
        }
        func field(_ code: Character) -> String? {
            PQresultErrorField(result, Int32(code.asciiValue!)).map { String(cString: $0) }
        }
        let primary = field("M") ?? connectionMessage(connection, redacting: secrets)
        var error = PostgresError(code: broken ? .connectionLost : .server, message: primary, sqlState: field("C"))
        error.severity = field("V")
        error.detail = field("D")
        error.hint = field("H")
        error.schemaName = field("s")
        error.tableName = field("t")
        error.columnName = field("c")
        error.constraintName = field("n")
        return error
    }

    /// Copies a completed `PGresult` into Swift memory.
    static func makeResult(_ result: OpaquePointer) -> PostgresResult {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        let columns = (0..<columnCount).map { index in
            PostgresColumn(
                name: String(cString: PQfname(result, Int32(index))),
                type: PostgresDataType(oid: UInt32(PQftype(result, Int32(index)))),
                format: PQfformat(result, Int32(index)) == 1 ? .binary : .text)
        }
        var cells: [(offset: Int, length: Int32)] = []
        cells.reserveCapacity(rowCount * columnCount)
        var total = 0
        for row in 0..<Int32(rowCount) {
            for column in 0..<Int32(columnCount) {
                if PQgetisnull(result, row, column) == 1 {
                    cells.append((total, -1))
                } else {
                    let length = PQgetlength(result, row, column)
                    cells.append((total, length))
                    total += Int(length)
                }
            }
        }
        let bytes = [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            var cell = 0
            for row in 0..<Int32(rowCount) {
                for column in 0..<Int32(columnCount) {
                    let (offset, length) = cells[cell]
                    cell += 1
                    guard length > 0, let value = PQgetvalue(result, row, column) else { continue }
                    UnsafeMutableRawPointer(buffer.baseAddress! + offset)
                        .copyMemory(from: value, byteCount: Int(length))
                }
            }
            initialized = total
        }
        let tag = String(cString: PQcmdStatus(result))
        let affected = String(cString: PQcmdTuples(result))
        return PostgresResult(
            storage: .init(columns: columns, bytes: bytes, cells: cells, rowCount: rowCount),
            commandTag: tag, affectedRows: Int(affected))
    }
}
