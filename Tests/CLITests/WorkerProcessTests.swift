import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import SystemTesting
import Testing

/// The worker as operators run it: a real process, killed or stopped by signals.
@Suite("cognito-reset worker processes")
struct WorkerProcessTests {
    static let pool = "eu-west-1_Crash1"

    func environment(_ database: TemporaryDatabase, _ server: FakeHTTPServer) -> [String: String] {
        [
            "DATABASE_URL": database.configuration.resolvedConnectionString(), "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
            "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": server.url.absoluteString,
        ]
    }

    /// A worker with a short lease by default (a killed worker's jobs come back quickly).
    func startWorker(_ environment: [String: String], _ extra: [String] = [], lease: String = "2s", heartbeat: String = "500ms") throws -> ChildProcess {
        try CognitoResetBinary.start(
            ["worker", "--concurrency", "16", "--rate", "unlimited", "--lease", lease, "--heartbeat", heartbeat, "--poll", "200ms"] + extra,
            environment: environment)
    }

    func waitUntilAllFinished(_ connection: PostgresConnection) async throws {
        try await withDeadline(.seconds(90), "every job to finish") {
            while try await connection.query(
                "SELECT count(*) FROM cognito_reset.jobs WHERE state NOT IN ('succeeded', 'failed', 'cancelled')"
            )[0].decode(Int.self, at: 0) > 0 {
                try await Task.sleep(for: .milliseconds(100))  // polling a condition, bounded by the deadline
            }
        }
    }

    /// The cron-style use of --drain: a worker is SIGKILLed holding 20 claimed jobs (their calls
    /// hang), and only `worker --drain` runs afterwards. The first drain waits for the dead
    /// worker's leases, rescues the jobs and runs them; nothing stays `running`.
    @Test func drainRunsRecoverWhatAKilledWorkerHeld() async throws {
        let server = try await FakeHTTPServer.start(responder: { _, number in
            number <= 20 ? .delay(.seconds(60), then: .cognitoSuccess()) : .cognitoSuccess()
        })
        try await TemporaryDatabase.with { database in
            let env = environment(database, server)
            #expect(try await CognitoResetBinary.run(["migrate"], environment: env).status == 0)
            let connection = try await database.connect()
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username) SELECT \(Self.pool), 'held' || g FROM generate_series(1, 20) g
                """)
            let victim = try CognitoResetBinary.start(
                ["worker", "--rate", "unlimited", "--concurrency", "20", "--lease", "3s", "--heartbeat", "1s"], environment: env)
            await server.waitForRequests(20)
            victim.send(SIGKILL)
            _ = await victim.wait()
            #expect(try await connection.query("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'running'")[0].decode(Int.self, at: 0) == 20)

            let drain = try await CognitoResetBinary.run(["worker", "--drain", "--rate", "unlimited"], environment: env)
            #expect(drain.status == 0, "\(drain.stderr.suffix(2000))")
            #expect(try await connection.query("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'")[0].decode(Int.self, at: 0) == 20)
            #expect(
                try await connection.query(
                    """
                    SELECT count(*) FROM cognito_reset.attempts WHERE outcome = 'lease_expired'
                    """)[0].decode(Int.self, at: 0) == 20, "each lost call in the audit")
            await connection.close()
        }
        await server.shutdown()
    }

    @Test func aWorkerKilledMidBatchLosesNothingAndRepeatsOnlyItsInFlightCalls() async throws {
        let server = try await FakeHTTPServer.start(responder: { _, _ in .delay(.milliseconds(100), then: .cognitoSuccess()) })
        try await TemporaryDatabase.with { database in
            let env = environment(database, server)
            #expect(try await CognitoResetBinary.run(["migrate"], environment: env).status == 0)
            let connection = try await database.connect()
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username) SELECT \(Self.pool), 'user' || g FROM generate_series(1, 300) g
                """)
            let victim = try startWorker(env)
            await server.waitForRequests(60)
            kill(victim.pid, SIGKILL)
            let result = await victim.wait()
            #expect(result.status != 0)
            // The victim's requests are those on its connections: one it sent just before the
            // kill may reach the server after this line, and still counts as the victim's.
            let victimConnections = Set(server.requests.map(\.connection))
            let recordedBeforeKill = try await connection.query(
                "SELECT username FROM cognito_reset.jobs WHERE state = 'succeeded'"
            ).map { try $0.decode(String.self, at: 0) }

            let rescuer = try startWorker(env)
            try await waitUntilAllFinished(connection)
            rescuer.send(SIGTERM)
            #expect(await rescuer.wait().status == 0)

            #expect(try await connection.query("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'")[0].decode(Int.self, at: 0) == 300)
            let calls = server.requests.reduce(into: [String: Int]()) { counts, request in
                if let user = request.username { counts[user, default: 0] += 1 }
            }
            let repeated = Set(calls.filter { $0.value > 1 }.keys)
            let calledBeforeKill = Set(server.requests.filter { victimConnections.contains($0.connection) }.compactMap(\.username))
            #expect(calls.count == 300)
            #expect(repeated.isSubset(of: calledBeforeKill), "only calls the killed worker had made are repeated")
            #expect(repeated.isDisjoint(with: recordedBeforeKill), "a recorded outcome is never repeated")
            #expect(repeated.count <= 32, "at most the calls in flight or awaiting their write: \(repeated.count)")
            // Every repeated job was rescued from the dead worker's lease (some rescued ones had
            // not reached the server yet, so they ran once).
            let rescued = Set(
                try await connection.query(
                    """
                    SELECT j.username FROM cognito_reset.attempts a JOIN cognito_reset.jobs j ON j.id = a.job_id
                    WHERE a.outcome = 'lease_expired'
                    """
                ).map { try $0.decode(String.self, at: 0) })
            #expect(repeated.isSubset(of: rescued))
            #expect(rescued.count <= 32, "claimed and not yet recorded: calls in flight plus outcomes awaiting their batched write")
            await connection.close()
        }
        await server.shutdown()
    }

    @Test func sigtermStopsGracefullyWithExitZero() async throws {
        let server = try await FakeHTTPServer.start(responder: { _, _ in .delay(.milliseconds(300), then: .cognitoSuccess()) })
        try await TemporaryDatabase.with { database in
            let env = environment(database, server)
            #expect(try await CognitoResetBinary.run(["migrate"], environment: env).status == 0)
            let connection = try await database.connect()
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username) SELECT \(Self.pool), 'user' || g FROM generate_series(1, 100) g
                """)
            // A lease no stall of a loaded machine can outlast: nothing here should be rescued.
            let worker = try startWorker(env, ["--log-level", "info"], lease: "30s", heartbeat: "1s")
            await server.waitForRequests(20)
            worker.send(SIGTERM)
            let result = await worker.wait()
            #expect(result.status == 0, "\(result.stderr)")
            // Every call that was made is recorded; nothing is left running.
            let called = server.requests.count
            let succeeded = try await connection.query("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'")[0].decode(Int.self, at: 0)
            let running = try await connection.query("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'running'")[0].decode(Int.self, at: 0)
            #expect(succeeded == called, "called \(called), succeeded \(succeeded), running \(running); worker log: \(result.stderr)")
            #expect(running == 0)
            #expect(
                try await connection.query("SELECT state FROM cognito_reset.workers")[0].decode(String.self, at: 0) == "stopped",
                "worker log: \(result.stderr)")
            await connection.close()
        }
        await server.shutdown()
    }

    @Test func drainRunsToCompletionAndRefusesAnUnmigratedDatabase() async throws {
        let server = try await FakeHTTPServer.start()
        try await TemporaryDatabase.with { database in
            let env = environment(database, server)
            let unmigrated = try await CognitoResetBinary.run(["worker", "--drain"], environment: env)
            #expect(unmigrated.status == 1)
            #expect(unmigrated.stderr.contains("cognito-reset migrate"))
            #expect(try await CognitoResetBinary.run(["migrate"], environment: env).status == 0)
            let connection = try await database.connect()
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username) SELECT \(Self.pool), 'user' || g FROM generate_series(1, 20) g
                """)
            let drained = try await CognitoResetBinary.run(["worker", "--drain", "--rate", "unlimited"], environment: env)
            #expect(drained.status == 0, "\(drained.stderr)")
            #expect(try await connection.query("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'")[0].decode(Int.self, at: 0) == 20)
            let badRate = try await CognitoResetBinary.run(["worker", "--rate", "fast"], environment: env)
            #expect(badRate.status == 2)
            #expect(badRate.stderr.hasPrefix("error: --rate:"))
            let slowHeartbeat = try await CognitoResetBinary.run(["worker", "--lease", "30s", "--heartbeat", "20s"], environment: env)
            #expect(slowHeartbeat.status == 2)
            #expect(slowHeartbeat.stderr.hasPrefix("error: --heartbeat:"))
            let noPoll = try await CognitoResetBinary.run(["worker", "--poll", "0"], environment: env)
            #expect(noPoll.status == 2)
            await connection.close()
        }
        await server.shutdown()
    }
}
