import Foundation
import Logging

/// Tells the shared buckets about throttled calls, one statement at a time: reports that arrive
/// while one is being written are added up (per bucket) and sent together, so a throttling storm
/// costs the database a few statements, not one per throttled call. Each call's throttling goes
/// to the bucket its slot came from: a throttled account slows only itself.
actor ThrottleReporter {
    private let store: PostgresJobStore
    private let logger: Logger
    private var pending: [String: Int] = [:]
    private var sending = false

    init(store: PostgresJobStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func report(key: String) async {
        pending[key, default: 0] += 1
        guard !sending else { return }
        sending = true
        defer { sending = false }
        while let (key, count) = pending.first {
            pending[key] = nil
            do {
                let rate = try await store.reportThrottles(key: key, count: count)
                logger.debug(
                    "throttling reported to the shared rate limit",
                    metadata: ["rate.key": "\(key)", "throttles": "\(count)", "rate": "\(rate.map { String(format: "%.2f", $0) } ?? "-")"])
            } catch {
                // The cut is lost, not the throttling: the next throttled call reports again.
                logger.warning("cannot report throttling to the shared rate limit", metadata: ["rate.key": "\(key)", "error": "\(error)"])
                pending = [:]
                return
            }
        }
    }
}
