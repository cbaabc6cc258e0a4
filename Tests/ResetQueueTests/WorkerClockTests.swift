import CognitoClient
import CognitoTesting
import Foundation
import PostgresTesting
import ResetQueue
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
        // The call hangs for good: HTTP timeouts longer than any run of this test, so that only
        // the worker's clock can end the wait.
        let patient = HTTPTransport.Timeouts(connect: .seconds(5), read: .seconds(3600), total: .seconds(3600))
        try await WorkerHarness.with(responder: { _, _ in .hang }, timeouts: patient) { harness in
            try await harness.insertJobs(1, prefix: "slow")
            let manual = ManualClock()
            var configuration = WorkerHarness.configuration()
            configuration.gracePeriod = .seconds(3600)
            configuration.heartbeatInterval = .seconds(7200)  // no heartbeat in this test's time
            configuration.lease = .seconds(14400)
            let worker = harness.makeWorker(configuration, clock: WorkerClock(manual))
            let task = harness.start(worker)
            try await withDeadline(.seconds(30), "the call") { await harness.server.waitForRequests(1) }
            await worker.stop()
            // The stop now waits for the call, until the grace period less its reserve (3 s).
            let reserve = min(Duration.seconds(3), configuration.gracePeriod / 4)
            let wait = configuration.gracePeriod - reserve
            try await withDeadline(.seconds(30), "the stop to wait for the call") { try await manual.waitForSleeper(remaining: wait) }
            manual.advance(by: wait - .seconds(1))
            // A second before its end the wait is still on: only the clock can end it.
            #expect(manual.hasSleeper(remaining: .seconds(1)), "the stop waits for the call the whole grace period")
            manual.advance(by: .seconds(1))
            // Past it: the call is abandoned, and the worker returns with no more time passing.
            try await withDeadline(.seconds(30), "the worker to return once the grace period is over") {
                try await withTaskCancellationHandler {
                    try await task.value
                } onCancel: {
                    task.cancel()
                }
            }
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'running'") == 1, "left to lease rescue")
            // Only that job was called. (A loaded machine can reset the hanging connection, and
            // the client then retries within the same attempt: how many requests is not the point.)
            #expect(!harness.server.requests.isEmpty && harness.server.requests.allSatisfy { $0.username == "slow1" })
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
            try await withDeadline(.seconds(30), "the idle wait") { try await manual.waitForSleeper(remaining: .seconds(3600)) }
            try await harness.insertJobs(1, prefix: "later")
            manual.advance(by: .seconds(3599))
            // A second before the poll the wait is still on, and nothing was called.
            #expect(manual.hasSleeper(remaining: .seconds(1)), "still waiting for its poll")
            #expect(harness.server.requests.isEmpty)
            manual.advance(by: .seconds(1))
            try await withDeadline(.seconds(30), "the call after the poll") { await harness.server.waitForRequests(1) }
            #expect(harness.server.requests.first?.username == "later1")
            try await withDeadline(.seconds(30), "the worker to stop") {
                try await withTaskCancellationHandler {
                    try await harness.stop(worker, task)
                } onCancel: {
                    task.cancel()
                }
            }
        }
    }
}
