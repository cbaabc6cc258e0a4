// Prints the characters Cognito refuses in a username, as a PostgreSQL regular expression
// bracket expression for cognito_reset.username_characters_allowed, the function behind the
// `jobs_username_characters` check (migrations/0005_hostile_input.sql).
//
// Cognito's pattern is [\p{L}\p{M}\p{S}\p{N}\p{P}]+ and PostgreSQL's regular expressions have no
// \p{..}: this enumerates every Unicode scalar with the Swift standard library's general
// categories, the same data `Username` in CognitoClient checks with, and prints the scalars
// outside those categories as merged ranges. U+0000 and the surrogates are left out: PostgreSQL
// text can hold neither.
//
// Run it (from the repository root; a few seconds):
//
//     swiftc -O scripts/gen-username-class.swift -o /tmp/gen-username-class
//     /tmp/gen-username-class            # the SQL literal E'[...]', as the function holds it
//     /tmp/gen-username-class --scalars  # each refused code point in decimal, one per line
//     /tmp/gen-username-class --summary  # Unicode version, count of refused scalars, ranges
//
// The literal is an E'' string (backslashes doubled) so that it means the same whatever a
// database's standard_conforming_strings says. When Unicode adds characters, regenerate it with
// a newer Swift (the one the binaries are built with) and replace the function in a new migration.

func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
        .nonspacingMark, .spacingMark, .enclosingMark,
        .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol,
        .decimalNumber, .letterNumber, .otherNumber,
        .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
        .initialPunctuation, .finalPunctuation, .otherPunctuation:
        return true
    default:
        return false
    }
}

/// The refused scalars from U+0001 up, as closed ranges of code points.
func refusedRanges() -> [ClosedRange<UInt32>] {
    var ranges: [ClosedRange<UInt32>] = []
    var start: UInt32?
    for value in UInt32(1)...0x10FFFF {
        // Unicode.Scalar(_:) is nil exactly for the surrogates: they end a range like an allowed scalar.
        let refused = Unicode.Scalar(value).map { !isAllowed($0) } ?? false
        if refused {
            if start == nil { start = value }
        } else if let first = start {
            ranges.append(first...(value - 1))
            start = nil
        }
    }
    if let first = start { ranges.append(first...0x10FFFF) }
    return ranges
}

/// `\\uXXXX` or `\\UXXXXXXXX` (the backslash doubled for an E'' literal).
func escaped(_ value: UInt32) -> String {
    let hex = String(value, radix: 16, uppercase: true)
    return value <= 0xFFFF
        ? "\\\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        : "\\\\U" + String(repeating: "0", count: 8 - hex.count) + hex
}

let ranges = refusedRanges()
switch CommandLine.arguments.dropFirst().first {
case "--scalars":
    for range in ranges {
        for value in range { print(value) }
    }
case "--summary":
    let count = ranges.reduce(0) { $0 + $1.count }
    // The newest Unicode version any scalar was assigned in: the data this Swift carries.
    let newest = (UInt32(0)...0x10FFFF).compactMap { Unicode.Scalar($0)?.properties.age }
        .max { ($0.major, $0.minor) < ($1.major, $1.minor) }
    print("Unicode \(newest.map { "\($0.major).\($0.minor)" } ?? "?"): \(count) refused scalars in \(ranges.count) ranges")
case nil:
    // One item per range, in lines of at most 100 characters indented by 8: string constants
    // separated by a newline are one constant to PostgreSQL, and the continuation keeps the E''
    // escape rules.
    let items = ["["] + ranges.map { range in
        range.count == 1 ? escaped(range.lowerBound)
            : range.count == 2 ? escaped(range.lowerBound) + escaped(range.upperBound)
            : escaped(range.lowerBound) + "-" + escaped(range.upperBound)
    } + ["]"]
    var lines: [String] = []
    var line = ""
    for item in items {
        if line.count + item.count > 100 - 8 - 3 {
            lines.append(line)
            line = ""
        }
        line += item
    }
    lines.append(line)
    print("        E'" + lines[0] + "'")
    for line in lines.dropFirst() { print("        '" + line + "'") }
case let other?:
    print("unknown argument \(other); use --scalars, --summary or nothing")
}
