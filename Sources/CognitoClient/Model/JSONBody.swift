/// Writes the small JSON objects Cognito takes, keys in the service model's member order,
/// compact and in raw UTF-8 — byte for byte what botocore sends.
struct JSONBody {
    enum Value {
        case string(String)
        case stringMap([String: String])
    }

    private(set) var members: [(String, Value)] = []

    mutating func add(_ name: String, _ value: String?) {
        if let value { members.append((name, .string(value))) }
    }

    mutating func add(_ name: String, _ map: [String: String]?) {
        if let map { members.append((name, .stringMap(map))) }
    }

    var bytes: [UInt8] {
        var text = "{"
        for (index, (name, value)) in members.enumerated() {
            if index > 0 { text += "," }
            text += Self.quoted(name) + ":"
            switch value {
            case .string(let string):
                text += Self.quoted(string)
            case .stringMap(let map):
                text +=
                    "{"
                    + map.keys.sorted().map { Self.quoted($0) + ":" + Self.quoted(map[$0]!) }
                    .joined(separator: ",") + "}"
            }
        }
        return Array((text + "}").utf8)
    }

    /// A JSON string: quotes, backslashes and control characters escaped, all else verbatim.
    static func quoted(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
