public import Foundation

/// What an import did (or, dry, would do) with every line.
public struct ImportReport: Sendable, Codable {
    /// A line refused, and why.
    public struct Rejection: Sendable, Codable, Equatable {
        /// The physical line of the file the record starts on (the header is line 1).
        public let line: Int
        /// Why, in words, with any control character escaped: it is printed as it is and kept
        /// in `import_rejections`.
        public let reason: String
    }

    /// The `imports` row written; nil for a dry run, an empty file or a repeated file.
    public var importID: Int64?
    public var fileName: String
    public var sha256: String
    public var dryRun: Bool
    /// Data lines read (the header excluded).
    public var read = 0
    /// New jobs.
    public var accepted = 0
    /// Valid lines for a user with an active job already, or repeated in the file.
    public var duplicate = 0
    public var rejected = 0
    /// The first rejected lines (all are stored in `import_rejections`).
    public var rejections: [Rejection] = []
    /// Set when this exact file (same SHA-256) was imported before: nothing was added.
    public var previousImportID: Int64?
    public var previousImportAt: Date?

    /// At most this many rejections are kept in the report itself.
    public static let rejectionsShown = 1000
}
