import Foundation
import Postgres
import PostgresTesting
@testable import ResetQueue
import Testing

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
                let alice = try await enqueuer.connection.query("""
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
                    "SELECT count(*) FROM cognito_reset.jobs").first?.decode(Int.self, at: 0)
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
                        let state = await a.sqlState("""
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
                    let batch = try await a.execute("""
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

// MARK: - Support

extension SQLContractTests {
    /// Roles are cluster-wide: the ones these tests make must not outlive them, pass or fail.
    @Test func theLoginRolesAreDroppedWhetherATestPassesOrFails() async throws {
        struct Failure: Error {}
        try await Fixture.with { fixture in
            var names: [String] = []
            names.append(try await fixture.withLoginRole("enq") { role in
                _ = try await role.insert("alice")
                return role.name
            })
            do {
                try await fixture.withLoginRole("enq") { role in
                    names.append(role.name)
                    _ = try await role.insert("bob")
                    try await fixture.withLoginRole("mon", memberOf: "cognito_reset_monitor") { monitor in
                        names.append(monitor.name)
                        throw Failure()
                    }
                }
                Issue.record("the failure was not passed on")
            } catch is Failure {}
            #expect(names.count == 3)
            let left: Int = try await fixture.owner.scalar(
                "SELECT count(*) FROM pg_catalog.pg_roles WHERE rolname::text = ANY(\(names))")
            #expect(left == 0)
        }
    }
}

extension SQLContractTests {
    /// One call as the audit keeps it.
    struct Attempt: Equatable, CustomStringConvertible {
        let attempt: Int
        let outcome: String
        init(_ attempt: Int, _ outcome: String) {
            self.attempt = attempt
            self.outcome = outcome
        }
        var description: String { "#\(attempt) \(outcome)" }
    }

    /// A job row as `jobs` shows it.
    struct JobRow: Equatable {
        let username: String
        let state: String
        let attempt: Int
    }

    /// A fresh migrated database; the owner's connection (for reading what the worker sees) and a
    /// store on the owner's pool that moves jobs as the product does.
    struct Fixture {
        let database: TemporaryDatabase
        let owner: PostgresConnection
        let store: PostgresJobStore
        /// Claims the store made and has not recorded yet, by job id.
        let claims = ClaimBook()

        static func with(_ body: (Fixture) async throws -> Void) async throws {
            try await withMigratedDatabase { database in
                let owner = try await database.connect()
                let pool = ConnectionPool(configuration: database.configuration, options: .init(maximumConnections: 2))
                let fixture = Fixture(database: database, owner: owner, store: PostgresJobStore(pool: pool))
                do {
                    try await body(fixture)
                } catch {
                    await pool.close()
                    await owner.close()
                    throw error
                }
                await pool.close()
                await owner.close()
            }
        }

        /// Runs `body` as a new LOGIN role that is a member of `group`, connected with its password over
        /// the test database's host and port. The role (cluster-wide) is dropped afterwards whether
        /// `body` succeeds or fails.
        func withLoginRole<T>(
            _ label: String, memberOf group: String = "cognito_reset_enqueuer", _ body: (LoginRole) async throws -> T
        ) async throws -> T {
            let name = "sqlcontract_\(label)_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased())"
            let password = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
            try await owner.execute("CREATE ROLE \(unescaped: name) LOGIN PASSWORD '\(unescaped: password)'")
            let value: T
            do {
                try await owner.execute("GRANT \(unescaped: group) TO \(unescaped: name)")
                let configuration = database.configuration.setting("user", to: name).setting("password", to: password)
                let connection = try await PostgresConnection.connect(configuration)
                do {
                    // The connection is really the login role's, not the owner's.
                    let user: String = try await connection.scalar("SELECT current_user::text")
                    #expect(user == name)
                    value = try await body(LoginRole(name: name, connection: connection))
                } catch {
                    await connection.close()
                    throw error
                }
                await connection.close()
            } catch {
                try? await dropRole(name)
                throw error
            }
            try await dropRole(name)
            return value
        }

        /// Drops what the role owns in the test database (and its privileges there), then the role.
        private func dropRole(_ name: String) async throws {
            // A fresh connection: the owner's may be the reason the body failed.
            let admin = try await database.connect()
            do {
                try await admin.execute("DROP OWNED BY \(unescaped: name)")
                try await admin.execute("DROP ROLE \(unescaped: name)")
            } catch {
                await admin.close()
                throw error
            }
            await admin.close()
        }

        /// Claims as the worker does; `id` must be among the `among` jobs runnable now (all of them
        /// are claimed: tests keep other jobs out of the way).
        @discardableResult
        func claimOnly(_ id: Int64, among expected: Int = 1) async throws -> ClaimedJob {
            let claimed = try await store.claim(workerID: SQLContractTests.workerID, limit: 10, lease: .seconds(60))
            #expect(claimed.count == expected)
            for job in claimed { await claims.put(job) }
            return try #require(claimed.first { $0.id == id })
        }

        /// The claim under which `id` is running now.
        func currentClaim(_ id: Int64) async throws -> ClaimedJob {
            try #require(await claims.get(id))
        }

        /// Records one call's outcome as the worker does; the job must move to `state`.
        func record(_ job: ClaimedJob, _ outcome: AttemptOutcome, _ state: JobState) async throws {
            let failing = outcome != .succeeded
            let record = JobRecord(
                job: job, outcome: outcome, newState: state, retryDelay: .zero, givesBackAttempt: false,
                errorCode: failing ? "InternalErrorException" : nil, errorMessage: failing ? "contract test" : nil,
                requestID: "req-\(job.id)-\(job.attempt)", startedAt: Date(), finishedAt: Date())
            let moved = try await store.record([record], workerID: SQLContractTests.workerID)
            #expect(moved == [job.id])
            await claims.remove(job.id)
        }

        /// The job as the owner (and the worker) sees it.
        func ownerJob(_ id: Int64) async throws -> JobRow? {
            try await owner.query("SELECT username, state, attempt FROM cognito_reset.jobs WHERE id = \(id)").first.map {
                JobRow(username: try $0.decode(String.self, at: 0), state: try $0.decode(String.self, at: 1),
                            attempt: try $0.decode(Int.self, at: 2))
            }
        }

        func ownerEnqueuedBy(_ id: Int64) async throws -> String? {
            try await owner.query("SELECT enqueued_by FROM cognito_reset.jobs WHERE id = \(id)").first?.decode(String.self, at: 0)
        }

        /// All of a user's jobs, whoever enqueued them.
        func ownerCount(username: String) async throws -> Int {
            try await owner.scalar("""
                SELECT count(*) FROM cognito_reset.jobs WHERE user_pool_id = \(SQLContractTests.pool) AND username = \(username)
                """)
        }

        /// A job's calls, in order, as the worker's audit keeps them.
        func attempts(_ id: Int64) async throws -> [Attempt] {
            try await owner.query("SELECT attempt, outcome FROM cognito_reset.attempts WHERE job_id = \(id) ORDER BY attempt, id")
                .map { Attempt(try $0.decode(Int.self, at: 0), try $0.decode(String.self, at: 1)) }
        }
    }

    /// The claims a test holds, so it can record one later.
    actor ClaimBook {
        private var jobs: [Int64: ClaimedJob] = [:]
        func put(_ job: ClaimedJob) { jobs[job.id] = job }
        func get(_ id: Int64) -> ClaimedJob? { jobs[id] }
        func remove(_ id: Int64) { jobs[id] = nil }
    }

    /// A connection as one login role.
    struct LoginRole {
        let name: String
        let connection: PostgresConnection

        func scalar<T: PostgresDecodable>(_ query: PostgresQuery, as type: T.Type = T.self) async throws -> T {
            try await connection.scalar(query, as: type)
        }

        func execute(_ query: PostgresQuery) async throws -> Int {
            try await connection.execute(query)
        }

        /// A plain INSERT of a request, as the README shows it; returns the job id.
        func insert(_ username: String) async throws -> Int64 {
            try await scalar("""
                INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(SQLContractTests.pool), \(username)) RETURNING id
                """)
        }

        func enqueueReset(_ username: String, key: String? = nil) async throws -> Int64 {
            if let key {
                return try await scalar(
                    "SELECT cognito_reset.enqueue_reset(\(SQLContractTests.pool), \(username), idempotency_key => \(key))")
            }
            return try await scalar("SELECT cognito_reset.enqueue_reset(\(SQLContractTests.pool), \(username))")
        }

        /// The job as this role sees it (nil: not visible to it).
        func job(_ id: Int64) async throws -> JobRow? {
            try await connection.query("SELECT username, state, attempt FROM cognito_reset.jobs WHERE id = \(id)").first.map {
                JobRow(username: try $0.decode(String.self, at: 0), state: try $0.decode(String.self, at: 1),
                            attempt: try $0.decode(Int.self, at: 2))
            }
        }

        /// The SQLSTATE `query` fails with, or nil if it succeeds.
        func sqlState(_ query: PostgresQuery) async -> String? {
            do {
                try await connection.query(query)
                return nil
            } catch let error as PostgresError {
                return error.sqlState ?? "no SQLSTATE: \(error)"
            } catch {
                return "not a PostgresError: \(error)"
            }
        }
    }
}
