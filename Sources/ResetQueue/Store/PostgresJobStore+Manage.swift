import CognitoClient
public import Foundation
import Postgres

/// A job as operators see it.
public struct JobSummary: Sendable, Codable {
    public let id: Int64
    public let userPoolID: String
    public let username: String
    public let state: String
    public let attempt: Int
    public let maxAttempts: Int
    public let priority: Int
    public let runAt: Date
    public let createdAt: Date
    public let finishedAt: Date?
    public let lastErrorCode: String?
    public let lastErrorMessage: String?
    public let cognitoRequestID: String?
    public let lockedBy: String?
    public let importID: Int64?
    public let requestedBy: String?
}

/// One call of a job, from the audit.
public struct AttemptSummary: Sendable, Codable {
    public let attempt: Int
    public let workerID: String
    public let startedAt: Date
    public let finishedAt: Date
    public let outcome: String
    public let errorCode: String?
    public let errorMessage: String?
    public let requestID: String?
    public let latencyMilliseconds: Int?
}

/// Operators' statements: list, show, retry and cancel. Each is safe while workers run: they
/// touch only rows in the states they name, and a worker's late write never overwrites them.
extension PostgresJobStore {
    enum ManageSQL {
        static let columns = """
            id, user_pool_id, username, state, attempt, max_attempts, priority, run_at, created_at, finished_at,
            last_error_code, last_error_message, cognito_request_id, locked_by, import_id, requested_by
            """
        static let list = """
            SELECT \(columns) FROM cognito_reset.jobs
            WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR user_pool_id = $2)
            ORDER BY id DESC LIMIT $3
            """
        static let show = "SELECT \(columns) FROM cognito_reset.jobs WHERE id = $1"
        static let attempts = """
            SELECT attempt, worker_id, started_at, finished_at, outcome, error_code, error_message, request_id, latency_ms
            FROM cognito_reset.attempts WHERE job_id = $1 ORDER BY id
            """
        static let retryOne = """
            UPDATE cognito_reset.jobs
            SET state = 'pending', attempt = 0, run_at = now(), finished_at = NULL, locked_by = NULL, lease_expires_at = NULL
            WHERE id = $1 AND state IN ('failed', 'cancelled')
            RETURNING id
            """
        /// Each user's newest job, if it is in `$1`'s state, was not refused as invalid input, and
        /// the user has no active job. A user
        /// whose failed reset was followed by a newer one (say, one that succeeded) is left alone:
        /// a second reset would void the password they have just set.
        static let retryMany = """
            WITH candidates AS (
                SELECT id FROM cognito_reset.jobs AS j
                WHERE j.state = $1 AND ($2::text IS NULL OR j.user_pool_id = $2)
                  -- Refused without a call (a username or metadata Cognito would refuse): it
                  -- would fail again. Rows from before migration 0005 that break its checks
                  -- (which still apply to an update) are left too, or none would be retried.
                  AND j.last_error_code IS DISTINCT FROM $3
                  AND cognito_reset.username_characters_allowed(j.username)
                  AND (octet_length(j.username) <= 128 OR cognito_reset.username_utf16_length(j.username) <= 128)
                  AND (j.client_metadata IS NULL OR octet_length(j.client_metadata::text) <= 262144
                       OR cognito_reset.client_metadata_bytes(j.client_metadata) <= 262144)
                  AND NOT EXISTS (SELECT 1 FROM cognito_reset.jobs AS a
                                  WHERE a.user_pool_id = j.user_pool_id AND a.username = j.username
                                    AND (a.id > j.id OR a.state IN ('pending', 'running', 'retrying')))
            )
            UPDATE cognito_reset.jobs AS j
            SET state = 'pending', attempt = 0, run_at = now(), finished_at = NULL, locked_by = NULL, lease_expires_at = NULL
            FROM candidates WHERE j.id = candidates.id
            RETURNING j.id
            """
        static let cancel = """
            UPDATE cognito_reset.jobs
            SET state = 'cancelled', finished_at = now(), locked_by = NULL, lease_expires_at = NULL
            WHERE state IN ('pending', 'running', 'retrying')
              AND (id = $1 OR user_pool_id = $2 OR import_id = $3)
            RETURNING id
            """
        static let wakeWorkers = "SELECT pg_notify('cognito_reset_jobs', '')"
    }

    public func list(state: JobState?, pool: String?, limit: Int) async throws -> [JobSummary] {
        try await summaries(PostgresQuery(ManageSQL.list, [state?.rawValue, pool, limit]))
    }

    public func job(id: Int64) async throws -> (JobSummary, [AttemptSummary])? {
        guard let job = try await summaries(PostgresQuery(ManageSQL.show, [id])).first else { return nil }
        let attempts = try await self.pool.query(PostgresQuery(ManageSQL.attempts, [id])).map { row in
            AttemptSummary(
                attempt: try row.decode(Int.self, at: 0), workerID: try row.decode(String.self, at: 1),
                startedAt: try row.decode(Date.self, at: 2), finishedAt: try row.decode(Date.self, at: 3),
                outcome: try row.decode(String.self, at: 4), errorCode: try row.decode(String?.self, at: 5),
                errorMessage: try row.decode(String?.self, at: 6), requestID: try row.decode(String?.self, at: 7),
                latencyMilliseconds: try row.decode(Int?.self, at: 8))
        }
        return (job, attempts)
    }

    /// Puts a failed or cancelled job back in the queue with fresh attempts. Returns false if
    /// the job is in another state; throws `ActiveJobExists` if its user has another active job.
    public func retry(id: Int64) async throws -> Bool {
        let retried: Bool
        do {
            retried = try await retryingMovedRows { try await self.pool.query(PostgresQuery(ManageSQL.retryOne, [id])) }.count == 1
        } catch let error as PostgresError where ActiveJobExists.isViolation(error) {
            throw ActiveJobExists(jobID: id)
        }
        if retried { try await self.pool.query(PostgresQuery(ManageSQL.wakeWorkers)) }
        return retried
    }

    /// Retries every user's newest job in `state` (failed or cancelled), optionally in one pool.
    public func retry(state: JobState, pool: String?) async throws -> Int {
        let count = try await retryingMovedRows {
            try await self.pool.query(PostgresQuery(ManageSQL.retryMany, [state.rawValue, pool, CognitoError.invalidInput]))
        }.count
        if count > 0 { try await self.pool.query(PostgresQuery(ManageSQL.wakeWorkers)) }
        return count
    }

    /// Cancels active jobs by id, by pool or by import; returns how many.
    public func cancel(id: Int64? = nil, pool: String? = nil, importID: Int64? = nil) async throws -> Int {
        try await retryingMovedRows { try await self.pool.query(PostgresQuery(ManageSQL.cancel, [id, pool, importID])) }.count
    }

    private func summaries(_ query: PostgresQuery) async throws -> [JobSummary] {
        try await pool.query(query).map { row in
            JobSummary(
                id: try row.decode(Int64.self, at: 0), userPoolID: try row.decode(String.self, at: 1),
                username: try row.decode(String.self, at: 2), state: try row.decode(String.self, at: 3),
                attempt: try row.decode(Int.self, at: 4), maxAttempts: try row.decode(Int.self, at: 5),
                priority: try row.decode(Int.self, at: 6), runAt: try row.decode(Date.self, at: 7),
                createdAt: try row.decode(Date.self, at: 8), finishedAt: try row.decode(Date?.self, at: 9),
                lastErrorCode: try row.decode(String?.self, at: 10), lastErrorMessage: try row.decode(String?.self, at: 11),
                cognitoRequestID: try row.decode(String?.self, at: 12), lockedBy: try row.decode(String?.self, at: 13),
                importID: try row.decode(Int64?.self, at: 14), requestedBy: try row.decode(String?.self, at: 15))
        }
    }
}
