import Crypto
public import Foundation

/// One schema migration: a file `NNNN_name.sql` applied once, in version order.
public struct Migration: Sendable, Hashable {
    public let version: Int
    public let name: String
    public let fileName: String
    public let sql: String
    /// Hex SHA-256 of the file's bytes, recorded when applied; a later change is refused.
    public let checksum: String
    /// False when the file starts with `-- migrate:no-transaction` (needed for statements such as
    /// `CREATE INDEX CONCURRENTLY`, which cannot run inside a transaction). Such a file must hold
    /// one statement (several would run in one implicit transaction) and should be idempotent
    /// (`IF NOT EXISTS`): if recording it fails after it ran, the next run repeats it.
    public let runsInTransaction: Bool

    /// The marker line that makes a migration run outside a transaction.
    public static let noTransactionMarker = "-- migrate:no-transaction"

    /// Builds a migration from a file name of the form `NNNN_name.sql` and the file's bytes.
    public init(fileName: String, contents: Data) throws(MigrationError) {
        guard fileName.hasSuffix(".sql"), let underscore = fileName.firstIndex(of: "_"),
            let version = Int(fileName[..<underscore]), version > 0
        else {
            throw MigrationError(code: .invalidFile, message: "\(fileName): name must be NNNN_name.sql")
        }
        guard let sql = String(data: contents, encoding: .utf8) else {
            throw MigrationError(code: .invalidFile, message: "\(fileName): not valid UTF-8")
        }
        self.version = version
        self.fileName = fileName
        self.name = String(fileName[fileName.index(after: underscore)...].dropLast(4))
        self.sql = sql
        self.checksum = SHA256.hash(data: contents).map { String(format: "%02x", $0) }.joined()
        self.runsInTransaction = !sql.hasPrefix(Self.noTransactionMarker)
    }

    /// Reads every `*.sql` file of `directory`, sorted by version; duplicate versions are refused.
    public static func load(directory: URL) throws(MigrationError) -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw MigrationError(code: .invalidFile, message: "cannot read migrations folder \(directory.path)")
        }
        var migrations: [Migration] = []
        for name in names where name.hasSuffix(".sql") {
            guard let contents = FileManager.default.contents(atPath: directory.appending(path: name).path) else {
                throw MigrationError(code: .invalidFile, message: "cannot read \(name)")
            }
            migrations.append(try Migration(fileName: name, contents: contents))
        }
        return try ordered(migrations)
    }

    /// Sorts by version and rejects two files with the same version.
    public static func ordered(_ migrations: [Migration]) throws(MigrationError) -> [Migration] {
        let sorted = migrations.sorted { $0.version < $1.version }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where previous.version == next.version {
            throw MigrationError(
                code: .invalidFile, message: "\(previous.fileName) and \(next.fileName) share version \(next.version)")
        }
        return sorted
    }
}

/// Why migrating failed.
public struct MigrationError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        let name: String
        /// A migration file is misnamed, unreadable or duplicated.
        public static let invalidFile = Code(name: "invalidFile")
        /// An applied migration's file changed since it was applied.
        public static let checksumMismatch = Code(name: "checksumMismatch")
        /// A migration's SQL failed; nothing of it was kept (it ran in a transaction).
        public static let failed = Code(name: "failed")
    }

    public let code: Code
    public let message: String
    /// The database error behind `.failed`.
    public var underlying: PostgresError?

    public init(code: Code, message: String, underlying: PostgresError? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String { message }
}
