import Foundation

/// PostgreSQL's binary time representation: microseconds (timestamps) or days (dates) since
/// 2000-01-01 00:00:00 UTC, with the extreme int64 values meaning ±infinity.
enum PostgresTime {
    /// Seconds from 1970-01-01 to 2000-01-01.
    static let epochOffset: TimeInterval = 946_684_800

    static func microsecondsSince2000(_ date: Date) -> Int64 {
        if date == .distantFuture { return .max }
        if date == .distantPast { return .min }
        let seconds = date.timeIntervalSince1970 - epochOffset
        return Int64((seconds * 1_000_000).rounded())
    }

    static func date(microsecondsSince2000 micros: Int64) -> Date {
        switch micros {
        case .max: return .distantFuture
        case .min: return .distantPast
        default:
            // Split to keep full microsecond precision through the Double conversion.
            let seconds = Double(micros / 1_000_000) + Double(micros % 1_000_000) / 1_000_000
            return Date(timeIntervalSince1970: epochOffset + seconds)
        }
    }

    static func date(daysSince2000 days: Int32) -> Date {
        switch days {
        case .max: return .distantFuture
        case .min: return .distantPast
        default: return Date(timeIntervalSince1970: epochOffset + Double(days) * 86_400)
        }
    }
}
