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
    }

    private let process: Process
    private let folder: URL
    private let exit: Task<Int32, Never>

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
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = {
            continuation.yield($0.terminationStatus)
            continuation.finish()
        }
        try process.run()
        self.process = process
        self.exit = Task { await stream.first { _ in true } ?? -1 }
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
        let status = await exit.value
        let stdout = (try? String(contentsOf: folder.appending(path: "stdout"), encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOf: folder.appending(path: "stderr"), encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: folder)
        return Result(status: status, stdout: stdout, stderr: stderr)
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

/// moto, the open-source AWS emulator, for end-to-end tests.
public enum Moto {
    /// The shared moto `scripts/test.sh` starts (`MOTO_ENDPOINT`).
    public static func sharedEndpoint() throws -> URL {
        guard let value = ProcessInfo.processInfo.environment["MOTO_ENDPOINT"], let url = URL(string: value) else {
            throw MotoError(message: "MOTO_ENDPOINT is not set: run the tests with scripts/test.sh, which starts moto")
        }
        return url
    }

    /// The repository's `scripts/lib/moto_fixture.py`.
    public static var fixtureScript: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appending(path: "scripts/lib/moto_fixture.py")
    }

    /// Runs a fixture command and returns its JSON object.
    public static func fixture(_ arguments: [String], endpoint: URL) async throws -> [String: String] {
        let result = try await ChildProcess.run(
            URL(fileURLWithPath: "/usr/bin/env"), ["python3", fixtureScript.path] + arguments + ["--endpoint", endpoint.absoluteString],
            environment: ProcessInfo.processInfo.environment)
        guard result.status == 0,
            let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: String]
        else {
            throw MotoError(message: "moto fixture \(arguments.first ?? "") failed: \(result.stderr.suffix(500))")
        }
        return object
    }

    /// Starts a private moto (e.g. with `INITIAL_NO_AUTH_ACTION_COUNT`) and waits until it listens.
    public static func start(environment extra: [String: String] = [:]) async throws -> (ChildProcess, URL) {
        let port = try TestPorts.unused()
        let child = try ChildProcess(
            URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)],
            environment: ProcessInfo.processInfo.environment.merging(extra) { $1 })
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while !canConnect(port: port) {
            guard clock.now < deadline else {
                await child.stop()
                throw MotoError(message: "moto did not start listening on port \(port)")
            }
            try await Task.sleep(for: .milliseconds(50))  // polling a condition, bounded by the deadline
        }
        return (child, URL(string: "http://127.0.0.1:\(port)")!)
    }

    static func canConnect(port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

public struct MotoError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
