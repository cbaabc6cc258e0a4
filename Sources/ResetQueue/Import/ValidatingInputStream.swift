import Crypto
import Foundation

/// An `InputStream` over a file descriptor for the CSV reader, which stops at the first byte
/// that is not UTF-8. This stream replaces each invalid sequence with U+FFFD instead, so the
/// reader carries on and the importer rejects just the lines that hold one ("invalid UTF-8").
/// It also hashes the raw bytes (the import's SHA-256) and counts them (progress).
///
/// Blocking reads: use it on a thread of its own, never on Swift's cooperative pool.
final class ValidatingInputStream: InputStream {
    private let descriptor: Int32
    private var hasher = SHA256()
    private var pending: [UInt8] = []  // an incomplete sequence at the end of the last read
    private var output: [UInt8] = []
    private var outputPosition = 0
    private var reachedEnd = false
    private var status: Stream.Status = .notOpen
    private var failure: (any Error)?
    private(set) var bytesRead: Int64 = 0
    /// Called after each read with the bytes read so far.
    var onProgress: ((Int64) -> Void)?

    init(descriptor: Int32) {
        self.descriptor = descriptor
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
    /// Reads ahead when needed: the CSV reader treats "available, then nothing read" as an error,
    /// so this must turn false exactly at the end.
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

    /// Reads the next chunk and validates it; false on a read error.
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 256 * 1024)
        var count: Int
        repeat {
            count = chunk.withUnsafeMutableBytes { Foundation.read(descriptor, $0.baseAddress, $0.count) }
        } while count < 0 && errno == EINTR
        guard count >= 0 else {
            failure = POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            status = .error
            return false
        }
        chunk.removeSubrange(count...)
        bytesRead += Int64(count)
        hasher.update(data: chunk)
        onProgress?(bytesRead)
        if count == 0 { reachedEnd = true }
        output = Self.repairUTF8(pending + chunk, atEnd: reachedEnd, leftover: &pending)
        outputPosition = 0
        return true
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
