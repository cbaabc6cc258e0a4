import CoreMetrics
import Foundation

/// Claiming: registering a claim's jobs as held, and paced claims from the shared bucket.
extension QueueWorker {
    enum PacedResult { case claimed, nothingRunnable }

    /// Runs a claim statement and puts its jobs in `held`, telling the heartbeat meanwhile that a
    /// claim is on its way (so it does not mistake a slow reply for a lost one).
    func registeringClaim<Reply: Sendable>(
        _ claim: @escaping @Sendable () async throws -> Reply, jobs: (Reply) -> [ClaimedJob]
    ) async throws -> Reply {
        await state.claimStarted()
        let sentAt = clock.now
        let reply: Reply
        do {
            // A stop cancels the statement: a claim waiting on a hung database must not hold it up.
            reply = try await state.cancellingOnStop(claim)
        } catch {
            await state.claimEnded()
            throw error
        }
        await state.claimed(jobs(reply), sentAt: sentAt)
        return reply
    }

    /// One claim statement: the shared bucket's (`rate`), or with `rate` nil the same claim
    /// without a bucket (an import's own rate still gives a job its slot).
    func claim(limit: Int, rate: SharedRateLimit?) async throws -> PacedClaim {
        try await registeringClaim { [store, configuration] in
            try await store.claimPaced(
                workerID: configuration.workerID, limit: limit, lease: configuration.lease, rate: rate, regions: configuration.regions)
        } jobs: {
            $0.jobs.map(\.job)
        }
    }

    /// Starts a call for each job `claim` got, at its slot, in claim order (urgent jobs first).
    /// Without the shared bucket (`paced` false) a test's limiter may hold calls back further;
    /// slots the fleet's bucket handed out are never delayed past.
    func dispatch(_ claim: PacedClaim, paced: Bool, jobs: inout DiscardingTaskGroup, recorder: OutcomeRecorder) async {
        guard !claim.jobs.isEmpty else { return }
        let claimed = claim.jobs.map(\.job)
        metrics.claimed.increment(by: Int64(claimed.count))
        onEvent(.claimed(claimed))
        for (job, callIn) in claim.jobs.sorted(by: { ClaimedJob.inClaimOrder($0.job, $1.job) }) {
            let wait = paced ? callIn : max(await limiter.reserve(), callIn)
            jobs.addTask { await self.process(job, after: wait, recorder: recorder) }
        }
    }

    /// One claim from the shared bucket: jobs only for the slots it has free, each called at its
    /// slot. When slots are short (or the ceiling is 0) it waits until the next batch is due,
    /// at most a second, so a changed ceiling is seen promptly.
    func claimPaced(
        _ shared: SharedRateLimit, limit: Int, jobs: inout DiscardingTaskGroup, recorder: OutcomeRecorder
    ) async throws -> PacedResult {
        let claim = try await claim(limit: limit, rate: shared)
        if let rate = claim.currentRate { await state.observeSharedRate(rate) }
        await dispatch(claim, paced: true, jobs: &jobs, recorder: recorder)
        guard let wait = claim.wait else { return .nothingRunnable }
        if claim.jobs.isEmpty, claim.ceiling == 0, configuration.drain {
            // Paused: --drain must still end once nothing is left (the caller checks; with jobs
            // still runnable it waits as when idle).
            return .nothingRunnable
        }
        if claim.jobs.isEmpty {
            // Another worker took this batch. Those that missed come back at random points of
            // the next interval instead of all at once, so most claims find a batch ready:
            // fewer statements, and the worker that did claim keeps the schedule on time.
            await state.pause(for: min(wait * (1 + random()), .seconds(1)))
        } else if claim.jobs.count < limit {
            await state.pause(for: min(wait, .seconds(1)))
        }
        return .claimed
    }
}
