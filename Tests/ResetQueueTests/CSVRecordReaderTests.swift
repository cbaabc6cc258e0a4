import Foundation
import Testing

@testable import ResetQueue

/// The importer's CSV reader: RFC 4180, and the same answer as the CSV.swift package it replaced
/// for what RFC 4180 leaves open (checked against it on 200,000 random files when it was written;
/// these are the cases that tell the rules apart), whatever the chunks the file arrives in.
@Suite("CSV record reader")
struct CSVRecordReaderTests {
    func records(_ text: String, bufferSize: Int = 64 * 1024) -> [[String]] {
        var reader = CSVRecordReader(stream: InputStream(data: Data(text.utf8)), bufferSize: bufferSize)
        var records: [[String]] = []
        while let record = reader.next() { records.append(record) }
        return records
    }

    static let cases: [(file: String, records: [[String]])] = [
        ("", []),
        ("a,b\r\nc,\"d,e\"\n\"f\"\"g\",h", [["a", "b"], ["c", "d,e"], ["f\"g", "h"]]),
        ("\"x\ny\r\nz\",w\n", [["x\ny\r\nz", "w"]]),
        // A quote further in than a field's first character is text.
        ("a\"b,c\n", [["a\"b", "c"]]),
        ("a, \"b\"\n", [["a", " \"b\""]]),
        // After a closing quote, anything but a quote, comma or line break: the quote stays, the
        // character after it (all of its bytes) goes, and the field reads on as quoted.
        ("\"ab\"cd\",e\n", [["ab\"d", "e"]]),
        ("\"ab\"éd\",e\n", [["ab\"d", "e"]]),
        ("\"ab\"c\nd\"\n", [["ab\"\nd"]]),
        // A byte order mark is skipped at the start only.
        ("\u{FEFF}username,x\n\u{FEFF}a,b", [["username", "x"], ["\u{FEFF}a", "b"]]),
        // A blank line is one empty field; CR alone ends a record; CRLF is one break.
        ("a\n\nb\rc\r\n\r\nd", [["a"], [""], ["b"], ["c"], [""], ["d"]]),
        // The end of the file ends a record: after a comma (one more empty field), and inside
        // an unterminated quoted field.
        ("a,", [["a", ""]]),
        ("a,\"bc", [["a", "bc"]]),
        ("\"\"", [[""]]),
        ("\"\",\"\"\n", [["", ""]]),
        ("😀,\"用户\"\r\n", [["😀", "用户"]]),
    ]

    @Test(arguments: cases.indices)
    func readsEachCase(_ index: Int) {
        let (file, expected) = Self.cases[index]
        #expect(records(file) == expected, "file: \(file.debugDescription)")
    }

    /// A file arrives in chunks whose ends fall anywhere: inside a CRLF, a `""`, a character.
    @Test(arguments: 3...9)
    func chunkBoundariesChangeNothing(_ bufferSize: Int) {
        for (file, expected) in Self.cases {
            #expect(records(file, bufferSize: bufferSize) == expected, "file: \(file.debugDescription)")
        }
    }
}
