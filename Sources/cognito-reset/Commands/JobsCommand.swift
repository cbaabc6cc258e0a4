import ArgumentParser
import CognitoClient
import Foundation
import Postgres
import ResetQueue

/// `cognito-reset jobs list|show|retry|cancel`.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "List, inspect, retry and cancel jobs.",
        subcommands: [List.self, Show.self, Retry.self, Cancel.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs, newest first.")
        @OptionGroup var database: DatabaseOptions
        @Option(help: ArgumentHelp("Only jobs in this state.", valueName: "STATE")) var state: String?
        @Option(help: ArgumentHelp("Only jobs of this user pool.", valueName: "ID")) var pool: String?
        @Option(help: ArgumentHelp("At most this many (default 50).", valueName: "N")) var limit = 50
        @Flag(help: "Print JSON for machines.") var json = false

        func run() async throws {
            let state = try parseState(state)
            let pool = try checkedPool(pool)
            guard (1...10_000).contains(limit) else { throw CLIError.badInput("--limit: must be from 1 to 10000") }
            let jobs = try await database.withJobStore(logger: try database.logger()) { try await $0.list(state: state, pool: pool, limit: limit) }
            if json {
                Terminal.json(try jsonEncoder().encode(jobs))
                return
            }
            Terminal.say(["ID", "POOL", "USER", "STATE", "ATTEMPT", "PRIO", "RUN AT", "LAST ERROR"].joined(separator: "\t"))
            for job in jobs {
                Terminal.say(
                    [
                        String(job.id), TableCell.safe(job.userPoolID), TableCell.safe(job.username), job.state, "\(job.attempt)/\(job.maxAttempts)",
                        String(job.priority), job.runAt.formatted(.iso8601), job.lastErrorCode.map(TableCell.safe) ?? "-",
                    ].joined(separator: "\t"))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one job and every call made for it.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The job id.") var id: Int64
        @Flag(help: "Print JSON for machines.") var json = false

        func run() async throws {
            guard let (job, attempts) = try await database.withJobStore(logger: try database.logger(), { try await $0.job(id: id) }) else {
                throw CLIError.failure("no job \(id)")
            }
            if json {
                struct Both: Encodable {
                    let job: JobSummary
                    let attempts: [AttemptSummary]
                }
                Terminal.json(try jsonEncoder().encode(Both(job: job, attempts: attempts)))
                return
            }
            Terminal.say(
                """
                Job \(job.id)  \(job.state)  attempt \(job.attempt)/\(job.maxAttempts)  priority \(job.priority)
                Pool \(SafeText.escaped(job.userPoolID))  user \(SafeText.escaped(job.username))
                Created \(job.createdAt.formatted(.iso8601))  run at \(job.runAt.formatted(.iso8601))\(job.finishedAt.map { "  finished \($0.formatted(.iso8601))" } ?? "")
                """)
            if let code = job.lastErrorCode { Terminal.say("Last error \(SafeText.escaped(code)): \(SafeText.escaped(job.lastErrorMessage ?? ""))") }
            if let request = job.cognitoRequestID { Terminal.say("Cognito request id \(SafeText.escaped(request))") }
            if let worker = job.lockedBy { Terminal.say("Held by \(SafeText.escaped(worker))") }
            for attempt in attempts {
                let error = attempt.errorCode.map { "  \(SafeText.escaped($0)): \(SafeText.escaped(attempt.errorMessage ?? ""))" } ?? ""
                Terminal.say(
                    "  #\(attempt.attempt) \(attempt.startedAt.formatted(.iso8601)) \(attempt.outcome) \(attempt.latencyMilliseconds.map { "\($0) ms" } ?? "") by \(SafeText.escaped(attempt.workerID))\(error)"
                )
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue failed or cancelled jobs again, with fresh attempts.",
            discussion: "Give a job id, or --state failed|cancelled (optionally --pool) for each user's newest such job.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The job id.") var id: Int64?
        @Option(help: ArgumentHelp("failed or cancelled.", valueName: "STATE")) var state: String?
        @Option(help: ArgumentHelp("Only jobs of this user pool (with --state).", valueName: "ID")) var pool: String?

        func run() async throws {
            let pool = try checkedPool(pool)
            switch (id, try parseState(state)) {
            case (let id?, nil):
                do {
                    let retried = try await database.withJobStore(logger: try database.logger()) { try await $0.retry(id: id) }
                    guard retried else { throw CLIError.failure("job \(id) is not failed or cancelled (or does not exist)") }
                    Terminal.say("Job \(id) queued again.")
                } catch let error as ActiveJobExists {
                    throw CLIError.failure(error.description)
                }
            case (nil, let state?) where state == .failed || state == .cancelled:
                let count = try await database.withJobStore(logger: try database.logger()) { try await $0.retry(state: state, pool: pool) }
                Terminal.say("\(count) job(s) queued again.")
            default:
                throw CLIError.badInput("give a job id, or --state failed|cancelled (not both)")
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel active jobs: one by id, all of a pool, or all of an import.",
            discussion: "A running job is cancelled too; its call's late outcome is audited but never overwrites the cancel.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The job id.") var id: Int64?
        @Option(help: ArgumentHelp("Every active job of this user pool.", valueName: "ID")) var pool: String?
        @Option(name: .customLong("import"), help: ArgumentHelp("Every active job of this CSV import.", valueName: "ID")) var importID: Int64?

        func run() async throws {
            guard [id != nil, pool != nil, importID != nil].filter({ $0 }).count == 1 else {
                throw CLIError.badInput("give exactly one of: a job id, --pool ID, --import ID")
            }
            let pool = try checkedPool(pool)
            let count = try await database.withJobStore(logger: try database.logger()) { try await $0.cancel(id: id, pool: pool, importID: importID) }
            Terminal.say("\(count) job(s) cancelled.")
        }
    }
}

/// A `--pool` filter, checked like every pool id (a filter that can match no job is a typo).
func checkedPool(_ text: String?) throws -> String? {
    guard let text else { return nil }
    do {
        return try relabel("pool") { () throws(InvalidInput) in try UserPoolID(text) }.rawValue
    } catch {
        throw CLIError(error)
    }
}

/// `--state` values, checked.
func parseState(_ text: String?) throws -> JobState? {
    guard let text else { return nil }
    guard let state = JobState(rawValue: text) else {
        throw CLIError.badInput("--state: must be one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return state
}
