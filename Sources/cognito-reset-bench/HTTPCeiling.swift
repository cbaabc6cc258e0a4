import CognitoClient
import CognitoTesting
import Foundation
import Logging
import Synchronization
import SystemTesting

/// The HTTP side of the worker alone: the same Cognito client the worker builds (same transport,
/// same signing, same credentials chain), in a process of its own, calling the same fake server
/// with the same concurrency, and no database at all.
///
/// Why it is printed: worker, PostgreSQL and fake server share this machine's cores. The pgbench
/// ceiling spends all of them on SQL, so a worker can reach half of it only if the HTTP work per job
/// costs no more CPU than the SQL work per job, that is only if this figure is at least the ceiling.
enum HTTPCeiling {
    /// Child mode (`--http-client URL --calls N`): makes the calls and exits.
    static func runClient(url: URL, calls: Int, concurrency: Int) async throws {
        var environment = ProcessInfo.processInfo.environment
        environment["AWS_ACCESS_KEY_ID"] = "AKIDBENCH"
        environment["AWS_SECRET_ACCESS_KEY"] = "bench-secret"
        let transport = HTTPTransport(connectionsPerHost: concurrency)
        let chain = CredentialChain.standard(environment: environment, transport: transport, region: "us-east-1")
        let client = CognitoIdentityProviderClient(
            endpoints: CognitoEndpointResolver(configuredRegion: "us-east-1", endpointOverride: url),
            credentials: CachingCredentialProvider(base: chain), transport: transport,
            logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
        let pool = try UserPoolID("us-east-1_Bench1")
        let next = Counter()
        var failures = 0
        await withTaskGroup(of: Int.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var failed = 0
                    while let index = next.take(below: calls) {
                        do {
                            _ = try await client.adminResetUserPassword(userPoolID: pool, username: try Username("user\(index)"))
                        } catch {
                            failed += 1
                        }
                    }
                    return failed
                }
            }
            for await failed in group { failures += failed }
        }
        await transport.shutdown()
        if failures > 0 { fatalError("\(failures) calls failed") }
        print("cpu=\(processCPUSeconds())")
    }

    /// What the HTTP work costs: calls per second, and CPU time per call in the client process and
    /// in the fake server (this process, which does nothing else meanwhile), kernel time included.
    struct Figures {
        let callsPerSecond: Double
        let clientMicrosecondsPerCall: Double
        let serverMicrosecondsPerCall: Double
    }

    /// Runs the client mode in a child process against a fresh fake server; calls per second are
    /// measured at the server from the first request to the last, as the worker's figure is.
    static func measure(bench: String, calls: Int, concurrency: Int) async throws -> Figures {
        let server = try await FakeHTTPServer.start()
        let serverCPUBefore = processCPUSeconds()
        let client = try ChildProcess(
            URL(fileURLWithPath: bench),
            ["--http-client", server.url.absoluteString, "--calls", String(calls), "--concurrency", String(concurrency)],
            environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("AWS_") })
        await server.waitForRequests(calls)
        let serverCPU = processCPUSeconds() - serverCPUBefore
        let requests = server.requests
        let result = await client.wait()
        await server.shutdown()
        guard result.status == 0,
            let line = result.stdout.split(separator: "\n").last(where: { $0.hasPrefix("cpu=") }),
            let clientCPU = Double(line.dropFirst(4))
        else { fatalError("the HTTP client process failed: \(result.stderr)") }
        return Figures(
            callsPerSecond: Double(calls) / ((requests[calls - 1].receivedAt - requests[0].receivedAt) / .seconds(1)),
            clientMicrosecondsPerCall: clientCPU / Double(calls) * 1e6,
            serverMicrosecondsPerCall: serverCPU / Double(calls) * 1e6)
    }
}

/// Hands out call numbers to the client's tasks.
private final class Counter: Sendable {
    private let value = Mutex(0)
    func take(below limit: Int) -> Int? {
        value.withLock { current in
            guard current < limit else { return nil }
            defer { current += 1 }
            return current
        }
    }
}
