public import Postgres

/// A job could not be put back in the queue because its user already has an active (pending,
/// running or retrying) job: one at a time per user (`jobs_one_active_per_user`), so a user never
/// gets two emails from one queue.
public struct ActiveJobExists: Error, Sendable, CustomStringConvertible {
    /// The job that was to be retried.
    public let jobID: Int64

    public var description: String { "job \(jobID) not retried: the user already has an active job" }

    /// The unique index behind the rule.
    static let constraint = "jobs_one_active_per_user"

    /// Whether `error` is that index refusing a second active job.
    static func isViolation(_ error: PostgresError) -> Bool {
        error.sqlState == SQLState.uniqueViolation && error.constraintName == constraint
    }
}
