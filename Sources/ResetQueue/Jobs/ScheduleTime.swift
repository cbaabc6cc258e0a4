public import CognitoClient
public import Foundation

/// Parses the times operators give for `--run-at` (and CSV `run_at` columns).
///
/// Accepted: `now`; an RFC 3339 date-time with an explicit offset (`2026-12-01T02:00:00Z`,
/// `2026-12-01T03:00:00+01:00`, up to nine fractional digits), strictly: every field in range
/// (no February 30, no hour 24, no minute or second 60) and nothing after the offset; or a delay
/// from now: `+90s`, `+30m`, `+2h`, `+1d`, at most ten years. A time without an offset is refused:
/// it would mean different instants on different hosts. The instant must lie in `range`, which
/// the tables' `run_at` checks mirror, so the instant stored is the one echoed.
public enum ScheduleTime {
    /// 1970-01-01T00:00:00Z up to (not including) 3000-01-01T00:00:00Z: wide enough for any
    /// schedule, and clear of Foundation's `distantPast`/`distantFuture` (years 1 and 4001), which
    /// the database layer sends as -infinity/infinity.
    public static let range = Date(timeIntervalSince1970: 0)..<Date(timeIntervalSince1970: 32_503_680_000)
    public static let rule =
        "must be 'now', an RFC 3339 time with a zone (e.g. 2026-12-01T02:00:00Z) "
        + "from 1970-01-01T00:00:00Z to 2999-12-31T23:59:59Z, or a delay of at most ten years such as +30m, +2h, +1d"

    public static func parse(_ text: String, field: String, now: Date) throws(InvalidInput) -> Date {
        let value = text.trimmingCharacters(in: .whitespaces)
        if value.lowercased() == "now" { return now }
        if value.hasPrefix("+") { return try parseDelay(String(value.dropFirst()), field: field, now: now) }
        guard let date = rfc3339(value), range.contains(date) else { throw InvalidInput(field: field, rule: rule) }
        return date
    }

    private static func parseDelay(_ text: String, field: String, now: Date) throws(InvalidInput) -> Date {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        // At most ten years ahead, whatever the unit.
        guard let unit = text.last.flatMap({ units[$0] }), text.dropLast().allSatisfy(\.isASCIIDigit),
            let amount = Int(text.dropLast()), Double(amount) * unit <= 3650 * 86_400
        else { throw InvalidInput(field: field, rule: rule) }
        return now.addingTimeInterval(Double(amount) * unit)
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, the `T` and `Z` in either case, on the
    /// proleptic Gregorian calendar (as PostgreSQL counts); nil for anything else.
    static func rfc3339(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ digits: Int) -> Int? {
            guard index + digits <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[index..<index + digits] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            index += digits
            return value
        }
        func expect(_ characters: String) -> Bool {
            guard index < bytes.count, characters.utf8.contains(bytes[index]) else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
            expect("Tt"), let hour = number(2), expect(":"), let minute = number(2), expect(":"),
            let second = number(2),
            (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
            (0...23).contains(hour), (0...59).contains(minute), (0...59).contains(second)
        else { return nil }
        var fraction = 0.0
        if expect(".") {
            let start = index
            var scale = 0.1
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                fraction += Double(bytes[index] - UInt8(ascii: "0")) * scale
                scale /= 10
                index += 1
            }
            guard (1...9).contains(index - start) else { return nil }
        }
        var offset = 0
        if expect("Zz") {
            offset = 0
        } else {
            guard index < bytes.count else { return nil }
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            guard expect("+-"), let hours = number(2), expect(":"), let minutes = number(2),
                (0...23).contains(hours), (0...59).contains(minutes)
            else { return nil }
            offset = sign * (hours * 3600 + minutes * 60)
        }
        guard index == bytes.count else { return nil }  // nothing after the offset
        let days = daysSinceEpoch(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    static func isLeap(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days from 1970-01-01 to the date on the proleptic Gregorian calendar (Howard Hinnant's
    /// days-from-civil algorithm), with no calendar object that might switch to Julian before 1582.
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
