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
