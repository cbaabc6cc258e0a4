import ArgumentParser
import CognitoClient
import Foundation
import Logging
import Postgres
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
            claimed jobs that never started, mark the worker stopped, exit 0. Settings also come from \
            COGNITO_RESET_CONCURRENCY and COGNITO_RESET_RATE (flags win).
            """
    )

    @OptionGroup var database: DatabaseOptions

    @Option(help: ArgumentHelp("Cognito calls in flight at most (default 16).", valueName: "N"))
    var concurrency: Int?

    @Option(help: ArgumentHelp("Calls per second for this process, or 'unlimited' (default 25).", valueName: "R"))
    var rate: String?

    @Flag(help: "Exit 0 once nothing is runnable and nothing is in flight.")
    var drain = false

    @Option(help: ArgumentHelp("Lease on claimed jobs (default 30s).", valueName: "DURATION"))
    var lease: DurationArgument = .init(.seconds(30))

    @Option(help: ArgumentHelp("Lease renewal and rescue interval (default lease/3).", valueName: "DURATION"))
    var heartbeat: DurationArgument?

    @Option(help: ArgumentHelp("Poll for work at least this often without a NOTIFY (default 1s).", valueName: "DURATION"))
    var poll: DurationArgument = .init(.seconds(1))

    @Option(help: ArgumentHelp("Time in-flight calls get to finish on SIGTERM (default 20s).", valueName: "DURATION"))
    var grace: DurationArgument = .init(.seconds(20))

    func run() async throws {
        let logger = try database.logger()
        let environment = ProcessInfo.processInfo.environment
        let settings = try await mappingErrors { try resolvedSettings(environment) }
        let heartbeatInterval = heartbeat?.duration ?? lease.duration / 3
        guard lease.duration >= .seconds(1) else { throw CLIError.badInput("--lease: must be at least 1s") }
        guard heartbeatInterval > .zero, heartbeatInterval * 2 <= lease.duration else {
            throw CLIError.badInput("--heartbeat: must be above 0 and at most half of --lease, so leases are renewed in time")
        }
        guard poll.duration >= .milliseconds(10) else { throw CLIError.badInput("--poll: must be at least 10ms") }

        let configuration = try database.configuration()
        let pool = ConnectionPool(
            configuration: configuration, options: .init(maximumConnections: 4, connectDeadline: .seconds(30)), logger: logger)
        try await mappingErrors { try await Self.checkSchema(pool) }

        let cognito = try CognitoSetup(environment: environment, connections: settings.concurrency, logger: logger)
        do {
            _ = try await cognito.client.credentials.credentials()
        } catch {
            await cognito.transport.shutdown()
            throw error.isUnreachable ? CLIError.unavailable(error.description) : CLIError.badInput(error.description)
        }

        var workerConfiguration = WorkerConfiguration()
        workerConfiguration.concurrency = settings.concurrency
        workerConfiguration.drain = drain
        workerConfiguration.lease = lease.duration
        workerConfiguration.heartbeatInterval = heartbeatInterval
        workerConfiguration.pollInterval = poll.duration
        workerConfiguration.gracePeriod = grace.duration
        let limiter: any RateLimiter = settings.rate.map { LocalRateLimiter(requestsPerSecond: $0) } ?? UnlimitedRateLimiter()
        let worker = QueueWorker(
            configuration: workerConfiguration, store: PostgresJobStore(pool: pool), listenConfiguration: configuration,
            cognito: cognito.client, limiter: limiter, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            await cognito.transport.shutdown()
            await pool.close()
            throw CLIError.failure("worker stopped: \(error)")
        }
        await cognito.transport.shutdown()
        await pool.close()
    }

    struct Settings {
        var concurrency: Int
        /// nil: unlimited.
        var rate: Double?
    }

    /// Flags win over the environment, which wins over the defaults.
    func resolvedSettings(_ environment: [String: String]) throws(InvalidInput) -> Settings {
        let concurrencyText = concurrency.map(String.init) ?? environment["COGNITO_RESET_CONCURRENCY"] ?? "16"
        guard let concurrency = Int(concurrencyText), (1...1024).contains(concurrency) else {
            throw InvalidInput(field: "concurrency", rule: "must be an integer from 1 to 1024")
        }
        let rateText = rate ?? environment["COGNITO_RESET_RATE"] ?? "25"
        if rateText == "unlimited" { return Settings(concurrency: concurrency, rate: nil) }
        guard let rate = Double(rateText.replacingOccurrences(of: "/s", with: "")), rate > 0, rate <= 10_000 else {
            throw InvalidInput(field: "rate", rule: "must be requests per second above 0 (e.g. 25 or 25/s), or 'unlimited'")
        }
        return Settings(concurrency: concurrency, rate: rate)
    }

    /// Fails early, with the remedy, if the schema was never migrated.
    static func checkSchema(_ pool: ConnectionPool) async throws {
        let migrated = try await pool.query("SELECT to_regclass('cognito_reset.jobs') IS NOT NULL")[0].decode(Bool.self, at: 0)
        guard migrated else {
            throw CLIError.failure("the cognito_reset schema is missing: run `cognito-reset migrate` first")
        }
    }
}
