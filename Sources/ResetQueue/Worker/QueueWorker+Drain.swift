import CoreMetrics
import Logging

extension QueueWorker {
    /// Where a `--drain` run stands when the claim found nothing.
    enum DrainState {
        /// Nothing in flight, nothing to write, nothing runnable, no job of a dead worker left.
        case drained
        /// Jobs held by a worker that stopped heartbeating, or may have: look again in this long.
        case waiting(Duration)
        /// Something is still in flight, to write, or runnable (again, after a rescue).
        case working
    }

    /// For --drain. A drain run can be shorter than a heartbeat interval, so it rescues expired
    /// leases itself, and it waits for the leases of workers that stopped heartbeating (then runs
    /// their jobs): a deployment that only runs drains still recovers a crashed run's jobs. Jobs
    /// held by live workers do not keep it waiting.
    func drainState(_ recorder: OutcomeRecorder) async throws -> DrainState {
        guard await state.inFlight == 0 else { return .working }
        guard await recorder.isEmpty else {
            await recorder.flush()
            return .working
        }
        let regions = configuration.regions
        let workerID = configuration.workerID
        // Read before the rescue, in one snapshot: a job another worker's heartbeat rescues
        // meanwhile was still running in it (so it is waited for), or is runnable in it.
        let outlook = try await state.cancellingOnStop { [store] in try await store.drainOutlook(workerID: workerID, regions: regions) }
        guard !outlook.runnable else { return .working }
        let rescued = try await state.cancellingOnStop { [store] in
            try await store.rescueExpiredLeases(exceptHeldBy: workerID, holding: [], claimInProgress: false)
        }
        if rescued > 0 {
            reportRescued(rescued)
            return .working
        }
        guard let wait = outlook.orphanedLeaseWait else { return .drained }
        // A lease is due to run out (then rescue), or a worker to count as silent: wake a moment after.
        return .waiting(max(.milliseconds(50), wait + .milliseconds(50)))
    }

    func reportRescued(_ rescued: Int) {
        metrics.rescued.increment(by: Int64(rescued))
        logger.notice("rescued jobs whose worker stopped renewing its lease", metadata: ["jobs": "\(rescued)"])
        onEvent(.rescued(rescued))
    }
}
