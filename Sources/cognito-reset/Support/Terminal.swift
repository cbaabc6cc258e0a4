import CognitoClient
import Foundation

/// Everything the command line prints goes through here, so no value from outside (a username,
/// a rate key, a Cognito error message, a line of a file) reaches a terminal with a control
/// character in it: text is escaped by `SafeText`, line by line; JSON keeps its syntax and has
/// the characters JSON leaves raw (DEL, C1 controls, bidirectional overrides) written as `\u` escapes.
enum Terminal {
    /// Prints `text` on standard output; its own line breaks and tabs are kept, every other
    /// control character is shown escaped.
    static func say(_ text: String) {
        print(escapedLines(text))
    }

    /// `text` with each line escaped, its line breaks and tabs (table columns) kept.
    static func escapedLines(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.split(separator: "\t", omittingEmptySubsequences: false).map { SafeText.escaped(String($0)) }
                .joined(separator: "\t")
        }.joined(separator: "\n")
    }

    /// Prints a JSON document (one line) on standard output.
    static func json(_ data: Data) {
        print(SafeText.jsonEscaped(String(decoding: data, as: UTF8.self)))
    }
}
