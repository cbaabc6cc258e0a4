import ArgumentParser
import Foundation
import Logging
import ResetQueue

/// `cognito-reset prune [--older-than 30d]`: retention for finished jobs and their audit.
struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Delete finished jobs (and their attempts) older than the retention.",
        discussion: """
            Only succeeded, failed and cancelled jobs whose finished_at is older than --older-than \
            (default: $COGNITO_RESET_RETENTION, else 30d) are deleted, 1,000 per statement, so \
            workers carry on meanwhile; pending, running and retrying jobs are never touched. Also \
            removes rows of workers stopped that long ago and import records with no job left. \
            Idempotency keys of deleted jobs are forgotten. The cognito-reset-prune.timer runs it daily.
            """
    )

    @OptionGroup var database: DatabaseOptions

    @Option(help: ArgumentHelp("Keep finished jobs younger than this (e.g. 30d, 12h; at least 1h).", valueName: "AGE"))
    var olderThan: DurationArgument?

    @Option(help: ArgumentHelp("Jobs deleted per statement (default 1000).", valueName: "N"))
    var batchSize = 1000

    @Flag(help: "Count what would be deleted, delete nothing.")
    var dryRun = false

    @Flag(help: "Print JSON for machines.")
    var json = false

    func run() async throws {
        let settings = try await blockingIO { try Settings(environment: ProcessInfo.processInfo.environment, configFile: nil) }
        let logger = try database.logging.bootstrap(settings: settings)
        let retention = try settings.duration(olderThan, "COGNITO_RESET_RETENTION", flagName: "--older-than", default: .seconds(30 * 86_400))
        guard retention >= .seconds(3600) else {
            throw CLIError.badInput("--older-than: must be at least 1h, so jobs that just finished stay visible")
        }
        guard (1...100_000).contains(batchSize) else {
            throw CLIError.badInput("--batch-size: must be an integer from 1 to 100000")
        }
        let started = ContinuousClock.now
        let report = try await database.withJobStore(logger: logger) { store in
            try await store.prune(olderThan: retention, batchSize: batchSize, dryRun: dryRun) { totals in
                logger.debug("prune batch", metadata: ["jobs": "\(totals.jobs)", "attempts": "\(totals.attempts)"])
            }
        }
        let elapsed = ContinuousClock.now - started
        if json {
            try printJSON([
                "dry_run": dryRun, "older_than_seconds": Int(retention / .seconds(1)), "jobs": report.jobs,
                "attempts": report.attempts, "workers": report.workers, "imports": report.imports,
            ])
        } else {
            let verb = dryRun ? "would delete" : "deleted"
            Terminal.say(
                "\(verb) \(report.jobs) finished jobs, \(report.attempts) attempts, \(report.workers) stopped workers, \(report.imports) imports (finished more than \(DurationArgument.describe(retention)) ago)"
            )
        }
        logger.info(
            "pruned",
            metadata: [
                "dry_run": "\(dryRun)", "jobs": "\(report.jobs)", "attempts": "\(report.attempts)", "workers": "\(report.workers)",
                "imports": "\(report.imports)", "elapsed_ms": "\(Int64(elapsed / .milliseconds(1)))",
            ])
    }
}
