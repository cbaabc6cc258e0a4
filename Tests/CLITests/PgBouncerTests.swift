import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import SystemTesting
import Testing

/// Every command through a real PgBouncer in transaction pooling, where a client's statements
/// may each run on another server connection: no session state may be relied on (prepared
/// statements, session-level locks, LISTEN).
@Suite("cognito-reset through PgBouncer (transaction pooling)")
struct PgBouncerTests {
    static let pool = "eu-west-1_Bouncer1"

    @Test func everyCommandWorksThroughTransactionPooling() async throws {
        try await PrivateCluster.with(responder: { _, _ in .delay(.milliseconds(10), then: .cognitoSuccess()) }) { cluster, server in
            let direct = try await cluster.run("primary", cluster.primary)["URL"]!
            let pooled = try await cluster.run("pgbouncer", cluster.bouncer, cluster.primary)["URL"]!
            let env = [
                "DATABASE_URL": pooled, "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDTEST",
                "AWS_SECRET_ACCESS_KEY": "secret", "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": server.url.absoluteString,
            ]
            func run(_ arguments: [String], stdin: String? = nil) async throws -> ChildProcess.Result {
                let result = try await CognitoResetBinary.run(arguments, environment: env, stdin: stdin)
                #expect(result.status == 0, "\(arguments.joined(separator: " ")): \(result.stderr.suffix(2000))")
                return result
            }

            // Two hosts migrating at once from an empty database: each file applied once, and
            // no advisory lock left behind on a pooled server connection.
            async let first = CognitoResetBinary.run(["migrate"], environment: env)
            async let second = CognitoResetBinary.run(["migrate"], environment: env)
            let (a, b) = try await (first, second)
            #expect(a.status == 0 && b.status == 0, "\(a.stderr) \(b.stderr)")
            #expect(
                try await countRows(direct, "SELECT count(*) FROM cognito_reset.schema_migrations")
                    == (try FileManager.default.contentsOfDirectory(atPath: repositoryRoot.appending(path: "migrations").path)
                        .filter { $0.hasSuffix(".sql") }.count))
            #expect(try await countRows(direct, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0)
            _ = try await run(["migrate", "status"])

            _ = try await run(["enqueue", "--pool", Self.pool, "--user", "single"])
            let folder = cluster.folder.appending(path: "csv")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let csv = folder.appending(path: "users.csv")
            try ("username,user_pool_id\n" + (1...50).map { "bulk\($0),\(Self.pool)\n" }.joined()).write(to: csv, atomically: true, encoding: .utf8)
            _ = try await run(["import", csv.path])
            #expect(try await countRows(direct, "SELECT count(*) FROM cognito_reset.jobs") == 51)
            _ = try await run(["rate", "set", "200/s"])
            #expect(try await run(["rate", "show"]).stdout.contains("200"))
            #expect(try await run(["status"]).stdout.contains("51"))
            #expect(try await run(["jobs", "list", "--json"]).stdout.contains("bulk50"))

            // A worker through the pooler: its statements work unprepared, and with LISTEN unable
            // to work through transaction pooling, an idle worker still finds a new job within its
            // poll interval.
            let worker = try CognitoResetBinary.start(
                ["worker", "--poll", "300ms", "--lease", "5s", "--heartbeat", "1s"], environment: env)
            try await eventually("the queue to drain through PgBouncer") {
                (try? await countRows(direct, "SELECT count(*) FROM cognito_reset.jobs WHERE state <> 'succeeded'")) == 0
            }
            let connection = try await PostgresConnection.connect(try ConnectionConfiguration(direct))
            try await connection.execute("INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(Self.pool), 'late')")
            await connection.close()
            let insertedAt = ContinuousClock.now
            try await eventually("the job inserted while idle to be called", deadline: .seconds(20)) {
                server.requests.contains { $0.username == "late" }
            }
            let pickedUpIn = server.requests.first { $0.username == "late" }!.receivedAt - insertedAt
            #expect(pickedUpIn < .seconds(3), "an idle worker found a new job after \(pickedUpIn) (poll 300ms)")
            worker.send(SIGTERM)
            let stopped = await worker.wait()
            #expect(stopped.status == 0, "\(stopped.stderr.suffix(2000))")
            #expect(!stopped.stderr.contains("does not exist"), "no prepared statement lost: \(stopped.stderr.suffix(2000))")

            #expect(try await countRows(direct, "SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'") == 52)
            #expect(
                try await countRows(
                    direct,
                    """
                    SELECT count(*) FROM (SELECT job_id FROM cognito_reset.attempts GROUP BY job_id HAVING count(*) <> 1) AS x
                    """) == 0)
            #expect(try await countRows(direct, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0)
        }
    }
}
