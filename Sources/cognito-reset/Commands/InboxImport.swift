import CognitoClient
import Foundation
import Logging
import ResetQueue

/// `cognito-reset import --inbox DIR` (run by cognito-reset-import.service when files arrive):
/// every `*.csv` in DIR, oldest name first, is imported on its own and moved to `DIR/done/` (with
/// `NAME.report.json`: what happened to every line) or `DIR/rejected/` (with the reason).
///
/// Half-written files are never picked up: writers create the file under another name (a
/// leading `.` or another extension) and rename it to `*.csv` when complete, an atomic step.
/// If the database cannot be reached (exit 3) or refuses for a reason that is not the file's
/// (exit 1, e.g. a missing grant), the file stays in the inbox for the next run.
struct InboxImport {
    let command: ImportCommand
    let folder: URL
    let logger: Logger

    func run() async throws {
        // Settings that are not the files' (a malformed DATABASE_URL, an unreadable password
        // credential, a bad flag) fail the run with every file left where it is: blamed on each
        // file, they would file the whole inbox under rejected/.
        _ = try command.database.configuration()
        _ = try command.makeSettings(now: Date())
        let done = folder.appending(path: "done")
        let rejected = folder.appending(path: "rejected")
        let files = try await blockingIO { [folder] in try Self.pendingFiles(in: folder, creating: [done, rejected]) }
        var imported = 0
        var refused = 0
        for source in files {
            let name = source.lastPathComponent
            let outcome = await importOne(source)
            switch outcome {
            case .done(let report):
                try await move(source, to: done, report: try jsonEncoder().encode(report))
                Terminal.say("\(SafeText.escaped(name)): \(ImportCommand.describe(report, dryRun: false))")
                imported += 1
            case .rejected(let reason, let report):
                let body =
                    try report.map { try jsonEncoder().encode($0) }
                    ?? JSONSerialization.data(withJSONObject: ["file_name": name, "error": reason], options: [.sortedKeys])
                try await move(source, to: rejected, report: body)
                Terminal.say("\(SafeText.escaped(name)): rejected: \(SafeText.escaped(reason))")
                refused += 1
            case .unavailable(let error):
                // Left in the inbox for the next run.
                throw error
            }
        }
        logger.info("inbox processed", metadata: ["imported": "\(imported)", "rejected": "\(refused)", "inbox": "\(folder.path)"])
    }

    enum Outcome {
        case done(ImportReport)
        case rejected(String, ImportReport?)
        case unavailable(any Error)
    }

    private func importOne(_ file: URL) async -> Outcome {
        do {
            let settings = try command.makeSettings(now: Date())
            let (descriptor, name, _) = try command.openInput(file.path, dropped: true)
            defer { close(descriptor) }
            let report = try await command.database.withJobStore(logger: logger) { store in
                try await store.importCSV(descriptor: descriptor, fileName: name, settings: settings, force: command.force)
            }
            if let previous = report.previousImportID {
                return .rejected("already imported as import \(previous) (same SHA-256); nothing added", report)
            }
            return .done(report)
        } catch let error as ImportInputError {
            return .rejected(error.description, nil)
        } catch let error as CLIError where error.exitCode == CLIError.badInputCode {
            return .rejected(error.message, nil)
        } catch {
            // Unreachable, or refused for a reason that is not the file's (a missing grant, a
            // schema not migrated): the file stays for the next run.
            return .unavailable(error)
        }
    }

    /// The `*.csv` entries waiting in `folder`, in name order (hidden files are still being
    /// written); makes the `done` and `rejected` folders if missing. Entries that are not regular
    /// files (a folder, a link, a FIFO) are listed too: their import refuses them, and moving them
    /// to `rejected/` keeps them from starting the path unit again and again.
    static func pendingFiles(in folder: URL, creating outboxes: [URL]) throws -> [URL] {
        let manager = FileManager.default
        let names: [String]
        do {
            names = try manager.contentsOfDirectory(atPath: folder.path)
        } catch {
            throw CLIError.badInput("--inbox: cannot read \(folder.path): \((error as NSError).localizedDescription)")
        }
        for directory in outboxes {
            try? manager.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        return names.filter { !$0.hasPrefix(".") && $0.lowercased().hasSuffix(".csv") }.sorted().map { folder.appending(path: $0) }
    }

    /// Moves `file` into `folder` (a timestamp added if the name is taken) with its report beside it.
    private func move(_ file: URL, to folder: URL, report: Data) async throws {
        try await blockingIO { try Self.moveNow(file, to: folder, report: report) }
    }

    private static func moveNow(_ file: URL, to folder: URL, report: Data) throws {
        var target = folder.appending(path: file.lastPathComponent)
        if FileManager.default.fileExists(atPath: target.path) {
            let stamp = Date().formatted(.iso8601).replacingOccurrences(of: ":", with: "")
            target = folder.appending(path: "\(stamp)-\(file.lastPathComponent)")
        }
        do {
            try Data(report + [UInt8(ascii: "\n")]).write(to: URL(fileURLWithPath: target.path + ".report.json"))
            try FileManager.default.moveItem(at: file, to: target)
        } catch {
            throw CLIError.failure("--inbox: cannot move \(file.lastPathComponent) to \(folder.lastPathComponent)/: \((error as NSError).localizedDescription)")
        }
    }
}
