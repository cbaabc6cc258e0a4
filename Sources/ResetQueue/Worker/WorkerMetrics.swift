import CognitoClient
import CoreMetrics
import Synchronization

/// The worker's metrics, through swift-metrics (the executable chooses the backend; Prometheus in
/// `cognito-reset worker`). Names follow Prometheus conventions; labels are small fixed sets
/// (error class, outcome, activity), never a username or a job id.
struct WorkerMetrics: Sendable {
    let claimed = Counter(label: "cognito_reset_jobs_claimed_total")
    let succeeded = Counter(label: "cognito_reset_jobs_succeeded_total")
    let rescued = Counter(label: "cognito_reset_jobs_rescued_total")
    let throttles = Counter(label: "cognito_reset_cognito_throttles_total")
    /// The LISTEN connection came back after the database went away.
    let reconnects = Counter(label: "cognito_reset_database_reconnects_total")

    /// Handles made once per label value, not once per call (the hot path at thousands of calls
    /// per second).
    private let durations = HandleCache<Timer> { Timer(label: "cognito_reset_cognito_call_duration_seconds", dimensions: [("outcome", $0)]) }
    private let failed = HandleCache<Counter> { Counter(label: "cognito_reset_jobs_failed_total", dimensions: [("error_class", $0)]) }
    private let retried = HandleCache<Counter> { Counter(label: "cognito_reset_jobs_retried_total", dimensions: [("error_class", $0)]) }

    /// One finished call: its latency, and what it did to its job.
    func record(_ record: JobRecord, errorClass: CognitoError.ErrorClass?, duration: Duration) {
        durations[record.outcome.rawValue].recordNanoseconds(Int64(duration / .nanoseconds(1)))
        if errorClass == .throttled || errorClass == .throttledLong { throttles.increment() }
        switch record.newState {
        case .succeeded:
            succeeded.increment()
        case .failed:
            failed[Self.label(errorClass)].increment()
        case .retrying:
            retried[Self.label(errorClass)].increment()
        default:
            break
        }
    }

    func databaseError(during activity: String) {
        Counter(label: "cognito_reset_database_errors_total", dimensions: [("activity", activity)]).increment()
    }

    /// The error class as a label: `throttledLong` → `throttled_long`. (Data Cognito would
    /// refuse is never sent: such a job fails as `permanent`.)
    static func label(_ errorClass: CognitoError.ErrorClass?) -> String {
        guard let errorClass else { return "none" }
        return errorClass.description.reduce(into: "") { text, character in
            if character.isUppercase { text += "_" + character.lowercased() } else { text.append(character) }
        }
    }
}

/// Metric handles by label value, made on first use.
public final class HandleCache<Handle: Sendable>: Sendable {
    private let make: @Sendable (String) -> Handle
    private let handles = Mutex<[String: Handle]>([:])

    /// `make` builds the handle for a label value the first time it is asked for.
    public init(_ make: @escaping @Sendable (String) -> Handle) { self.make = make }

    /// The handle for `value`, made once.
    public subscript(_ value: String) -> Handle {
        if let handle = handles.withLock({ $0[value] }) { return handle }
        let handle = make(value)
        return handles.withLock { handles in
            if let existing = handles[value] { return existing }
            handles[value] = handle
            return handle
        }
    }
}
