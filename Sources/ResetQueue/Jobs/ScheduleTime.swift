public import CognitoClient
public import Foundation

/// Parses the times operators give for `--run-at` (and CSV `run_at` columns).
///
/// Accepted: `now`; RFC 3339 with an explicit offset (`2026-12-01T02:00:00Z`,
/// `2026-12-01T03:00:00+01:00`, fractional seconds allowed); or a delay from now: `+90s`, `+30m`,
/// `+2h`, `+1d`. A time without an offset is refused: it would mean different instants on
/// different hosts.
public enum ScheduleTime {
    public static let rule = "must be 'now', an RFC 3339 time with a zone (e.g. 2026-12-01T02:00:00Z) "
        + "or a delay such as +30m, +2h, +1d"

    public static func parse(_ text: String, field: String, now: Date) throws(InvalidInput) -> Date {
        let value = text.trimmingCharacters(in: .whitespaces)
        if value.lowercased() == "now" { return now }
        if value.hasPrefix("+") { return try parseDelay(String(value.dropFirst()), field: field, now: now) }
        for style in [
            Date.ISO8601FormatStyle(includingFractionalSeconds: false),
            Date.ISO8601FormatStyle(includingFractionalSeconds: true),
        ] {
            if let date = try? style.parse(value.uppercased()) { return date }
        }
        throw InvalidInput(field: field, rule: rule)
    }

    private static func parseDelay(_ text: String, field: String, now: Date) throws(InvalidInput) -> Date {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        // At most ten years ahead, whatever the unit.
        guard let unit = text.last.flatMap({ units[$0] }), let amount = Int(text.dropLast()),
            amount >= 0, Double(amount) * unit <= 3650 * 86_400
        else { throw InvalidInput(field: field, rule: rule) }
        return now.addingTimeInterval(Double(amount) * unit)
    }
}
