import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import SystemTesting

// Benchmarks for scripts/bench.sh (issue: the queue worker's performance targets). Prints figures;
// asserts nothing. Usage:
//   cognito-reset-bench --worker BIN [--jobs 50000] [--concurrency 64] [--latency-samples 1000]
//                       [--section all|worker|fleet] [--fleet-jobs 1000]
//   cognito-reset-bench --serve URLFILE   (a fake Cognito for another process; runs until killed)
// with DATABASE_URL naming a server where databases may be created.

struct Options {
    var worker = ""
    var jobs = 50_000
    var concurrency = 64
    var latencySamples = 1_000
    /// `worker` (issue 4's figures), `fleet` (the shared rate limit's) or `all`.
    var section = "all"
    var fleetJobs = 1_000
    /// Child mode for the HTTP-only figure: the fake server's URL and how many calls to make.
    var httpClient: URL?
    var calls = 0
    /// Server mode for scripts/bench.sh's peer comparison: a fake Cognito answering every call at
    /// once, its URL written to this file; runs until killed.
    var serveURLFile: String?

    init(_ arguments: [String]) {
        var rest = arguments.makeIterator()
        while let flag = rest.next() {
            guard let value = rest.next() else { break }
            switch flag {
            case "--worker": worker = value
            case "--jobs": jobs = Int(value) ?? jobs
            case "--concurrency": concurrency = Int(value) ?? concurrency
            case "--latency-samples": latencySamples = Int(value) ?? latencySamples
            case "--section": section = value
            case "--fleet-jobs": fleetJobs = Int(value) ?? fleetJobs
            case "--http-client": httpClient = URL(string: value)
            case "--calls": calls = Int(value) ?? calls
            case "--serve": serveURLFile = value
            default: fatalError("unknown option \(flag)")
            }
        }
    }
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
let pool = "us-east-1_Bench1"

func say(_ text: String) { print(text) }

func seconds(_ duration: Duration) -> Double { duration / .seconds(1) }

func workerEnvironment(_ database: TemporaryDatabase, _ server: FakeHTTPServer) -> [String: String] {
    var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("AWS_") && !$0.key.hasPrefix("PG") }
    environment["DATABASE_URL"] = database.configuration.resolvedConnectionString()
    environment["AWS_REGION"] = "us-east-1"
    environment["AWS_ACCESS_KEY_ID"] = "AKIDBENCH"
    environment["AWS_SECRET_ACCESS_KEY"] = "bench-secret"
    environment["AWS_EC2_METADATA_DISABLED"] = "true"
    environment["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"] = server.url.absoluteString
    environment["COGNITO_RESET_LOG_LEVEL"] = "error"
    return environment
}

func startWorker(_ environment: [String: String]) throws -> ChildProcess {
    try ChildProcess(
        URL(fileURLWithPath: options.worker),
        ["worker", "--concurrency", String(options.concurrency), "--rate", "unlimited", "--poll", "1s"],
        environment: environment)
}

/// Peak resident memory of a running process (VmHWM), in MiB.
func peakRSS(_ pid: Int32) -> Double? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let kilobytes = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { return nil }
    return kilobytes / 1024
}

func insertJobs(_ connection: PostgresConnection, _ count: Int) async throws {
    try await connection.execute(
        """
        INSERT INTO cognito_reset.jobs (user_pool_id, username) SELECT \(pool), 'user' || g FROM generate_series(1, \(count)) g
        """)
    try await connection.execute("VACUUM ANALYZE cognito_reset.jobs")
}

func waitFor(_ connection: PostgresConnection, succeeded count: Int) async throws {
    while try await connection.query("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'")[0]
        .decode(Int.self, at: 0) < count
    {
        try await Task.sleep(for: .milliseconds(50))
    }
}

@main
enum Bench {
    static func main() async throws {
        if let url = options.httpClient {
            return try await HTTPCeiling.runClient(url: url, calls: options.calls, concurrency: options.concurrency)
        }
        if let file = options.serveURLFile {
            // The same fake server the worker figures use, for another process (the peer queue);
            // it counts requests rather than keeping them (the peer runs send 120,000 or more).
            let server = try await FakeHTTPServer.start(keepsRequests: false)
            try Data((server.url.absoluteString + "\n").utf8).write(to: URL(fileURLWithPath: file), options: .atomic)
            while true { try await Task.sleep(for: .seconds(3600)) }
        }
        // A migrated template, copied for each measurement.
        let template = try await TemporaryDatabase.create(prefix: "bench_template")
        let migrate = try await ChildProcess.run(
            URL(fileURLWithPath: options.worker), ["migrate"],
            environment: ["DATABASE_URL": template.configuration.resolvedConnectionString(), "PATH": "/usr/bin:/bin"])
        guard migrate.status == 0 else { fatalError("migrate failed: \(migrate.stderr)") }
        if options.section != "fleet" {
            try await workerFigures(template: template)
        }
        if options.section != "worker" {
            try await FleetBench.steadyRate(template: template.name, jobs: options.fleetJobs)
            try await FleetBench.throttling(template: template.name, jobs: 600)
            try await FleetBench.ceilingChange(template: template.name)
        }
        try await template.drop()
        // Every figure is printed: end here, without the libraries' exit handlers. Once in about
        // ten runs OpenSSL's (libpq's) crashed in them, after the last figure, and bench.sh then
        // stopped before the import figures.
        fflush(nil)  // every output stream
        _exit(0)
    }

    static func workerFigures(template: TemporaryDatabase) async throws {

        // 1. Worker throughput against a fake Cognito that answers at once.
        say("== worker throughput: \(options.jobs) jobs, one worker, concurrency \(options.concurrency), rate limit off")
        var workerRate = 0.0
        var workerPeak: Double?
        let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
        /// Microseconds of CPU per job (kernel included), and the share of the machine busy.
        struct CPUPerJob { var worker = 0.0, server = 0.0, rest = 0.0, busy = 0.0 }
        var workerRun = CPUPerJob()
        try await TemporaryDatabase.with(template: template.name) { database in
            let server = try await FakeHTTPServer.start()
            let connection = try await database.connect()
            try await insertJobs(connection, options.jobs)
            let worker = try startWorker(workerEnvironment(database, server))
            await server.waitForRequests(1)
            let first = server.requests[0].receivedAt
            let cpuBefore = (machine: machineBusySeconds(), worker: processCPUSeconds(pid: worker.pid) ?? 0, server: processCPUSeconds())
            // Every call made before polling the database: the poll's scans would otherwise take
            // CPU from the run being measured.
            await server.waitForRequests(options.jobs)
            try await waitFor(connection, succeeded: options.jobs)
            let elapsed = seconds(ContinuousClock.now - first)
            let machine = machineBusySeconds() - cpuBefore.machine
            let workerCPU = (processCPUSeconds(pid: worker.pid) ?? 0) - cpuBefore.worker
            let serverCPU = processCPUSeconds() - cpuBefore.server
            workerRun = CPUPerJob(
                worker: workerCPU / Double(options.jobs) * 1e6, server: serverCPU / Double(options.jobs) * 1e6,
                rest: (machine - workerCPU - serverCPU) / Double(options.jobs) * 1e6,
                busy: machine / (elapsed * cores))
            workerPeak = peakRSS(worker.pid)
            worker.send(SIGTERM)
            _ = await worker.wait()
            workerRate = Double(options.jobs) / elapsed
            // One claim statement stamps its whole batch with the same started_at.
            let claims = try await connection.query("SELECT count(DISTINCT started_at) FROM cognito_reset.jobs")[0].decode(Int.self, at: 0)
            say(String(format: "claim statements: %d, %.1f jobs each on average", claims, Double(options.jobs) / Double(max(claims, 1))))
            say(
                String(
                    format: "worker: %d jobs in %.2f s = %.0f jobs/s; calls made %d; peak RSS %.1f MiB",
                    options.jobs, elapsed, workerRate, server.requests.count, workerPeak ?? -1))
            await connection.close()
            await server.shutdown()
        }

        // 2. The SQL ceiling: pgbench running only the claim and completion statements, with 1, 2
        // and 4 clients (the worker itself claims on one connection and records on another).
        say("== SQL ceiling: pgbench, claim \(options.concurrency) + complete, per client count")
        var ceilings: [(clients: Int, jobsPerSecond: Double, sqlMicroseconds: Double)] = []
        for clients in [1, 2, 4] {
            try await TemporaryDatabase.with(template: template.name) { database in
                let connection = try await database.connect()
                try await insertJobs(connection, options.jobs)
                await connection.close()
                let script = FileManager.default.temporaryDirectory.appending(path: "bench-\(UUID().uuidString).sql")
                try """
                SELECT quote_literal(coalesce(array_agg(id), '{}')::text) AS ids FROM cognito_reset.claim_paced('bench-' || :client_id, \(options.concurrency), 30, NULL, 0, 0.5) WHERE id IS NOT NULL \\gset
                WITH done AS (UPDATE cognito_reset.jobs AS j SET state = 'succeeded', finished_at = now(), locked_by = NULL, lease_expires_at = NULL, cognito_request_id = 'bench' WHERE j.id = ANY(:ids::bigint[]) AND j.state = 'running' AND j.locked_by = 'bench-' || :client_id RETURNING j.id, j.attempt, j.started_at) INSERT INTO cognito_reset.attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, request_id, latency_ms) SELECT id, attempt, 'bench', started_at, now(), 'succeeded', 'bench', 0 FROM done;

                """.write(to: script, atomically: true, encoding: .utf8)
                defer { try? FileManager.default.removeItem(at: script) }
                let transactions = (options.jobs + options.concurrency * clients - 1) / (options.concurrency * clients)
                let cpuBefore = (machine: machineBusySeconds(), pgbench: childrenCPUSeconds(), bench: processCPUSeconds())
                let pgbench = try await ChildProcess.run(
                    URL(fileURLWithPath: "/usr/bin/env"),
                    [
                        "pgbench", "-n", "-c", String(clients), "-j", String(min(clients, 2)), "-t", String(transactions), "-f", script.path,
                        database.configuration.resolvedConnectionString(),
                    ],
                    environment: ProcessInfo.processInfo.environment.merging(["PATH": "/usr/lib/postgresql/15/bin:/usr/bin:/bin"]) { $1 })
                guard pgbench.status == 0,
                    let line = pgbench.stdout.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
                    let tps = Double(line.dropFirst(6).prefix { $0 != " " })
                else { fatalError("pgbench failed: \(pgbench.stderr)\(pgbench.stdout)") }
                // PostgreSQL's CPU per job: the machine's, less pgbench's own and this process's.
                let sql =
                    machineBusySeconds() - cpuBefore.machine - (childrenCPUSeconds() - cpuBefore.pgbench)
                    - (processCPUSeconds() - cpuBefore.bench)
                ceilings.append((clients, tps * Double(options.concurrency), sql / Double(options.jobs) * 1e6))
                say(
                    String(
                        format: "pgbench, %d client(s): %.1f transactions/s x %d jobs = %.0f jobs/s", clients, tps, options.concurrency,
                        tps * Double(options.concurrency)))
            }
        }
        let best = ceilings.max { $0.jobsPerSecond < $1.jobsPerSecond }!
        let ceiling = best.jobsPerSecond

        // 2b. The HTTP work alone: the worker's Cognito client against the same fake server.
        say("== HTTP alone: the worker's Cognito client, \(options.jobs) calls, concurrency \(options.concurrency), no database")
        let http = try await HTTPCeiling.measure(bench: CommandLine.arguments[0], calls: options.jobs, concurrency: options.concurrency)
        say(
            String(
                format: "client process + fake server: %.0f calls/s; CPU per call: client %.0f µs, fake server %.0f µs",
                http.callsPerSecond, http.clientMicrosecondsPerCall, http.serverMicrosecondsPerCall))

        // 3. Wake-up latency: an idle worker, one job inserted at a time.
        say("== enqueue-to-call latency: idle worker, \(options.latencySamples) single inserts")
        var latencies: [Double] = []
        var idlePeak: Double?
        try await TemporaryDatabase.with(template: template.name) { database in
            let server = try await FakeHTTPServer.start()
            let connection = try await database.connect()
            let worker = try startWorker(workerEnvironment(database, server))
            while try await connection.query("SELECT count(*) FROM cognito_reset.workers")[0].decode(Int.self, at: 0) == 0 {
                try await Task.sleep(for: .milliseconds(50))
            }
            try await Task.sleep(for: .seconds(1))  // let it settle into idle
            for sample in 1...options.latencySamples {
                let start = ContinuousClock.now
                try await connection.execute("INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(pool), \("u\(sample)"))")
                await server.waitForRequests(sample)
                latencies.append(seconds(server.requests[sample - 1].receivedAt - start) * 1000)
            }
            idlePeak = peakRSS(worker.pid)
            worker.send(SIGTERM)
            _ = await worker.wait()
            await connection.close()
            await server.shutdown()
        }
        latencies.sort()
        let sorted = latencies
        func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }

        let ratio = workerRate / max(ceiling, 1)
        say("")
        say("== summary")
        say(
            String(
                format: "throughput      %.0f jobs/s (worker) vs %.0f jobs/s (best SQL ceiling): %.0f%% of the ceiling (target >= 50%%)", workerRate, ceiling,
                ratio * 100))
        for entry in ceilings {
            say(
                String(
                    format: "                vs pgbench with %d client(s): %.0f jobs/s, %.0f%%", entry.clients, entry.jobsPerSecond,
                    workerRate / entry.jobsPerSecond * 100))
        }
        // The machine's CPU per job, measured (kernel time included). Half the ceiling leaves
        // cores / (ceiling / 2) of CPU per job; the HTTP work alone plus the SQL alone, each as
        // cheap as in its own run, already need more, before any work of the worker's own.
        let budget = cores / (ceiling / 2) * 1e6
        let needed = http.clientMicrosecondsPerCall + http.serverMicrosecondsPerCall + best.sqlMicroseconds
        say(
            String(
                format: "CPU per job     worker run: worker %.0f + fake server %.0f + PostgreSQL and the rest %.0f = %.0f µs (machine %.0f%% busy)",
                workerRun.worker, workerRun.server, workerRun.rest, workerRun.worker + workerRun.server + workerRun.rest, workerRun.busy * 100))
        say(
            String(
                format: "                SQL alone (pgbench, %d client(s)): %.0f µs; HTTP alone: client %.0f + fake server %.0f µs",
                best.clients, best.sqlMicroseconds, http.clientMicrosecondsPerCall, http.serverMicrosecondsPerCall))
        say(
            String(
                format:
                    "                50%% of the ceiling allows %.0f µs per job on %.0f cores; SQL + HTTP alone need %.0f µs: at most %.0f jobs/s (%.0f%% of the ceiling)",
                budget, cores, needed, cores / needed * 1e6, cores / needed * 1e6 / ceiling * 100))
        say(
            String(format: "                for any worker with this client here; the worker reaches %.0f%% of that", workerRate / (cores / needed * 1e6) * 100)
        )
        say(
            String(
                format: "latency         p50 %.2f ms, p99 %.2f ms, max %.2f ms (targets p50 <= 5, p99 <= 25)", percentile(0.50), percentile(0.99),
                sorted.last ?? 0))
        say(
            String(
                format: "worker memory   peak RSS %.1f MiB in the throughput run, %.1f MiB in the latency run (target <= 64)", workerPeak ?? -1, idlePeak ?? -1)
        )

    }
}
