public import Foundation

/// A job this worker claimed: it is `running`, locked by us under a lease, and its `attempt`
/// already counts the call about to be made.
public struct ClaimedJob: Sendable, Equatable {
    public let id: Int64
    public let userPoolID: String
    public let username: String
    public let clientMetadata: [String: String]?
    /// This call's attempt number (1 for the first call).
    public let attempt: Int
    public let maxAttempts: Int
    public let priority: Int
    public let runAt: Date
    /// This claim's identity (its start in microseconds); outcomes are written only for it.
    public let claimToken: Int64
    /// The shared bucket its call slot came from (nil: `--rate unlimited`); throttling of this
    /// call slows that bucket only.
    public var rateKey: String? = nil
    /// The IAM role its pool is called through (`pool set-role`), as stored; nil: the worker's
    /// own credentials.
    public var roleARN: String? = nil
    public var externalID: String? = nil
}

/// How a call ended, as written to `attempts.outcome`.
public enum AttemptOutcome: String, Sendable {
    case succeeded
    case permanentError = "permanent_error"
    case transientError = "transient_error"
    case throttled
    case credentialsError = "credentials_error"
    case leaseExpired = "lease_expired"
}

/// What to write for one finished call: the audit row and the job's next state.
public struct JobRecord: Sendable {
    public let job: ClaimedJob
    public let outcome: AttemptOutcome
    /// `succeeded`, `failed` or `retrying`.
    public let newState: JobState
    /// For `retrying`: how long from now until the job may run again.
    public let retryDelay: Duration
    /// Throttling gives the attempt back: a throttling storm never uses up a job's attempts.
    public let givesBackAttempt: Bool
    public let errorCode: String?
    public let errorMessage: String?
    public let requestID: String?
    public let startedAt: Date
    public let finishedAt: Date
}

extension ClaimedJob {
    /// Claim order (priority, run_at, id): the order a claim takes runnable jobs in.
    public static func inClaimOrder(_ a: ClaimedJob, _ b: ClaimedJob) -> Bool {
        (a.priority, a.runAt, a.id) < (b.priority, b.runAt, b.id)
    }
}
