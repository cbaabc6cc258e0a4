import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import ResetQueue
import Testing

/// `worker --drain`, the cron-style run, recovers what a crashed worker left behind: it rescues
/// expired leases itself and waits for the leases of workers that stopped heartbeating, but never
/// for jobs held by live workers.
@Suite("worker --drain and the jobs of dead workers")
struct DrainRescueTests {
    /// A worker that claimed `jobs` jobs and then died: registered, its leases `lease` long, its
    /// heartbeat long silent.
    static func deadWorker(_ harness: WorkerHarness, claiming jobs: Int, lease: Duration) async throws {
        let store = PostgresJobStore(pool: harness.pool)
        try await store.registerWorker(
            id: "dead-worker", host: "gone", pid: 1, version: "test", concurrency: jobs, heartbeatInterval: .milliseconds(300))
        #expect(try await store.claim(workerID: "dead-worker", limit: jobs, lease: lease).count == jobs)
        try await harness.pool.query("UPDATE cognito_reset.workers SET heartbeat_at = now() - interval '1 minute' WHERE id = 'dead-worker'")
    }

    @Test func drainWaitsForADeadWorkersLeasesThenRunsItsJobs() async throws {
        try await WorkerHarness.with { harness in
            try await harness.insertJobs(25)
            try await Self.deadWorker(harness, claiming: 20, lease: .seconds(2))
            var configuration = WorkerHarness.configuration()
            configuration.drain = true
            try await harness.makeWorker(configuration).run()  // returns by itself, once all is done
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'") == 25)
            #expect(
                try await harness.count(
                    """
                    SELECT count(*) FROM cognito_reset.attempts WHERE outcome = 'lease_expired' AND worker_id = 'dead-worker'
                    """) == 20, "the dead worker's lost calls are in the audit")
            #expect(harness.server.requests.count == 25)
        }
    }

    @Test func drainRescuesLeasesThatExpiredBeforeItStarted() async throws {
        try await WorkerHarness.with { harness in
            try await harness.insertJobs(5)
            try await Self.deadWorker(harness, claiming: 5, lease: .milliseconds(1))
            var configuration = WorkerHarness.configuration()
            configuration.drain = true
            // A heartbeat far longer than the run: the drain's own rescue must do it.
            configuration.lease = .seconds(120)
            configuration.heartbeatInterval = .seconds(60)
            try await harness.makeWorker(configuration).run()
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'") == 5)
        }
    }

    @Test func drainDoesNotWaitForJobsOfALiveWorker() async throws {
        try await WorkerHarness.with { harness in
            try await harness.insertJobs(10)
            let store = PostgresJobStore(pool: harness.pool)
            try await store.registerWorker(
                id: "live-worker", host: "here", pid: 2, version: "test", concurrency: 5, heartbeatInterval: .seconds(10))
            #expect(try await store.claim(workerID: "live-worker", limit: 5, lease: .seconds(300)).count == 5)
            // The live worker keeps heartbeating, as live workers do.
            let pool = harness.pool
            let beating = Task {
                while !Task.isCancelled {
                    _ = try? await pool.query("UPDATE cognito_reset.workers SET heartbeat_at = now() WHERE id = 'live-worker'")
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            var configuration = WorkerHarness.configuration()
            configuration.drain = true
            let worker = harness.makeWorker(configuration)
            let started = ContinuousClock.now
            try await withDeadline(.seconds(60), "the drain to end without waiting for the live worker's leases") {
                try await worker.run()
            }
            beating.cancel()
            #expect(ContinuousClock.now - started < .seconds(30), "not kept waiting for leases of 300 s, nor for a silence of 30 s")
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'") == 5)
            #expect(
                try await harness.count(
                    """
                    SELECT count(*) FROM cognito_reset.jobs WHERE state = 'running' AND locked_by = 'live-worker'
                    """) == 5, "the live worker's jobs are left to it")
        }
    }
}
