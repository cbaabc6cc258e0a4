import TerminalSafety
import Testing

@Suite("Terminal-safe text")
struct SafeTextTests {
    @Test func controlCharactersAreShownEscaped() {
        #expect(SafeText.escaped("a\u{1B}[31mb") == "a\\x1b[31mb")
        #expect(SafeText.escaped("tab\there\nnext\r") == "tab\\there\\nnext\\r")
        #expect(SafeText.escaped("\u{0}\u{7F}\u{9B}") == "\\x00\\x7f\\u{009b}")
        #expect(SafeText.escaped("abc\u{202E}fed") == "abc\\u{202e}fed")
    }

    @Test func printableTextOfAnyScriptIsKept() {
        for text in ["plain", "ünïcødé", "用户", "😀 emoji", "a+b@example.com", "back\\slash"] {
            #expect(SafeText.escaped(text) == text)
        }
    }

    @Test func anExcerptIsShortEscapedAndMarkedWhenCut() {
        let bytes: [UInt8] = Array("PATH=/bin\u{0}HOME=/root\u{0}".utf8) + Array(repeating: 0x41, count: 200)
        let excerpt = SafeText.excerpt(bytes, limit: 20)
        #expect(excerpt == "PATH=/bin\\x00HOME=/root…")
        #expect(!excerpt.unicodeScalars.contains { $0.value < 0x20 })
        #expect(SafeText.excerpt([0xFF, 0x41], limit: 20) == "\\u{FFFD}A")
        #expect(SafeText.excerpt(Array("short".utf8)) == "short")
    }

    @Test func jsonKeepsItsSyntaxAndEscapesWhatEncodersLeaveRaw() {
        #expect(SafeText.jsonEscaped(#"{"k":"a\#u{9B}b\#u{7F}"}"#) == #"{"k":"a\u009bb\u007f"}"#)
        #expect(SafeText.jsonEscaped(#"{"k":"fine"}"#) == #"{"k":"fine"}"#)
    }
}
