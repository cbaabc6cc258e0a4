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
        // its own process listens there, and a port someone else took is given up for another.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(90)  // python imports moto slowly on a loaded machine
        while clock.now < deadline {
            let port = try TestPorts.unused()
            let child = try ChildProcess(
                URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)],
                environment: ProcessInfo.processInfo.environment.merging(extra) { $1 })
            wait: while clock.now < deadline {
                switch listener(port: port, pid: child.pid) {
                case .child: return (child, URL(string: "http://127.0.0.1:\(port)")!)
                case .other: break wait
                case .none: try await Task.sleep(for: .milliseconds(50))  // polling a condition, bounded by the deadline
                }
            }
            await child.stop()
        }
        throw MotoError(message: "moto did not start listening within 90 s")
    }

    enum Listener { case none, child, other }

    /// Who listens on loopback TCP `port`: nobody, process `pid`, or another (from /proc).
    static func listener(port: Int, pid: Int32) -> Listener {
        guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return .none }
        let suffix = ":" + String(format: "%04X", port)
        var inodes: Set<Substring> = []
        for line in table.split(separator: "\n").dropFirst() {
            // sl local_address rem_address st ... inode: state 0A is LISTEN.
            let fields = line.split(separator: " ")
            if fields.count > 9, fields[1].hasSuffix(suffix), fields[3] == "0A" { inodes.insert(fields[9]) }
        }
        guard !inodes.isEmpty else { return .none }
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        let owned = descriptors.contains { descriptor in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(descriptor)") else {
                return false
            }
            return target.hasPrefix("socket:[") && inodes.contains(target.dropFirst(8).dropLast())
        }
        return owned ? .child : .other
    }
}

public struct MotoError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
