/// Hides most of a username at info and above: enough for an operator to recognise a line,
/// not enough to collect the directory from the journal.
public enum UsernameMask {
    /// `alice@example.com` → `a***@example.com`; `bob` → `b***`.
    public static func mask(_ username: String) -> String {
        guard let first = username.first else { return "" }
        if let at = username.lastIndex(of: "@"), at != username.startIndex {
            return "\(first)***" + username[at...]
        }
        return "\(first)***"
    }
}
