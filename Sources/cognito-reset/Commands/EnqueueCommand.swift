import ArgumentParser
import CognitoClient
import Foundation
import Postgres
import ResetQueue

/// `cognito-reset enqueue --pool ID --user NAME ...`: queue one reset.
struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Queue a password reset for one user.",
        discussion: """
            Prints the job id. If the user already has an active (pending, running or retrying) job, \
            that job's id is printed and nothing new is queued, so the user gets one email.
            """
    )

    @OptionGroup var database: DatabaseOptions

    @Option(name: .customLong("pool"), help: ArgumentHelp("User pool id, e.g. eu-west-1_AbC123.", valueName: "ID"))
    var pool: String

    @Option(name: .customLong("user"), help: ArgumentHelp("Username in the pool.", valueName: "NAME"))
    var user: String

    @OptionGroup var job: JobOptions

    @Option(help: ArgumentHelp("Your key for this request: enqueueing again with it returns the same job.", valueName: "K"))
    var idempotencyKey: String?

    @Option(help: ArgumentHelp("Passed to the pool's Lambda triggers as ClientMetadata (repeatable).", valueName: "KEY=VALUE"))
    var metadata: [String] = []

    @Flag(help: "Print JSON for machines.")
    var json = false

    func run() async throws {
        let logger = try database.logger()
        let request = try await mappingErrors { try makeRequest(now: Date()) }
        let result = try await database.withJobStore(logger: logger) { try await $0.enqueue(request) }
        if json {
            try printJSON([
                "created": result.created, "job_id": result.jobID,
                "run_at": result.runAt.map { $0.formatted(.iso8601) } ?? NSNull(),
                "state": result.state?.rawValue ?? NSNull(),
            ])
        } else if result.created {
            Terminal.say("Enqueued job \(result.jobID) (runs at \(result.runAt?.formatted(.iso8601) ?? "now")).")
        } else {
            let state = result.state.map { "(\($0.rawValue))" } ?? "(enqueued by another system)"
            Terminal.say("Job \(result.jobID) is already active for this user \(state); nothing new enqueued.")
        }
    }

    func makeRequest(now: Date) throws -> ResetRequest {
        return try ResetRequest(
            userPoolID: relabel("pool") { () throws(InvalidInput) in try UserPoolID(pool) },
            username: relabel("user") { () throws(InvalidInput) in try Username(user) },
            runAt: try job.checkedRunAt(now: now),
            priority: job.priority, maxAttempts: job.maxAttempts,
            clientMetadata: try MetadataArguments.parse(metadata),
            idempotencyKey: idempotencyKey, requestedBy: job.requestedBy)
    }
}
