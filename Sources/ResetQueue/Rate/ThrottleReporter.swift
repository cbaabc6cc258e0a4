import Foundation
import Logging

/// Tells the shared bucket about throttled calls, one statement at a time: reports that arrive
/// while one is being written are added up and sent together, so a throttling storm costs the
/// database a few statements, not one per throttled call.
actor ThrottleReporter {
    private let store: PostgresJobStore
    private let key: String
    private let logger: Logger
    private var pending = 0
    private var sending = false

    init(store: PostgresJobStore, key: String, logger: Logger) {
        self.store = store
        self.key = key
        self.logger = logger
    }

    func report() async {
        pending += 1
        guard !sending else { return }
        sending = true
        defer { sending = false }
        while pending > 0 {
            let count = pending
            pending = 0
            do {
                let rate = try await store.reportThrottles(key: key, count: count)
                logger.debug("throttling reported to the shared rate limit",
                              metadata: ["rate.key": "\(key)", "throttles": "\(count)", "rate": "\(rate.map { String(format: "%.2f", $0) } ?? "-")"])
            } catch {
                // The cut is lost, not the throttling: the next throttled call reports again.
                logger.warning("cannot report throttling to the shared rate limit", metadata: ["error": "\(error)"])
                return
            }
        }
    }
}
