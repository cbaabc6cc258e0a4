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
        var text = "{"
        for (index, element) in enumerated() {
            if index > 0 { text += "," }
            guard let value = element.postgresArrayText else {
                text += "NULL"
                continue
            }
            text += "\""
            for character in value.unicodeScalars {
                if character == "\\" || character == "\"" { text += "\\" }
                text.unicodeScalars.append(character)
            }
            text += "\""
        }
        return PostgresParameter(type: .unspecified, format: .text, bytes: Array<UInt8>((text + "}").utf8))
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
        let (whole, fraction) = seconds.remainder < 0
            ? (seconds.quotient - 1, seconds.remainder + 1_000_000) : (seconds.quotient, seconds.remainder)
        var time = time_t(whole) + time_t(PostgresTime.epochOffset)
        var parts = tm()
        gmtime_r(&time, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
            parts.tm_hour, parts.tm_min, parts.tm_sec, Int32(fraction))
    }
}
