import CSV
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

    public init(pool: UserPoolID? = nil, runAt: Date? = nil, priority: Int = ResetRequest.defaultPriority,
                maxAttempts: Int = ResetRequest.defaultMaxAttempts, requestedBy: String? = nil, rate: Double? = nil,
                now: Date = Date()) {
        self.rate = rate
        self.pool = pool
        self.runAt = runAt
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.requestedBy = requestedBy
        self.now = now
    }
}

/// A file the importer cannot read as a whole (nothing is imported): one line for the operator.
public struct ImportInputError: Error, Sendable, CustomStringConvertible {
    public let description: String
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

/// Reads a CSV file (RFC 4180 through CSV.swift: quotes, embedded commas and newlines, CRLF,
/// a UTF-8 BOM) line by line and checks every field, so nothing the database or Cognito would
/// refuse reaches the staging table.
///
/// Columns by header, case-insensitive: `username` (required), `user_pool_id` (required unless
/// a pool is given), `run_at`, and `client_metadata.KEY`. Line numbers are physical lines of the
/// file, counting the header and the line breaks inside quoted fields.
final class CSVImportParser {
    static let maximumReason = 1000
    private let reader: CSVReader
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

    init(stream: InputStream, settings: ImportSettings) throws {
        do {
            reader = try CSVReader(stream: stream, codecType: UTF8.self, hasHeaderRow: true)
        } catch CSVError.cannotReadHeaderRow {
            throw ImportInputError(description: "the file is empty: expected a header line such as username,user_pool_id")
        }
        guard let header = reader.headerRow else {
            throw ImportInputError(description: "the file is empty: expected a header line such as username,user_pool_id")
        }
        self.settings = settings
        self.columns = try Self.columns(header, poolGiven: settings.pool != nil)
        self.nextLine = 1 + Self.lineCount(header)
    }

    /// Maps the header to columns, refusing unknown, duplicate and missing ones.
    static func columns(_ header: [String], poolGiven: Bool) throws -> Columns {
        var seen: Set<String> = []
        var username: Int?
        var columns = Columns(username: 0, count: header.count)
        for (index, raw) in header.enumerated() {
            let name = raw.trimmingCharacters(in: .whitespaces).lowercased()
            guard !name.contains("\u{FFFD}") else {
                throw ImportInputError(description: "header: column \(index + 1) is not valid UTF-8 (is this a CSV file?)")
            }
            guard seen.insert(name).inserted else {
                throw ImportInputError(description: "header: column \(name) appears twice")
            }
            switch name {
            case "username": username = index
            case "user_pool_id": columns.pool = index
            case "run_at": columns.runAt = index
            default:
                guard name.hasPrefix("client_metadata."), name.count > "client_metadata.".count else {
                    let shown = String(name.prefix(60))
                    throw ImportInputError(description: "header: unknown column \(shown.isEmpty ? "(empty)" : shown); expected username, user_pool_id, run_at or client_metadata.KEY")
                }
                // The key keeps its case as written.
                let key = String(raw.trimmingCharacters(in: .whitespaces).dropFirst("client_metadata.".count))
                guard !key.unicodeScalars.contains("\u{0}") else {
                    throw ImportInputError(description: "header: column \(index + 1) holds a NUL character")
                }
                columns.metadata.append((key, index))
            }
        }
        guard let username else {
            throw ImportInputError(description: "header: no username column (found: \(header.prefix(10).map { String($0.prefix(40)) }.joined(separator: ", ")))")
        }
        columns.username = username
        guard columns.pool != nil || poolGiven else {
            throw ImportInputError(description: "header: no user_pool_id column; add one or give --pool")
        }
        return columns
    }

    /// Physical lines a record spans: one, plus the line breaks inside its quoted fields.
    static func lineCount(_ fields: [String]) -> Int {
        var lines = 1
        for field in fields {
            var previousCR = false
            for scalar in field.unicodeScalars {
                if scalar == "\r" {
                    lines += 1
                    previousCR = true
                } else {
                    if scalar == "\n" && !previousCR { lines += 1 }
                    previousCR = false
                }
            }
        }
        return lines
    }

    /// The next line, checked; nil at the end of the file.
    func next() throws -> StagedRow? {
        guard let fields = reader.next() else {
            if let error = reader.error { throw ImportInputError(description: "cannot read the file: \(error)") }
            return nil
        }
        let line = nextLine
        nextLine += Self.lineCount(fields)
        return stage(fields, line: line)
    }

    private func stage(_ fields: [String], line: Int) -> StagedRow {
        func reject(_ reason: String) -> StagedRow {
            StagedRow(line: line, reason: String(reason.prefix(Self.maximumReason)))
        }
        if fields.count == 1, fields[0].isEmpty, columns.count > 1 {
            return reject("blank line")
        }
        guard fields.count == columns.count else {
            return reject("wrong number of fields: expected \(columns.count), found \(fields.count)")
        }
        if fields.contains(where: { $0.unicodeScalars.contains("\u{FFFD}") }) {
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
            for (key, index) in columns.metadata where !fields[index].isEmpty {
                // PostgreSQL's jsonb cannot hold U+0000: refuse the line, not the whole import.
                guard !fields[index].unicodeScalars.contains("\u{0}") else {
                    return reject("client_metadata.\(key): contains a NUL character")
                }
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
