import CognitoTesting
import Foundation
import Postgres
import PostgresTesting

/// Private PostgreSQL servers made by scripts/lib/pg_cluster.sh for the fault tests: a primary,
/// its synchronous standby, PgBouncer in front. Everything lives in one folder, removed (servers
/// stopped) by `destroy()`.
final class PrivateCluster: Sendable {
    /// No spaces in the path: pg_ctl's -o options are split on them.
    let folder: URL
    var primary: String { folder.appending(path: "primary").path }
    var standby: String { folder.appending(path: "standby").path }
    var bouncer: String { folder.appending(path: "bouncer").path }

    /// Runs `body` with a new folder of servers and a fake Cognito answering with `responder`;
    /// both are torn down however `body` ends.
    static func with(
        responder: @escaping FakeHTTPServer.Responder, _ body: (PrivateCluster, FakeHTTPServer) async throws -> Void
    ) async throws {
        let cluster = try PrivateCluster()
        let server = try await FakeHTTPServer.start(responder: responder)
        do {
            try await body(cluster, server)
        } catch {
            await cluster.destroy()
            await server.shutdown()
            throw error
        }
        await cluster.destroy()
        await server.shutdown()
    }

    init() throws {
        folder = FileManager.default.temporaryDirectory.appending(path: "pgc-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    /// Runs `pg_cluster.sh arguments...` (with system(3) on a thread of its own: the servers it
    /// starts outlive the shell, which Foundation's Process does not always notice) and returns
    /// its KEY=VALUE lines; throws with its output if it fails.
    @discardableResult
    func run(_ arguments: String...) async throws -> [String: String] {
        let output = folder.appending(path: "out-\(UUID().uuidString.prefix(8))").path
        let script = repositoryRoot.appending(path: "scripts/lib/pg_cluster.sh").path
        let command = "/bin/bash \(script) \(arguments.map { "'\($0)'" }.joined(separator: " ")) >\(output) 2>&1"
        let status = await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: system(command)) }
        }
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: output)
        guard status == 0 else { throw ClusterError(message: "pg_cluster.sh \(arguments.joined(separator: " ")) failed: \(text)") }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return values
    }

    /// Sends `signal` to the server in `dir` and every process it started (SIGSTOP: a hung server).
    func signalServer(_ dir: String, _ signal: Int32) async throws {
        let output = folder.appending(path: "pids").path
        let script = repositoryRoot.appending(path: "scripts/lib/pg_cluster.sh").path
        _ = await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: system("/bin/bash \(script) pids \(dir) >\(output)")) }
        }
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        for pid in text.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, signal) }
    }

    /// Stops every server and PgBouncer and removes the folder.
    func destroy() async {
        for dir in [primary, standby] where FileManager.default.fileExists(atPath: dir) {
            try? await signalServer(dir, SIGCONT)
            _ = try? await run("stop", dir, "immediate")
        }
        if FileManager.default.fileExists(atPath: bouncer) { _ = try? await run("pgbouncer-stop", bouncer) }
        try? FileManager.default.removeItem(at: folder)
    }

    struct ClusterError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}

/// Waits until `condition` holds, checking every 100 ms (for conditions no event announces:
/// rows another process writes), or fails after `deadline`.
func eventually(
    _ what: String, deadline: Duration = .seconds(60), _ condition: @escaping @Sendable () async throws -> Bool
) async throws {
    try await withDeadline(deadline, what) {
        while try await !condition() { try await Task.sleep(for: .milliseconds(100)) }
    }
}

/// A count from `sql` on a fresh connection (the server may have changed under the test).
func countRows(_ url: String, _ sql: String) async throws -> Int {
    try await firstColumn(url, sql, as: Int.self)[0]
}

/// The first column of every row `sql` returns, as text (for a failed expectation's message).
func textRows(_ url: String, _ sql: String) async throws -> [String] {
    try await firstColumn(url, sql, as: String.self)
}

/// The first column of every row `sql` returns, on a fresh connection closed whatever happens.
private func firstColumn<T: PostgresDecodable>(_ url: String, _ sql: String, as type: T.Type) async throws -> [T] {
    let connection = try await PostgresConnection.connect(try ConnectionConfiguration(url))
    do {
        let values = try await connection.query(PostgresQuery(sql)).map { try $0.decode(T.self, at: 0) }
        await connection.close()
        return values
    } catch {
        await connection.close()
        throw error
    }
}
