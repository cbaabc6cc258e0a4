import CognitoTesting
import Foundation
import PostgresTesting
import SystemTesting
import Testing

@testable import ResetQueue

/// Without the shared bucket a worker claims half its concurrency ahead of free call slots, so a
/// call that ends finds its successor claimed already; calls at once stay within the concurrency.
@Suite("Claiming ahead")
struct WorkerClaimAheadTests {
    @Test func jobsClaimedAheadWaitForACallSlot() async throws {
        let arrivals = LockedValue<[ContinuousClock.Instant]>([])
        let answer = Duration.milliseconds(300)
        try await WorkerHarness.with(responder: { _, _ in
            arrivals.withLock { $0.append(ContinuousClock.now) }
            return .delay(answer, then: .cognitoSuccess())
        }) { harness in
            try await harness.insertJobs(12)
            var configuration = WorkerHarness.configuration()
            configuration.concurrency = 4
            let worker = harness.makeWorker(configuration)
            let task = harness.start(worker)
            // The first claim fills the 4 call slots and claims 2 more ahead.
            let first = try await harness.events.next("the first claim") { if case .claimed = $0 { true } else { false } }
            if case .claimed(let jobs) = first { #expect(jobs.count == 6) }
            try await harness.waitUntilAllFinished()
            try await harness.stop(worker, task)
            // Never more than 4 calls at once: a slot's next call starts after its answer, which
            // the server holds back 300 ms, so no 5 requests arrive within 300 ms.
            let times = arrivals.withLock { $0 }.sorted()
            #expect(times.count == 12)
            for index in 4..<times.count {
                #expect(times[index] - times[index - 4] >= answer, "5 calls at once around request \(index)")
            }
        }
    }

    @Test func theDefaultsClaimHalfTheConcurrencyAheadAndNoneWithTheBucket() {
        var configuration = WorkerConfiguration(workerID: "w")
        configuration.concurrency = 16
        #expect(configuration.claimCapacity == 24)
        #expect(configuration.refillThreshold == 4, "half the jobs claimed ahead")
        configuration.claimAhead = 0
        #expect(configuration.claimCapacity == 16)
        #expect(configuration.refillThreshold == 2, "an eighth of the slots")
        configuration.claimAhead = nil
        configuration.sharedRate = SharedRateLimit(key: "cognito:eu-west-1", initialCeiling: 25)
        #expect(configuration.claimCapacity == 16)
        #expect(configuration.refillThreshold == 2)
    }

    /// A stop while jobs wait for a slot: they give themselves back, unstarted.
    @Test func aStopGivesBackJobsWaitingForASlot() async throws {
        // Calls long enough that the stop comes while both slots are busy.
        try await WorkerHarness.with(responder: { _, _ in .delay(.seconds(2), then: .cognitoSuccess()) }) { harness in
            try await harness.insertJobs(3)
            var configuration = WorkerHarness.configuration()
            configuration.concurrency = 2
            configuration.claimAhead = 1
            let worker = harness.makeWorker(configuration)
            let task = harness.start(worker)
            await harness.server.waitForRequests(2)
            try await harness.stop(worker, task)
            #expect(harness.server.requests.count == 2)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'") == 2)
            #expect(
                try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'pending' AND attempt = 0 AND locked_by IS NULL")
                    == 1)
        }
    }
}

/// The call slots' gate: at most `callSlots` calls at once, and at most `maxCalledUnsettled`
/// called jobs whose outcome is not yet written (what a crash would repeat), first come first served.
@Suite("Call slots")
struct CallSlotTests {
    static func job(_ id: Int64) -> ClaimedJob {
        ClaimedJob(
            id: id, userPoolID: "eu-west-1_a", username: "u\(id)", clientMetadata: nil, attempt: 1, maxAttempts: 10,
            priority: 100, runAt: Date(), claimToken: id)
    }

    /// Starts `acquireCallSlot` for `id` in a task and returns once it is queued.
    static func queue(_ id: Int64, on state: WorkerRunState, expectWaiting count: Int) async -> Task<Bool, Never> {
        let task = Task { await state.acquireCallSlot(for: id) }
        while await state.waitingForSlot < count { await Task.yield() }
        return task
    }

    @Test func aCallWaitsForAFreeSlotAndForWrittenOutcomes() async {
        let clock = WorkerClock(ManualClock())
        let state = WorkerRunState(clock: clock, callSlots: 2, maxCalledUnsettled: 3)
        await state.claimStarted()
        await state.claimed((1...5).map(Self.job), sentAt: clock.now)
        #expect(await state.acquireCallSlot(for: 1))
        #expect(await state.acquireCallSlot(for: 2))
        let third = await Self.queue(3, on: state, expectWaiting: 1)
        // Job 1's call ends: its slot goes to job 3 (three called, none written yet).
        await state.finished(.succeeded, releasingSlot: true)
        #expect(await third.value)
        let fourth = await Self.queue(4, on: state, expectWaiting: 1)
        // Job 2's call ends: a slot is free, but three called jobs still wait for their write.
        await state.finished(.succeeded, releasingSlot: true)
        #expect(await state.waitingForSlot == 1)
        // Job 1's outcome is written: job 4 may call.
        await state.settled([1])
        #expect(await fourth.value)
        // A stop: a job still waiting gives itself back without a slot.
        let fifth = await Self.queue(5, on: state, expectWaiting: 1)
        await state.requestStop(grace: .seconds(1))
        #expect(await fifth.value == false)
        #expect(await state.acquireCallSlot(for: 5) == false)
    }
}
