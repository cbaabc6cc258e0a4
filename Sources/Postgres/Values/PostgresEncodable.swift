public import Foundation

/// A value bound to a statement parameter (`$n`): its type, wire format and bytes (nil is NULL).
public struct PostgresParameter: Sendable {
    public var type: PostgresDataType
    public var format: PostgresFormat
    public var bytes: [UInt8]?

    public init(type: PostgresDataType, format: PostgresFormat, bytes: [UInt8]?) {
        self.type = type
        self.format = format
        self.bytes = bytes
    }

    /// SQL NULL of the given type.
    public static func null(_ type: PostgresDataType = .unspecified) -> PostgresParameter {
        PostgresParameter(type: type, format: .text, bytes: nil)
    }
}

/// A Swift value that can be bound as a statement parameter. Values are always sent as
/// parameters, never spliced into SQL text.
public protocol PostgresEncodable: Sendable {
    /// The type sent with a NULL of this Swift type.
    static var postgresType: PostgresDataType { get }
    var postgresParameter: PostgresParameter { get }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public static var postgresType: PostgresDataType { Wrapped.postgresType }
    public var postgresParameter: PostgresParameter {
        switch self {
        case .some(let value): value.postgresParameter
        case .none: .null(Wrapped.postgresType)
        }
    }
}

extension String: PostgresEncodable {
    /// Unspecified, so the server reads the text as whatever the context needs (text, jsonb, enum...).
    public static var postgresType: PostgresDataType { .unspecified }
    public var postgresParameter: PostgresParameter {
        PostgresParameter(type: .unspecified, format: .text, bytes: Array(utf8))
    }
}

extension Substring: PostgresEncodable {
    public static var postgresType: PostgresDataType { .unspecified }
    public var postgresParameter: PostgresParameter { String(self).postgresParameter }
}

/// Integers go as text of unspecified type so that one Swift `Int` fits smallint, int and bigint
/// columns and function arguments alike (an int8 parameter would not match a smallint argument).
extension PostgresEncodable where Self: BinaryInteger {
    public static var postgresType: PostgresDataType { .unspecified }
    public var postgresParameter: PostgresParameter {
        PostgresParameter(type: .unspecified, format: .text, bytes: Array(String(self).utf8))
    }
}

extension Int: PostgresEncodable {}
extension Int64: PostgresEncodable {}
extension Int32: PostgresEncodable {}
extension Int16: PostgresEncodable {}

extension Bool: PostgresEncodable {
    public static var postgresType: PostgresDataType { .bool }
    public var postgresParameter: PostgresParameter {
        PostgresParameter(type: .bool, format: .binary, bytes: [self ? 1 : 0])
    }
}

extension Double: PostgresEncodable {
    public static var postgresType: PostgresDataType { .unspecified }
    public var postgresParameter: PostgresParameter {
        let text: String
        if isNaN {
            text = "NaN"
        } else if isInfinite {
            text = self > 0 ? "Infinity" : "-Infinity"
        } else {
            text = String(self)  // shortest representation that round-trips
        }
        return PostgresParameter(type: .unspecified, format: .text, bytes: Array(text.utf8))
    }
}

extension Date: PostgresEncodable {
    public static var postgresType: PostgresDataType { .timestamptz }
    /// Binary timestamptz: microseconds since 2000-01-01 UTC, exact whatever the session time zone.
    public var postgresParameter: PostgresParameter {
        PostgresParameter(
            type: .timestamptz, format: .binary,
            bytes: PostgresTime.microsecondsSince2000(self).bigEndianBytes)
    }
}

extension Data: PostgresEncodable {
    public static var postgresType: PostgresDataType { .bytea }
    public var postgresParameter: PostgresParameter {
        PostgresParameter(type: .bytea, format: .binary, bytes: Array(self))
    }
}

extension UUID: PostgresEncodable {
    public static var postgresType: PostgresDataType { .uuid }
    public var postgresParameter: PostgresParameter {
        PostgresParameter(type: .uuid, format: .text, bytes: Array(uuidString.utf8))
    }
}

/// A JSON document bound as `jsonb` (or read back from a json/jsonb column) as its text.
public struct PostgresJSON: PostgresEncodable, Hashable {
    public var text: String

    public init(text: String) { self.text = text }

    /// Encodes `value` with `JSONEncoder` (keys sorted, so equal values give equal text).
    public init(encoding value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        self.text = String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Decodes the document into `type`.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }

    public static var postgresType: PostgresDataType { .jsonb }
    public var postgresParameter: PostgresParameter {
        PostgresParameter(type: .jsonb, format: .text, bytes: Array(text.utf8))
    }
}

extension FixedWidthInteger {
    var bigEndianBytes: [UInt8] {
        withUnsafeBytes(of: bigEndian) { Array($0) }
    }
}
