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
