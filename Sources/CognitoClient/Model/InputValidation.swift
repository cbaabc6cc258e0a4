/// Why a value would be refused by Cognito's service model. Checked before any request is sent
/// (and before anything is enqueued), so bad input fails fast with the field and the rule.
public struct InvalidInput: Error, Sendable, Equatable, CustomStringConvertible {
    /// The field, as named on the command line or in the API (e.g. `UserPoolId`).
    public let field: String
    /// The rule that was broken, in words. Never contains the value itself (it may be secret).
    public let rule: String

    public init(field: String, rule: String) {
        self.field = field
        self.rule = rule
    }

    public var description: String { "\(field): \(rule)" }
}

/// A Cognito user pool id such as `eu-west-1_AbCdEf123`: the model's length 1–55 and pattern
/// `[\w-]+_[0-9a-zA-Z]+`, where the part before the last `_` is the pool's region.
public struct UserPoolID: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    public init(_ value: String) throws(InvalidInput) {
        let rule =
            "must look like REGION_ID (e.g. eu-west-1_AbC123): 1-55 characters, letters, digits, "
            + "'-' and '_', with an '_' followed by letters or digits"
        // Every allowed character is ASCII, so the bytes decide (this runs for every line of an
        // import and every call): a byte >= 0x80 fails the character test as its scalar would.
        func isAlphanumeric(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        let bytes = value.utf8
        guard (1...55).contains(bytes.count),
            let separator = bytes.lastIndex(of: UInt8(ascii: "_")),
            separator != bytes.startIndex,
            bytes[..<separator].allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }),
            case let suffix = bytes[bytes.index(after: separator)...],
            !suffix.isEmpty,
            suffix.allSatisfy(isAlphanumeric)
        else { throw InvalidInput(field: "UserPoolId", rule: rule) }
        self.rawValue = value
    }

    /// The region encoded in the id, e.g. `eu-west-1` for `eu-west-1_AbC123`.
    public var region: String { String(rawValue[..<rawValue.lastIndex(of: "_")!]) }

    public var description: String { rawValue }
}

/// A Cognito username: the model's length 1–128 and pattern `[\p{L}\p{M}\p{S}\p{N}\p{P}]+`
/// (letters, marks, symbols, numbers, punctuation: no spaces, separators or control characters).
public struct Username: Sendable, Hashable {
    public let rawValue: String

    public init(_ value: String) throws(InvalidInput) {
        guard (1...128).contains(value.utf16.count) else {  // the model counts UTF-16 units
            throw InvalidInput(field: "Username", rule: "must be 1-128 characters")
        }
        // Printable ASCII but the space is letters, digits, punctuation and symbols, all allowed:
        // the common case is decided on bytes, anything else by each scalar's general category.
        let allowed =
            value.utf8.allSatisfy({ (0x21...0x7E).contains($0) })
            || value.unicodeScalars.allSatisfy { scalar in
                switch scalar.properties.generalCategory {
                case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
                    .nonspacingMark, .spacingMark, .enclosingMark,
                    .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol,
                    .decimalNumber, .letterNumber, .otherNumber,
                    .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
                    .initialPunctuation, .finalPunctuation, .otherPunctuation:
                    true
                default:
                    false
                }
            }
        guard allowed else {
            throw InvalidInput(
                field: "Username",
                rule: "may hold only letters, marks, symbols, numbers and punctuation "
                    + "(no spaces or control characters)")
        }
        self.rawValue = value
    }
}

/// Cognito's `ClientMetadata`: string keys and values passed to the pool's Lambda triggers.
///
/// Its size is bounded: the keys and values together hold at most `maximumBytes` bytes of UTF-8
/// (the table's `jobs_client_metadata_size` says the same), so no job carries a request body
/// larger than Cognito would take and no import holds megabytes per line in memory.
public struct ClientMetadata: Sendable, Hashable {
    /// 256 KiB: far above what a Lambda trigger needs, far below what would strain a worker.
    public static let maximumBytes = 262_144
    public static let sizeRule = "keys and values together must be at most 262144 bytes (256 KiB) of UTF-8"

    public let values: [String: String]

    public init(_ values: [String: String]) throws(InvalidInput) {
        var bytes = 0
        for (key, value) in values {
            if key.isEmpty { throw InvalidInput(field: "ClientMetadata", rule: "keys must not be empty") }
            bytes += key.utf8.count + value.utf8.count
        }
        guard bytes <= Self.maximumBytes else { throw InvalidInput(field: "ClientMetadata", rule: Self.sizeRule) }
        self.values = values
    }
}
