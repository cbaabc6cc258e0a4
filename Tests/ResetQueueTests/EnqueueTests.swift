import CognitoClient
import Foundation
import Logging
import Postgres
import PostgresTesting
import ResetQueue
import Testing

@Suite("Enqueueing")
struct EnqueueTests {
    static let pool = "eu-west-1_AbC123"

    func enqueue(_ connection: PostgresConnection, _ username: String, key: String? = nil) async throws -> Int64 {
        try await connection.scalar(
            "SELECT cognito_reset.enqueue_reset(\(Self.pool), \(username), idempotency_key => \(key))")
    }

    @Test func enqueueResetReturnsTheActiveJobInsteadOfASecondOne() async throws {
        try await withMigratedConnection { connection in
            let first = try await enqueue(connection, "alice")
            let second = try await enqueue(connection, "alice")
            #expect(first == second)
            #expect(try await enqueue(connection, "bob") != first)
            // Still active while running or retrying.
            try await connection.execute(
                """
                UPDATE cognito_reset.jobs SET state = 'running', attempt = 1, locked_by = 'w1',
                    lease_expires_at = now() + interval '30 seconds', started_at = now() WHERE id = \(first)
                """)
            #expect(try await enqueue(connection, "alice") == first)
            #expect(
                try await connection.scalar(
                    "SELECT count(*) FROM cognito_reset.jobs WHERE username = 'alice'", as: Int.self) == 1)
        }
    }

    /// Retrying a finished job of a user who has an active one is refused with a typed error the
    /// CLI switches on; the finished job stays as it was.
    @Test func retryingAJobWhoseUserHasAnActiveOneThrowsActiveJobExists() async throws {
        try await withMigratedDatabase { database in
            let pool = ConnectionPool(configuration: database.configuration)
            let store = PostgresJobStore(pool: pool)
            try await withConnection(to: database) { connection in
                let old = try await enqueue(connection, "alice")
                try await connection.execute(
                    "UPDATE cognito_reset.jobs SET state = 'failed', attempt = 1, finished_at = now() WHERE id = \(old)")
                _ = try await enqueue(connection, "alice")
                let error = try await #require(throws: ActiveJobExists.self) { try await store.retry(id: old) }
                #expect(error.jobID == old)
                #expect(try await connection.scalar("SELECT state FROM cognito_reset.jobs WHERE id = \(old)", as: String.self) == "failed")
            }
            await pool.close()
        }
    }

    @Test func aFinishedJobDoesNotBlockANewRequest() async throws {
        try await withMigratedConnection { connection in
            let first = try await enqueue(connection, "alice")
            try await connection.execute(
                """
                UPDATE cognito_reset.jobs SET state = 'succeeded', attempt = 1, finished_at = now() WHERE id = \(first)
                """)
            let second = try await enqueue(connection, "alice")
            #expect(second != first)
        }
    }

    @Test func anIdempotencyKeyReturnsItsJobEvenAfterItFinished() async throws {
        try await withMigratedConnection { connection in
            let first = try await enqueue(connection, "alice", key: "req-1")
            try await connection.execute(
                """
                UPDATE cognito_reset.jobs SET state = 'cancelled', finished_at = now() WHERE id = \(first)
                """)
            #expect(try await enqueue(connection, "alice", key: "req-1") == first)
            let error = try await #require(throws: PostgresError.self) { try await enqueue(connection, "bob", key: "req-1") }
            #expect(error.sqlState == SQLState.uniqueViolation)
            #expect(error.constraintName == "jobs_idempotency_key_unique")
        }
    }

    @Test func namedArgumentsWithPlainIntegerLiteralsWork() async throws {
        try await withMigratedConnection { connection in
            let id: Int64 = try await connection.scalar(
                """
                SELECT cognito_reset.enqueue_reset(user_pool_id => 'eu-west-1_x1', username => 'erin',
                    priority => 5, max_attempts => 3, run_at => now() + interval '1 hour',
                    client_metadata => '{"reason": "migration"}')
                """)
            let row = try await connection.query(
                "SELECT priority, max_attempts, run_at > now(), client_metadata->>'reason' FROM cognito_reset.jobs WHERE id = \(id)")[0]
            #expect(try row.decode(Int.self, at: 0) == 5)
            #expect(try row.decode(Int.self, at: 1) == 3)
            #expect(try row.decode(Bool.self, at: 2))
            #expect(try row.decode(String.self, at: 3) == "migration")
        }
    }

    @Test func concurrentRequestsForOneUserCreateOneJob() async throws {
        try await withMigratedDatabase { database in
            let pool = ConnectionPool(configuration: database.configuration, options: .init(maximumConnections: 8))
            let ids = try await withThrowingTaskGroup(of: Int64.self) { group in
                for _ in 0..<24 {
                    group.addTask {
                        try await pool.query("SELECT cognito_reset.enqueue_reset(\(Self.pool), 'zoe')")[0].decode(Int64.self, at: 0)
                    }
                }
                return try await group.reduce(into: Set<Int64>()) { $0.insert($1) }
            }
            #expect(ids.count == 1)
            #expect(try await pool.query("SELECT count(*) FROM cognito_reset.jobs")[0].decode(Int.self, at: 0) == 1)
            await pool.close()
        }
    }

    @Test func theStoreSaysWhetherItCreatedAJob() async throws {
        try await withMigratedDatabase { database in
            let pool = ConnectionPool(configuration: database.configuration)
            let store = PostgresJobStore(pool: pool)
            let later = Date().addingTimeInterval(3600)
            let request = try ResetRequest(
                userPoolID: UserPoolID(Self.pool), username: Username("alice"), runAt: later, priority: 7,
                clientMetadata: ClientMetadata(["ticket": "T-1"]), requestedBy: "helpdesk")
            let created = try await store.enqueue(request)
            #expect(created.created)
            #expect(created.state == .pending)
            #expect(abs(try #require(created.runAt).timeIntervalSince(later)) < 0.001)
            let again = try await store.enqueue(request)
            #expect(!again.created)
            #expect(again.jobID == created.jobID)
            let row = try await pool.query(
                "SELECT priority, client_metadata->>'ticket', requested_by FROM cognito_reset.jobs WHERE id = \(created.jobID)")[0]
            #expect(try row.decode(Int.self, at: 0) == 7)
            #expect(try row.decode(String.self, at: 1) == "T-1")
            #expect(try row.decode(String.self, at: 2) == "helpdesk")
            await pool.close()
        }
    }

    @Test func insertingJobsNotifiesIdleWorkersOncePerStatement() async throws {
        try await withMigratedDatabase { database in
            let events = NotificationListener.events(
                configuration: database.configuration, channels: [CognitoResetSchema.jobsChannel, "sentinel"])
            var iterator = events.makeAsyncIterator()
            guard case .listening = try #require(await iterator.next()) else { return }
            let connection = try await database.connect()
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username)
                VALUES ('eu-west-1_a1', 'u1'), ('eu-west-1_a1', 'u2'), ('eu-west-1_a1', 'u3')
                """)
            try await connection.execute("NOTIFY sentinel")
            var channels: [String] = []
            while let event = await iterator.next() {
                guard case .notification(let notification) = event else { continue }
                channels.append(notification.channel)
                if notification.channel == "sentinel" { break }
            }
            #expect(channels == [CognitoResetSchema.jobsChannel, "sentinel"])
            await connection.close()
        }
    }
}
