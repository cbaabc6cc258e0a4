import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import SystemTesting

// The shared, fleet-wide rate limit (issue 7): worker processes sharing one bucket, measured at
// the fake Cognito. Prints figures; asserts nothing.

enum FleetBench {
    static let key = "cognito:us-east-1"

    static func startWorkers(_ count: Int, _ environment: [String: String]) throws -> [ChildProcess] {
        try (0..<count).map { _ in
            try ChildProcess(
                URL(fileURLWithPath: options.worker),
                ["worker", "--rate", "25", "--lease", "5s", "--heartbeat", "1s", "--poll", "200ms"],
                environment: environment)
        }
    }

    static func stop(_ workers: [ChildProcess]) async {
        for worker in workers { worker.send(SIGTERM) }
        for worker in workers { _ = await worker.wait() }
    }

    static func setCeiling(_ connection: PostgresConnection, _ ceiling: Double, burst: Double = 1) async throws {
        try await connection.query(
            PostgresQuery(
                """
                INSERT INTO cognito_reset.rate_limits (key, rate, burst, current_rate) VALUES ($1, $2, $3, $2)
                ON CONFLICT (key) DO UPDATE SET rate = excluded.rate, burst = excluded.burst
                """, [key, ceiling, burst]))
    }

    /// Counts per `window`-second bucket from the first instant.
    static func windows(_ instants: [ContinuousClock.Instant], _ window: Int) -> [Int] {
        guard let start = instants.min(), let end = instants.max() else { return [] }
        let count = Int(seconds(end - start)) / window + 1
        var buckets = Array(repeating: 0, count: count)
        for instant in instants { buckets[min(count - 1, Int(seconds(instant - start)) / window)] += 1 }
        return buckets
    }

    /// Three workers, ceiling 20/s, `jobs` jobs: calls per 5-second window, deviation, drain time.
    static func steadyRate(template: String, jobs: Int) async throws {
        say("== shared rate: 3 worker processes, one bucket at 20/s, \(jobs) jobs, fake Cognito answering at once")
        try await TemporaryDatabase.with(template: template) { database in
            let server = try await FakeHTTPServer.start()
            let connection = try await database.connect()
            // Count the claim statements the fleet makes (track_functions applies to new sessions).
            // An identifier cannot be a bound parameter; the name is our own (TemporaryDatabase).
            let trackFunctions: String = "ALTER DATABASE \"\(database.name)\" SET track_functions = 'pl'"
            try await connection.query(PostgresQuery(trackFunctions))
            try await insertJobs(connection, jobs)
            try await setCeiling(connection, 20)
            let workers = try startWorkers(3, workerEnvironment(database, server))
            try await waitFor(connection, succeeded: jobs)
            await stop(workers)
            let times = server.requests.map(\.receivedAt).sorted()
            let counts = windows(times, 5)
            let full = Array(counts.dropFirst().dropLast())  // the first is excluded, the last is partial
            let deviation = full.map { abs(Double($0) / 100 - 1) * 100 }.max() ?? 0
            let drain = seconds(times.last! - times.first!)
            let ideal = Double(jobs) / 20
            say("calls per 5 s window (100 expected): \(counts.map(String.init).joined(separator: " "))")
            say(String(format: "largest deviation after the first window: %.1f%% (target <= 5%%)", deviation))
            say(String(format: "drain: %.1f s for %d jobs, ideal %.1f s: %+.1f%% (target within 10%%)", drain, jobs, ideal, (drain / ideal - 1) * 100))
            try await connection.execute("SELECT pg_stat_force_next_flush()")
            try await Task.sleep(for: .seconds(1))  // the statistics collector publishes with a delay
            let claims = try await connection.query(
                "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_user_functions WHERE funcname = 'claim_paced'")[0]
                .decode(Int.self, at: 0)
            say(
                String(
                    format: "claim statements: %d for %d calls = %.1f per second for the fleet (one per call would be 20)", claims, jobs, Double(claims) / drain
                ))
            await connection.close()
            await server.shutdown()
        }
    }

    /// The fake Cognito throttles above 12/s; the fleet's ceiling is 20/s.
    static func throttling(template: String, jobs: Int) async throws {
        say("== adaptive rate: 3 worker processes, ceiling 20/s, fake Cognito throttling above 12/s, \(jobs) jobs")
        let gate = RateGate(rate: 12, burst: 2)
        try await TemporaryDatabase.with(template: template) { database in
            let server = try await FakeHTTPServer.start { _, _ in
                gate.admit() ? .cognitoSuccess() : .cognitoError(400, type: "TooManyRequestsException", message: "Rate exceeded")
            }
            let connection = try await database.connect()
            try await insertJobs(connection, jobs)
            try await setCeiling(connection, 20)
            let workers = try startWorkers(3, workerEnvironment(database, server))
            try await waitFor(connection, succeeded: jobs)
            await stop(workers)
            let calls = gate.calls
            let succeeded = windows(calls.filter { !$0.throttled }.map(\.at), 5)
            let throttled = calls.filter(\.throttled).map(\.at)
            let start = calls.first!.at
            var throttledPerWindow = Array(repeating: 0, count: succeeded.count)
            for at in throttled { throttledPerWindow[min(succeeded.count - 1, Int(seconds(at - start)) / 5)] += 1 }
            say("succeeded per 5 s window (60 = 12/s): \(succeeded.map(String.init).joined(separator: " "))")
            say("throttled per 5 s window:             \(throttledPerWindow.map(String.init).joined(separator: " "))")
            let settled = succeeded.indices.first { index in
                succeeded[index...].dropLast().allSatisfy { $0 >= 54 && $0 <= 63 }
            }
            say("settled near 12/s (every later full window 10.8-12.6/s) from: " + (settled.map { "\($0 * 5) s" } ?? "never") + " (target within 30 s)")
            let failed = try await connection.query("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'failed'")[0].decode(Int.self, at: 0)
            say(
                String(
                    format: "throttled calls: %d of %d (%.1f%%), in the last full window %d; failed jobs: %d",
                    throttled.count, calls.count, Double(throttled.count) / Double(calls.count) * 100,
                    throttledPerWindow.dropLast().last ?? 0, failed))
            await connection.close()
            await server.shutdown()
        }
    }

    /// How soon every worker follows a ceiling change: 0 (pause) and back.
    static func ceilingChange(template: String) async throws {
        say("== ceiling changes while 3 workers run at 20/s")
        try await TemporaryDatabase.with(template: template) { database in
            let server = try await FakeHTTPServer.start()
            let connection = try await database.connect()
            try await insertJobs(connection, 2_000)
            try await setCeiling(connection, 20)
            let workers = try startWorkers(3, workerEnvironment(database, server))
            await server.waitForRequests(100)
            try await setCeiling(connection, 5)
            let lowered = ContinuousClock.now
            await server.waitForRequests(server.requests.count + 40)
            // The moment the gaps between calls became 5/s ones (0.2 s, allowing for jitter).
            let after = server.requests.map(\.receivedAt).filter { $0 > lowered }
            let followed = zip(after, after.dropFirst()).first { seconds($1 - $0) > 0.15 }.map { seconds($0.0 - lowered) }
            try await setCeiling(connection, 0)
            let paused = ContinuousClock.now
            try await Task.sleep(for: .seconds(3))  // measuring an absence of calls takes time
            let lastCall = server.requests.map(\.receivedAt).max()!
            let countAtResume = server.requests.count
            try await setCeiling(connection, 20)
            let resumed = ContinuousClock.now
            await server.waitForRequests(countAtResume + 1)
            let firstAfter = server.requests.map(\.receivedAt).filter { $0 > resumed }.min()!
            await stop(workers)
            say(
                String(
                    format: "20/s -> 5/s followed after %.2f s; pause (0): last call %.2f s after; resume: first call %.2f s after (target <= 2 s)",
                    followed ?? -1, max(0, seconds(lastCall - paused)), seconds(firstAfter - resumed)))
            await connection.close()
            await server.shutdown()
        }
    }
}
