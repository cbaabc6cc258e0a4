public import CognitoClient
public import Foundation

/// What applies to every line of an import unless a column says otherwise.
public struct ImportSettings: Sendable {
    public var pool: UserPoolID?
    public var runAt: Date?
    public var priority: Int
    public var maxAttempts: Int
    public var requestedBy: String?
    /// The import's own ceiling (requests/s), below the fleet's: a bulk import never takes the
    /// whole quota. nil: only the fleet's bucket applies.
    public var rate: Double?
    /// "now" for `run_at` values such as `+2h`.
    public var now: Date

    public init(
        pool: UserPoolID? = nil, runAt: Date? = nil, priority: Int = ResetRequest.defaultPriority,
        maxAttempts: Int = ResetRequest.defaultMaxAttempts, requestedBy: String? = nil, rate: Double? = nil,
        now: Date = Date()
    ) {
        self.rate = rate
        self.pool = pool
        self.runAt = runAt
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.requestedBy = requestedBy
        self.now = now
    }
}

/// A file the importer refuses as a whole (nothing is imported): one line for the operator.
///
/// It is printed on terminals and filed in the inbox's reports, so it quotes at most a short
/// excerpt of the file, and every control character in it is shown escaped (`SafeText`).
public struct ImportInputError: Error, Sendable, CustomStringConvertible {
    /// The physical line of the file at fault, when one is.
    public let line: Int?
    /// What is wrong, escaped.
    public let reason: String

    init(line: Int? = nil, _ reason: String) {
        self.line = line
        self.reason = SafeText.escaped(reason)
    }

    public var description: String { line.map { "line \($0): \(reason)" } ?? reason }

    static let empty = ImportInputError("the file is empty: expected a header line such as username,user_pool_id")
}

/// One data line, ready for the staging table: accepted (pool, username...) or rejected (reason).
struct StagedRow: Sendable {
    var line: Int
    var pool: String?
    var username: String?
    var metadataJSON: String?
    var runAt: Date?
    var reason: String?
}

/// Reads a CSV file (RFC 4180 through `CSVRecordReader`: quotes, embedded commas and newlines,
/// CRLF, a UTF-8 BOM) line by line and checks every field, so nothing the database or Cognito would
/// refuse reaches the staging table.
///
/// Columns by header, case-insensitive: `username` (required), `user_pool_id` (required unless
/// a pool is given), `run_at`, and `client_metadata.KEY`. Line numbers are physical lines of the
/// file, counting the header and the line breaks inside quoted fields.
///
/// What a file shows of itself in a message (a header's column names) is a short excerpt with
/// control characters escaped: a file may be anything, /proc/self/environ included.
final class CSVImportParser {
    static let maximumReason = 1000
    /// Characters of the file a header message quotes at most.
    static let excerptLimit = 40
    private let stream: ValidatingInputStream
    private var reader: CSVRecordReader
    private let settings: ImportSettings
    private let columns: Columns
    private var nextLine: Int

    struct Columns {
        var username: Int
        var pool: Int?
        var runAt: Int?
        var metadata: [(key: String, index: Int)] = []
        var count: Int
    }

    init(stream: ValidatingInputStream, settings: ImportSettings) throws {
        self.stream = stream
        reader = CSVRecordReader(stream: stream)
        let header = reader.next()
        // Where the stream failed the reader ends as if at the end of the file: the stream's
        // reason wins.
        if let failure = stream.failure { throw failure }
        guard let header else { throw ImportInputError.empty }
        self.settings = settings
        self.columns = try Self.columns(header, poolGiven: settings.pool != nil)
        self.nextLine = 1 + Self.lineCount(header)
    }

    /// `text` as a message may quote it: short, control characters escaped.
    static func excerpt(_ text: String) -> String {
        SafeText.excerpt(text.utf8, limit: excerptLimit)
    }

    /// A header's text as a message may quote it: only when it reads like column names
    /// (letters, digits, `_ . , - :` and spaces). Anything else is most likely not a CSV file at
    /// all (a configuration file, `/etc/shadow` reached through a link) and is described, not
    /// shown: even forty characters of such a file can be a secret.
    static func headerText(_ text: String) -> String {
        let looksLikeNames = text.unicodeScalars.allSatisfy { scalar in
            scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "_.,-: ".unicodeScalars.contains(scalar)
        }
        return looksLikeNames ? excerpt(text) : "\(text.count) characters that are not column names, not shown"
    }

    /// Maps the header to columns, refusing unknown, duplicate and missing ones.
    static func columns(_ header: [String], poolGiven: Bool) throws -> Columns {
        var seen: Set<String> = []
        var username: Int?
        var columns = Columns(username: 0, count: header.count)
        for (index, raw) in header.enumerated() {
            let name = raw.trimmingCharacters(in: .whitespaces).lowercased()
            guard !name.contains("\u{FFFD}") else {
                throw ImportInputError("header: column \(index + 1) is not valid UTF-8 (is this a CSV file?)")
            }
            guard seen.insert(name).inserted else {
                throw ImportInputError("header: column \(headerText(name)) appears twice")
            }
            switch name {
            case "username": username = index
            case "user_pool_id": columns.pool = index
            case "run_at": columns.runAt = index
            default:
                guard name.hasPrefix("client_metadata."), name.count > "client_metadata.".count else {
                    throw ImportInputError(
                        "header: unknown column \(name.isEmpty ? "(empty)" : headerText(name)); expected username, user_pool_id, run_at or client_metadata.KEY")
                }
                // The key keeps its case as written.
                columns.metadata.append((String(raw.trimmingCharacters(in: .whitespaces).dropFirst("client_metadata.".count)), index))
            }
        }
        guard let username else {
            throw ImportInputError("header: no username column (found: \(headerText(header.joined(separator: ","))))")
        }
        columns.username = username
        guard columns.pool != nil || poolGiven else {
            throw ImportInputError("header: no user_pool_id column; add one or give --pool")
        }
        return columns
    }

    /// Physical lines a record spans: one, plus the line breaks inside its quoted fields.
    static func lineCount(_ fields: [String]) -> Int {
        var lines = 1
        for field in fields {
            var previousCR = false
            // Bytes: CR and LF are never part of another character's UTF-8.
            for byte in field.utf8 {
                if byte == UInt8(ascii: "\r") {
                    lines += 1
                    previousCR = true
                } else {
                    if byte == UInt8(ascii: "\n") && !previousCR { lines += 1 }
                    previousCR = false
                }
            }
        }
        return lines
    }

    /// The next line, checked; nil at the end of the file.
    func next() throws -> StagedRow? {
        let fields = reader.next()
        // Where the stream failed the reader ends the record early, as if at the end of the
        // file: that record is not the file's, and the file is refused.
        if let failure = stream.failure { throw failure }
        guard let fields else { return nil }
        let line = nextLine
        nextLine += Self.lineCount(fields)
        return stage(fields, line: line)
    }

    private func stage(_ fields: [String], line: Int) -> StagedRow {
        // Reasons are printed and stored: whatever part of the file one may hold comes escaped.
        func reject(_ reason: String) -> StagedRow {
            StagedRow(line: line, reason: String(SafeText.escaped(reason).prefix(Self.maximumReason)))
        }
        if fields.count == 1, fields[0].isEmpty, columns.count > 1 {
            return reject("blank line")
        }
        guard fields.count == columns.count else {
            return reject("wrong number of fields: expected \(columns.count), found \(fields.count)")
        }
        // U+FFFD is EF BF BD in UTF-8: a field without an EF byte (most) is not searched.
        if fields.contains(where: { $0.utf8.contains(0xEF) && $0.unicodeScalars.contains("\u{FFFD}") }) {
            return reject("invalid UTF-8")
        }
        let username: Username
        do {
            username = try Username(fields[columns.username])
        } catch {
            return reject("username: \(error.rule)")
        }
        var pool = settings.pool
        if let index = columns.pool, !fields[index].isEmpty {
            do {
                pool = try UserPoolID(fields[index])
            } catch {
                return reject("user_pool_id: \(error.rule)")
            }
        }
        guard let pool else { return reject("user_pool_id: empty, and no --pool given") }
        var runAt = settings.runAt
        if let index = columns.runAt, !fields[index].isEmpty {
            do {
                runAt = try ScheduleTime.parse(fields[index], field: "run_at", now: settings.now)
            } catch {
                return reject("run_at: \(error.rule)")
            }
        }
        var metadataJSON: String?
        if !columns.metadata.isEmpty {
            var values: [String: String] = [:]
            // No value holds U+0000 (which jsonb cannot): the stream refuses a file with a NUL.
            for (key, index) in columns.metadata where !fields[index].isEmpty {
                values[key] = fields[index]
            }
            if !values.isEmpty {
                do {
                    let metadata = try ClientMetadata(values)
                    let data = try JSONSerialization.data(withJSONObject: metadata.values, options: [.sortedKeys])
                    metadataJSON = String(decoding: data, as: UTF8.self)
                } catch let error as InvalidInput {
                    return reject("client_metadata: \(error.rule)")
                } catch {
                    return reject("client_metadata: \(error)")
                }
            }
        }
        return StagedRow(line: line, pool: pool.rawValue, username: username.rawValue, metadataJSON: metadataJSON, runAt: runAt)
    }
}
