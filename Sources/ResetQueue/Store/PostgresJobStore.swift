import CognitoClient
public import Foundation
public import Postgres

/// The outcome of enqueueing a reset.
public struct EnqueueResult: Sendable, Equatable {
    public let jobID: Int64
    /// False when the user already had an active job (or the idempotency key a job): no new
    /// job was created and no second email will be sent.
    public let created: Bool
    /// The job's state and schedule; nil when the existing job belongs to another enqueuer,
    /// whose jobs this role may not read (row security).
    public let state: JobState?
    public let runAt: Date?
}

/// The queue's SQL, on a connection pool. Statements are named constants with bound parameters.
public struct PostgresJobStore: Sendable {
    public let pool: ConnectionPool

    public init(pool: ConnectionPool) {
        self.pool = pool
    }

    enum SQL {
        static let enqueue = """
            SELECT cognito_reset.enqueue_reset(
                user_pool_id => $1, username => $2, run_at => coalesce($3, now()), priority => $4,
                client_metadata => $5, idempotency_key => $6, max_attempts => $7,
                requested_by => coalesce($8, current_user::text))
            """
        /// A job created by this transaction has `created_at = now()` (the transaction's start);
        /// an existing one was created by an earlier transaction.
        static let enqueuedJob = """
            SELECT id, state, run_at, created_at = now() AS created FROM cognito_reset.jobs WHERE id = $1
            """
    }

    /// Enqueues `request` through `cognito_reset.enqueue_reset`, which returns the user's
    /// existing active job instead of creating a second one.
    public func enqueue(_ request: ResetRequest) async throws -> EnqueueResult {
        let metadata = try request.clientMetadata.map { try PostgresJSON(encoding: $0.values) }
        return try await pool.transaction { connection in
            let id = try await connection.query(
                PostgresQuery(
                    SQL.enqueue,
                    [
                        request.userPoolID.rawValue, request.username.rawValue, request.runAt,
                        request.priority, metadata, request.idempotencyKey, request.maxAttempts, request.requestedBy,
                    ]))[0].decode(Int64.self, at: 0)
            // Our own new job is always visible; an invisible one was enqueued by another system.
            guard let row = try await connection.query(PostgresQuery(SQL.enqueuedJob, [id])).first else {
                return EnqueueResult(jobID: id, created: false, state: nil, runAt: nil)
            }
            guard let state = JobState(rawValue: try row.decode(String.self, at: 1)) else {
                throw PostgresError(code: .decoding, message: "unknown job state")
            }
            return EnqueueResult(
                jobID: id, created: try row.decode(Bool.self, at: 3), state: state,
                runAt: try row.decode(Date.self, at: 2))
        }
    }
}

extension PostgresJobStore {
    /// Runs `statement` again (a few times) when it met a job that another statement moved to
    /// history meanwhile: PostgreSQL reports that as a serialization failure (40001) instead of
    /// skipping the row, even in READ COMMITTED. Each statement is one autocommitted
    /// transaction, so running it again is safe, and the moved job is then simply not there.
    func retryingMovedRows<T>(_ statement: () async throws -> T) async throws -> T {
        var tries = 0
        while true {
            do {
                return try await statement()
            } catch let error as PostgresError where error.sqlState == SQLState.serializationFailure && tries < 4 {
                tries += 1
            }
        }
    }
}
