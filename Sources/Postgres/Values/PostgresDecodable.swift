public import Foundation

/// A Swift type that can be read from a (non-NULL) result value. Results arrive in binary format,
/// so decoding is exact and independent of session settings such as `DateStyle` or `TimeZone`.
public protocol PostgresDecodable: Sendable {
    init(postgresCell cell: PostgresCell) throws
}

extension PostgresCell {
    func mismatch<T>(_ type: T.Type, hint: String = "") -> PostgresError {
        PostgresError(
            code: .decoding,
            message: "column \(column.name) of type \(column.type) cannot be decoded as \(T.self)\(hint)")
    }

    /// Reads a big-endian integer of exactly `N` bytes.
    func integer<N: FixedWidthInteger>(_: N.Type) throws -> N {
        guard bytes.count == MemoryLayout<N>.size else {
            throw PostgresError(
                code: .decoding, message: "column \(column.name): \(bytes.count) bytes for a \(N.self)")
        }
        return bytes.reduce(N.zero) { ($0 << 8) | N(truncatingIfNeeded: $1) }
    }

    /// The value's text when the type's binary form is text (text, varchar, json, jsonb...).
    var text: String? {
        if column.format == .text || column.type.isTextual {
            return String(decoding: bytes, as: UTF8.self)
        }
        if column.type == .jsonb, bytes.first == 1 {  // binary jsonb: version byte, then the text
            return String(decoding: bytes.dropFirst(), as: UTF8.self)
        }
        return nil
    }

    /// Any integer type as Int64.
    var int64: Int64? {
        get throws {
            switch column.type {
            case .int2: Int64(try integer(Int16.self))
            case .int4: Int64(try integer(Int32.self))
            case .int8: try integer(Int64.self)
            case .oidType: Int64(try integer(UInt32.self))
            default: nil
            }
        }
    }
}

extension String: PostgresDecodable {
    public init(postgresCell cell: PostgresCell) throws {
        if let text = cell.text {
            self = text
        } else if cell.column.type == .numeric {
            self = try PostgresNumeric.text(cell)
        } else if cell.column.type == .uuid {
            self = try UUID(postgresCell: cell).uuidString.lowercased()
        } else {
            throw cell.mismatch(String.self, hint: "; cast it to text in the query")
        }
    }
}

extension PostgresDecodable where Self: FixedWidthInteger & SignedInteger {
    public init(postgresCell cell: PostgresCell) throws {
        let wide: Int64
        if let value = try cell.int64 {
            wide = value
        } else if cell.column.type == .numeric, let value = Int64(try PostgresNumeric.text(cell)) {
            wide = value
        } else if let text = cell.text, let value = Int64(text) {
            wide = value  // an untyped parameter echoed back as text
        } else {
            throw cell.mismatch(Self.self)
        }
        guard let value = Self(exactly: wide) else {
            throw PostgresError(code: .decoding, message: "column \(cell.column.name): value out of range for \(Self.self)")
        }
        self = value
    }
}

extension Int: PostgresDecodable {}
extension Int64: PostgresDecodable {}
extension Int32: PostgresDecodable {}
extension Int16: PostgresDecodable {}

extension Bool: PostgresDecodable {
    public init(postgresCell cell: PostgresCell) throws {
        if cell.column.type == .bool, cell.column.format == .binary, cell.bytes.count == 1 {
            self = cell.bytes.first! != 0
        } else if let text = cell.text, let value = ["t": true, "true": true, "f": false, "false": false][text] {
            self = value
        } else {
            throw cell.mismatch(Bool.self)
        }
    }
}

extension Double: PostgresDecodable {
    public init(postgresCell cell: PostgresCell) throws {
        switch cell.column.type {
        case .float8: self = Double(bitPattern: try cell.integer(UInt64.self))
        case .float4: self = Double(Float(bitPattern: try cell.integer(UInt32.self)))
        case .numeric:
            guard let value = Double(try PostgresNumeric.text(cell)) else { throw cell.mismatch(Double.self) }
            self = value
        default:
            if let value = try cell.int64 {
                self = Double(value)
            } else if let text = cell.text, let value = Double(text) {
                self = value
            } else {
                throw cell.mismatch(Double.self)
            }
        }
    }
}

extension Date: PostgresDecodable {
    public init(postgresCell cell: PostgresCell) throws {
        switch cell.column.type {
        // A timestamp without time zone is read as UTC: this project stores only timestamptz.
        case .timestamptz, .timestamp:
            self = PostgresTime.date(microsecondsSince2000: try cell.integer(Int64.self))
        case .date:
            self = PostgresTime.date(daysSince2000: try cell.integer(Int32.self))
        default:
            throw cell.mismatch(Date.self)
        }
    }
}

extension Data: PostgresDecodable {
    /// bytea as its bytes; any other binary value as its raw wire bytes.
    public init(postgresCell cell: PostgresCell) throws {
        self = Data(cell.bytes)
    }
}

extension UUID: PostgresDecodable {
    public init(postgresCell cell: PostgresCell) throws {
        if cell.column.type == .uuid, cell.bytes.count == 16 {
            let b = Array(cell.bytes)
            self = UUID(
                uuid: (
                    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                    b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
                ))
        } else if let text = cell.text, let value = UUID(uuidString: text) {
            self = value
        } else {
            throw cell.mismatch(UUID.self)
        }
    }
}

extension PostgresJSON: PostgresDecodable {
    public init(postgresCell cell: PostgresCell) throws {
        guard let text = cell.text else { throw cell.mismatch(PostgresJSON.self) }
        self.init(text: text)
    }
}
