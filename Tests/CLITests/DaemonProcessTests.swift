import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import SystemTesting
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `cognito-reset worker` as systemd runs it: notify protocol, watchdog, metrics and health,
/// configuration refused before READY=1, and a database that goes away and comes back.
@Suite("cognito-reset worker under systemd")
struct DaemonProcessTests {
    static let pool = "eu-west-1_Daemon1"

    func environment(_ databaseURL: String, _ server: FakeHTTPServer, _ notify: NotifySocketListener) -> [String: String] {
        [
            "DATABASE_URL": databaseURL, "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
            "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": server.url.absoluteString, "NOTIFY_SOCKET": notify.name,
            "WATCHDOG_USEC": "1000000", "COGNITO_RESET_STATUS_INTERVAL": "200ms", "COGNITO_RESET_POLL": "200ms",
        ]
    }

    static func get(_ port: Int, _ path: String) async -> (status: Int, body: String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.timeoutInterval = 10
        guard let (data, response) = try? await URLSession.shared.data(for: request) else { return (0, "") }
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    @Test func reportsReadyStatusWatchdogAndStoppingInOrderAndServesMetrics() async throws {
        let server = try await FakeHTTPServer.start(responder: { _, _ in .delay(.milliseconds(200), then: .cognitoSuccess()) })
        let notify = try NotifySocketListener()
        try await TemporaryDatabase.with { database in
            var env = environment(database.configuration.resolvedConnectionString(), server, notify)
            #expect(try await CognitoResetBinary.run(["migrate"], environment: env).status == 0)
            let connection = try await database.connect()
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username) SELECT \(Self.pool), 'user' || g FROM generate_series(1, 40) g
                """)
            let port = try TestPorts.unused()
            env["COGNITO_RESET_METRICS_ADDRESS"] = "127.0.0.1:\(port)"
            let worker = try CognitoResetBinary.start(["worker", "--rate", "unlimited", "--concurrency", "4"], environment: env)
            var messages = await notify.collect(until: { $0.contains("WATCHDOG=1") })
            await server.waitForRequests(8)

            let metrics = await Self.get(port, "/metrics")
            #expect(metrics.status == 200)
            for name in [
                "cognito_reset_jobs_claimed_total", "cognito_reset_jobs_succeeded_total", "cognito_reset_calls_in_flight",
                "cognito_reset_cognito_call_duration_seconds_bucket", "cognito_reset_queue_runnable_jobs",
                "cognito_reset_queue_oldest_runnable_age_seconds", "cognito_reset_database_up",
            ] {
                #expect(metrics.body.contains(name), "\(name) missing from /metrics")
            }
            #expect(!metrics.body.contains("user1"), "no username in any label")
            Self.checkProcessMetrics(metrics.body)
            #expect(await Self.get(port, "/healthz").status == 200)
            #expect(await Self.get(port, "/readyz").status == 200)
            #expect(await Self.get(port, "/nope").status == 404)

            worker.send(SIGTERM)
            messages += await notify.collect(until: { $0.contains("STOPPING=1") })
            let result = await worker.wait()
            #expect(result.status == 0, "\(result.stderr)")

            let ready = messages.firstIndex { $0.contains("READY=1") }
            let status = messages.lastIndex { $0.hasPrefix("STATUS=") && $0.contains("in flight") }
            let watchdog = messages.firstIndex { $0 == "WATCHDOG=1" }
            let stopping = messages.firstIndex { $0.contains("STOPPING=1") }
            #expect(ready != nil && status != nil && watchdog != nil && stopping != nil, "\(messages)")
            if let ready, let status, let watchdog, let stopping {
                #expect(ready < status && ready < watchdog && status < stopping && watchdog < stopping, "\(messages)")
                #expect(messages[..<ready].allSatisfy { $0.hasPrefix("STATUS=") }, "nothing but STATUS before READY")
            }
            await connection.close()
        }
        await server.shutdown()
    }

    /// The standard process metrics carry this process's values, and build_info its version.
    static func checkProcessMetrics(_ body: String) {
        func value(_ name: String) -> Double? {
            body.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }
        let now = Date().timeIntervalSince1970
        #expect(value("process_start_time_seconds").map { now - 300 < $0 && $0 <= now + 1 } == true, "started within minutes")
        #expect(value("process_resident_memory_bytes").map { $0 > 1_000_000 && $0 < 2_000_000_000 } == true)
        #expect(value("process_cpu_seconds_total").map { $0 > 0 && $0 < 600 } == true)
        #expect(value("process_open_fds").map { $0 >= 3 && $0 < 10_000 } == true)
        #expect(value("process_max_fds").map { $0 >= 64 } == true)
        #expect(body.contains("# TYPE process_cpu_seconds_total counter"))
        let version =
            (try? String(contentsOf: repositoryRoot.appending(path: "VERSION"), encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
        #expect(body.contains(#"cognito_reset_build_info{version="\#(version)",revision=""#), "\(body.prefix(400))")
    }

    @Test func badConfigurationFailsBeforeReady() async throws {
        let server = try await FakeHTTPServer.start()
        let notify = try NotifySocketListener()
        try await TemporaryDatabase.with { database in
            let env = environment(database.configuration.resolvedConnectionString(), server, notify)
            #expect(try await CognitoResetBinary.run(["migrate"], environment: env).status == 0)
            let folder = FileManager.default.temporaryDirectory.appending(path: "cfg-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let badFile = folder.appending(path: "bad.conf")
            try "# settings\nCOGNITO_RESET_CONCURRENCY=8\nCOGNITO_RESET_SPEED=fast\n".write(to: badFile, atomically: true, encoding: .utf8)
            let busy = try await FakeHTTPServer.start()  // a port already taken

            let cases: [(String, [String: String], [String], String)] = [
                ("unknown environment key", ["COGNITO_RESET_CONCURENCY": "8"], [], "COGNITO_RESET_CONCURENCY: unknown setting"),
                ("unknown file key", [:], ["--config", badFile.path], "line 3: COGNITO_RESET_SPEED: unknown setting"),
                ("bad duration", ["COGNITO_RESET_LEASE": "soon"], [], "COGNITO_RESET_LEASE: must be a duration"),
                ("huge duration", ["COGNITO_RESET_GRACE": "1e30"], [], "COGNITO_RESET_GRACE: must be a duration"),
                ("no grace", ["COGNITO_RESET_GRACE": "0s"], [], "COGNITO_RESET_GRACE: must be at least 1s"),
                ("statement timeout too short", ["COGNITO_RESET_STATEMENT_TIMEOUT": "5ms"], [], "COGNITO_RESET_STATEMENT_TIMEOUT: must be from 100ms to 1h"),
                ("bad log format", ["COGNITO_RESET_LOG_FORMAT": "xml"], [], "COGNITO_RESET_LOG_FORMAT: must be logfmt or json"),
                ("malformed metrics address", ["COGNITO_RESET_METRICS_ADDRESS": "localhost"], [], "COGNITO_RESET_METRICS_ADDRESS: must be HOST:PORT"),
                ("address not on this host", ["COGNITO_RESET_METRICS_ADDRESS": "192.0.2.1:9464"], [], "cannot listen on 192.0.2.1:9464"),
                ("address in use", ["COGNITO_RESET_METRICS_ADDRESS": "127.0.0.1:\(busy.url.port!)"], [], "cannot listen on"),
                ("no AWS credentials", ["AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""], [], "no AWS credentials found"),
                ("poll slower than the watchdog pings", ["COGNITO_RESET_POLL": "2s"], [], "--poll: must be below half of systemd's WatchdogSec="),
            ]
            for (name, overrides, arguments, message) in cases {
                let result = try await CognitoResetBinary.run(["worker"] + arguments, environment: env.merging(overrides) { $1 })
                #expect(result.status == 2, "\(name): \(result.stderr)")
                #expect(result.stderr.hasPrefix("error: ") && result.stderr.contains(message), "\(name): \(result.stderr)")
                #expect(result.stderr.split(separator: "\n").count == 1, "\(name): one line")
                #expect(!result.stderr.contains("secret"), "\(name): no secret")
            }
            // Nothing above may have told systemd it was ready.
            while let message = await notify.next(timeout: .milliseconds(200)) {
                #expect(!message.contains("READY=1"), "\(message)")
            }
            await busy.shutdown()
        }
        await server.shutdown()
    }

    /// A private server of its own, stopped and started again under the running daemon.
    @Test func survivesTheDatabaseStoppingAndStartingWithoutARestart() async throws {
        let scripts = repositoryRoot.appending(path: "scripts/lib/common.sh").path
        // No spaces in the path: pg_ctl's -o options are split on them.
        let folder = FileManager.default.temporaryDirectory.appending(path: "pg-outage-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let dir = folder.appending(path: "pg").path
        let output = folder.appending(path: "out").path
        /// Runs `script` after sourcing common.sh, with system(3) on a thread of its own: the
        /// server it starts outlives the shell, which Foundation's Process does not always notice.
        func shell(_ script: String) async -> (status: Int32, stdout: String) {
            let command = "/bin/bash -c '. \(scripts) && \(script)' >\(output) 2>&1"
            let status = await withCheckedContinuation { continuation in
                Thread.detachNewThread { continuation.resume(returning: system(command)) }
            }
            return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
        }
        let started = await shell(#"pg_start "\#(dir)" >/dev/null 2>&1 && printf "%s %s" "$DATABASE_URL" "$PG_PORT""#)
        try #require(started.status == 0, "\(started.stdout)")
        let parts = started.stdout.split(separator: " ")
        let (databaseURL, pgPort) = (String(parts[0]), String(parts[1]))
        defer {
            Thread.detachNewThread { _ = system("/bin/bash -c '. \(scripts) && pg_stop \(dir); rm -rf \(folder.path)'") }
        }

        let server = try await FakeHTTPServer.start()
        let notify = try NotifySocketListener()
        var env = environment(databaseURL, server, notify)
        let port = try TestPorts.unused()
        env["COGNITO_RESET_METRICS_ADDRESS"] = "127.0.0.1:\(port)"
        #expect(try await CognitoResetBinary.run(["migrate"], environment: env).status == 0)
        let worker = try CognitoResetBinary.start(["worker", "--lease", "3s", "--heartbeat", "1s"], environment: env)
        _ = await notify.collect(until: { $0.contains("READY=1") })
        #expect(await Self.get(port, "/readyz").status == 200)
        // Work in progress at a shared rate of 10/s when the database goes away.
        #expect(try await CognitoResetBinary.run(["rate", "set", "10/s"], environment: env).status == 0)
        let connection = try await PostgresConnection.connect(try ConnectionConfiguration(databaseURL))
        try await connection.execute(
            """
            INSERT INTO cognito_reset.jobs (user_pool_id, username) SELECT \(Self.pool), 'backlog' || g FROM generate_series(1, 200) g
            """)
        await connection.close()
        await server.waitForRequests(5)

        #expect(await shell(#"pg_stop "\#(dir)""#).status == 0)
        let stoppedAt = ContinuousClock.now
        let down = await notify.collect(until: { $0.contains("database unreachable") })
        #expect(down.last?.contains("STATUS=database unreachable, retrying") == true, "\(down)")
        #expect(await Self.get(port, "/readyz").status == 503)
        #expect(await Self.get(port, "/healthz").status == 200, "alive while the database is away")
        // The watchdog is still fed while the worker waits for the database.
        _ = await notify.collect(until: { $0 == "WATCHDOG=1" })
        // No slots from the database, no calls: the worker does not fall back to a rate of its own
        // (only calls whose slot it held, at most half a second ahead, may still go out).
        try await Task.sleep(for: .seconds(3))  // measuring an absence of calls takes time
        let lateCalls = server.requests.filter { $0.receivedAt > stoppedAt + .seconds(2) }
        #expect(lateCalls.isEmpty, "\(lateCalls.count) calls while the database was down")
        #expect(server.requests.count < 200)

        #expect(await shell(#"pg_resume "\#(dir)" \#(pgPort)"#).status == 0)
        // Ready again once a heartbeat begun after the outage was answered in full.
        let back = await notify.collect(until: { $0.hasPrefix("STATUS=") && $0.contains("runnable") && !$0.contains("retrying") })
        #expect(back.last?.contains("in flight") == true, "\(back)")
        #expect(await Self.get(port, "/readyz").status == 200)
        // And it works again: a job enqueued now is done.
        let enqueued = try await CognitoResetBinary.run(
            ["enqueue", "--pool", Self.pool, "--user", "after-outage", "--priority", "0"], environment: env)
        #expect(enqueued.status == 0, "\(enqueued.stderr)")
        try await withDeadline(.seconds(60), "the job enqueued after the outage to be called") {
            while !server.requests.contains(where: { $0.username == "after-outage" }) {
                await server.waitForRequests(server.requests.count + 1)
            }
        }

        worker.send(SIGTERM)
        let result = await worker.wait()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("database reachable again"))
        await server.shutdown()
    }
}
