import CognitoClient
import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import ResetQueue
import Testing

@Suite("Worker: concurrency, outages, races, shutdown")
struct WorkerRobustnessTests {
    @Test(arguments: [2, 4])
    func concurrentWorkersClaimEveryJobExactlyOnce(workers: Int) async throws {
        try await WorkerHarness.with { harness in
            try await harness.insertJobs(5_000)
            let running = (0..<workers).map { index -> (QueueWorker, Task<Void, any Error>) in
                // Exclusive claims are what is tested, not rescue: a lease no stall of a loaded
                // machine outlasts (a rescued lease legitimately repeats a call).
                var configuration = WorkerHarness.configuration("w\(index)-\(UUID().uuidString.prefix(4))")
                configuration.lease = .seconds(60)
                let worker = harness.makeWorker(configuration)
                return (worker, harness.start(worker))
            }
            try await harness.waitUntilAllFinished(deadline: .seconds(180))
            for (worker, task) in running { try await harness.stop(worker, task) }
            let calls = callsPerUser(harness.server)
            #expect(calls.count == 5_000)
            #expect(calls.values.allSatisfy { $0 == 1 }, "no job was called twice")
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'") == 5_000)
            #expect(try await harness.count("SELECT count(DISTINCT worker_id) FROM cognito_reset.attempts") == workers)
        }
    }

    @Test func aThrottlingStormEndsWithEveryJobSucceededAndNoAttemptSpent() async throws {
        try await WorkerHarness.with(responder: { _, number in
            number % 2 == 1 ? .cognitoError(400, type: "TooManyRequestsException", message: "Rate exceeded") : .cognitoSuccess()
        }) { harness in
            try await harness.insertJobs(200, maxAttempts: 2)
            let worker = harness.makeWorker()
            let task = harness.start(worker)
            try await harness.waitUntilAllFinished()
            try await harness.stop(worker, task)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded' AND attempt = 1") == 200)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.attempts WHERE outcome = 'throttled'") >= 100)
        }
    }

    @Test func aCancelRacingASuccessStaysCancelled() async throws {
        try await WorkerHarness.with(responder: { _, _ in .delay(.seconds(1), then: .cognitoSuccess(requestID: "late")) }) { harness in
            try await harness.insertJobs(1, prefix: "racer")
            let worker = harness.makeWorker()
            let task = harness.start(worker)
            await harness.server.waitForRequests(1)
            try await harness.pool.query(
                """
                UPDATE cognito_reset.jobs SET state = 'cancelled', finished_at = now(), locked_by = NULL, lease_expires_at = NULL
                WHERE username = 'racer1'
                """)
            _ = try await harness.events.next("the late success to be written") { if case .recorded = $0 { true } else { false } }
            try await harness.stop(worker, task)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'cancelled'") == 1)
            // The call did happen: the audit says so.
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.attempts WHERE outcome = 'succeeded' AND request_id = 'late'") == 1)
        }
    }

    @Test func gracefulShutdownFinishesCallsInFlightAndGivesBackUnstartedClaims() async throws {
        try await WorkerHarness.with(responder: { _, _ in .delay(.milliseconds(600), then: .cognitoSuccess()) }) { harness in
            try await harness.insertJobs(8)
            var configuration = WorkerHarness.configuration()
            configuration.concurrency = 8
            // One call now, the others held back for a minute: seven claims wait, unstarted.
            let worker = harness.makeWorker(configuration, limiter: HoldingLimiter(immediate: 1, thenWait: .seconds(60)))
            let task = harness.start(worker)
            await harness.server.waitForRequests(1)
            try await harness.stop(worker, task)
            #expect(harness.server.requests.count == 1)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'") == 1)
            #expect(
                try await harness.count(
                    """
                    SELECT count(*) FROM cognito_reset.jobs WHERE state = 'pending' AND attempt = 0 AND locked_by IS NULL
                    """) == 7)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.workers WHERE state = 'stopped' AND in_flight = 0") == 1)
        }
    }

    @Test func expiredLeasesAreRescuedAndLastAttemptsFail() async throws {
        try await WorkerHarness.with { harness in
            try await harness.pool.query(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, max_attempts, locked_by, lease_expires_at, started_at)
                VALUES (\(WorkerHarness.pool), 'orphan', 'running', 1, 5, 'dead-worker', now() - interval '1 minute', now() - interval '2 minutes'),
                       (\(WorkerHarness.pool), 'lastchance', 'running', 3, 3, 'dead-worker', now() - interval '1 minute', now() - interval '2 minutes')
                """)
            let worker = harness.makeWorker()
            let task = harness.start(worker)
            _ = try await harness.events.next("the rescue") { if case .rescued(let count) = $0 { count == 2 } else { false } }
            try await harness.waitUntilAllFinished()
            try await harness.stop(worker, task)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE username = 'orphan' AND state = 'succeeded' AND attempt = 2") == 1)
            #expect(
                try await harness.count(
                    "SELECT count(*) FROM cognito_reset.jobs WHERE username = 'lastchance' AND state = 'failed' AND last_error_code = 'LeaseExpired'") == 1)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.attempts WHERE outcome = 'lease_expired' AND worker_id = 'dead-worker'") == 2)
            #expect(callsPerUser(harness.server) == ["orphan": 1])
        }
    }

    @Test func heartbeatsKeepTheLeaseOfALongCall() async throws {
        // A call more than twice the lease; the lease leaves room for a heartbeat delayed by a
        // busy machine (the whole suite runs in parallel on two cores).
        try await WorkerHarness.with(responder: { _, _ in .delay(.milliseconds(4_500), then: .cognitoSuccess()) }) { harness in
            try await harness.insertJobs(1, prefix: "slow")
            var configuration = WorkerHarness.configuration()
            configuration.lease = .seconds(2)
            configuration.heartbeatInterval = .milliseconds(200)
            let worker = harness.makeWorker(configuration)
            let task = harness.start(worker)
            try await harness.waitUntilAllFinished()
            try await harness.stop(worker, task)
            #expect(harness.server.requests.count == 1)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.attempts WHERE outcome = 'lease_expired'") == 0)
        }
    }

    @Test func anIdleWorkerIsWokenByTheInsertNotPolling() async throws {
        try await WorkerHarness.with { harness in
            var configuration = WorkerHarness.configuration()
            configuration.pollInterval = .seconds(120)  // only a NOTIFY can wake it within the deadline
            let worker = harness.makeWorker(configuration)
            let task = harness.start(worker)
            _ = try await harness.events.next("the worker to go idle") { if case .idle = $0 { true } else { false } }
            try await harness.insertJobs(1, prefix: "notified")
            let server = harness.server
            try await withDeadline(.seconds(15), "the call") { await server.waitForRequests(1) }
            try await harness.stop(worker, task)
        }
    }

    @Test func drainExitsOnceNothingIsRunnableOrInFlight() async throws {
        try await WorkerHarness.with { harness in
            try await harness.insertJobs(25)
            var configuration = WorkerHarness.configuration()
            configuration.drain = true
            try await harness.makeWorker(configuration).run()  // returns by itself
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'") == 25)
        }
    }

    /// A paused bucket (ceiling 0) does not keep --drain running once the queue is empty.
    @Test func drainExitsWhilePausedOnceNothingIsLeft() async throws {
        try await WorkerHarness.with { harness in
            var configuration = WorkerHarness.configuration()
            configuration.drain = true
            configuration.sharedRate = SharedRateLimit(key: "drain-paused", initialCeiling: 10)
            try await harness.pool.query("INSERT INTO cognito_reset.rate_limits (key, rate) VALUES ('drain-paused', 0)")
            let worker = harness.makeWorker(configuration)
            let task = harness.start(worker)
            let ended = try? await harness.events.next("the draining worker to end", deadline: .seconds(20)) {
                if case .stopped = $0 { true } else { false }
            }
            #expect(ended != nil, "--drain kept running while paused with nothing left")
            try await harness.stop(worker, task)  // at once if it ended; otherwise so the failure cannot hang
            #expect(harness.server.requests.isEmpty)
        }
    }

    @Test func survivesTheDatabaseGoingAwayMidRun() async throws {
        try await WorkerHarness.with(responder: { _, _ in .delay(.milliseconds(20), then: .cognitoSuccess()) }) { harness in
            try await harness.insertJobs(400)
            var configuration = WorkerHarness.configuration()
            configuration.lease = .seconds(30)
            let worker = harness.makeWorker(configuration)
            let task = harness.start(worker)
            await harness.server.waitForRequests(100)
            let admin = try await PostgresConnection.connect(harness.database.adminConfiguration)
            let name = PostgresQuery.quoteIdentifier(harness.database.name)
            try await admin.execute("ALTER DATABASE \(unescaped: name) ALLOW_CONNECTIONS false")
            try await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = \(harness.database.name)")
            _ = try await harness.events.next("the worker to notice", deadline: .seconds(60)) {
                if case .databaseUnavailable = $0 { true } else { false }
            }
            try await admin.execute("ALTER DATABASE \(unescaped: name) ALLOW_CONNECTIONS true")
            await admin.close()
            try await harness.waitUntilAllFinished()
            try await harness.stop(worker, task)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'") == 400)
            // Outcomes held during the outage were written afterwards: no job was called twice.
            #expect(callsPerUser(harness.server).values.allSatisfy { $0 == 1 })
        }
    }
}
