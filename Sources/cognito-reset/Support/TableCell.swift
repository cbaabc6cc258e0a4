import Foundation

/// Text from outside (usernames from a CSV import) printed in tab-separated tables, which people
/// paste into spreadsheets: a value that starts like a formula (`=`, `+`, `-`, `@`) is shown with
/// a leading `'` so no spreadsheet runs it (OWASP's CSV-injection advice), and tabs and line
/// breaks are shown escaped so every row stays one line. JSON output keeps values verbatim.
enum TableCell {
    static func safe(_ value: String) -> String {
        var text = value.replacingOccurrences(of: "\t", with: "\\t")
            .replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
        if let first = text.first, "=+-@".contains(first) { text = "'" + text }
        return text
    }
}
