import CognitoClient
import Crypto
import Foundation

/// An `InputStream` over a file descriptor for the CSV reader (`CSVRecordReader`), which reads
/// UTF-8. This stream replaces each invalid sequence with U+FFFD, so the reader carries on and
/// the importer rejects just the lines that hold one ("invalid UTF-8").
/// It also hashes the raw bytes (the import's SHA-256) and counts them (progress).
///
/// It refuses, before the reader sees them, what no CSV text file holds: a NUL byte (a binary
/// file, or UTF-16), or a record longer than `maximumRecordBytes`. The reader keeps a whole
/// record in memory, so without the bound a stream of zeros or one 50 MB field would grow it
/// without end. After a refusal (or a read error) every read fails; `failure` says why.
///
/// Blocking reads: use it on a thread of its own, never on Swift's cooperative pool.
final class ValidatingInputStream: InputStream {
    /// The most bytes one record may hold: 1 MiB. The largest valid line is about half that: a
    /// pool id (55 bytes), a username (128 UTF-16 units, at most 512 bytes of UTF-8), a `run_at`
    /// and client metadata of at most `ClientMetadata.maximumBytes` (256 KiB), which quoting can
    /// double (each `"` written `""`), plus the quotes and commas around the fields.
    static let maximumRecordBytes = 1 << 20

    private let descriptor: Int32
    private var hasher = SHA256()
    private var scanner: RecordScanner
    private var pending: [UInt8] = []  // an incomplete sequence at the end of the last read
    private var output: [UInt8] = []
    private var outputPosition = 0
    private var reachedEnd = false
    private var status: Stream.Status = .notOpen
    /// Why reading stopped before the end: the file refused (a NUL byte, a record too long) or
    /// a read error. Whatever the reader made of the bytes before it is not the file's content.
    private(set) var failure: ImportInputError?
    private(set) var bytesRead: Int64 = 0
    /// Called after each read with the bytes read so far.
    var onProgress: ((Int64) -> Void)?

    /// `maximumRecordBytes` is for tests; files get `Self.maximumRecordBytes`.
    init(descriptor: Int32, maximumRecordBytes: Int = ValidatingInputStream.maximumRecordBytes) {
        self.descriptor = descriptor
        self.scanner = RecordScanner(limit: maximumRecordBytes)
        super.init(data: Data())
    }

    /// The SHA-256 of every byte read, once the end was reached.
    func digest() -> String {
        hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    override func open() { status = .open }
    override func close() { status = .closed }
    override var streamStatus: Stream.Status { status }
    override var streamError: (any Error)? { failure }
    /// Reads ahead when needed, so it turns false exactly at the end (`InputStream`'s contract:
    /// "available, then nothing read" would mean an error to a reader that asks).
    override var hasBytesAvailable: Bool {
        while outputPosition >= output.count && !reachedEnd {
            guard fill() else { return true }  // let read() report the error
        }
        return outputPosition < output.count
    }

    override func read(_ buffer: UnsafeMutablePointer<UInt8>, maxLength: Int) -> Int {
        while outputPosition >= output.count {
            guard !reachedEnd else { return 0 }
            guard fill() else { return -1 }
        }
        let count = min(maxLength, output.count - outputPosition)
        output.withUnsafeBufferPointer { source in
            buffer.update(from: source.baseAddress! + outputPosition, count: count)
        }
        outputPosition += count
        return count
    }

    /// Reads the next chunk and validates it; false on a read error or a refused chunk, and from
    /// then on (a failed stream never reads again).
    private func fill() -> Bool {
        guard failure == nil else { return false }
        var chunk = [UInt8](repeating: 0, count: 256 * 1024)
        var count: Int
        repeat {
            count = chunk.withUnsafeMutableBytes { Foundation.read(descriptor, $0.baseAddress, $0.count) }
        } while count < 0 && errno == EINTR
        guard count >= 0 else {
            fail(ImportInputError("cannot read the file: \(String(cString: strerror(errno)))"))
            return false
        }
        chunk.removeSubrange(count...)
        bytesRead += Int64(count)
        hasher.update(data: chunk)
        onProgress?(bytesRead)
        // Checked before the reader sees any of it, so it never holds more than one chunk
        // beyond the bound.
        if let refusal = chunk.withUnsafeBufferPointer({ scanner.scan($0) }) {
            fail(refusal)
            return false
        }
        if count == 0 { reachedEnd = true }
        output = Self.repairUTF8(pending + chunk, atEnd: reachedEnd, leftover: &pending)
        outputPosition = 0
        return true
    }

    private func fail(_ error: ImportInputError) {
        failure = error
        status = .error
        output = []
        outputPosition = 0
    }

    static let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]

    /// `bytes` with every invalid UTF-8 sequence replaced by U+FFFD. An incomplete sequence at
    /// the end is kept in `leftover` for the next chunk (replaced if this is the end).
    static func repairUTF8(_ bytes: [UInt8], atEnd: Bool, leftover: inout [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        leftover = []
        var index = 0
        while index < bytes.count {
            let lead = bytes[index]
            if lead < 0x80 {
                out.append(lead)
                index += 1
                continue
            }
            let length: Int
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0...0xEF: length = 3
            case 0xF0...0xF4: length = 4
            default:
                out += replacement
                index += 1
                continue
            }
            if index + length > bytes.count {
                // Possibly cut by the chunk boundary: decide with the next chunk.
                let tail = Array(bytes[index...])
                if !atEnd, isValidPrefix(tail) {
                    leftover = tail
                    return out
                }
            }
            let end = min(index + length, bytes.count)
            if end - index == length, isValidSequence(bytes[index..<end]) {
                out.append(contentsOf: bytes[index..<end])
                index = end
            } else {
                out += replacement
                index += 1
            }
        }
        return out
    }

    /// A complete, shortest-form, non-surrogate sequence (the rules of `Unicode.UTF8`).
    static func isValidSequence(_ sequence: ArraySlice<UInt8>) -> Bool {
        String(validating: sequence, as: UTF8.self) != nil
    }

    /// Could `bytes` (shorter than its lead byte announces) begin a valid sequence?
    static func isValidPrefix(_ bytes: [UInt8]) -> Bool {
        guard let lead = bytes.first else { return false }
        let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2
        // Complete it with the smallest continuation that can follow and check that.
        var candidate = bytes
        let minimumSecond: UInt8 = lead == 0xE0 ? 0xA0 : lead == 0xF0 ? 0x90 : 0x80
        while candidate.count < length { candidate.append(candidate.count == 1 ? minimumSecond : 0x80) }
        return bytes.dropFirst().allSatisfy { $0 & 0xC0 == 0x80 } && isValidSequence(candidate[...])
    }
}

/// Follows the raw bytes of a CSV file the way `CSVRecordReader` reads them (a field is quoted when it
/// starts with `"`; in it `""` is a quote and line breaks belong to the field; CR, LF or CRLF
/// outside quotes ends the record) to know where each record starts and how long it is, and
/// counts physical lines as the importer numbers them (CR, LF and CRLF each end one).
struct RecordScanner {
    private enum State {
        case fieldStart, unquoted, quoted, quoteInQuoted
    }

    let limit: Int
    private var state = State.fieldStart
    /// The physical line of the next byte.
    private(set) var line = 1
    /// The physical line the current record starts on.
    private(set) var recordLine = 1
    private var recordBytes = 0
    private var previousCR = false

    init(limit: Int) { self.limit = limit }

    /// Scans the next bytes of the file; the reason to refuse it, or nil.
    mutating func scan(_ bytes: UnsafeBufferPointer<UInt8>) -> ImportInputError? {
        let quote = UInt8(ascii: "\"")
        let comma = UInt8(ascii: ",")
        let cr = UInt8(ascii: "\r")
        let lf = UInt8(ascii: "\n")
        for byte in bytes {
            if byte == 0 {
                // PostgreSQL's text and jsonb cannot hold U+0000 either.
                return ImportInputError(line: line, "holds a NUL byte: a binary file (or UTF-16), not CSV text; nothing imported")
            }
            let isBreak = byte == cr || byte == lf
            var endsRecord = false
            switch state {
            case .fieldStart:
                if byte == quote { state = .quoted } else if isBreak { endsRecord = true } else if byte != comma { state = .unquoted }
            case .unquoted:
                if byte == comma { state = .fieldStart } else if isBreak { endsRecord = true }
            case .quoted:
                if byte == quote { state = .quoteInQuoted }
            case .quoteInQuoted:
                // `""` is a quote; after a closing quote the reader reads on as quoted text.
                if byte == comma { state = .fieldStart } else if isBreak { endsRecord = true } else { state = .quoted }
            }
            if isBreak && !(byte == lf && previousCR) { line += 1 }
            previousCR = byte == cr
            if endsRecord {
                // The LF of a CRLF ends an empty "record" of its own here: harmless, it holds nothing.
                state = .fieldStart
                recordBytes = 0
                recordLine = line
                continue
            }
            recordBytes += 1
            if recordBytes > limit {
                return ImportInputError(
                    line: recordLine,
                    "longer than \(limit) bytes, more than any valid line holds (client metadata is at most "
                        + "\(ClientMetadata.maximumBytes) bytes); nothing imported")
            }
        }
        return nil
    }
}
