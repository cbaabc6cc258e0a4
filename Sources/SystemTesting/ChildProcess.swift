public import Foundation

/// Runs programs for tests (the built CLI, moto, fixture scripts) without blocking Swift's
/// cooperative threads: exits are awaited through termination handlers, and output goes to files
/// so a chatty child can never fill a pipe and stall.
public final class ChildProcess: Sendable {
    /// What a finished run produced.
    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
        /// When the exit was seen, by the termination handler (a thread of Foundation's, not
        /// the cooperative pool): what a test that times an exit compares with.
        public let endedAt: ContinuousClock.Instant
    }

    private let process: Process
    private let folder: URL
    private let exit: Task<(status: Int32, at: ContinuousClock.Instant), Never>

    /// Starts `executable` with `arguments` and exactly `environment`.
    public init(_ executable: URL, _ arguments: [String], environment: [String: String], stdin: String? = nil) throws {
        folder = FileManager.default.temporaryDirectory.appending(path: "child-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        for name in ["stdout", "stderr"] { try Data().write(to: folder.appending(path: name)) }
        process.standardOutput = try FileHandle(forWritingTo: folder.appending(path: "stdout"))
        process.standardError = try FileHandle(forWritingTo: folder.appending(path: "stderr"))
        if let stdin {
            try Data(stdin.utf8).write(to: folder.appending(path: "stdin"))
            process.standardInput = try FileHandle(forReadingFrom: folder.appending(path: "stdin"))
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        let (stream, continuation) = AsyncStream.makeStream(of: (status: Int32, at: ContinuousClock.Instant).self)
        process.terminationHandler = {
            continuation.yield((status: $0.terminationStatus, at: .now))
            continuation.finish()
        }
        try process.run()
        self.process = process
        self.exit = Task { await stream.first { _ in true } ?? (status: -1, at: .now) }
    }

    /// Runs to completion and returns status and output.
    public static func run(
        _ executable: URL, _ arguments: [String], environment: [String: String], stdin: String? = nil
    ) async throws -> Result {
        let child = try ChildProcess(executable, arguments, environment: environment, stdin: stdin)
        return await child.wait()
    }

    /// Waits for the exit and returns what the child wrote.
    public func wait() async -> Result {
        let (status, endedAt) = await exit.value
        let stdout = (try? String(contentsOf: folder.appending(path: "stdout"), encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOf: folder.appending(path: "stderr"), encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: folder)
        return Result(status: status, stdout: stdout, stderr: stderr, endedAt: endedAt)
    }

    /// Sends `signal` (default SIGTERM) without waiting.
    public func send(_ signal: Int32 = SIGTERM) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Ends the child with SIGKILL and waits for the exit. (Children started from Swift's
    /// threads inherit a signal mask that blocks SIGTERM, so only SIGKILL is sure to work.)
    public func stop() async {
        send(SIGKILL)
        _ = await wait()
    }

    /// The process id, while it runs.
    public var pid: Int32 { process.processIdentifier }
}
