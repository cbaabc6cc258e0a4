import CognitoClient
import CognitoTesting
import Foundation
import Logging
import Postgres
import PostgresTesting
import Testing

@testable import ResetQueue

/// The worker never lets one bad row, a lost claim, an old claim or a misconfigured role wedge it.
@Suite("Worker safety")
struct WorkerSafetyTests {
    @Test func anOutcomeTheDatabaseRefusesDoesNotBlockTheOthers() async throws {
        try await WorkerHarness.with { harness in
            // Refuse exactly one job's success, as a constraint would.
            try await harness.pool.query(
                """
                CREATE FUNCTION public.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'poisoned row' USING ERRCODE = 'check_violation'; END $$
                """)
            try await harness.pool.query(
                """
                CREATE TRIGGER refuse_poison BEFORE UPDATE ON cognito_reset.jobs FOR EACH ROW
                WHEN (NEW.username = 'poison1' AND NEW.state = 'succeeded') EXECUTE FUNCTION public.refuse_poison()
                """)
            try await harness.insertJobs(1, prefix: "poison")
            try await harness.insertJobs(30)
            let worker = harness.makeWorker()
            let task = harness.start(worker)
            try await harness.waitUntil(
                "the other jobs to succeed", count: "SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'", is: 30)
            try await harness.stop(worker, task)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE username = 'poison1' AND state = 'succeeded'") == 0)
        }
    }

    @Test func errorTextIsStoredWithoutNulAndWithinTheSchemasLimits() async throws {
        let long = String(repeating: "🙂", count: 3_000)
        try await WorkerHarness.with(responder: { _, _ in
            .respond(
                status: 400, headers: [("X-Amzn-ErrorType", "UserNotFoundException")],
                body: #"{"message":"bad\u0000text \#(long)"}"#)
        }) { harness in
            try await harness.insertJobs(1)
            let worker = harness.makeWorker()
            let task = harness.start(worker)
            try await harness.waitUntilAllFinished()
            try await harness.stop(worker, task)
            let row = try await harness.pool.query(
                "SELECT last_error_message, char_length(last_error_message) FROM cognito_reset.jobs")[0]
            // The client escapes the server's text (a NUL shows as \x00) and bounds it.
            #expect(try row.decode(String.self, at: 0).hasPrefix("bad\\x00text 🙂"))
            #expect(try row.decode(Int.self, at: 1) == 1_000)
        }
    }

    @Test func aClaimThatNeverReachedTheWorkerIsNotRenewedButRescued() async throws {
        try await WorkerHarness.with { harness in
            let configuration = WorkerHarness.configuration("lost-claims-worker")
            // As if this worker's claim committed but the rows never arrived (connection dropped).
            try await harness.pool.query(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, locked_by, lease_expires_at, started_at)
                VALUES (\(WorkerHarness.pool), 'lost1', 'running', 1, 'lost-claims-worker', now() + interval '1 second', now())
                """)
            let worker = harness.makeWorker(configuration)
            let task = harness.start(worker)
            try await harness.waitUntilAllFinished()
            try await harness.stop(worker, task)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.attempts WHERE outcome = 'lease_expired'") == 1)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded' AND attempt = 2") == 1)
        }
    }

    /// On a starved machine a claim's reply can take longer to be handled than the lease lasts:
    /// while a claim is in progress the worker rescues none of its own jobs (others' it still does).
    @Test func whileAClaimIsInProgressTheWorkerRescuesNoneOfItsOwnJobs() async throws {
        try await WorkerHarness.with { harness in
            try await harness.pool.query(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, locked_by, lease_expires_at, started_at)
                VALUES (\(WorkerHarness.pool), 'mine', 'running', 1, 'me', now() - interval '1 second', now() - interval '5 seconds'),
                       (\(WorkerHarness.pool), 'theirs', 'running', 1, 'dead', now() - interval '1 second', now() - interval '5 seconds')
                """)
            let store = PostgresJobStore(pool: harness.pool)
            #expect(try await store.rescueExpiredLeases(exceptHeldBy: "me", holding: [], claimInProgress: true) == 1)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE username = 'mine' AND state = 'running'") == 1)
            // Once no claim is in progress, an expired claim of its own that it does not hold was lost.
            #expect(try await store.rescueExpiredLeases(exceptHeldBy: "me", holding: [], claimInProgress: false) == 1)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE username = 'mine' AND state = 'retrying'") == 1)
        }
    }

    @Test func anOldClaimsOutcomeNeverOverwritesANewerClaim() async throws {
        try await WorkerHarness.with { harness in
            let store = PostgresJobStore(pool: harness.pool)
            try await harness.insertJobs(1)
            let first = try #require(try await store.claim(workerID: "w", limit: 1, lease: .seconds(30)).first)
            // An operator cancels, then retries; the same worker claims the job again.
            try await harness.pool.query(
                """
                UPDATE cognito_reset.jobs SET state = 'cancelled', finished_at = now(), locked_by = NULL, lease_expires_at = NULL
                """)
            try await harness.pool.query("UPDATE cognito_reset.jobs SET state = 'pending', attempt = 0, finished_at = NULL")
            let second = try #require(try await store.claim(workerID: "w", limit: 1, lease: .seconds(30)).first)
            #expect(first.attempt == second.attempt)
            #expect(first.claimToken != second.claimToken)
            let late = JobRecord(
                job: first, outcome: .permanentError, newState: .failed, retryDelay: .zero, givesBackAttempt: false,
                errorCode: "UserNotFoundException", errorMessage: "late", requestID: nil, startedAt: Date(), finishedAt: Date())
            #expect(try await store.record([late], workerID: "w").isEmpty)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'running'") == 1)
        }
    }

    /// This worker can claim a job again before the older claim's outcome is written (cancelled
    /// and retried meanwhile): the job stays held, its lease renewed, until the newer claim settles.
    /// A worker frozen past its lease must not call on a claim that may have been rescued: by
    /// its own clock, the lease lasts from the statement that set it, claim or heartbeat.
    @Test func aLeaseLastsFromTheStatementThatSetItAndOnlyForHeldJobs() async {
        let clock = WorkerClock(ManualClock())
        let state = WorkerRunState(clock: clock)
        let job = ClaimedJob(
            id: 9, userPoolID: "eu-west-1_a", username: "u", clientMetadata: nil, attempt: 1, maxAttempts: 10,
            priority: 100, runAt: Date(), claimToken: 1)
        await state.claimStarted()
        await state.claimed([job], sentAt: clock.now - .seconds(10))
        #expect(await !state.leaseLasts(9, lease: .seconds(5), margin: .seconds(1)), "set 10 s ago, a 5 s lease is over")
        #expect(await state.leaseLasts(9, lease: .seconds(30), margin: .seconds(1)))
        await state.renewed([9], sentAt: clock.now)
        #expect(await state.leaseLasts(9, lease: .seconds(5), margin: .seconds(1)), "a renewal sets it again")
        #expect(await !state.leaseLasts(9, lease: .seconds(5), margin: .seconds(5)), "the margin counts")
        await state.settled([9])
        await state.renewed([9], sentAt: clock.now)
        #expect(await !state.leaseLasts(9, lease: .seconds(30), margin: .seconds(1)), "a settled job holds no lease")
    }

    @Test func aJobClaimedAgainStaysHeldUntilItsNewerClaimSettles() async {
        let clock = WorkerClock(ManualClock())
        let state = WorkerRunState(clock: clock)
        func claim(token: Int64) -> ClaimedJob {
            ClaimedJob(
                id: 7, userPoolID: "eu-west-1_a", username: "u", clientMetadata: nil, attempt: 1, maxAttempts: 10,
                priority: 100, runAt: Date(), claimToken: token)
        }
        await state.claimStarted()
        await state.claimed([claim(token: 1)], sentAt: clock.now)
        await state.claimStarted()
        await state.claimed([claim(token: 2)], sentAt: clock.now)
        #expect(await state.unsettled == 2)
        await state.settled([7])  // the older claim's outcome
        #expect(await state.held == [7])
        #expect(await state.rescueExclusions().held == [7])
        await state.settled([7])
        #expect(await state.held.isEmpty)
        #expect(await state.unsettled == 0)
    }

    /// A batch whose commit reply was lost is sent again: the audit keeps one row per call.
    @Test func anOutcomeWrittenTwiceIsAuditedOnce() async throws {
        try await WorkerHarness.with { harness in
            let store = PostgresJobStore(pool: harness.pool)
            try await harness.insertJobs(1)
            let job = try #require(try await store.claim(workerID: "w", limit: 1, lease: .seconds(30)).first)
            let outcome = JobRecord(
                job: job, outcome: .succeeded, newState: .succeeded, retryDelay: .zero, givesBackAttempt: false,
                errorCode: nil, errorMessage: nil, requestID: "req-1", startedAt: Date(), finishedAt: Date())
            #expect(try await store.record([outcome], workerID: "w") == [job.id])
            // Sent again as the recorder does after a lost reply.
            #expect(try await store.record([outcome], workerID: "w", mayBeWritten: true).isEmpty)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.attempts") == 1)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'") == 1)
        }
    }

    @Test func aWorkerWithoutPermissionStopsWithTheErrorInsteadOfLooping() async throws {
        try await WorkerHarness.with { harness in
            try await TestRole.with("nogrants", on: harness.database.configuration) { role in
                let pool = ConnectionPool(configuration: role.configuration, options: .init(maximumConnections: 2, connectDeadline: .seconds(2)))
                let cognito = CognitoIdentityProviderClient(
                    endpoints: CognitoEndpointResolver(configuredRegion: "eu-west-1", endpointOverride: harness.server.url),
                    credentials: CachingCredentialProvider(base: StaticProvider()), transport: harness.transport)
                let worker = QueueWorker(
                    configuration: WorkerHarness.configuration(), store: PostgresJobStore(pool: pool), listenConfiguration: role.configuration,
                    cognito: cognito, limiter: UnlimitedRateLimiter(), logger: .init(label: "test"))
                let error = try await #require(throws: PostgresError.self) { try await worker.run() }
                #expect(error.sqlState == SQLState.insufficientPrivilege)
                await pool.close()
            }
        }
    }

    /// An outcome the database refuses for a reason retrying cannot fix (here the worker role
    /// lost INSERT on the audit) is kept, not dropped, so the job is not called again; and the
    /// stall is reported (log, metric, event) instead of passing for a quiet worker.
    @Test func anOutcomeRefusedByAMissingGrantIsKeptAndReported() async throws {
        try await WorkerHarness.with { harness in
            try await TestRole.with("noaudit", on: harness.database.configuration, memberOf: ["cognito_reset_worker"]) { role in
                try await harness.pool.query("REVOKE INSERT ON cognito_reset.attempts FROM cognito_reset_worker")
                try await harness.insertJobs(1, prefix: "unaudited")
                let restricted = ConnectionPool(configuration: role.configuration, options: .init(maximumConnections: 4, connectDeadline: .seconds(2)))
                var configuration = WorkerHarness.configuration()
                configuration.lease = .seconds(30)
                configuration.gracePeriod = .seconds(1)
                let worker = harness.makeWorker(configuration, store: PostgresJobStore(pool: restricted))
                let task = harness.start(worker)
                // Waits for the report itself; times out (and fails) if it never comes.
                _ = try await harness.events.next("the refused write to be reported") {
                    if case .databaseUnavailable(let error) = $0 { error.sqlState == SQLState.insufficientPrivilege } else { false }
                }
                try await harness.stop(worker, task)
                await restricted.close()
                #expect(harness.server.requests.count == 1)
                #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'running'") == 1)
            }
        }
    }

    /// A write that fails for a passing reason (here a lock timeout, SQLSTATE 55P03, as a
    /// statement timeout, a failover or a full disk would) keeps the outcome until it is written:
    /// dropping it would leave the job to rescue, and rescue would call Cognito a second time.
    @Test func anOutcomeThatFailsToWriteForAPassingReasonIsKeptUntilWritten() async throws {
        try await WorkerHarness.with(responder: { _, _ in .delay(.milliseconds(300), then: .cognitoSuccess()) }) { harness in
            try await harness.insertJobs(1, prefix: "locked")
            let impatient = ConnectionPool(
                configuration: harness.database.configuration.setting("options", to: "-c lock_timeout=200"),
                options: .init(maximumConnections: 4, connectDeadline: .seconds(2)))
            var configuration = WorkerHarness.configuration()
            configuration.lease = .seconds(30)  // rescue stays out of it for the whole test
            configuration.heartbeatInterval = .seconds(10)
            let worker = harness.makeWorker(configuration, store: PostgresJobStore(pool: impatient))
            let task = harness.start(worker)
            await harness.server.waitForRequests(1)

            // Another session holds the job's row while the worker tries to record the outcome.
            let locker = try await harness.database.connect()
            try await locker.execute("BEGIN")
            try await locker.execute("SELECT 1 FROM cognito_reset.jobs WHERE username = 'locked1' FOR UPDATE")
            let blocked = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%cognito_reset.attempts%'"
            for round in 1...2 {  // two writes time out: the batch, then its retry
                try await withDeadline(.seconds(10), "record attempt \(round) to wait for the lock") {
                    while try await harness.count(blocked) == 0 { try await Task.sleep(for: .milliseconds(10)) }
                }
                try await withDeadline(.seconds(10), "record attempt \(round) to time out") {
                    while try await harness.count(blocked) > 0 { try await Task.sleep(for: .milliseconds(10)) }
                }
            }
            try await locker.execute("ROLLBACK")
            await locker.close()

            try await harness.waitUntil(
                "the kept outcome to be written", deadline: .seconds(10),
                count: "SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'", is: 1)
            try await harness.stop(worker, task)
            await impatient.close()
            #expect(harness.server.requests.count == 1)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.attempts WHERE outcome = 'succeeded'") == 1)
        }
    }
}
