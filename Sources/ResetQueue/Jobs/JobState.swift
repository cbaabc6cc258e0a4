/// Where a job stands (`cognito_reset.jobs.state`). See docs/design.md, "Job lifecycle".
public enum JobState: String, Sendable, CaseIterable, Codable {
    /// Waiting for its `run_at`, never claimed yet.
    case pending
    /// Claimed by a worker under a lease; a Cognito call is in flight or about to be.
    case running
    /// Waiting for its `run_at` after a transient error, a throttle or an expired lease.
    case retrying
    case succeeded
    /// A permanent error, or attempts used up.
    case failed
    /// Stopped by an operator before finishing.
    case cancelled
}
