import CLibPQ

extension PostgresConnection {
    /// Streams rows into `COPY … FROM STDIN` (`PQputCopyData` / `PQputCopyEnd`).
    ///
    /// `body` writes through the `CopyInWriter`; data is sent in large chunks as it is written, so
    /// memory stays flat whatever the size. If `body` throws, the COPY is aborted (nothing from it
    /// is kept) and the error rethrown. Returns the number of rows the server stored.
    ///
    /// - Parameter sql: a constant `COPY table (columns) FROM STDIN` statement; it takes no parameters.
    public nonisolated func copyIn(
        _ sql: String, _ body: (CopyInWriter) async throws -> Void
    ) async throws -> Int {
        try await startCopy(sql)
        let writer = CopyInWriter(connection: self)
        do {
            try await body(writer)
            try await writer.flush()
        } catch {
            _ = try? await endCopy(failure: "aborted by client: \(type(of: error))")
            throw error
        }
        return try await endCopy(failure: nil)
    }

    func startCopy(_ sql: String) throws(PostgresError) {
        let connection = try liveHandle()
        guard let result = PQexec(connection, sql) else {
            throw statementError(nil, connection)
        }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COPY_IN else {
            throw PQresultStatus(result) == PGRES_FATAL_ERROR
                ? statementError(result, connection)
                : PostgresError(code: .unexpectedResult, message: "statement did not start COPY FROM STDIN")
        }
    }

    func putCopyData(_ bytes: [UInt8]) throws(PostgresError) {
        let connection = try liveHandle()
        let sent = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(connection, $0.baseAddress, Int32($0.count)) }
        }
        guard sent == 1 else {
            throw statementError(nil, connection)
        }
    }

    /// Ends the COPY (or aborts it with `failure`) and returns the row count the server reports.
    func endCopy(failure: String?) throws(PostgresError) -> Int {
        let connection = try liveHandle()
        guard PQputCopyEnd(connection, failure) == 1 else {
            throw statementError(nil, connection)
        }
        var outcome: Result<PostgresResult, PostgresError> = .failure(
            PostgresError(code: .unexpectedResult, message: "COPY returned no result"))
        while let result = PQgetResult(connection) {  // drain every result so the connection is idle
            do throws(PostgresError) {
                outcome = .success(try consume(result, connection: connection))
            } catch {
                outcome = .failure(error)
            }
        }
        return try outcome.get().affectedRows ?? 0
    }
}

/// Writes `COPY … FROM STDIN` data for `PostgresConnection.copyIn`. Buffers into chunks of
/// `chunkSize` bytes before sending. Used by one task at a time.
public final class CopyInWriter {
    private let connection: PostgresConnection
    private var buffer: [UInt8] = []
    /// Bytes gathered before a chunk is sent to the server.
    public let chunkSize = 256 * 1024

    init(connection: PostgresConnection) {
        self.connection = connection
        buffer.reserveCapacity(chunkSize)
    }

    /// Appends raw COPY data (already in the statement's format).
    public func write(_ bytes: some Sequence<UInt8>) async throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= chunkSize { try await flush() }
    }

    /// Appends one row in COPY's text format: fields separated by tabs, NULL as `\N`, and
    /// backslash, tab, newline and carriage return escaped, so any text value arrives verbatim.
    public func writeRow(_ fields: [String?]) async throws {
        // Appended to a local array, not the stored property: each access to a class's stored
        // property is checked for exclusivity, which per byte was most of this function's cost.
        var bytes: [UInt8] = []
        swap(&bytes, &buffer)
        for (index, field) in fields.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: "\t")) }
            guard let field else {
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "N")])
                continue
            }
            if !field.utf8.contains(where: Self.needsEscape) {
                bytes.append(contentsOf: field.utf8)
                continue
            }
            for byte in field.utf8 {
                switch byte {
                case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case UInt8(ascii: "\t"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case UInt8(ascii: "\r"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                default: bytes.append(byte)
                }
            }
        }
        bytes.append(UInt8(ascii: "\n"))
        swap(&bytes, &buffer)
        if buffer.count >= chunkSize { try await flush() }
    }

    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
    }

    func flush() async throws {
        guard !buffer.isEmpty else { return }
        let chunk = buffer
        buffer.removeAll(keepingCapacity: true)
        try await connection.putCopyData(chunk)
    }
}
