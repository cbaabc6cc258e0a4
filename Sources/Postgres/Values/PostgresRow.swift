/// A result column: its name, type and the format its values arrived in.
public struct PostgresColumn: Sendable, Hashable {
    public let name: String
    public let type: PostgresDataType
    public let format: PostgresFormat
}

/// One non-NULL value of a result, with the column it belongs to.
public struct PostgresCell: Sendable {
    public let column: PostgresColumn
    public let bytes: ArraySlice<UInt8>
}

/// The rows of a completed statement, copied out of libpq into one contiguous buffer.
public struct PostgresResult: Sendable, RandomAccessCollection {
    final class Storage: Sendable {
        let columns: [PostgresColumn]
        let columnIndex: [String: Int]
        let bytes: [UInt8]
        /// Per cell, row-major: start offset into `bytes` and length, or length -1 for NULL.
        let cells: [(offset: Int, length: Int32)]
        let rowCount: Int

        init(columns: [PostgresColumn], bytes: [UInt8], cells: [(offset: Int, length: Int32)], rowCount: Int) {
            self.columns = columns
            var index: [String: Int] = [:]
            for (position, column) in columns.enumerated() where index[column.name] == nil {
                index[column.name] = position
            }
            self.columnIndex = index
            self.bytes = bytes
            self.cells = cells
            self.rowCount = rowCount
        }
    }

    let storage: Storage
    /// The command tag, e.g. `INSERT 0 3` or `SELECT 10`.
    public let commandTag: String
    /// Rows inserted, updated, deleted, selected, copied..., when the command reports it.
    public let affectedRows: Int?

    public var columns: [PostgresColumn] { storage.columns }
    public var startIndex: Int { 0 }
    public var endIndex: Int { storage.rowCount }
    public subscript(position: Int) -> PostgresRow { PostgresRow(storage: storage, index: position) }
}

/// One row of a `PostgresResult`. Decode its values by position or column name.
public struct PostgresRow: Sendable {
    let storage: PostgresResult.Storage
    let index: Int

    public var columns: [PostgresColumn] { storage.columns }

    /// The value at `column`, or nil for SQL NULL.
    public func cell(at column: Int) throws -> PostgresCell? {
        guard column >= 0, column < storage.columns.count else {
            throw PostgresError(
                code: .decoding, message: "column index \(column) out of range (\(storage.columns.count) columns)")
        }
        let (offset, length) = storage.cells[index * storage.columns.count + column]
        guard length >= 0 else { return nil }
        return PostgresCell(
            column: storage.columns[column], bytes: storage.bytes[offset..<offset + Int(length)])
    }

    func position(of name: String) throws -> Int {
        guard let position = storage.columnIndex[name] else {
            throw PostgresError(code: .decoding, message: "no column named \(name) in the result")
        }
        return position
    }

    /// Decodes a non-NULL value; a NULL throws (decode `T?` to accept NULL).
    public func decode<T: PostgresDecodable>(_ type: T.Type, at column: Int) throws -> T {
        guard let cell = try cell(at: column) else {
            throw PostgresError(
                code: .decoding,
                message: "column \(storage.columns[column].name) is NULL; decode \(T.self)? to accept NULL")
        }
        return try T(postgresCell: cell)
    }

    /// Decodes a value that may be NULL.
    public func decode<T: PostgresDecodable>(_ type: T?.Type, at column: Int) throws -> T? {
        try cell(at: column).map { try T(postgresCell: $0) }
    }

    public func decode<T: PostgresDecodable>(_ type: T.Type, _ column: String) throws -> T {
        try decode(type, at: position(of: column))
    }

    public func decode<T: PostgresDecodable>(_ type: T?.Type, _ column: String) throws -> T? {
        try decode(type, at: position(of: column))
    }
}
