import ArgumentParser
import Foundation
import Postgres
import ResetQueue

/// `cognito-reset status [--json] [--watch]`.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the queue: counts, throughput, failures, workers.")

    @OptionGroup var database: DatabaseOptions

    @Flag(help: "Print JSON for machines.")
    var json = false

    @Flag(help: "Refresh every 2 seconds, with a drain estimate, until interrupted.")
    var watch = false

    func run() async throws {
        try await database.withJobStore(logger: try database.logger()) { store in
            repeat {
                let status = try await store.status()
                if json {
                    Terminal.json(try jsonEncoder().encode(status))
                } else {
                    if watch { print("\u{1B}[H\u{1B}[2J", terminator: "") }  // our own escape, not data
                    Terminal.say(Self.render(status, withETA: watch))
                }
                if watch { try await Task.sleep(for: .seconds(2)) }
            } while watch
        }
    }

    static func render(_ status: QueueStatus, withETA: Bool) -> String {
        let c = status.counts
        var lines = [
            "Jobs        pending \(c.pending)  running \(c.running)  retrying \(c.retrying)  succeeded \(c.succeeded)  failed \(c.failed)  cancelled \(c.cancelled)",
            "Runnable    now \(status.runnableNow), scheduled later \(status.scheduledLater)"
                + (status.oldestRunnableAgeSeconds.map { ", oldest waiting \(seconds($0))" } ?? ""),
            "Throughput  last minute \(status.succeededLastMinute) ok / \(status.failedLastMinute) failed,"
                + " last hour \(status.succeededLastHour) ok / \(status.failedLastHour) failed",
        ]
        for region in status.regions where status.regions.count > 1 || region.workersServing == 0 {
            // Region names come from pool ids, which the schema keeps to letters, digits, '-' and '_'.
            var line = "Region      \(region.region): runnable \(region.runnableNow), scheduled later \(region.scheduledLater)"
            if let age = region.oldestRunnableAgeSeconds { line += ", oldest waiting \(seconds(age))" }
            if region.workersServing == 0 && region.runnableNow > 0 {
                line += " (runnable, no worker serves \(region.region))"
            } else {
                line += ", \(region.workersServing) worker(s)"
            }
            lines.append(line)
        }
        if !status.failuresByCode.isEmpty {
            let top = status.failuresByCode.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }
            lines.append("Failures    (24 h) " + top.joined(separator: ", "))
        }
        lines.append("Workers     \(status.workersAlive) alive")
        for worker in status.workers {
            lines.append(
                "  \(worker.id)  \(worker.state)  in flight \(worker.inFlight)  heartbeat \(seconds(worker.secondsSinceHeartbeat)) ago"
                    + "  ok \(worker.succeeded)  failed \(worker.failed)  retried \(worker.retried)")
        }
        for bucket in status.rateLimits {
            lines.append("Rate        " + RateCommand.Show.describe(bucket))
        }
        if withETA {
            lines.append(
                "Drain ETA   "
                    + (status.drainETASeconds.map { "about \(seconds($0)) for \(status.remaining) job(s)" } ?? "unknown (nothing finished in the last minute)"))
        }
        return lines.joined(separator: "\n")
    }

    static func ago(_ date: Date) -> String {
        seconds(max(0, -date.timeIntervalSinceNow)) + " ago"
    }

    static func seconds(_ value: Double) -> String {
        switch value {
        case ..<120: String(format: "%.0fs", value)
        case ..<7200: String(format: "%.0fm", value / 60)
        default: String(format: "%.1fh", value / 3600)
        }
    }
}
