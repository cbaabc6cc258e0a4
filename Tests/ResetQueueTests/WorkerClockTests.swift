import CognitoTesting
import Foundation
import PostgresTesting
import ResetQueue
import SystemTesting
import Testing

/// The worker's timing on a clock the test moves by hand: a grace period of an hour and a poll
/// interval of an hour, tested in well under a second of real time and without any real-time
/// floor. (Leases and `run_at` are the database's time, tested against the real server.)
@Suite("Worker timing on a manual clock")
struct WorkerClockTests {
    /// A call that never answers keeps the stop waiting for exactly the grace period (less the
    /// reserve kept for writing outcomes), not a moment less; then the worker returns and leaves
    /// the job to lease rescue.
    @Test func aStopWaitsForCallsInFlightUntilTheGracePeriodEnds() async throws {
        try await WorkerHarness.with(responder: { _, _ in .hang }) { harness in
            try await harness.insertJobs(1, prefix: "slow")
            let manual = ManualClock()
            var configuration = WorkerHarness.configuration()
            configuration.gracePeriod = .seconds(3600)
            configuration.heartbeatInterval = .seconds(7200)  // no heartbeat in this test's time
            configuration.lease = .seconds(14400)
            let worker = harness.makeWorker(configuration, clock: WorkerClock(manual))
            let returned = LockedValue(false)
            let task = Task {
                try await worker.run()
                returned.withLock { $0 = true }
            }
            await harness.server.waitForRequests(1)
            await worker.stop()
            // The stop now waits for the call, until the grace period less its reserve (3 s).
            let reserve = min(Duration.seconds(3), configuration.gracePeriod / 4)
            await manual.waitForSleeper(until: configuration.gracePeriod - reserve)
            manual.advance(by: configuration.gracePeriod - reserve - .seconds(1))
            // Nothing but the clock can end that wait (the call never answers).
            #expect(!returned.withLock { $0 }, "a second before the end of the wait, the call still has time")
            manual.advance(by: .seconds(1))
            // Past it: the call is abandoned, and the worker returns with no more time passing.
            try await withDeadline(.seconds(30), "the worker to return once the grace period is over") { try await task.value }
            #expect(returned.withLock { $0 })
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'running'") == 1, "left to lease rescue")
            #expect(harness.server.requests.count == 1)
        }
    }

    /// Without LISTEN, an idle worker finds a new job at its next poll: not before the poll
    /// interval has passed on its clock, and at once when it has.
    @Test func anIdleWorkerWithoutListenFindsNewWorkAtItsNextPoll() async throws {
        try await WorkerHarness.with { harness in
            let manual = ManualClock()
            var configuration = WorkerHarness.configuration()
            configuration.pollInterval = .seconds(3600)
            configuration.heartbeatInterval = .seconds(7200)
            configuration.lease = .seconds(14400)
            let worker = harness.makeWorker(configuration, listen: false, clock: WorkerClock(manual))
            let task = harness.start(worker)
            // Idle: nothing runnable, so it waits a poll interval.
            await manual.waitForSleeper(until: .seconds(3600))
            try await harness.insertJobs(1, prefix: "later")
            manual.advance(by: .seconds(3599))
            #expect(harness.server.requests.isEmpty, "still waiting for its poll")
            manual.advance(by: .seconds(1))
            await harness.server.waitForRequests(1)
            #expect(harness.server.requests.first?.username == "later1")
            try await harness.stop(worker, task)
        }
    }
}
