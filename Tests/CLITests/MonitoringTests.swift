import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import SystemTesting
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// monitoring/: the alert rules and both dashboards against the real parts. A private Prometheus
/// (Debian's package) scrapes a running worker with the rules loaded; every query of the
/// Prometheus dashboard runs against it, and every query of the SQL dashboard runs as a login
/// role in `cognito_reset_monitor`. (promtool's own unit tests of the rules run in
/// scripts/test.sh.)
@Suite("Monitoring: alert rules and dashboards, live")
struct MonitoringTests {
    static let pool = "eu-west-1_Watch1"
    static let alerts = [
        "CognitoResetDatabaseDown", "CognitoResetQueueStalled", "CognitoResetOldestJobTooOld", "CognitoResetFailuresHigh",
        "CognitoResetThrottled", "CognitoResetNoWorkers", "CognitoResetRatePaused", "CognitoResetJobsRescued",
    ]
    static var monitoring: URL { repositoryRoot.appending(path: "monitoring") }

    /// Targets of the Prometheus dashboard that the scenario cannot fill, each with its reason.
    /// Every other query must return data.
    static let emptyByDesign: [String: String] = [
        "cognito_reset_database_errors_total": "no statement fails in this scenario (the counter appears with its first error)",
        "ALERTS": "an annotation query; checked for validity only",
    ]

    func environment(_ databaseURL: String, _ server: FakeHTTPServer) -> [String: String] {
        [
            "DATABASE_URL": databaseURL, "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
            "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": server.url.absoluteString,
            "COGNITO_RESET_STATUS_INTERVAL": "200ms", "COGNITO_RESET_POLL": "200ms",
        ]
    }

    /// Users named `slow*` hang on their first call (a worker is killed holding them), `gone*`
    /// do not exist (failed for good), `busy*` are throttled once; the rest succeed.
    static func responder() -> FakeHTTPServer.Responder {
        let seen = LockedValue<[String: Int]>([:])
        return { request, _ in
            let user = request.username ?? ""
            let call = seen.withLock {
                $0[user, default: 0] += 1
                return $0[user]!
            }
            if user.hasPrefix("slow"), call == 1 { return .hang }
            if user.hasPrefix("gone") { return .cognitoError(400, type: "UserNotFoundException", message: "User does not exist.") }
            if user.hasPrefix("busy"), call == 1 {
                return .cognitoError(400, type: "TooManyRequestsException", message: "Too many requests")
            }
            return .delay(.milliseconds(20), then: .cognitoSuccess())
        }
    }

    @Test func rulesLoadAndEveryDashboardQueryAnswers() async throws {
        let server = try await FakeHTTPServer.start(responder: Self.responder())
        try await TemporaryDatabase.with { database in
            let url = database.configuration.resolvedConnectionString()
            var env = environment(url, server)
            #expect(try await CognitoResetBinary.run(["migrate"], environment: env).status == 0)
            let connection = try await database.connect()

            // A worker killed while it holds two calls: its leases expire and get rescued.
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username) SELECT \(Self.pool), 'slow' || g FROM generate_series(1, 2) g
                """)
            let doomed = try CognitoResetBinary.start(
                ["worker", "--rate", "unlimited", "--lease", "2s", "--heartbeat", "500ms"], environment: env)
            await server.waitForRequests(2)
            doomed.send(SIGKILL)
            _ = await doomed.wait()

            let port = try TestPorts.unused()
            env["COGNITO_RESET_METRICS_ADDRESS"] = "127.0.0.1:\(port)"
            let worker = try CognitoResetBinary.start(
                ["worker", "--rate", "500", "--lease", "2s", "--heartbeat", "500ms", "--concurrency", "4"], environment: env)
            let prometheus = try Prometheus.start(scraping: port, rules: Self.monitoring.appending(path: "prometheus/alerts.yml"))
            do {
                // The work comes once Prometheus is scraping, so it sees the counters move.
                try await eventually("Prometheus to scrape the worker", deadline: .seconds(60)) {
                    try await prometheus.query("count_over_time(up{job=\"\(Prometheus.job)\"}[1m]) >= 3").count == 1
                }
                try await connection.execute(
                    """
                    INSERT INTO cognito_reset.jobs (user_pool_id, username)
                    SELECT \(Self.pool), kind || g FROM generate_series(1, 30) g, unnest(ARRAY['user', 'gone', 'busy']) AS kind
                    WHERE kind = 'user' OR g <= 4
                    """)
                try await check(prometheus, database: database)
            } catch {
                await prometheus.stop()
                await worker.stop()
                await connection.close()
                throw error
            }
            await prometheus.stop()
            worker.send(SIGTERM)
            _ = await worker.wait()
            await connection.close()
        }
        await server.shutdown()
    }

    private func check(_ prometheus: Prometheus, database: TemporaryDatabase) async throws {
        // Every job final (38 new, 2 rescued), and Prometheus has seen it.
        try await eventually("every job final", deadline: .seconds(90)) {
            try await countRows(
                database.configuration.resolvedConnectionString(),
                """
                SELECT count(*) FROM cognito_reset.jobs WHERE state NOT IN ('succeeded', 'failed')
                """) == 0
        }
        // 30 users, 4 throttled once and 2 rescued succeed; 4 unknown users fail. Prometheus has
        // seen that in at least two samples, and the 30 s rate windows below still hold the rise.
        try await eventually("Prometheus to see the rescue and the outcomes", deadline: .seconds(60)) {
            let rescued = try await prometheus.query("sum(cognito_reset_jobs_rescued_total)")
            let done = try await prometheus.query("sum(min_over_time(cognito_reset_jobs_succeeded_total[2s]))")
            return rescued.first.map { $0.value >= 2 } == true && done.first.map { $0.value >= 36 } == true
        }

        // The rules load healthy, named as documented.
        let rules = try await prometheus.get("/api/v1/rules")
        let groups = ((rules["data"] as? [String: Any])?["groups"] as? [[String: Any]]) ?? []
        let loaded = groups.flatMap { ($0["rules"] as? [[String: Any]]) ?? [] }
        #expect(groups.count == 2, "\(groups.map { $0["name"] ?? "?" })")
        for rule in loaded {
            #expect(rule["health"] as? String == "ok", "\(rule["name"] ?? "?"): \(rule["lastError"] ?? "")")
        }
        #expect(Set(loaded.filter { $0["type"] as? String == "alerting" }.compactMap { $0["name"] as? String }) == Set(Self.alerts))
        // The rescue this scenario made raises CognitoResetJobsRescued (no `for`: at the next evaluation).
        try await eventually("CognitoResetJobsRescued to fire", deadline: .seconds(30)) {
            let alerts = try await prometheus.get("/api/v1/alerts")
            let firing = ((alerts["data"] as? [String: Any])?["alerts"] as? [[String: Any]]) ?? []
            return firing.contains { ($0["labels"] as? [String: String])?["alertname"] == "CognitoResetJobsRescued" && $0["state"] as? String == "firing" }
        }

        // Every query of the Prometheus dashboard, variables included.
        let dashboard = try Self.json(Self.monitoring.appending(path: "grafana/cognito-reset.json"))
        let (expressions, variables) = Self.prometheusQueries(dashboard)
        #expect(expressions.count >= 30, "\(expressions.count) queries found")
        for expression in expressions {
            let query = Self.substitute(expression)
            let result = try await prometheus.query(query)
            let mayBeEmpty = Self.emptyByDesign.keys.contains { expression.contains($0) }
            #expect(mayBeEmpty || !result.isEmpty, "no data for \(expression)")
        }
        for variable in variables {
            // label_values(METRIC, LABEL) as Grafana runs it: the label's values on that series.
            let match = variable.firstMatch(of: /label_values\((.+), *(\w+)\)/)
            #expect(match != nil, "\(variable)")
            if let match {
                let values = try await prometheus.labelValues(String(match.2), matching: Self.substitute(String(match.1)))
                #expect(!values.isEmpty, "no values for the variable \(variable)")
            }
        }

        // Every query of the SQL dashboard, as a monitor login role.
        try await Self.asMonitor(database) { monitor in
            let sqlDashboard = try Self.json(Self.monitoring.appending(path: "grafana/cognito-reset-sql.json"))
            let queries = Self.sqlQueries(sqlDashboard)
            #expect(queries.count >= 12)
            for (title, sql) in queries {
                let rows = try await monitor.query(PostgresQuery(Self.expandMacros(sql)))
                #expect(!rows.isEmpty, "\(title): no rows")
            }
        }
    }

    /// The rules file names exactly the documented alerts, each with a severity and a runbook
    /// link whose anchor is a runbook heading in docs/operations.md.
    @Test func everyAlertHasASeverityAndARunbookThatExists() throws {
        let rules = try String(contentsOf: Self.monitoring.appending(path: "prometheus/alerts.yml"), encoding: .utf8)
        let operations = try String(contentsOf: repositoryRoot.appending(path: "docs/operations.md"), encoding: .utf8)
        let blocks = rules.components(separatedBy: "- alert: ").dropFirst()
        #expect(blocks.map { String($0.prefix { !$0.isNewline }) } == Self.alerts)
        for block in blocks {
            let name = String(block.prefix { !$0.isNewline })
            #expect(block.contains("severity: critical") || block.contains("severity: warning"), "\(name): severity")
            #expect(block.contains("summary: ") && block.contains("description: "), "\(name): summary and description")
            let link = block.firstMatch(of: /runbook_url: "https:[^"#]+\/docs\/operations\.md#([a-z]+)"/)
            #expect(link.map { String($0.1) } == name.lowercased(), "\(name): runbook_url")
            #expect(operations.contains("\n#### \(name)\n"), "\(name): no runbook heading in docs/operations.md")
        }
    }

    /// Runs `body` on a connection of a fresh login role in `cognito_reset_monitor`; the role
    /// is dropped whatever happens (roles are cluster-wide).
    static func asMonitor(_ database: TemporaryDatabase, _ body: (PostgresConnection) async throws -> Void) async throws {
        try await TestRole.with("monitor", on: database.configuration, memberOf: ["cognito_reset_monitor"]) { role in
            let monitor = try await PostgresConnection.connect(role.configuration)
            do { try await body(monitor) } catch {
                await monitor.close()
                throw error
            }
            await monitor.close()
        }
    }

    static func json(_ file: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any] ?? [:]
    }

    /// Panel targets, the alert annotation, and the template variables' queries.
    static func prometheusQueries(_ dashboard: [String: Any]) -> (expressions: [String], variables: [String]) {
        let panels = (dashboard["panels"] as? [[String: Any]]) ?? []
        var expressions = panels.flatMap { ($0["targets"] as? [[String: Any]]) ?? [] }.compactMap { $0["expr"] as? String }
        let annotations = ((dashboard["annotations"] as? [String: Any])?["list"] as? [[String: Any]]) ?? []
        expressions += annotations.compactMap { $0["expr"] as? String }
        let templating = ((dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]]) ?? []
        let variables = templating.compactMap { ($0["query"] as? [String: Any])?["query"] as? String }
        return (expressions, variables)
    }

    static func sqlQueries(_ dashboard: [String: Any]) -> [(String, String)] {
        ((dashboard["panels"] as? [[String: Any]]) ?? []).flatMap { panel in
            ((panel["targets"] as? [[String: Any]]) ?? []).compactMap { target in
                (target["rawSql"] as? String).map { (panel["title"] as? String ?? "?", $0) }
            }
        }
    }

    /// Grafana's variables as this scenario sets them: the scrape job, every instance, and a
    /// rate window that spans several of the test's 1 s scrapes.
    static func substitute(_ expression: String) -> String {
        expression.replacingOccurrences(of: "$job", with: Prometheus.job)
            .replacingOccurrences(of: "$instance", with: ".*")
            .replacingOccurrences(of: "$__rate_interval", with: "30s")
    }

    /// Grafana's PostgreSQL macros, expanded as Grafana does, over the last hour in 1-minute steps.
    static func expandMacros(_ sql: String) -> String {
        var text = sql
        text.replace(/\$__timeGroupAlias\((\w+), *\$__interval\)/) { match in
            "to_timestamp(floor(extract(epoch FROM \(match.1)) / 60) * 60) AS \"time\""
        }
        text.replace(/\$__timeFilter\((\w+)\)/) { match in
            "\(match.1) BETWEEN now() - interval '1 hour' AND now()"
        }
        return text
    }
}

/// A private Prometheus scraping one worker every second, with rules evaluated every second.
struct Prometheus {
    static let job = "cognito-reset"
    let process: ChildProcess
    let port: Int
    let folder: URL

    static func start(scraping target: Int, rules: URL) throws -> Prometheus {
        let folder = FileManager.default.temporaryDirectory.appending(path: "prometheus-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let config = folder.appending(path: "prometheus.yml")
        try """
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        rule_files: ["\(rules.path)"]
        scrape_configs:
          - job_name: \(job)
            static_configs:
              - targets: ["127.0.0.1:\(target)"]
        """.write(to: config, atomically: true, encoding: .utf8)
        let port = try TestPorts.unused()
        let process = try ChildProcess(
            URL(fileURLWithPath: "/usr/bin/prometheus"),
            [
                "--config.file=\(config.path)", "--storage.tsdb.path=\(folder.appending(path: "data").path)",
                "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
            ],
            environment: ProcessInfo.processInfo.environment)
        return Prometheus(process: process, port: port, folder: folder)
    }

    func stop() async {
        await process.stop()
        try? FileManager.default.removeItem(at: folder)
    }

    func get(_ path: String, _ items: [URLQueryItem] = []) async throws -> [String: Any] {
        var components = URLComponents(string: "http://127.0.0.1:\(port)\(path)")!
        if !items.isEmpty { components.queryItems = items }
        var request = URLRequest(url: components.url!)
        request.timeoutInterval = 10
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            // Prometheus takes a moment to listen, then answers 503 "Service Unavailable" until
            // its storage is ready: retry both until the deadline. Any JSON answer is final.
            if let (data, _) = try? await URLSession.shared.data(for: request),
                let parsed = try? JSONSerialization.jsonObject(with: data), let object = parsed as? [String: Any]
            {
                guard object["status"] as? String == "success" else {
                    throw PrometheusError(message: "\(path) \(items): \(object["errorType"] ?? "") \(object["error"] ?? "")")
                }
                return object
            }
            guard ContinuousClock.now < deadline else { throw PrometheusError(message: "Prometheus did not answer \(path)") }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// An instant query: each series' labels and value.
    func query(_ expression: String) async throws -> [(labels: [String: String], value: Double)] {
        let answer = try await get("/api/v1/query", [URLQueryItem(name: "query", value: expression)])
        let result = ((answer["data"] as? [String: Any])?["result"] as? [[String: Any]]) ?? []
        return result.map { series in
            let value = (series["value"] as? [Any])?.last as? String
            return ((series["metric"] as? [String: String]) ?? [:], value.flatMap(Double.init) ?? .nan)
        }
    }

    func labelValues(_ label: String, matching selector: String) async throws -> [String] {
        let answer = try await get("/api/v1/label/\(label)/values", [URLQueryItem(name: "match[]", value: selector)])
        return (answer["data"] as? [String]) ?? []
    }
}

struct PrometheusError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
