import ArgumentParser
import CognitoClient
import Foundation
import Logging
import ResetQueue

/// `cognito-reset rate show|set`: the fleet-wide Cognito rate limit, live.
struct RateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rate", abstract: "Show or change the fleet-wide Cognito rate limit.",
        discussion: """
            Every worker with the same key (default cognito:$AWS_REGION) draws its calls from one \
            bucket in the database. Its ceiling can be changed while workers run: they follow \
            within a second or two. A ceiling of 0 pauses every call without stopping the daemons. \
            Throttling lowers the rate in force for everyone; it climbs back to the ceiling by itself.
            """,
        subcommands: [Show.self, Set.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the buckets: ceiling, rate in force, use and throttles in the last minute.")
        @OptionGroup var database: DatabaseOptions
        @Option(help: ArgumentHelp("Only this bucket (default: all).", valueName: "KEY")) var key: String?
        @Flag(help: "Print JSON for machines.") var json = false

        func run() async throws {
            let logger = try database.logging.bootstrap()
            let key = try self.key.map { try RateArgument.key($0, field: "--key", environment: [:]) }
            let buckets = try await database.withJobStore(logger: logger) { try await $0.rateBuckets(key: key) }
            if json {
                Terminal.json(try jsonEncoder().encode(buckets))
                return
            }
            if buckets.isEmpty {
                Terminal.say(
                    key.map { "no bucket \($0) yet (a worker creates it on its first claim, `rate set` too)" }
                        ?? "no buckets yet (a worker creates one on its first claim, `rate set` too)")
                return
            }
            for bucket in buckets { Terminal.say(Self.describe(bucket)) }
        }

        static func describe(_ bucket: RateBucketStatus) -> String {
            let state =
                bucket.paused
                ? "PAUSED (ceiling 0)"
                : String(format: "%.1f/s in force of %.1f/s ceiling", bucket.currentRate, bucket.ceiling)
            let throttle = bucket.lastThrottleAt.map { " (last \(StatusCommand.ago($0)))" } ?? ""
            return
                "\(bucket.key): \(state); burst \(Self.number(bucket.burst)), floor \(Self.number(bucket.floor))/s; last minute \(bucket.tokensLastMinute) calls, \(bucket.throttlesLastMinute) throttled\(throttle)"
        }

        static func number(_ value: Double) -> String {
            value == value.rounded() ? String(Int(value)) : String(format: "%.2f", value)
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a ceiling: a bucket's (every worker follows within 2 s) or one import's own.",
            discussion: "Examples: `rate set 10/s`, `rate set 0` (pause), `rate set 25 --key cognito:eu-west-1`, `rate set 5/s --import 42`.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: ArgumentHelp("Requests per second, e.g. 10 or 10/s; 0 pauses every call.", valueName: "RATE")) var rate: String
        @Option(
            help: ArgumentHelp(
                "The bucket (default $COGNITO_RESET_RATE_KEY, else cognito:$AWS_REGION, which must exist unless it is the first).", valueName: "KEY")) var key:
            String?
        @Option(help: ArgumentHelp("Instead, this import's own ceiling (0 to remove it).", valueName: "ID")) var `import`: Int64?
        @Option(help: ArgumentHelp("Calls allowed at once after an idle spell (default: unchanged, new buckets 1: evenly spaced).", valueName: "N")) var burst:
            Double?
        @Option(help: ArgumentHelp("Throttling never lowers the rate below this (default: unchanged, new buckets 1/s).", valueName: "R")) var floor: String?
        @Flag(help: "Print JSON for machines.") var json = false

        func run() async throws {
            let logger = try database.logging.bootstrap()
            let ceiling = try RateArgument.parse(rate, field: "RATE", allowZero: true)
            if let importID = `import` {
                guard key == nil, burst == nil, floor == nil else {
                    throw CLIError.badInput("--import: an import's ceiling takes no --key, --burst or --floor")
                }
                let found = try await database.withJobStore(logger: logger) {
                    try await $0.setImportRate(importID: importID, rate: ceiling == 0 ? nil : ceiling)
                }
                guard found else { throw CLIError.failure("no import \(importID)") }
                if json {
                    try printJSON(["import": importID, "ceiling": ceiling == 0 ? NSNull() : ceiling as Any])
                } else {
                    Terminal.say(
                        ceiling == 0
                            ? "import \(importID): own ceiling removed (the bucket's applies)" : "import \(importID): ceiling \(Show.number(ceiling))/s")
                }
                return
            }
            if let burst, !(burst >= 1 && burst <= 10_000) {
                throw CLIError.badInput("--burst: must be from 1 to 10000 calls")
            }
            let floor = try self.floor.map { try RateArgument.parse($0, field: "--floor") }
            let environment = ProcessInfo.processInfo.environment
            var named = key ?? environment["COGNITO_RESET_RATE_KEY"]
            if let template = named, template.contains("{region}") {
                // A worker's key template: here it names the bucket of this shell's region.
                guard let region = (try? CognitoEndpointResolver.fromEnvironment(environment))?.configuredRegion else {
                    throw CLIError.badInput("--key: \(SafeText.escaped(template)) means one bucket per region; name one, e.g. cognito:eu-west-1")
                }
                named = template.replacingOccurrences(of: "{region}", with: region)
            }
            let key = try RateArgument.key(named, field: "--key", environment: environment)
            let bucket = try await database.withJobStore(logger: logger) { store in
                if named == nil {
                    // The default key comes from this shell's region, which may not be the
                    // workers' (their region is often only in the service's env file): pausing a
                    // new, unused bucket would stop nothing. Only a first bucket is made this way.
                    let existing = try await store.rateBuckets(key: nil).map(\.key)
                    if !existing.isEmpty, !existing.contains(key) {
                        throw CLIError.badInput(
                            "--key: no bucket \(key) (this shell's default); name one: \(existing.joined(separator: ", "))")
                    }
                }
                try await store.setRateCeiling(key: key, ceiling: ceiling, burst: burst, floor: floor)
                return try await store.rateBuckets(key: key).first
            }
            logger.notice("rate ceiling set", metadata: ["rate.key": "\(key)", "ceiling": "\(ceiling)"])
            if json {
                Terminal.json(try jsonEncoder().encode(bucket))
            } else if let bucket {
                Terminal.say(Show.describe(bucket))
            }
        }
    }
}
