public import Foundation
public import SystemTesting

#if canImport(Glibc)
    import Glibc
#endif

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
        // The port is free when picked, but another test's server may bind it before moto does
        // (then moto exits, and that server would answer in its place): moto is ready only once
        // its own process listens there. Three ports at most.
        for _ in 0..<3 {
            let port = try TestPorts.unused()
            let child = try ChildProcess(
                URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)],
                environment: ProcessInfo.processInfo.environment.merging(extra) { $1 })
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(20)
            while clock.now < deadline {
                if listens(pid: child.pid, port: port) { return (child, URL(string: "http://127.0.0.1:\(port)")!) }
                try await Task.sleep(for: .milliseconds(50))  // polling a condition, bounded by the deadline
            }
            await child.stop()
        }
        throw MotoError(message: "moto did not start listening (three ports tried)")
    }

    /// Whether process `pid` owns the socket listening on loopback TCP `port` (from /proc).
    static func listens(pid: Int32, port: Int) -> Bool {
        guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return false }
        let suffix = ":" + String(format: "%04X", port)
        var inodes: Set<Substring> = []
        for line in table.split(separator: "\n").dropFirst() {
            // sl local_address rem_address st ... inode: state 0A is LISTEN.
            let fields = line.split(separator: " ")
            if fields.count > 9, fields[1].hasSuffix(suffix), fields[3] == "0A" { inodes.insert(fields[9]) }
        }
        guard !inodes.isEmpty, let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else {
            return false
        }
        return descriptors.contains { descriptor in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(descriptor)") else {
                return false
            }
            return target.hasPrefix("socket:[") && inodes.contains(target.dropFirst(8).dropLast())
        }
    }
}

public struct MotoError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
