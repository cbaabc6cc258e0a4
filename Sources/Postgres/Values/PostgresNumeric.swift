/// Decoding of PostgreSQL's binary `numeric`: base-10000 digit groups with a weight, a sign and a
/// display scale. `sum(bigint)` and `extract(...)` return numeric, so even simple queries meet it.
enum PostgresNumeric {
    private static let positive: UInt16 = 0x0000
    private static let negative: UInt16 = 0x4000
    private static let notANumber: UInt16 = 0xC000
    private static let plusInfinity: UInt16 = 0xD000
    private static let minusInfinity: UInt16 = 0xF000

    /// The exact decimal text of the value, e.g. `-12.50` for scale 2.
    static func text(_ cell: PostgresCell) throws -> String {
        let bytes = Array(cell.bytes)
        func int16(at offset: Int) throws -> Int16 {
            guard offset + 2 <= bytes.count else {
                throw PostgresError(code: .decoding, message: "column \(cell.column.name): truncated numeric")
            }
            return Int16(bitPattern: UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]))
        }
        let count = Int(try int16(at: 0))
        let weight = Int(try int16(at: 2))
        let sign = UInt16(bitPattern: try int16(at: 4))
        let scale = Int(try int16(at: 6))
        switch sign {
        case notANumber: return "NaN"
        case plusInfinity: return "Infinity"
        case minusInfinity: return "-Infinity"
        case positive, negative: break
        default: throw PostgresError(code: .decoding, message: "column \(cell.column.name): bad numeric sign")
        }
        guard count >= 0, scale >= 0, bytes.count == 8 + 2 * count else {
            throw PostgresError(code: .decoding, message: "column \(cell.column.name): malformed numeric")
        }
        let digits = try (0..<count).map { Int(try int16(at: 8 + 2 * $0)) }
        guard digits.allSatisfy({ (0...9999).contains($0) }) else {
            throw PostgresError(code: .decoding, message: "column \(cell.column.name): malformed numeric")
        }
        func group(_ index: Int) -> Int { index >= 0 && index < digits.count ? digits[index] : 0 }
        func padded(_ value: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: 4 - text.count) + text
        }

        // Group i stands for digits[i] * 10000^(weight - i).
        var integer = weight < 0 ? "0" : String(group(0))
        if weight >= 1 {
            for index in 1...weight { integer += padded(group(index)) }
        }
        var fraction = ""
        var index = weight + 1
        while fraction.count < scale {
            fraction += padded(group(index))
            index += 1
        }
        fraction = String(fraction.prefix(scale))
        let magnitude = fraction.isEmpty ? integer : "\(integer).\(fraction)"
        let isZero = digits.allSatisfy { $0 == 0 }
        return sign == negative && !isZero ? "-\(magnitude)" : magnitude
    }
}
