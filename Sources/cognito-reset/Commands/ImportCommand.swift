import ArgumentParser
import CognitoClient
import Foundation
import Logging
import ResetQueue
import Synchronization

/// `cognito-reset import FILE.csv`: bulk resets, now or at a planned time.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Enqueue a reset for every line of a CSV file (or - for stdin), in one transaction.",
        discussion: """
            Columns by header, case-insensitive: username (required), user_pool_id (required unless \
            --pool; an empty value takes --pool), run_at (optional, as --run-at), client_metadata.KEY \
            (optional). RFC 4180: quotes, embedded commas and newlines, CRLF, a UTF-8 BOM. Every valid \
            line is enqueued or none is; users with an active job and lines repeated in the file are \
            counted as duplicates; every rejected line is reported with its line number and reason, \
            and kept in cognito_reset.import_rejections. The same file (same SHA-256) imported again \
            adds nothing unless --force.
            """
    )

    @OptionGroup var database: DatabaseOptions

    @Argument(help: ArgumentHelp("The CSV file, or - for standard input.", valueName: "FILE"))
    var file: String?

    @Option(
        help: ArgumentHelp(
            "Import every *.csv in DIR, one by one, moving each to DIR/done or DIR/rejected with a report.", valueName: "DIR"))
    var inbox: String?

    @Option(name: .customLong("pool"), help: ArgumentHelp("User pool for lines without a user_pool_id.", valueName: "ID"))
    var pool: String?

    @OptionGroup var job: JobOptions

    @Option(
        help: ArgumentHelp(
            "This import's own ceiling in requests/s (e.g. 5/s), below the fleet's: its jobs never take more; change it later with `rate set R --import ID`.",
            valueName: "R"))
    var rate: String?

    @Flag(help: "Check every line and report, write nothing.")
    var dryRun = false

    @Flag(help: "Import even if this exact file was imported before.")
    var force = false

    @Flag(help: "Print JSON for machines.")
    var json = false

    func validate() throws {
        guard (file == nil) != (inbox == nil) else {
            throw ValidationError("give either FILE or --inbox DIR")
        }
        // The inbox files every file it reads into done/ or rejected/: there is no preview.
        if inbox != nil, dryRun || json {
            throw ValidationError("--inbox: cannot be combined with --dry-run or --json (each file gets a JSON report in done/ or rejected/)")
        }
    }

    func run() async throws {
        let logger = try database.logger()
        if let inbox {
            try await InboxImport(command: self, folder: URL(fileURLWithPath: inbox), logger: logger).run()
            return
        }
        let file = self.file ?? "-"
        let settings = try makeSettings(now: Date())
        let (descriptor, name, size) = try openInput(file)
        defer { if descriptor != 0 { close(descriptor) } }
        let progress: ProgressBar? = (!json && isatty(2) == 1) ? ProgressBar(total: size) : nil
        var onProgress: (@Sendable (Int64) -> Void)?
        if let progress {
            onProgress = { bytes in progress.update(bytes) }
        }
        let report: ImportReport
        do {
            report = try await database.withJobStore(logger: logger) { store in
                try await store.importCSV(
                    descriptor: descriptor, fileName: name, settings: settings, dryRun: dryRun, force: force,
                    onProgress: onProgress)
            }
        } catch let error as ImportInputError {
            progress?.finish()
            throw CLIError.badInput("\(SafeText.escaped(file)): \(error.description)")
        }
        progress?.finish()
        if json { try printJSON(report) } else { printHuman(report) }
    }

    func makeSettings(now: Date) throws -> ImportSettings {
        let importRate = try rate.map { try RateArgument.parse($0, field: "--rate") }
        do throws(InvalidInput) {
            let runAt = try job.checkedRunAt(now: now)
            var poolID: UserPoolID?
            if let pool {
                do throws(InvalidInput) {
                    poolID = try UserPoolID(pool)
                } catch {
                    throw InvalidInput(field: "pool", rule: error.rule)
                }
            }
            return ImportSettings(
                pool: poolID, runAt: runAt, priority: job.priority, maxAttempts: job.maxAttempts,
                requestedBy: job.requestedBy, rate: importRate, now: now)
        } catch {
            throw CLIError(error)
        }
    }

    /// The descriptor to read, the name to record, and the size when known (for the ETA).
    ///
    /// FILE must be a regular file (a symbolic link to one is followed): a FIFO or a device
    /// could block or never end. It is opened with O_NONBLOCK so that a FIFO cannot block the
    /// open itself, waiting for a writer, before it is refused. `-` (stdin) may be a pipe.
    ///
    /// `dropped`: a file someone else put in the inbox. A symbolic link is refused, not followed
    /// (it could point at a file only this service may read, such as its database password).
    /// The path is shown escaped in messages: inbox file names are anyone's.
    func openInput(_ file: String, dropped: Bool = false) throws -> (Int32, String, Int64?) {
        if file == "-" { return (0, "stdin", nil) }
        let descriptor = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (dropped ? O_NOFOLLOW : 0))
        guard descriptor >= 0 else {
            throw CLIError.badInput("\(SafeText.escaped(file)): cannot open: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(descriptor)
            throw CLIError.badInput("\(SafeText.escaped(file)): not a regular file")
        }
        // Reads block again: the import reads on a thread of its own.
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
        return (descriptor, URL(fileURLWithPath: file).lastPathComponent, Int64(info.st_size))
    }

    func printJSON(_ report: ImportReport) throws {
        Terminal.json(try jsonEncoder().encode(report))
    }

    func printHuman(_ report: ImportReport) {
        Terminal.say(Self.describe(report, dryRun: dryRun))
        if !report.rejections.isEmpty {
            Terminal.say("Rejected lines:")
            for rejection in report.rejections.prefix(50) {
                Terminal.say("  line \(rejection.line): \(rejection.reason)")
            }
            if report.rejected > 50 {
                let kept = report.importID.map { "; all are in cognito_reset.import_rejections (import_id \($0))" } ?? ""
                Terminal.say("  ... and \(report.rejected - 50) more\(kept)")
            }
        }
    }

    /// One line saying what the import did.
    static func describe(_ report: ImportReport, dryRun: Bool) -> String {
        let counts =
            "\(report.read) lines read, \(report.accepted) \(dryRun ? "would be new jobs" : "new jobs"), "
            + "\(report.duplicate) duplicates, \(report.rejected) rejected"
        if let previous = report.previousImportID {
            let when = report.previousImportAt.map { " on \($0.formatted(.iso8601))" } ?? ""
            return
                "\(SafeText.escaped(report.fileName)) was already imported (import \(previous)\(when), same SHA-256); nothing added. Use --force to import it again."
        } else if report.read == 0 {
            return "\(SafeText.escaped(report.fileName)): a header and no lines; nothing to import."
        } else if dryRun {
            return "Dry run, nothing written: \(counts)."
        }
        return "Import \(report.importID.map(String.init) ?? "-") of \(SafeText.escaped(report.fileName)): \(counts)."
    }
}

/// A one-line progress bar on stderr (a terminal only): bytes read, rate and time left.
final class ProgressBar: Sendable {
    private let total: Int64?
    private let started = ContinuousClock.now
    private let lastDrawn = Mutex<ContinuousClock.Instant?>(nil)

    init(total: Int64?) { self.total = total }

    func update(_ bytes: Int64) {
        let now = ContinuousClock.now
        let due = lastDrawn.withLock { last -> Bool in
            if let last, now - last < .milliseconds(200) { return false }
            last = now
            return true
        }
        guard due else { return }
        let elapsed = max(0.001, (now - started) / .seconds(1))
        let rate = Double(bytes) / elapsed
        var line = String(format: "\r%8.1f MB  %6.1f MB/s", Double(bytes) / 1e6, rate / 1e6)
        if let total, total > 0 {
            let fraction = min(1, Double(bytes) / Double(total))
            let width = 30
            let filled = Int(fraction * Double(width))
            let left = rate > 0 ? Double(total - bytes) / rate : 0
            line +=
                "  [" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled) + "]"
                + String(format: " %3.0f%%  ETA %.0fs", fraction * 100, left)
        }
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
