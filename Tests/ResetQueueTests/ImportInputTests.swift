import CognitoClient
import Foundation
import Testing

@testable import ResetQueue

/// What the importer reads from a file before anything reaches the database: a NUL byte or a
/// record beyond the bound refuses the file while reading (memory stays flat), line numbers
/// name physical lines, and messages quote the file only short and escaped.
@Suite("Import input")
struct ImportInputTests {
    /// What parsing a file gave: its lines, or why it was refused, and how much of it was read.
    struct Parsed {
        var rows: [StagedRow] = []
        var refusal: ImportInputError?
        var bytesRead: Int64 = 0
    }

    /// Parses `bytes` the way the importer reads a file: from a descriptor, through
    /// `ValidatingInputStream`.
    func parse(
        _ bytes: [UInt8], pool: String? = "eu-west-1_Unit1",
        maximumRecordBytes: Int = ValidatingInputStream.maximumRecordBytes
    ) throws -> Parsed {
        let url = FileManager.default.temporaryDirectory.appending(path: "import-input-\(UUID().uuidString).csv")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let descriptor = open(url.path, O_RDONLY | O_CLOEXEC)
        try #require(descriptor >= 0)
        defer { close(descriptor) }
        let stream = ValidatingInputStream(descriptor: descriptor, maximumRecordBytes: maximumRecordBytes)
        var parsed = Parsed()
        do {
            let parser = try CSVImportParser(stream: stream, settings: ImportSettings(pool: try pool.map { try UserPoolID($0) }))
            while let row = try parser.next() { parsed.rows.append(row) }
        } catch let error as ImportInputError {
            parsed.refusal = error
        }
        parsed.bytesRead = stream.bytesRead
        return parsed
    }

    /// No control character (C0, DEL, C1) anywhere in `text`.
    func isPrintable(_ text: String) -> Bool {
        !text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
    }

    @Test func aNulByteRefusesTheFileNamingItsLine() throws {
        let inRow = try parse(Array("username\nalice\nbo\u{0}b\ncarol\n".utf8))
        #expect(inRow.rows.isEmpty)
        let refusal = try #require(inRow.refusal)
        #expect(refusal.line == 3)
        #expect(refusal.description.hasPrefix("line 3: holds a NUL byte"), "\(refusal)")
        // In the header: refused before the header is read as columns.
        #expect(try parse([0x7F, 0x45, 0x4C, 0x46, 0x02, 0x01, 0x01, 0x00, 0xFF]).refusal?.line == 1)
        // Client metadata, where it once cost just its line: the file is refused all the same.
        #expect(try parse(Array("username,client_metadata.note\nok1,fine\nbad1,a\u{0}b\n".utf8)).refusal?.line == 3)
    }

    /// The reader held a line until its end: a stream of zeros has none, and grew it forever.
    @Test func aStreamOfZerosIsRefusedAtItsFirstChunk() throws {
        let parsed = try parse([UInt8](repeating: 0, count: 8 << 20))
        #expect(parsed.refusal?.line == 1)
        #expect(parsed.bytesRead <= 256 * 1024, "read \(parsed.bytesRead) bytes of zeros")
    }

    @Test func aRecordBeyondTheBoundIsRefusedWhileReadingNamingItsFirstLine() throws {
        let bound = ValidatingInputStream.maximumRecordBytes
        // A quoted field whose line breaks make the record start on line 3 and span many lines,
        // in a file far larger than the bound.
        var bytes = Array("username,client_metadata.k\nalice,x\nbob,\"".utf8)
        bytes += Array(repeating: Array("0123456789abcdef012345678\n".utf8), count: 800_000).joined()
        bytes += Array("\"\n".utf8)
        let quoted = try parse(bytes)
        let refusal = try #require(quoted.refusal)
        #expect(refusal.line == 3)
        #expect(refusal.description.contains("longer than \(bound) bytes"), "\(refusal)")
        #expect(refusal.description.contains("client metadata"), "\(refusal)")
        #expect(quoted.rows.map(\.line) == [2], "the lines before it, never a piece of it")
        // Reading stopped within a chunk of the bound, not at the end of the 20 MB file.
        #expect(quoted.bytesRead < Int64(bound + 512 * 1024), "read \(quoted.bytesRead) bytes")

        let unquoted = try parse(Array("username\n".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 3 * bound) + [0x0A])
        #expect(unquoted.refusal?.line == 2)
    }

    /// The bound is the largest line that can be valid: client metadata at its limit (every
    /// character a quote, so doubled on disk), the longest username and pool id and a run_at.
    @Test func theBoundLeavesRoomForTheLargestValidLine() throws {
        let pool = "eu-west-1_" + String(repeating: "A", count: 45)
        let username = String(repeating: "€", count: 128)  // 128 UTF-16 units, 384 bytes
        let key = "k"
        func line(metadataBytes: Int) -> [UInt8] {
            let value = String(repeating: "\"", count: metadataBytes - key.utf8.count)
            let quoted = "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            return Array("username,user_pool_id,run_at,client_metadata.\(key)\r\n\(username),\(pool),2030-01-01T00:00:00.123456789+01:00,\(quoted)\r\n".utf8)
        }
        let largest = try parse(line(metadataBytes: ClientMetadata.maximumBytes), pool: nil)
        #expect(largest.refusal == nil, "\(String(describing: largest.refusal))")
        let row = try #require(largest.rows.first)
        #expect(row.reason == nil, "\(row.reason ?? "")")
        #expect(row.username == username && row.pool == pool)
        let metadata = try #require(JSONSerialization.jsonObject(with: Data((row.metadataJSON ?? "").utf8)) as? [String: String])
        #expect(metadata[key]?.count == ClientMetadata.maximumBytes - 1)

        // One byte more: that line is rejected for its metadata, like any other invalid line.
        let over = try parse(line(metadataBytes: ClientMetadata.maximumBytes + 1), pool: nil)
        #expect(over.refusal == nil)
        #expect(over.rows.first?.reason == "client_metadata: \(ClientMetadata.sizeRule)")
    }

    /// A quote inside an unquoted field is text to the reader, not the start of a quoted field:
    /// the bound must not count the rest of the file as one record.
    @Test func theBoundFollowsTheReadersQuoting() throws {
        var csv = "username,client_metadata.k\nal\"ice,x\n\"bob\"\"\",\"a\"\"b\nc\"\n"
        csv += (1...200).map { "user\($0),note" }.joined(separator: "\n") + "\n"
        let parsed = try parse(Array(csv.utf8), maximumRecordBytes: 100)
        #expect(parsed.refusal == nil, "\(String(describing: parsed.refusal))")
        #expect(parsed.rows.count == 202)
        #expect(parsed.rows.map(\.line).prefix(3) == [2, 3, 5])
        #expect(parsed.rows[1].username == "bob\"")
    }

    /// CR, LF and CRLF each end a physical line, inside quoted fields too; a NUL is named by
    /// the line it is on.
    @Test func lineNumbersArePhysicalLines() throws {
        let csv = "username\r\n\"a\r\nb\"\rc\nd\r\n\u{0}"
        let parsed = try parse(Array(csv.utf8))
        #expect(parsed.refusal?.line == 6)
        let good = try parse(Array("username\r\n\"a\r\nb\"\rc\nd\r\n".utf8))
        #expect(good.rows.map(\.line) == [2, 4, 5])
    }

    /// A file may be anything (/proc/self/environ, a terminal escape sequence): its messages
    /// quote a short excerpt at most, every control character escaped.
    @Test func headerMessagesQuoteTheFileShortAndEscaped() throws {
        let escape = try #require(try parse(Array("username,\u{1B}[31mred\u{7}\u{9B}2J\n".utf8)).refusal)
        #expect(isPrintable(escape.description), "\(escape)")
        // Text that is not column names is described, not shown (it may be any file's secret).
        #expect(escape.description.contains("unknown column 12 characters that are not column names, not shown"), "\(escape)")
        let unknown = try #require(try parse(Array("username,Who\n".utf8)).refusal)
        #expect(unknown.description.hasPrefix("header: unknown column who;"), "\(unknown)")
        let shadow = try #require(try parse(Array("root:$y$j9T$abcdefghijklmnopqrstuv:19000:0:99999:7:::\n".utf8)).refusal)
        #expect(!shadow.description.contains("abcdef"), "\(shadow)")

        let long = try #require(try parse(Array(("username,\u{1B}" + String(repeating: "z", count: 10_000) + "\n").utf8)).refusal)
        #expect(isPrintable(long.description))
        #expect(long.description.count < 200, "\(long.description.count) characters")

        let twice = try #require(try parse(Array("username,client_metadata.\u{1B}x,client_metadata.\u{1B}X\n".utf8)).refusal)
        #expect(twice.description == "header: column 18 characters that are not column names, not shown appears twice")

        let missing = try #require(try parse(Array("user_pool_id,run_at\n".utf8)).refusal)
        #expect(missing.description.hasPrefix("header: no username column"))

        // Random bytes without a NUL: refused for the header, and the message still printable.
        var generator = SplitMix64(seed: 16)
        for _ in 0..<20 {
            let bytes = (0..<4096).map { _ in UInt8(truncatingIfNeeded: generator.next() % 255 + 1) }
            let parsed = try parse(bytes)
            let refusal = try #require(parsed.refusal)
            #expect(isPrintable(refusal.description), "\(refusal)")
            #expect(refusal.description.count < 200)
        }
    }

    /// Rejection reasons are printed and kept in import_rejections: never a control character.
    @Test func rejectionReasonsHoldNoControlCharacters() throws {
        let csv = "username,run_at,client_metadata.k\n\u{1B}[2J,,\nok,\u{1B}[2J,\nok2,,\u{1B}\u{85}\nbad\u{202E},,\n"
        let parsed = try parse(Array(csv.utf8))
        #expect(parsed.refusal == nil)
        let reasons = parsed.rows.compactMap(\.reason)
        #expect(reasons.count == 3, "\(reasons)")
        #expect(reasons.allSatisfy(isPrintable), "\(reasons)")
    }
}

/// A small deterministic random source (SplitMix64), so a failing input can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
