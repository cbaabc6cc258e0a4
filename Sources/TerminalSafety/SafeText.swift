/// Text from outside (a CSV file, a row another system inserted, a server's error message) made
/// safe to show on a terminal or in a one-line message: the one place that decides which
/// characters could move the cursor, recolour or clear the screen, reorder what follows, or break
/// a line, and shows them escaped instead.
public enum SafeText {
    /// `text` with every control character shown escaped: C0 controls (`\t`, `\n`, `\r` as such,
    /// the rest as `\xNN`, ESC as `\x1b`), DEL and the C1 controls (U+0080–U+009F, some terminals
    /// read U+009B as an escape sequence), and the bidirectional overrides and isolates that can
    /// make a line read differently from what it holds (U+202E and friends), as `\u{XXXX}`.
    /// Everything else, letters of any script included, is kept.
    public static func escaped(_ text: String) -> String {
        // The common case (nothing to escape) needs no copy.
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x09: result += "\\t"
            case 0x0A: result += "\\n"
            case 0x0D: result += "\\r"
            case 0x00...0x1F, 0x7F: result += "\\x" + hex(scalar.value, width: 2)
            case 0x80...0x9F, 0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069:
                result += "\\u{" + hex(scalar.value, width: 4) + "}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// At most `limit` characters of `bytes` as escaped text, for quoting a piece of a file in a
    /// message: bytes that are not UTF-8 show as `\u{FFFD}`, and a longer input ends in `…`. Never
    /// more than a short excerpt, whatever the file holds.
    public static func excerpt(_ bytes: some Collection<UInt8>, limit: Int = 40) -> String {
        var result = ""
        var shown = 0
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        decoding: while shown < limit {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                result += escaped(String(scalar))
                shown += 1
            case .error:
                result += "\\u{FFFD}"
                shown += 1
            case .emptyInput:
                break decoding
            }
        }
        if shown == limit, decoder.decode(&iterator).isEmptyInput == false { result += "…" }
        return result
    }

    /// A JSON text with every character `escaped` would escape written as `\uXXXX`: JSON encoders
    /// escape U+0000–U+001F only, and DEL, the C1 controls and the bidirectional overrides are
    /// legal in a JSON string but not harmless on a terminal. Still the same JSON value. Only for
    /// JSON text: these characters can occur only inside its strings.
    public static func jsonEscaped(_ json: String) -> String {
        guard json.unicodeScalars.contains(where: isControl) else { return json }
        var result = ""
        result.reserveCapacity(json.utf8.count)
        for scalar in json.unicodeScalars {
            if isControl(scalar) {
                result += "\\u" + hex(scalar.value, width: 4)
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// The characters `escaped` shows escaped.
    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    private static func hex(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

extension UnicodeDecodingResult {
    fileprivate var isEmptyInput: Bool {
        if case .emptyInput = self { return true }
        return false
    }
}
