import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import ResetQueue
import Testing

/// The shared bucket with workers running, measured in wall-clock time at the fake Cognito.
/// scripts/test.sh runs the suites whose names end in TimingTests after all the others, alone:
/// they measure rates, which the load of a hundred other tests would blur.
@Suite("Shared rate limit, timed")
struct SharedRateLimitTimingTests {
    static let key = "cognito:test"

    func shared(_ ceiling: Double) -> SharedRateLimit {
        SharedRateLimit(key: Self.key, initialCeiling: ceiling)
    }

    /// `count` workers, each its own identity, all drawing from the same bucket.
    func fleet(_ count: Int, ceiling: Double, _ harness: WorkerHarness) -> [QueueWorker] {
        (0..<count).map { _ in
            var configuration = WorkerHarness.configuration(WorkerConfiguration.makeWorkerID())
            configuration.sharedRate = shared(ceiling)
            return harness.makeWorker(configuration)
        }
    }

    @Test func anUrgentJobGoesBeforeABulkBacklogWhenTokensAreScarce() async throws {
        try await WorkerHarness.with { harness in
            try await harness.insertJobs(200, prefix: "bulk")
            var configuration = WorkerHarness.configuration()
            configuration.sharedRate = shared(10)
            let worker = harness.makeWorker(configuration)
            let task = harness.start(worker)
            await harness.server.waitForRequests(10)
            try await harness.insertJobs(1, prefix: "urgent", priority: 0)
            let inserted = ContinuousClock.now
            try await harness.waitUntil(
                "the urgent job to succeed",
                count: """
                    SELECT count(*) FROM cognito_reset.jobs WHERE username = 'urgent1' AND state = 'succeeded'
                    """, is: 1)
            try await harness.stop(worker, task)
            let urgent = try #require(harness.server.requests.first { $0.username == "urgent1" })
            // Called at the next batch of slots (half a second's worth are reserved at a time),
            // not after the 190 bulk jobs still waiting.
            #expect(urgent.receivedAt - inserted < .milliseconds(1500), "\(urgent.receivedAt - inserted)")
            let bulkDone = try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE username LIKE 'bulk%' AND state = 'succeeded'")
            #expect(bulkDone < 60, "\(bulkDone)")
        }
    }

    @Test func everyWorkerFollowsACeilingChangeWithinTwoSecondsAndZeroPauses() async throws {
        try await WorkerHarness.with { harness in
            try await harness.insertJobs(2000)
            let workers = fleet(2, ceiling: 40, harness)
            let tasks = workers.map(harness.start)
            await harness.server.waitForRequests(40)
            let store = PostgresJobStore(pool: harness.pool)

            try await store.setRateCeiling(key: Self.key, ceiling: 5)
            let lowered = ContinuousClock.now
            // Wait for 25 calls made two seconds or more after the change (events, not sleeps).
            func late() -> [FakeHTTPServer.RecordedRequest] {
                harness.server.requests.filter { $0.receivedAt > lowered + .seconds(2) }
            }
            while late().count < 25 {
                await harness.server.waitForRequests(harness.server.requests.count + 1)
            }
            let after = late()
            let span = try #require(after.last).receivedAt - (try #require(after.first)).receivedAt
            let rate = Double(after.count - 1) / (span / .seconds(1))
            #expect(rate > 4 && rate < 6, "\(rate) calls/s two seconds after the ceiling went to 5/s")

            try await store.setRateCeiling(key: Self.key, ceiling: 0)
            let paused = ContinuousClock.now
            try await Task.sleep(for: .seconds(3))  // measuring an absence of calls takes time
            let late = harness.server.requests.filter { $0.receivedAt > paused + .seconds(2) }
            #expect(late.isEmpty, "\(late.count) calls more than 2 s after the pause")
            let pausedRate = await workers[0].currentRate
            #expect(pausedRate == 0)

            let countAtResume = harness.server.requests.count
            try await store.setRateCeiling(key: Self.key, ceiling: 20)
            let resumed = ContinuousClock.now
            await harness.server.waitForRequests(countAtResume + 1)
            #expect(try #require(harness.server.requests.last).receivedAt - resumed < .seconds(2))
            for (worker, task) in zip(workers, tasks) { try await harness.stop(worker, task) }
        }
    }

    @Test func aFleetFacingThrottlingAbove12PerSecondSettlesNear12WithoutFailingAJob() async throws {
        let gate = RateGate(rate: 12, burst: 2)
        try await WorkerHarness.with(responder: { _, _ in
            gate.admit() ? .cognitoSuccess() : .cognitoError(400, type: "TooManyRequestsException", message: "Rate exceeded")
        }) { harness in
            try await harness.insertJobs(500, maxAttempts: 2)
            let workers = fleet(3, ceiling: 20, harness)
            let tasks = workers.map(harness.start)
            try await harness.waitUntilAllFinished(deadline: .seconds(120))
            for (worker, task) in zip(workers, tasks) { try await harness.stop(worker, task) }

            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'") == 500)
            let calls = gate.calls
            let start = try #require(calls.first).at
            let settled = calls.filter { $0.at >= start + .seconds(30) && $0.at < start + .seconds(40) }
            let succeeded = settled.filter { !$0.throttled }.count
            let throttled = settled.count - succeeded
            // Settled near the 12/s the service allows (CUBIC oscillates just below it) with
            // throttling down to a trickle.
            #expect(succeeded >= 95 && succeeded <= 125, "\(succeeded) successful calls from 30 s to 40 s")
            #expect(Double(throttled) <= 0.1 * Double(settled.count), "\(throttled) of \(settled.count) calls throttled from 30 s to 40 s")
        }
    }
}
