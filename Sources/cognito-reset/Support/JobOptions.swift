import ArgumentParser
import CognitoClient
import Foundation
import ResetQueue

/// What `enqueue` and `import` share: when the jobs run, how urgent they are, how many attempts
/// they get and who asked.
struct JobOptions: ParsableArguments {
    @Option(help: ArgumentHelp("When to run: now, RFC 3339 with a zone, or +30m/+2h/+1d.", valueName: "TIME"))
    var runAt: String?

    @Option(help: ArgumentHelp("0 (most urgent) to 1000; lower runs first (default 100).", valueName: "P"))
    var priority: Int = ResetRequest.defaultPriority

    @Option(help: ArgumentHelp("Attempts before a job fails (1-100, default 10).", valueName: "N"))
    var maxAttempts: Int = ResetRequest.defaultMaxAttempts

    @Option(help: ArgumentHelp("Who asked, for the audit (default: the database role).", valueName: "WHO"))
    var requestedBy: String?

    /// `--run-at` as a date (nil: now), after checking every option.
    func checkedRunAt(now: Date) throws(InvalidInput) -> Date? {
        try ResetRequest.check(priority: priority, maxAttempts: maxAttempts, requestedBy: requestedBy)
        guard let runAt else { return nil }
        return try ScheduleTime.parse(runAt, field: "run-at", now: now)
    }
}
