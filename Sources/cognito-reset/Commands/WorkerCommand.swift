import ArgumentParser
import CognitoClient
import CoreMetrics
import Daemon
import Foundation
import Logging
import Postgres
import Prometheus
import ResetQueue
import ServiceLifecycle
import UnixSignals

/// `cognito-reset worker`: the daemon that drains the queue.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Claim queued resets and call Cognito for each, until stopped (or drained).",
        discussion: """
            SIGTERM or SIGINT: stop claiming, let in-flight calls finish within --grace, give back \
            claimed jobs that never started, mark the worker stopped, exit 0. Every setting also comes \
            from COGNITO_RESET_* variables or a --config file (flags win, then the environment). Under \
            systemd (Type=notify) it reports READY=1 once the database is reachable and migrated, \
            STATUS= lines, WATCHDOG=1 pings and STOPPING=1.
            """
    )

    @OptionGroup var database: DatabaseOptions

    @Option(help: ArgumentHelp("Settings file of COGNITO_RESET_*=value lines (default: $COGNITO_RESET_CONFIG).", valueName: "FILE"))
    var config: String?

    @Option(help: ArgumentHelp("Cognito calls in flight at most (default 16).", valueName: "N"))
    var concurrency: Int?

    @Option(
        help: ArgumentHelp(
            "Ceiling (requests/s) of the fleet-wide bucket when this worker creates it (default 25; an existing bucket keeps its own, see `rate set`), or 'unlimited' for no limit at all (benchmarks, emulators).",
            valueName: "R"))
    var rate: String?

    @Option(
        help: ArgumentHelp(
            "The fleet-wide bucket for calls with this worker's own credentials; {region} stands for each pool's region (default cognito:{region}: one per region). Pools mapped to a role use cognito:<account>:<region>.",
            valueName: "KEY"))
    var rateKey: String?

    @Option(
        help: ArgumentHelp(
            "Serve only pools in these regions, e.g. eu-west-1,eu-central-1 (default: every region); jobs of other regions are left to other fleets.",
            valueName: "REGIONS"))
    var regions: String?

    @Flag(help: "Exit 0 once nothing is runnable and nothing is in flight.")
    var drain = false

    @Option(help: ArgumentHelp("Lease on claimed jobs (default 30s).", valueName: "DURATION"))
    var lease: DurationArgument?

    @Option(help: ArgumentHelp("Lease renewal and rescue interval (default lease/3).", valueName: "DURATION"))
    var heartbeat: DurationArgument?

    @Option(help: ArgumentHelp("Poll for work at least this often without a NOTIFY (default 1s).", valueName: "DURATION"))
    var poll: DurationArgument?

    @Option(help: ArgumentHelp("Time in-flight calls get to finish on SIGTERM (default 20s).", valueName: "DURATION"))
    var grace: DurationArgument?

    @Option(
        help: ArgumentHelp(
            "Server-side statement_timeout of the worker's statements (default 10s); each is also given up on the client up to 5s later, with a cancel request, if the server does not answer at all.",
            valueName: "DURATION"))
    var statementTimeout: DurationArgument?

    @Option(
        help: ArgumentHelp(
            "A direct connection for LISTEN only, when DATABASE_URL goes through a pooler in transaction mode (PgBouncer), or 'none' to only poll (default: DATABASE_URL).",
            valueName: "URL"))
    var listenURL: String?

    @Option(help: ArgumentHelp("Prometheus /metrics, /healthz and /readyz on HOST:PORT (default off).", valueName: "HOST:PORT"))
    var metricsAddress: String?

    @Option(help: ArgumentHelp("systemd STATUS= and queue gauges this often (default 5s).", valueName: "DURATION"))
    var statusInterval: DurationArgument?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let settings = try await blockingIO { [config] in try Settings(environment: environment, configFile: config) }
        let logger = try database.logging.bootstrap(settings: settings, defaultLevel: .info)
        let options = try resolvedOptions(settings)
        let notifier = SystemdNotifier(environment: environment)
        let watchdog = WatchdogSettings(environment: environment)
        if let watchdog, options.poll >= watchdog.pingInterval {
            // An idle worker turns its loop once per poll: slower than the pings, systemd would
            // restart a healthy worker.
            throw CLIError.badInput("--poll: must be below half of systemd's WatchdogSec= (\(watchdog.timeout)) so an idle worker keeps feeding the watchdog")
        }

        var configuration = try database.configuration()
        configuration.statementTimeout = options.statementTimeout
        configuration.statementDeadline = options.statementTimeout + Self.deadlineMargin(options.statementTimeout)
        let listenConfiguration =
            try options.listenURL.map { text -> ConnectionConfiguration? in
                guard text != "none" else { return nil }
                var listen = try DatabaseOptions.configuration(text, field: listenURL != nil ? "--listen-url" : "COGNITO_RESET_LISTEN_URL")
                listen.statementTimeout = configuration.statementTimeout
                listen.statementDeadline = configuration.statementDeadline
                return listen
            } ?? configuration
        // One clock for the worker and the health it reports (its heartbeats' moments).
        let clock = WorkerClock.continuous
        let health = DatabaseHealth(window: configuration.statementDeadline! + .seconds(5), clock: clock)
        let metricsRegistry = options.metricsAddress.map { _ in PrometheusCollectorRegistry() }
        if let metricsRegistry {
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metricsRegistry))
            // Which build runs where: dashboards join on it, and a half-finished upgrade shows.
            metricsRegistry.makeGauge(
                descriptor: MetricNameDescriptor(
                    metricName: "cognito_reset_build_info", unitName: "",
                    helpText: "Always 1; the labels say which build of cognito-reset this is."),
                labels: [("version", CognitoResetVersion.current), ("revision", CognitoResetVersion.revision)]
            ).set(Int64(1))
        }
        let processMetrics = metricsRegistry.map { ProcessMetrics(registry: $0) }
        let pulse = LoopPulse()
        try await withClosers { closers in
            let pool = ConnectionPool(
                configuration: configuration, options: .init(maximumConnections: 4, connectDeadline: .seconds(10)), logger: logger,
                onEvent: DatabaseMetrics.observer(pulse: pulse, health: health))
            closers.add { await pool.close() }
            let store = PostgresJobStore(pool: pool)

            // Everything that can be refused is checked before READY=1: the metrics address, the
            // database and its schema, the AWS credentials.
            var endpoint: HTTPEndpoint?
            if let address = options.metricsAddress, let metricsRegistry {
                do {
                    let bound = try await HTTPEndpoint.bind(host: address.host, port: address.port) { path in
                        await DaemonMonitor.respond(path, store: store, health: health) {
                            processMetrics?.refresh()
                            return metricsRegistry.emitToString()
                        }
                    }
                    closers.add { await bound.close() }
                    endpoint = bound
                } catch {
                    throw CLIError.badInput("COGNITO_RESET_METRICS_ADDRESS: cannot listen on \(address.host):\(address.port): \(error)")
                }
            }
            notifier.send(["STATUS=connecting to the database"])
            try await mappingErrors { try await Self.checkSchema(pool, logger: logger) }

            let cognito = try CognitoSetup(environment: environment, connections: options.concurrency, logger: logger)
            closers.add { await cognito.transport.shutdown() }
            do throws(CredentialError) {
                _ = try await cognito.client.credentials.credentials()
            } catch {
                throw error.isUnreachable ? CLIError.unavailable(error.description) : CLIError.badInput(error.description)
            }

            var workerConfiguration = WorkerConfiguration()
            workerConfiguration.concurrency = options.concurrency
            workerConfiguration.drain = drain
            workerConfiguration.lease = options.lease
            workerConfiguration.heartbeatInterval = options.heartbeat
            workerConfiguration.pollInterval = options.poll
            workerConfiguration.gracePeriod = options.grace
            workerConfiguration.logUsernames = options.logUsernames
            workerConfiguration.sharedRate = options.rate.map { SharedRateLimit(key: options.rateKey, initialCeiling: $0) }
            workerConfiguration.regions = options.regions
            if let shared = workerConfiguration.sharedRate, let region = cognito.client.endpoints.configuredRegion,
                let bucket = try? await store.rateBuckets(key: shared.key.replacingOccurrences(of: "{region}", with: region)).first,
                bucket.ceiling != shared.initialCeiling
            {
                // The fleet's bucket is the truth; a flag on one host must not fight the others.
                logger.notice(
                    "the shared rate limit keeps its own ceiling; --rate only seeds a new one (change it with `cognito-reset rate set`)",
                    metadata: ["rate.key": "\(shared.key)", "ceiling": "\(bucket.ceiling)", "rate": "\(shared.initialCeiling)"])
            }
            let worker = QueueWorker(
                configuration: workerConfiguration, store: store, listenConfiguration: listenConfiguration,
                cognito: cognito.client, limiter: UnlimitedRateLimiter(), logger: logger,
                onEvent: { event in
                    switch event {
                    case .stopping: notifier.send(["STOPPING=1", "STATUS=stopping: finishing in-flight calls"])
                    case .databaseUnavailable: health.noteTrouble()
                    case .databaseAnswered(let since): health.noteAnswered(since: since)
                    default: break
                    }
                },
                pulse: pulse, clock: clock)
            let monitor = DaemonMonitor(
                worker: worker, store: store, notifier: notifier, watchdog: watchdog, endpoint: endpoint,
                statusInterval: options.statusInterval, health: health, logger: logger)
            let group = ServiceGroup(
                configuration: .init(
                    // Shut down in reverse order: the worker first, the monitor once it has finished.
                    services: [
                        .init(service: monitor),
                        .init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup),
                        // Last, so it hears of a stop first (it returns at once).
                        .init(service: StopBackstop(grace: options.grace, logger: logger), successTerminationBehavior: .ignore),
                    ],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            pulse.beat()  // the start-up checks above took their time; the watchdog starts now
            notifier.send(["READY=1", "STATUS=ready: claiming work"])
            do {
                try await group.run()
            } catch {
                throw CLIError.failure("worker stopped: \(error)")
            }
        }
    }

    /// How long past `--statement-timeout` the client waits before cancelling a statement itself:
    /// the server's own timeout normally ends it first; this catches a server that does not
    /// answer at all, and commits waiting for a standby (which statement_timeout does not cover).
    /// Proportional for short timeouts (tests, impatient operators), at most 5 s.
    static func deadlineMargin(_ timeout: Duration) -> Duration {
        min(.seconds(5), max(.seconds(1), timeout))
    }

    /// The worker's settings after flags, environment and config file.
    struct Options {
        var concurrency: Int
        /// The shared bucket's initial ceiling; nil: unlimited.
        var rate: Double?
        var rateKey: String
        /// nil: every region.
        var regions: [String]?
        var lease: Duration
        var heartbeat: Duration
        var poll: Duration
        var grace: Duration
        var statusInterval: Duration
        var statementTimeout: Duration
        /// nil: DATABASE_URL; "none": no LISTEN.
        var listenURL: String?
        var metricsAddress: (host: String, port: Int)?
        var logUsernames: Bool
    }

    /// Flags win over the environment, which wins over the config file, then the defaults.
    func resolvedOptions(_ settings: Settings) throws -> Options {
        // The defaults are WorkerConfiguration's: one place for the daemon and the library.
        let defaults = WorkerConfiguration(workerID: "defaults")
        let concurrencyText = concurrency.map(String.init) ?? settings["COGNITO_RESET_CONCURRENCY"] ?? String(defaults.concurrency)
        let concurrency = try Self.parseConcurrency(concurrencyText, field: "--concurrency")
        let rateText = rate ?? settings["COGNITO_RESET_RATE"] ?? String(format: "%g", WorkerConfiguration.defaultRate)
        let rate = rateText == "unlimited" ? nil : try RateArgument.parse(rateText, field: "--rate")
        let rateKey = try RateArgument.workerKey(rateKey ?? settings["COGNITO_RESET_RATE_KEY"])
        let regionsField = regions == nil ? "COGNITO_RESET_REGIONS" : "--regions"
        let regions = try (regions ?? settings["COGNITO_RESET_REGIONS"]).map { try Self.parseRegions($0, field: regionsField) }
        let lease = try settings.duration(lease, "COGNITO_RESET_LEASE", flagName: "--lease", default: defaults.lease)
        let heartbeat = try settings.duration(
            heartbeat, "COGNITO_RESET_HEARTBEAT", flagName: "--heartbeat", default: WorkerConfiguration.defaultHeartbeat(lease: lease))
        let poll = try settings.duration(poll, "COGNITO_RESET_POLL", flagName: "--poll", default: defaults.pollInterval)
        let grace = try settings.duration(grace, "COGNITO_RESET_GRACE", flagName: "--grace", default: defaults.gracePeriod)
        let statusInterval = try settings.duration(
            statusInterval, "COGNITO_RESET_STATUS_INTERVAL", flagName: "--status-interval", default: .seconds(5))
        let statementTimeout = try settings.duration(
            statementTimeout, "COGNITO_RESET_STATEMENT_TIMEOUT", flagName: "--statement-timeout", default: .seconds(10))
        try Self.checkStatementTimeout(statementTimeout, field: self.statementTimeout == nil ? "COGNITO_RESET_STATEMENT_TIMEOUT" : "--statement-timeout")
        let listenURL = listenURL ?? settings["COGNITO_RESET_LISTEN_URL"]
        guard grace >= .seconds(1) else {
            throw CLIError.badInput(
                "\(self.grace == nil ? "COGNITO_RESET_GRACE" : "--grace"): must be at least 1s (its last quarter is kept for writing outcomes)")
        }
        guard lease >= .seconds(1) else { throw CLIError.badInput("--lease: must be at least 1s") }
        guard heartbeat > .zero, heartbeat * 2 <= lease else {
            throw CLIError.badInput("--heartbeat: must be above 0 and at most half of --lease, so leases are renewed in time")
        }
        guard poll >= .milliseconds(10) else { throw CLIError.badInput("--poll: must be at least 10ms") }
        guard statusInterval >= .milliseconds(100) else { throw CLIError.badInput("--status-interval: must be at least 100ms") }
        let metricsAddress = try (metricsAddress ?? settings["COGNITO_RESET_METRICS_ADDRESS"]).map { try Self.parseAddress($0) }
        return Options(
            concurrency: concurrency, rate: rate, rateKey: rateKey, regions: regions, lease: lease, heartbeat: heartbeat, poll: poll, grace: grace,
            statusInterval: statusInterval, statementTimeout: statementTimeout, listenURL: listenURL, metricsAddress: metricsAddress,
            logUsernames: try settings.bool("COGNITO_RESET_LOG_USERNAMES", default: false))
    }

    /// 100 ms to 1 h: shorter would cut the worker's own statements under load, longer would
    /// leave a hung database unnoticed for that long.
    static func checkStatementTimeout(_ timeout: Duration, field: String) throws {
        guard timeout >= .milliseconds(100), timeout <= .seconds(3600) else {
            throw CLIError.badInput("\(field): must be from 100ms to 1h")
        }
    }

    /// A comma list of region names (`eu-west-1,us-east-1`).
    static func parseRegions(_ text: String, field: String) throws -> [String] {
        do {
            return try RegionName.list(text, field: field).map(\.rawValue)
        } catch {
            throw CLIError.badInput(error.description)
        }
    }

    /// Calls in flight: 1 to 1024 (the flag, or `field` naming where the text came from).
    static func parseConcurrency(_ text: String, field: String) throws -> Int {
        guard let concurrency = Int(text), (1...1024).contains(concurrency) else {
            throw CLIError.badInput("\(field): must be an integer from 1 to 1024")
        }
        return concurrency
    }

    /// `127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`.
    static func parseAddress(_ text: String, field: String = "--metrics-address") throws -> (host: String, port: Int) {
        let rule = "\(field): must be HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464"
        guard let colon = text.lastIndex(of: ":") else { throw CLIError.badInput(rule) }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw CLIError.badInput(rule)
        }
        return (host, port)
    }

    /// Fails early, with the remedy, if the schema is missing or older than this binary expects.
    /// A newer schema is fine: during a rolling upgrade old workers run on the migrated database.
    static func checkSchema(_ pool: ConnectionPool, logger: Logger) async throws {
        let migrated = try await pool.query("SELECT to_regclass('cognito_reset.jobs') IS NOT NULL")[0].decode(Bool.self, at: 0)
        guard migrated else {
            throw CLIError.failure("the cognito_reset schema is missing: run `cognito-reset migrate` first")
        }
        let migrator = try CognitoResetSchema.migrator(logger: logger)
        let status: Migrator.Status
        do {
            status = try await pool.withConnection { try await migrator.status(on: $0) }
        } catch let error as PostgresError where error.sqlState == SQLState.insufficientPrivilege {
            // Before migration 0002 the worker role may not read the migrations table.
            throw CLIError.failure("cannot read the schema version (\(error.message)): run `cognito-reset migrate` first")
        }
        if !status.pending.isEmpty {
            throw CLIError.failure(
                "the database schema is older than this binary (pending migrations: \(status.pending.map(String.init).joined(separator: ", "))): run `cognito-reset migrate` first"
            )
        }
        if let changed = status.changed.first {
            throw CLIError.failure("migration \(changed.version) (\(changed.name)) differs from the one applied; see `cognito-reset migrate status`")
        }
    }
}
