import Foundation
import Postgres
import PostgresTesting
import Testing

@testable import ResetQueue

/// README's "The SQL contract for other systems", checked the way another system meets it: as a
/// LOGIN role that was granted `cognito_reset_enqueuer`, connected with its own password.
///
/// These tests name only what the contract names (`cognito_reset.jobs`, `attempts`,
/// `queue_status`, `enqueue_reset`, the `jobs_one_active_per_user` violation): the storage under
/// `jobs` may change (a partitioned table, say) and the contract must still hold. Jobs move
/// through their states the way the product moves them, with `PostgresJobStore`'s claim, record
/// and cancel as the owner, never with hand-written UPDATEs.
@Suite("The SQL contract for other systems")
struct SQLContractTests {
    static let pool = "eu-west-1_Contract1"
    static let workerID = "contract-worker"

    // MARK: Point 1: plain INSERT, with and without RETURNING id

    @Test func aPlainInsertEnqueuesAJobWithOrWithoutReturningItsID() async throws {
        try await Fixture.with { fixture in
            try await fixture.withLoginRole("enq") { enqueuer in
                let inserted = try await enqueuer.execute(
                    "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(Self.pool), 'alice')")
                #expect(inserted == 1)
                let alice = try await enqueuer.connection.query(
                    """
                    SELECT state, enqueued_by, requested_by, attempt FROM cognito_reset.jobs
                    WHERE user_pool_id = \(Self.pool) AND username = 'alice'
                    """)
                #expect(alice.count == 1)
                if let row = alice.first {
                    #expect(try row.decode(String.self, at: 0) == "pending")
                    // Both default to the inserting login role, set by the database.
                    #expect(try row.decode(String.self, at: 1) == enqueuer.name)
                    #expect(try row.decode(String.self, at: 2) == enqueuer.name)
                    #expect(try row.decode(Int.self, at: 3) == 0)
                }

                let id: Int64 = try await enqueuer.scalar(
                    "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(Self.pool), 'bob') RETURNING id")
                // The returned id is the job's id, for the enqueuer and for the worker alike.
                #expect(try await enqueuer.job(id)?.username == "bob")
                #expect(try await fixture.ownerJob(id)?.username == "bob")
                #expect(try await fixture.ownerJob(id)?.state == "pending")
                #expect(try await fixture.ownerCount(username: "bob") == 1)
            }
        }
    }

    // MARK: Point 2: reading its own jobs in every state, never another's

    @Test func theEnqueuerReadsItsOwnJobByIDInEveryState() async throws {
        try await Fixture.with { fixture in
            try await fixture.withLoginRole("enq") { enqueuer in
                let retried = try await enqueuer.insert("alice")
                #expect(try await enqueuer.job(retried)?.state == "pending")
                var claim = try await fixture.claimOnly(retried)
                #expect(try await enqueuer.job(retried)?.state == "running")
                try await fixture.record(claim, .transientError, .retrying)
                #expect(try await enqueuer.job(retried)?.state == "retrying")
                claim = try await fixture.claimOnly(retried)
                #expect(try await enqueuer.job(retried)?.state == "running")
                try await fixture.record(claim, .succeeded, .succeeded)
                let succeeded = try await enqueuer.job(retried)
                #expect(succeeded?.state == "succeeded")
                #expect(succeeded?.attempt == 2)

                let failed = try await enqueuer.insert("bob")
                try await fixture.record(try await fixture.claimOnly(failed), .permanentError, .failed)
                #expect(try await enqueuer.job(failed)?.state == "failed")

                let cancelled = try await enqueuer.insert("carol")
                let cancelledCount = try await fixture.store.cancel(id: cancelled)
                #expect(cancelledCount == 1)
                #expect(try await enqueuer.job(cancelled)?.state == "cancelled")

                // A running job cancelled by an operator is readable too.
                let cancelledWhileRunning = try await enqueuer.insert("dave")
                _ = try await fixture.claimOnly(cancelledWhileRunning)
                let runningCancelled = try await fixture.store.cancel(id: cancelledWhileRunning)
                #expect(runningCancelled == 1)
                #expect(try await enqueuer.job(cancelledWhileRunning)?.state == "cancelled")

                let all = try await enqueuer.connection.query(
                    "SELECT count(*) FROM cognito_reset.jobs"
                ).first?.decode(Int.self, at: 0)
                #expect(all == 4)
            }
        }
    }

    @Test func anEnqueuerCannotReadOrInsertAnotherEnqueuersJobs() async throws {
        try await Fixture.with { fixture in
            try await fixture.withLoginRole("enq_a") { a in
                try await fixture.withLoginRole("enq_b") { b in
                    let theirs = try await b.insert("bob")
                    #expect(try await b.job(theirs)?.state == "pending")
                    // Row security: B's job does not exist for A, by id or in a count, in any state.
                    #expect(try await a.job(theirs) == nil)
                    let visible: Int = try await a.scalar("SELECT count(*) FROM cognito_reset.jobs")
                    #expect(visible == 0)
                    try await fixture.record(try await fixture.claimOnly(theirs), .succeeded, .succeeded)
                    #expect(try await a.job(theirs) == nil)
                    #expect(try await b.job(theirs)?.state == "succeeded")

                    // Nobody enqueues in another's name (nor names itself: the database sets it).
                    for owner in [b.name, a.name] {
                        let state = await a.sqlState(
                            """
                            INSERT INTO cognito_reset.jobs (user_pool_id, username, enqueued_by)
                            VALUES (\(Self.pool), 'mallory', \(owner))
                            """)
                        #expect(state == SQLState.insufficientPrivilege)
                    }
                    #expect(try await fixture.ownerCount(username: "mallory") == 0)
                    let ours = try await a.insert("alice")
                    #expect(try await b.job(ours) == nil)
                    #expect(try await fixture.ownerEnqueuedBy(ours) == a.name)
                    #expect(try await fixture.ownerEnqueuedBy(theirs) == b.name)
                }
            }
        }
    }

    // MARK: Point 3: enqueue_reset

    @Test func enqueueResetReturnsTheUsersActiveJobUntilItFinishes() async throws {
        try await Fixture.with { fixture in
            try await fixture.withLoginRole("enq") { enqueuer in
                let first = try await enqueuer.enqueueReset("alice")
                #expect(try await enqueuer.job(first)?.state == "pending")
                #expect(try await enqueuer.enqueueReset("alice") == first)
                // Active while running and while retrying, too.
                var claim = try await fixture.claimOnly(first)
                #expect(try await enqueuer.enqueueReset("alice") == first)
                try await fixture.record(claim, .transientError, .retrying)
                #expect(try await enqueuer.enqueueReset("alice") == first)
                claim = try await fixture.claimOnly(first)
                try await fixture.record(claim, .succeeded, .succeeded)
                #expect(try await fixture.ownerCount(username: "alice") == 1)

                // Finished: the next request is a new job.
                let second = try await enqueuer.enqueueReset("alice")
                #expect(second != first)
                #expect(try await enqueuer.job(second)?.state == "pending")
                #expect(try await enqueuer.job(first)?.state == "succeeded")
                #expect(try await enqueuer.enqueueReset("alice") == second)
                #expect(try await fixture.ownerCount(username: "alice") == 2)
                #expect(try await enqueuer.enqueueReset("bob") != second)
            }
        }
    }

    @Test func enqueueResetReturnsAnotherEnqueuersActiveJob() async throws {
        try await Fixture.with { fixture in
            try await fixture.withLoginRole("enq_a") { a in
                try await fixture.withLoginRole("enq_b") { b in
                    // B enqueued with a plain INSERT; A asks for the same user and gets B's job.
                    let theirs = try await b.insert("bob")
                    #expect(try await a.enqueueReset("bob") == theirs)
                    #expect(try await a.job(theirs) == nil)  // the id, not the row
                    #expect(try await fixture.ownerCount(username: "bob") == 1)
                    // And the other way round, through the function on both sides, also while running.
                    let ours = try await a.enqueueReset("carol")
                    #expect(try await b.enqueueReset("carol") == ours)
                    let claims = try await fixture.store.claim(workerID: Self.workerID, limit: 10, lease: .seconds(60))
                    #expect(Set(claims.map(\.id)) == [theirs, ours])
                    #expect(try await b.enqueueReset("carol") == ours)
                    #expect(try await a.enqueueReset("bob") == theirs)
                    #expect(try await fixture.ownerCount(username: "bob") == 1)
                    #expect(try await fixture.ownerCount(username: "carol") == 1)
                    #expect(try await fixture.ownerEnqueuedBy(ours) == a.name)
                    #expect(try await fixture.ownerEnqueuedBy(theirs) == b.name)
                }
            }
        }
    }

    @Test func anIdempotencyKeyReturnsItsJobEvenAfterItFinished() async throws {
        try await Fixture.with { fixture in
            try await fixture.withLoginRole("enq_a") { a in
                try await fixture.withLoginRole("enq_b") { b in
                    let key = "helpdesk:T-42"
                    let job = try await a.enqueueReset("alice", key: key)
                    #expect(try await a.enqueueReset("alice", key: key) == job)
                    #expect(try await a.enqueueReset("alice") == job)  // active: same job with no key too
                    try await fixture.record(try await fixture.claimOnly(job), .succeeded, .succeeded)
                    #expect(try await a.job(job)?.state == "succeeded")

                    // Finished, the key still names it: no second job, no second email.
                    #expect(try await a.enqueueReset("alice", key: key) == job)
                    #expect(try await b.enqueueReset("alice", key: key) == job)
                    #expect(try await fixture.ownerCount(username: "alice") == 1)

                    // The same key for another user is refused, whoever asks, and creates nothing.
                    for enqueuer in [a, b] {
                        let state = await enqueuer.sqlState(
                            "SELECT cognito_reset.enqueue_reset(\(Self.pool), 'bob', idempotency_key => \(key))")
                        #expect(state == SQLState.uniqueViolation)
                    }
                    #expect(try await fixture.ownerCount(username: "bob") == 0)

                    // Without the key (or with a new one) the finished job does not block a new one.
                    let again = try await a.enqueueReset("alice", key: "helpdesk:T-43")
                    #expect(again != job)
                    #expect(try await a.enqueueReset("alice", key: key) == job)
                    #expect(try await a.enqueueReset("alice") == again)
                }
            }
        }
    }

    // MARK: Point 4: a plain INSERT of a user with an active job

    @Test func aPlainInsertOfAUserWithAnActiveJobFailsOnJobsOneActivePerUser() async throws {
        try await Fixture.with { fixture in
            try await fixture.withLoginRole("enq_a") { a in
                try await fixture.withLoginRole("enq_b") { b in
                    let job = try await a.insert("alice")
                    // Pending, then running; from the same enqueuer and from another one.
                    for moment in ["pending", "running"] {
                        if moment == "running" { _ = try await fixture.claimOnly(job) }
                        for enqueuer in [a, b] {
                            let error = try await #require(throws: PostgresError.self) {
                                try await enqueuer.connection.query(
                                    "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(Self.pool), 'alice')")
                            }
                            #expect(error.sqlState == SQLState.uniqueViolation, "\(moment), as \(enqueuer.name)")
                            #expect(error.constraintName == "jobs_one_active_per_user", "\(moment), as \(enqueuer.name)")
                        }
                    }
                    #expect(try await fixture.ownerCount(username: "alice") == 1)
                    // Once the job is finished the user may be enqueued again.
                    let cancelled = try await fixture.store.cancel(id: job)
                    #expect(cancelled == 1)
                    let next = try await b.insert("alice")
                    #expect(next != job)
                    #expect(try await fixture.ownerCount(username: "alice") == 2)
                }
            }
        }
    }

    // MARK: Point 5: every call is kept in attempts

    @Test func everyCallIsKeptInAttempts() async throws {
        try await Fixture.with { fixture in
            try await fixture.withLoginRole("enq") { enqueuer in
                let retried = try await enqueuer.insert("alice")
                try await fixture.record(try await fixture.claimOnly(retried), .transientError, .retrying)
                try await fixture.record(try await fixture.claimOnly(retried), .succeeded, .succeeded)
                let failed = try await enqueuer.enqueueReset("bob")
                try await fixture.record(try await fixture.claimOnly(failed), .permanentError, .failed)
                let cancelled = try await enqueuer.insert("carol")  // never called
                let count = try await fixture.store.cancel(id: cancelled)
                #expect(count == 1)

                #expect(try await fixture.attempts(retried) == [Attempt(1, "transient_error"), Attempt(2, "succeeded")])
                #expect(try await fixture.attempts(failed) == [Attempt(1, "permanent_error")])
                #expect(try await fixture.attempts(cancelled) == [])
                // The store's own view of a job's calls (what `jobs show` prints) agrees.
                let shown = try #require(try await fixture.store.job(id: retried))
                #expect(shown.1.map { Attempt($0.attempt, $0.outcome) } == [Attempt(1, "transient_error"), Attempt(2, "succeeded")])

                // The audit is the workers': enqueuers may not read it. The monitor (dashboards)
                // reads every column but error_message, the service's free text (migration 0015).
                #expect(await enqueuer.sqlState("SELECT count(*) FROM cognito_reset.attempts") == SQLState.insufficientPrivilege)
                try await fixture.withLoginRole("mon", memberOf: "cognito_reset_monitor") { monitor in
                    #expect(await monitor.sqlState("SELECT count(*), max(finished_at), max(error_code) FROM cognito_reset.attempts") == nil)
                    #expect(await monitor.sqlState("SELECT error_message FROM cognito_reset.attempts") == SQLState.insufficientPrivilege)
                    #expect(await monitor.sqlState("SELECT * FROM cognito_reset.attempts") == SQLState.insufficientPrivilege)
                }
            }
        }
    }

    // MARK: Point 6: role boundaries

    @Test func theEnqueuerCannotChangeJobsNorSetTheWorkersColumns() async throws {
        try await Fixture.with { fixture in
            try await fixture.withLoginRole("enq") { enqueuer in
                let job = try await enqueuer.insert("alice")
                let denied: [PostgresQuery] = [
                    "UPDATE cognito_reset.jobs SET state = 'cancelled', finished_at = now() WHERE id = \(job)",
                    "UPDATE cognito_reset.jobs SET priority = 0 WHERE id = \(job)",
                    "UPDATE cognito_reset.jobs SET run_at = now() + interval '1 day'",
                    "DELETE FROM cognito_reset.jobs WHERE id = \(job)",
                    "DELETE FROM cognito_reset.jobs",
                    "INSERT INTO cognito_reset.jobs (user_pool_id, username, state) VALUES (\(Self.pool), 'bob', 'succeeded')",
                    "INSERT INTO cognito_reset.jobs (user_pool_id, username, state) VALUES (\(Self.pool), 'bob', 'pending')",
                    "INSERT INTO cognito_reset.jobs (user_pool_id, username, attempt) VALUES (\(Self.pool), 'bob', 1)",
                    "INSERT INTO cognito_reset.jobs (user_pool_id, username, attempt) VALUES (\(Self.pool), 'bob', 0)",
                    "INSERT INTO cognito_reset.jobs (user_pool_id, username, enqueued_by) VALUES (\(Self.pool), 'bob', \(enqueuer.name))",
                    "INSERT INTO cognito_reset.jobs (user_pool_id, username, enqueued_by) VALUES (\(Self.pool), 'bob', 'someone_else')",
                ]
                for statement in denied {
                    #expect(await enqueuer.sqlState(statement) == SQLState.insufficientPrivilege, "\(statement.sql)")
                }
                // Nothing changed: the job is as it was, and no job for bob exists.
                let row = try await fixture.ownerJob(job)
                #expect(row?.state == "pending")
                #expect(row?.attempt == 0)
                #expect(try await fixture.ownerCount(username: "alice") == 1)
                #expect(try await fixture.ownerCount(username: "bob") == 0)
                // What the enqueuer may read besides its jobs: the summary.
                let pending: Int = try await enqueuer.scalar("SELECT pending FROM cognito_reset.queue_status")
                #expect(pending == 1)
            }
        }
    }

    @Test func theMonitorReadsQueueStatusButNotJobs() async throws {
        try await Fixture.with { fixture in
            try await fixture.withLoginRole("enq") { enqueuer in
                let job = try await enqueuer.insert("alice")
                _ = try await enqueuer.enqueueReset("bob")
                try await fixture.withLoginRole("mon", memberOf: "cognito_reset_monitor") { monitor in
                    let status = try await monitor.connection.query("SELECT pending, running FROM cognito_reset.queue_status")
                    #expect(status.count == 1)
                    let pending = try status.first?.decode(Int.self, at: 0)
                    #expect(pending == 2)
                    _ = try await fixture.claimOnly(job, among: 2)
                    let running: Int = try await monitor.scalar("SELECT running FROM cognito_reset.queue_status")
                    #expect(running == 2)

                    let denied: [PostgresQuery] = [
                        "SELECT count(*) FROM cognito_reset.jobs",
                        "SELECT username FROM cognito_reset.jobs WHERE id = \(job)",
                        "SELECT cognito_reset.enqueue_reset(\(Self.pool), 'carol')",
                        "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(Self.pool), 'carol')",
                    ]
                    for statement in denied {
                        #expect(await monitor.sqlState(statement) == SQLState.insufficientPrivilege, "\(statement.sql)")
                    }
                    #expect(try await fixture.ownerCount(username: "carol") == 0)
                }
            }
        }
    }

    // MARK: Point 7: INSERT ... ON CONFLICT DO NOTHING

    @Test func insertOnConflictDoNothingSkipsAUserWithAnActiveJob() async throws {
        try await Fixture.with { fixture in
            try await fixture.withLoginRole("enq_a") { a in
                try await fixture.withLoginRole("enq_b") { b in
                    let job = try await a.insert("alice")
                    let skip: PostgresQuery = """
                        INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(Self.pool), 'alice')
                        ON CONFLICT DO NOTHING
                        """
                    let skipReturning: PostgresQuery = """
                        INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(Self.pool), 'alice')
                        ON CONFLICT DO NOTHING RETURNING id
                        """
                    // Pending and running; the enqueuer's own job and another's.
                    for moment in ["pending", "running"] {
                        if moment == "running" { _ = try await fixture.claimOnly(job) }
                        for enqueuer in [a, b] {
                            let inserted = try await enqueuer.execute(skip)
                            #expect(inserted == 0, "\(moment), as \(enqueuer.name)")
                            let returned = try await enqueuer.connection.query(skipReturning)
                            #expect(returned.isEmpty, "\(moment), as \(enqueuer.name)")
                        }
                    }
                    #expect(try await fixture.ownerCount(username: "alice") == 1)
                    #expect(try await fixture.ownerJob(job)?.state == "running")

                    // A user without an active job is inserted as usual; several rows at once too.
                    let batch = try await a.execute(
                        """
                        INSERT INTO cognito_reset.jobs (user_pool_id, username)
                        VALUES (\(Self.pool), 'alice'), (\(Self.pool), 'dave'), (\(Self.pool), 'erin')
                        ON CONFLICT DO NOTHING
                        """)
                    #expect(batch == 2)
                    // Once alice's job is finished, she is inserted too.
                    try await fixture.record(try await fixture.currentClaim(job), .succeeded, .succeeded)
                    let afterwards = try await b.connection.query(skipReturning)
                    #expect(afterwards.count == 1)
                    #expect(try await fixture.ownerCount(username: "alice") == 2)
                }
            }
        }
    }
}
