import Foundation
import Postgres

/// The shared, fleet-wide rate limit's statements (migration 0003 holds the algorithm).
extension PostgresJobStore {
    enum RateSQL {
        static let claimPaced = """
            SELECT id, user_pool_id, username, client_metadata, attempt, max_attempts, priority, run_at,
                   claim_token, call_in, wait, current_rate, ceiling, rate_key, role_arn, external_id
            FROM cognito_reset.claim_paced($1, $2, $3, $4, $5, $6, $7)
            """
        static let reportThrottles = "SELECT cognito_reset.report_throttles($1, $2)"
        static let buckets = """
            SELECT key, ceiling, current_rate, burst, floor_rate, paused, tokens_last_minute,
                   throttles_last_minute, last_throttle_at
            FROM cognito_reset.rate_limit_status
            WHERE $1::text IS NULL OR key = $1
            ORDER BY key
            """
        /// Creates the bucket or changes its ceiling (and burst/floor when given); the trigger
        /// restarts the adaptive rate from the new ceiling.
        static let setCeiling = """
            INSERT INTO cognito_reset.rate_limits AS rl (key, rate, burst, floor_rate, current_rate)
            VALUES ($1, $2::double precision, coalesce($3::double precision, 1),
                    coalesce($4::double precision, 1), $2::double precision)
            ON CONFLICT (key) DO UPDATE
            SET rate = excluded.rate, burst = coalesce($3, rl.burst), floor_rate = coalesce($4, rl.floor_rate),
                tokens = least(rl.tokens, coalesce($3, rl.burst)), updated_at = now()
            """
        static let setImportRate = "UPDATE cognito_reset.imports SET rate = $2 WHERE id = $1 RETURNING id"
    }

    /// Claims up to `limit` runnable jobs, each with a call slot from the shared bucket, in claim
    /// order. Jobs come only when slots are free, so the most urgent runnable jobs are always the
    /// next to be called, whatever backlog is waiting. With no bucket (`rate` nil: `--rate
    /// unlimited`) the same claim takes as many jobs as asked (an import's own rate still holds).
    ///
    /// Jobs come only from pools in `regions` (nil: every region), each route (region and
    /// account) paced by its own bucket: `rate.key` with `{region}` replaced for the worker's own
    /// account, `cognito:<account>:<region>` for a pool role's.
    public func claimPaced(
        workerID: String, limit: Int, lease: Duration, rate: SharedRateLimit?, regions: [String]? = nil
    ) async throws -> PacedClaim {
        let rows = try await pool.query(
            PostgresQuery(
                RateSQL.claimPaced,
                [
                    workerID, limit, lease / .seconds(1), rate?.key, rate?.initialCeiling ?? 0, (rate?.horizon ?? .milliseconds(500)) / .seconds(1),
                    regions,
                ]
            ).prepared())
        var jobs: [(job: ClaimedJob, callIn: Duration)] = []
        var wait: Duration?
        var currentRate: Double?
        var ceiling: Double?
        for row in rows {
            guard let id = try row.decode(Int64?.self, at: 0) else {
                // The last row: the wait, and the rates summed over the buckets the claim read.
                // No bucket (unlimited): the rate is infinite and there is no ceiling.
                wait = try row.decode(Double?.self, at: 10).map { .seconds($0) }
                currentRate = try row.decode(Double?.self, at: 11) ?? (rate == nil ? .infinity : nil)
                ceiling = try row.decode(Double?.self, at: 12) ?? (rate == nil ? .infinity : nil)
                continue
            }
            var job = ClaimedJob(
                id: id, userPoolID: try row.decode(String.self, at: 1), username: try row.decode(String.self, at: 2),
                clientMetadata: try row.decode(PostgresJSON?.self, at: 3).map { try $0.decode([String: String].self) },
                attempt: try row.decode(Int.self, at: 4), maxAttempts: try row.decode(Int.self, at: 5),
                priority: try row.decode(Int.self, at: 6), runAt: try row.decode(Date.self, at: 7),
                claimToken: try row.decode(Int64.self, at: 8))
            job.rateKey = try row.decode(String?.self, at: 13)
            job.roleARN = try row.decode(String?.self, at: 14)
            job.externalID = try row.decode(String?.self, at: 15)
            jobs.append((job, .seconds(try row.decode(Double.self, at: 9))))
        }
        jobs.sort { $0.callIn < $1.callIn }
        return PacedClaim(jobs: jobs, wait: wait, currentRate: currentRate, ceiling: ceiling)
    }

    /// Reports `count` throttled calls; returns the bucket's adaptive rate afterwards (nil: no
    /// such bucket).
    @discardableResult
    public func reportThrottles(key: String, count: Int) async throws -> Double? {
        try await pool.query(PostgresQuery(RateSQL.reportThrottles, [key, count]))[0].decode(Double?.self, at: 0)
    }

    /// Every bucket, or the one with `key`.
    public func rateBuckets(key: String? = nil) async throws -> [RateBucketStatus] {
        try await pool.query(PostgresQuery(RateSQL.buckets, [key])).map(Self.bucket)
    }

    static func bucket(_ row: PostgresRow) throws -> RateBucketStatus {
        RateBucketStatus(
            key: try row.decode(String.self, at: 0), ceiling: try row.decode(Double.self, at: 1),
            currentRate: try row.decode(Double.self, at: 2), burst: try row.decode(Double.self, at: 3),
            floor: try row.decode(Double.self, at: 4), paused: try row.decode(Bool.self, at: 5),
            tokensLastMinute: try row.decode(Int.self, at: 6), throttlesLastMinute: try row.decode(Int.self, at: 7),
            lastThrottleAt: try row.decode(Date?.self, at: 8))
    }

    /// Sets a bucket's ceiling (0 pauses every worker using it), creating the bucket if needed.
    public func setRateCeiling(key: String, ceiling: Double, burst: Double? = nil, floor: Double? = nil) async throws {
        try await pool.query(PostgresQuery(RateSQL.setCeiling, [key, ceiling, burst, floor]))
    }

    /// Sets (or with nil removes) an import's own ceiling; false if there is no such import.
    public func setImportRate(importID: Int64, rate: Double?) async throws -> Bool {
        try await !pool.query(PostgresQuery(RateSQL.setImportRate, [importID, rate])).isEmpty
    }
}
