public import Foundation

/// A value that can be an element of an array parameter, written in PostgreSQL's text form.
/// Arrays let one statement carry a whole batch (`unnest($1::bigint[], $2::text[])`).
public protocol PostgresArrayElement: Sendable {
    /// The element's text, or nil for NULL.
    var postgresArrayText: String? { get }
}

extension Array: PostgresEncodable where Element: PostgresArrayElement {
    public static var postgresType: PostgresDataType { .unspecified }

    /// `{…}` with every element double-quoted (backslash and quote escaped) or `NULL`; cast the
    /// parameter in SQL (`$1::text[]`) to give it its type.
    public var postgresParameter: PostgresParameter {
        // Built as bytes: batches hold thousands of elements and this runs on the worker's hot path.
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        bytes.reserveCapacity(count * 16 + 2)
        for (index, element) in enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            guard let value = element.postgresArrayText else {
                bytes.append(contentsOf: [UInt8(ascii: "N"), UInt8(ascii: "U"), UInt8(ascii: "L"), UInt8(ascii: "L")])
                continue
            }
            bytes.append(UInt8(ascii: "\""))
            for byte in value.utf8 {
                if byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\"") { bytes.append(UInt8(ascii: "\\")) }
                bytes.append(byte)
            }
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "}"))
        return PostgresParameter(type: .unspecified, format: .text, bytes: bytes)
    }
}

extension Optional: PostgresArrayElement where Wrapped: PostgresArrayElement {
    public var postgresArrayText: String? { self?.postgresArrayText }
}

extension String: PostgresArrayElement {
    public var postgresArrayText: String? { self }
}

extension Int: PostgresArrayElement {
    public var postgresArrayText: String? { String(self) }
}

extension Int64: PostgresArrayElement {
    public var postgresArrayText: String? { String(self) }
}

extension Int32: PostgresArrayElement {
    public var postgresArrayText: String? { String(self) }
}

extension Double: PostgresArrayElement {
    public var postgresArrayText: String? {
        isNaN ? "NaN" : isInfinite ? (self > 0 ? "Infinity" : "-Infinity") : String(self)
    }
}

extension Bool: PostgresArrayElement {
    public var postgresArrayText: String? { self ? "t" : "f" }
}

extension Date: PostgresArrayElement {
    /// ISO 8601 in UTC with microseconds, which PostgreSQL reads whatever its DateStyle.
    public var postgresArrayText: String? {
        let micros = PostgresTime.microsecondsSince2000(self)
        let seconds = micros.quotientAndRemainder(dividingBy: 1_000_000)
        let (whole, fraction) =
            seconds.remainder < 0
            ? (seconds.quotient - 1, seconds.remainder + 1_000_000) : (seconds.quotient, seconds.remainder)
        var time = time_t(whole) + time_t(PostgresTime.epochOffset)
        var parts = tm()
        gmtime_r(&time, &parts)
        // Hand-formatted: String(format:) is slow on Linux and this runs for every row of a batch.
        func padded(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return padded(Int64(parts.tm_year) + 1900, 4) + "-" + padded(Int64(parts.tm_mon) + 1, 2) + "-"
            + padded(Int64(parts.tm_mday), 2) + "T" + padded(Int64(parts.tm_hour), 2) + ":" + padded(Int64(parts.tm_min), 2)
            + ":" + padded(Int64(parts.tm_sec), 2) + "." + padded(fraction, 6) + "Z"
    }
}
