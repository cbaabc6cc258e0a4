import Foundation
import Postgres
import PostgresTesting
import Testing

@testable import ResetQueue

// MARK: - Support

extension SQLContractTests {
    /// Roles are cluster-wide: the ones these tests make must not outlive them, pass or fail.
    @Test func theLoginRolesAreDroppedWhetherATestPassesOrFails() async throws {
        struct Failure: Error {}
        try await Fixture.with { fixture in
            var names: [String] = []
            names.append(
                try await fixture.withLoginRole("enq") { role in
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
            try await TestRole.with("sqlcontract_\(label)", on: database.configuration, memberOf: [group]) { role in
                let connection = try await PostgresConnection.connect(role.configuration)
                do {
                    // The connection is really the login role's, not the owner's.
                    let user: String = try await connection.scalar("SELECT current_user::text")
                    #expect(user == role.name)
                    let value = try await body(LoginRole(name: role.name, connection: connection))
                    await connection.close()
                    return value
                } catch {
                    await connection.close()
                    throw error
                }
            }
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
                JobRow(
                    username: try $0.decode(String.self, at: 0), state: try $0.decode(String.self, at: 1),
                    attempt: try $0.decode(Int.self, at: 2))
            }
        }

        func ownerEnqueuedBy(_ id: Int64) async throws -> String? {
            try await owner.query("SELECT enqueued_by FROM cognito_reset.jobs WHERE id = \(id)").first?.decode(String.self, at: 0)
        }

        /// All of a user's jobs, whoever enqueued them.
        func ownerCount(username: String) async throws -> Int {
            try await owner.scalar(
                """
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
            try await scalar(
                """
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
                JobRow(
                    username: try $0.decode(String.self, at: 0), state: try $0.decode(String.self, at: 1),
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
