import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import SystemTesting
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The worker binary against private PostgreSQL servers that hang, fail over, and sit behind
/// PgBouncer (scripts/lib/pg_cluster.sh): what production databases do, one fault at a time.
/// scripts/chaos.sh brings the faults together.
@Suite("cognito-reset worker under database faults")
struct DatabaseFaultTests {
    static let pool = "eu-west-1_Fault1"
    static let grace: Duration = .seconds(4)

    func environment(_ databaseURL: String, _ server: FakeHTTPServer, _ notify: NotifySocketListener? = nil) -> [String: String] {
        var env = [
            "DATABASE_URL": databaseURL, "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDTEST",
            "AWS_SECRET_ACCESS_KEY": "secret", "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": server.url.absoluteString,
            "COGNITO_RESET_STATUS_INTERVAL": "200ms", "COGNITO_RESET_POLL": "200ms",
        ]
        if let notify { env["NOTIFY_SOCKET"] = notify.name }
        return env
    }

    /// Every job succeeded, each with exactly one success in the audit from a claim that was not
    /// rescued; a job called more than once has a lease_expired row for the call it lost (its
    /// worker gave it up). A rescued claim's success may still reach the audit late (docs/design.md,
    /// "Record": the batch appends every call, and the job refuses the outdated claim), as when a
    /// worker cut off by a hang left its outcome batch queued at the stopped server and the
    /// server ran it only after the drain rescued that claim. That row stands beside the claim's
    /// lease_expired row, and is the only second success allowed.
    static func checkDelivery(_ url: String, jobs: Int, server: FakeHTTPServer) async throws {
        #expect(try await countRows(url, "SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'") == jobs)
        let wrong = try await textRows(
            url,
            """
            WITH kept AS (
                SELECT s.job_id FROM cognito_reset.attempts s
                WHERE s.outcome = 'succeeded'
                  AND NOT EXISTS (SELECT 1 FROM cognito_reset.attempts l
                                  WHERE l.job_id = s.job_id AND l.attempt = s.attempt AND l.worker_id = s.worker_id
                                    AND l.outcome = 'lease_expired')
            ), wrong AS (
                SELECT j.id FROM cognito_reset.jobs j LEFT JOIN kept k ON k.job_id = j.id
                GROUP BY j.id HAVING count(k.job_id) <> 1
            )
            SELECT a.job_id || ' attempt ' || a.attempt || ' ' || a.worker_id || ' ' || a.outcome || ' '
                   || a.started_at || ' .. ' || a.finished_at
            FROM cognito_reset.attempts a JOIN wrong w ON w.id = a.job_id
            ORDER BY a.job_id, a.started_at
            """)
        #expect(wrong.isEmpty, "one success per job in the audit, rescued claims' late writes aside: \(wrong)")
        var calls: [String: Int] = [:]
        for request in server.requests { if let user = request.username { calls[user, default: 0] += 1 } }
        #expect(calls.count == jobs, "every job called")
        let repeated = calls.filter { $0.value > 1 }.map(\.key)
        for user in repeated {
            let lost = try await countRows(
                url,
                """
                SELECT count(*) FROM cognito_reset.attempts a JOIN cognito_reset.jobs j ON j.id = a.job_id
                WHERE j.username = '\(user)' AND a.outcome <> 'succeeded'
                """)
            #expect(lost >= 1, "\(user) was called twice with no lost call in the audit")
        }
    }

    static func get(_ port: Int, _ path: String) async -> (status: Int, body: String) {
        await DaemonProcessTests.get(port, path)
    }

    /// One hang, start to end: a worker at work; the hang; it shows as not ready (readyz,
    /// metric, STATUS=) while the worker keeps trying; SIGTERM ends it within --grace whatever its
    /// statements are doing; once the hang ends, `worker --drain` finishes every job, each
    /// succeeded once in the audit.
    func hang(
        _ what: String, start: (PrivateCluster, String) async throws -> Void, end: (PrivateCluster, String) async throws -> Void
    ) async throws {
        try await PrivateCluster.with(responder: { _, _ in .delay(.milliseconds(40), then: .cognitoSuccess()) }) { cluster, server in
            let notify = try NotifySocketListener()
            let url = try await cluster.run("primary", cluster.primary)["URL"]!
            var env = environment(url, server, notify)
            #expect(try await CognitoResetBinary.run(["migrate"], environment: env).status == 0)
            let connection = try await PostgresConnection.connect(try ConnectionConfiguration(url))
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username) SELECT \(Self.pool), 'user' || g FROM generate_series(1, 300) g
                """)
            await connection.close()
            let port = try TestPorts.unused()
            env["COGNITO_RESET_METRICS_ADDRESS"] = "127.0.0.1:\(port)"
            let worker = try CognitoResetBinary.start(
                [
                    "worker", "--rate", "unlimited", "--concurrency", "2", "--lease", "3s", "--heartbeat", "1s",
                    "--grace", "4s", "--statement-timeout", "500ms",
                ], environment: env)
            _ = await notify.collect(until: { $0.contains("READY=1") })
            await server.waitForRequests(10)
            #expect(await Self.get(port, "/readyz").status == 200)

            // A loaded machine can make a statement overrun its deadline before the fault: only
            // what the worker reports from here on counts.
            notify.skipReceived()
            try await start(cluster, url)
            let slow = await notify.collect(until: { $0.contains("not answering in time") || $0.contains("unreachable") })
            #expect(
                slow.last.map { $0.hasPrefix("STATUS=") && ($0.contains("not answering in time") || $0.contains("unreachable")) } == true,
                "\(what): \(slow.suffix(3))")
            // Each is sampled on its own schedule (/metrics by the status loop): both must show
            // the hang while it lasts.
            try await eventually("\(what): /readyz 503", deadline: .seconds(30)) { await Self.get(port, "/readyz").status == 503 }
            try await eventually("\(what): cognito_reset_database_up 0", deadline: .seconds(30)) {
                await Self.get(port, "/metrics").body.contains("cognito_reset_database_up 0")
            }
            #expect(await Self.get(port, "/healthz").status == 200, "\(what): alive")

            let stopAt = ContinuousClock.now
            worker.send(SIGTERM)
            let result = await worker.wait()
            // Timed to the exit as the termination handler saw it: the test's own tasks may be
            // scheduled late on a machine running the whole suite.
            let took = result.endedAt - stopAt
            // The margin: process scheduling on a loaded machine; the backstop counts from the signal.
            #expect(took < Self.grace + .seconds(2), "\(what): SIGTERM took \(took) with --grace 4s")
            #expect(!result.stderr.contains("Fatal error") && !result.stderr.contains("crashed"), "\(what): \(result.stderr.suffix(2000))")

            try await end(cluster, url)
            let drained = try await CognitoResetBinary.run(
                ["worker", "--drain", "--rate", "unlimited", "--lease", "3s", "--heartbeat", "1s"], environment: environment(url, server))
            #expect(drained.status == 0, "\(what): \(drained.stderr.suffix(2000))")
            try await Self.checkDelivery(url, jobs: 300, server: server)
        }
    }

    /// After a failover the new primary still names a synchronous standby that is gone: every
    /// commit waits. statement_timeout does not cover that wait; the client-side deadline does.
    @Test func commitsWaitingForAMissingSynchronousStandby() async throws {
        try await hang("commits waiting for a standby") { cluster, _ in
            try await cluster.run("sync", cluster.primary, "ghost")
        } end: { cluster, _ in
            try await cluster.run("sync", cluster.primary, "")
        }
    }

    /// Another session holds the jobs' table locked: server-side statement_timeout ends each wait.
    @Test func aLockHeldOnTheJobs() async throws {
        let holder = LockedValue<ChildProcess?>(nil)
        try await hang("a lock held on the jobs") { _, url in
            let lock = try ChildProcess(
                URL(fileURLWithPath: "/usr/bin/psql"),
                [
                    url, "-X", "-c", "BEGIN", "-c", "LOCK TABLE cognito_reset.jobs_active IN ACCESS EXCLUSIVE MODE",
                    "-c", "SELECT pg_sleep(600)",
                ],
                environment: ProcessInfo.processInfo.environment)
            holder.withLock { $0 = lock }
        } end: { _, url in
            await holder.withLock { $0 }?.stop()
            // The server notices a vanished client only when it next talks to it: end the
            // sleeping session (and its lock) from the server side.
            let admin = try await PostgresConnection.connect(try ConnectionConfiguration(url))
            try await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")
            await admin.close()
        }
    }

    /// The whole server stopped (SIGSTOP): nothing answers, not even a cancel request.
    @Test func aServerThatDoesNotAnswerAtAll() async throws {
        try await hang("a SIGSTOPped server") { cluster, _ in
            try await cluster.signalServer(cluster.primary, SIGSTOP)
        } end: { cluster, _ in
            try await cluster.signalServer(cluster.primary, SIGCONT)
        }
    }

    /// libpq's own failover: DATABASE_URL names both servers with target_session_attrs=read-write.
    /// The primary crashes under a running worker and its synchronous standby is promoted; the same
    /// worker process carries on: nothing lost, one success per job in the audit, calls repeated
    /// only for jobs in flight at the crash.
    @Test func survivesFailoverToTheSynchronousStandby() async throws {
        try await PrivateCluster.with(responder: { _, _ in .delay(.milliseconds(30), then: .cognitoSuccess()) }) { cluster, server in
            let primary = try await cluster.run("primary", cluster.primary)
            let standby = try await cluster.run("standby", cluster.primary, cluster.standby)
            let url =
                "postgresql://postgres:\(primary["PASSWORD"]!)@127.0.0.1:\(primary["PORT"]!),127.0.0.1:\(standby["PORT"]!)/postgres?target_session_attrs=read-write"
            let env = environment(url, server)
            let migrated = try await CognitoResetBinary.run(["migrate"], environment: env)
            #expect(migrated.status == 0, "\(migrated.stderr)")
            let connection = try await PostgresConnection.connect(try ConnectionConfiguration(url))
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username) SELECT \(Self.pool), 'user' || g FROM generate_series(1, 400) g
                """)
            await connection.close()
            let concurrency = 8
            let worker = try CognitoResetBinary.start(
                [
                    "worker", "--rate", "unlimited", "--concurrency", "\(concurrency)", "--lease", "5s", "--heartbeat", "1s",
                    "--statement-timeout", "1s",
                ], environment: env)
            await server.waitForRequests(100)

            try await cluster.run("stop", cluster.primary, "immediate")
            let promoted = try await cluster.run("promote", cluster.standby)
            let newURL = promoted["URL"]!
            try await eventually("every job to finish on the promoted standby", deadline: .seconds(120)) {
                (try? await countRows(newURL, "SELECT count(*) FROM cognito_reset.jobs WHERE state <> 'succeeded'")) == 0
            }
            worker.send(SIGTERM)
            let result = await worker.wait()
            #expect(result.status == 0, "the same worker process carried on: \(result.stderr.suffix(2000))")
            try await Self.checkDelivery(newURL, jobs: 400, server: server)
            let duplicates = server.requests.count - 400
            #expect(duplicates <= 2 * concurrency, "\(duplicates) calls repeated; only those in flight at the crash may be")
        }
    }
}
