import CognitoClient
import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import ResetQueue
import SystemTesting
import Testing

/// Pools in several regions and accounts: a worker claims only in the regions it serves, and
/// each route (region and account) draws call slots from its own bucket.
@Suite("Regions and accounts")
struct RegionRoutingTests {
    static let ownUS = "us-east-1_Own1"
    static let ownEU = "eu-west-1_Own2"
    static let otherAccount = "us-east-1_Acct3"
    static let role = "arn:aws:iam::111111111111:role/cognito-reset"
    static let template = SharedRateLimit(key: SharedRateLimit.defaultKeyTemplate, initialCeiling: 100)

    func insert(_ pool: String, _ count: Int, priority: Int = 100, on harness: WorkerHarness) async throws {
        try await harness.pool.query(
            PostgresQuery(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, priority)
                SELECT $1, $1 || '-user' || g, $3 FROM generate_series(1, $2) AS g
                """, [pool, count, priority]))
    }

    func mapRole(on harness: WorkerHarness) async throws {
        try await PostgresJobStore(pool: harness.pool).setPoolRole(
            UserPoolID(Self.otherAccount), role: PoolRole(arn: RoleARN(Self.role), externalID: ExternalID("tenant-3")))
    }

    /// Claims until nothing is left, returning every job claimed with its call slot.
    func claimSlots(_ store: PostgresJobStore, rate: SharedRateLimit?, regions: [String]? = nil) async throws -> [(job: ClaimedJob, callIn: Duration)] {
        var claimed: [(job: ClaimedJob, callIn: Duration)] = []
        while true {
            let claim = try await store.claimPaced(workerID: "w", limit: 50, lease: .seconds(30), rate: rate, regions: regions)
            claimed += claim.jobs
            if claim.jobs.isEmpty { return claimed }
        }
    }

    func claimAll(_ store: PostgresJobStore, rate: SharedRateLimit?, regions: [String]? = nil) async throws -> [ClaimedJob] {
        try await claimSlots(store, rate: rate, regions: regions).map(\.job)
    }

    func states(_ harness: WorkerHarness) async throws -> [String: [String: Int]] {
        var states: [String: [String: Int]] = [:]
        for row in try await harness.pool.query("SELECT user_pool_id, state, count(*) FROM cognito_reset.jobs GROUP BY 1, 2") {
            states[try row.decode(String.self, at: 0), default: [:]][try row.decode(String.self, at: 1)] = try row.decode(Int.self, at: 2)
        }
        return states
    }

    @Test func aWorkerClaimsOnlyInTheRegionsItServes() async throws {
        try await WorkerHarness.with { harness in
            try await insert(Self.ownUS, 5, on: harness)
            try await insert(Self.ownEU, 5, on: harness)
            let store = PostgresJobStore(pool: harness.pool)
            let claimed = try await claimAll(store, rate: nil, regions: ["eu-west-1"])
            #expect(claimed.count == 5)
            #expect(Set(claimed.map(\.userPoolID)) == [Self.ownEU])
            // The other region's jobs are not this worker's to wait for: --drain ends.
            #expect(try await store.anyRunnable(regions: ["eu-west-1"]) == false)
            #expect(try await store.anyRunnable(regions: ["us-east-1"]) == true)
            #expect(try await store.anyRunnable() == true)
            #expect(try await states(harness)[Self.ownUS] == ["pending": 5])
        }
    }

    @Test func eachAccountAndRegionDrawsFromItsOwnBucket() async throws {
        try await WorkerHarness.with { harness in
            try await mapRole(on: harness)
            for pool in [Self.ownUS, Self.ownEU, Self.otherAccount] { try await insert(pool, 4, on: harness) }
            let store = PostgresJobStore(pool: harness.pool)
            let claimed = try await claimAll(store, rate: Self.template)
            #expect(claimed.count == 12)
            var keys: [String: Set<String>] = [:]
            for job in claimed { keys[job.userPoolID, default: []].insert(job.rateKey ?? "none") }
            #expect(
                keys == [
                    Self.ownUS: ["cognito:us-east-1"], Self.ownEU: ["cognito:eu-west-1"],
                    Self.otherAccount: ["cognito:111111111111:us-east-1"],
                ])
            // Only the role's pool carries the role to the call.
            for job in claimed {
                #expect(job.roleARN == (job.userPoolID == Self.otherAccount ? Self.role : nil))
                #expect(job.externalID == (job.userPoolID == Self.otherAccount ? "tenant-3" : nil))
            }
            let buckets = try await store.rateBuckets()
            #expect(Set(buckets.map(\.key)) == ["cognito:us-east-1", "cognito:eu-west-1", "cognito:111111111111:us-east-1"])
            #expect(buckets.allSatisfy { $0.tokensLastMinute == 4 })
        }
    }

    @Test func aPausedAccountHoldsOnlyItsOwnJobsAndUrgentJobsLeadTheirBucket() async throws {
        try await WorkerHarness.with { harness in
            try await mapRole(on: harness)
            let store = PostgresJobStore(pool: harness.pool)
            try await store.setRateCeiling(key: "cognito:111111111111:us-east-1", ceiling: 0)
            try await insert(Self.otherAccount, 3, on: harness)
            try await insert(Self.ownUS, 3, on: harness)
            try await insert(Self.ownEU, 3, on: harness)
            try await harness.pool.query(
                PostgresQuery(
                    "INSERT INTO cognito_reset.jobs (user_pool_id, username, priority) VALUES ($1, 'urgent', 0)", [Self.ownUS]))
            let claimed = try await claimSlots(store, rate: Self.template)
            #expect(Set(claimed.map(\.job.userPoolID)) == [Self.ownUS, Self.ownEU])
            #expect(try await states(harness)[Self.otherAccount] == ["pending": 3])
            // The first slot of us-east-1's bucket went to the urgent job, whatever waited longer.
            let firstUS = try #require(claimed.filter { $0.job.userPoolID == Self.ownUS }.min { $0.callIn < $1.callIn })
            #expect(firstUS.job.username == "urgent")
        }
    }

    @Test func aRegionNoWorkerServesWaitsAndStatusSaysSo() async throws {
        try await WorkerHarness.with { harness in
            try await insert(Self.ownUS, 3, on: harness)
            try await insert(Self.ownEU, 2, on: harness)
            var configuration = WorkerHarness.configuration()
            configuration.drain = true
            configuration.regions = ["us-east-1"]
            let worker = harness.makeWorker(configuration)
            try await worker.run()  // --drain: ends once us-east-1 is done
            #expect(try await states(harness) == [Self.ownUS: ["succeeded": 3], Self.ownEU: ["pending": 2]])
            #expect(harness.server.requests.allSatisfy { $0.signingRegion == "us-east-1" })
            // A live worker serving only us-east-1 (the one above has stopped).
            try await PostgresJobStore(pool: harness.pool).registerWorker(
                id: "live", host: "h", pid: 1, version: "test", concurrency: 1, regions: ["us-east-1"])
            let status = try await PostgresJobStore(pool: harness.pool).status()
            let eu = try #require(status.regions.first { $0.region == "eu-west-1" })
            #expect(eu.runnableNow == 2 && eu.workersServing == 0)
            #expect(status.regions.map(\.region) == ["eu-west-1"])
        }
    }

    @Test func twoAccountsThrottledDifferentlyEachSettleAtTheirOwnRate() async throws {
        // The fake Cognito lets the worker's own account make 5 calls a second and the role's
        // account any number; STS hands the role's account its own keys.
        let accepted = LockedValue<[ContinuousClock.Instant]>([])
        let throttledByAccount = LockedValue<[String: Int]>([:])
        try await WorkerHarness.with(responder: { request, _ in
            if request.isSTS { return .stsCredentials(accessKeyID: "ASIA111111111111") }
            let account = request.accessKeyID ?? "?"
            guard account == "AKIDTEST" else { return .cognitoSuccess() }
            let now = ContinuousClock.now
            let allowed = accepted.withLock { calls in
                calls.removeAll { now - $0 > .seconds(1) }
                guard calls.count < 5 else { return false }
                calls.append(now)
                return true
            }
            if allowed { return .cognitoSuccess() }
            throttledByAccount.withLock { $0[account, default: 0] += 1 }
            return .cognitoError(400, type: "TooManyRequestsException", message: "Rate exceeded")
        }) { harness in
            try await mapRole(on: harness)
            try await insert(Self.ownUS, 30, on: harness)
            try await insert(Self.otherAccount, 30, on: harness)
            var configuration = WorkerHarness.configuration()
            configuration.sharedRate = SharedRateLimit(key: SharedRateLimit.defaultKeyTemplate, initialCeiling: 20)
            // Not --drain: a throttled job waits a few milliseconds as `retrying`, which a drain
            // would leave for the next run.
            let worker = harness.makeWorker(configuration)
            let task = harness.start(worker)
            try await harness.waitUntilAllFinished()
            try await harness.stop(worker, task)
            #expect(try await states(harness) == [Self.ownUS: ["succeeded": 30], Self.otherAccount: ["succeeded": 30]])
            #expect(throttledByAccount.value.keys.sorted() == ["AKIDTEST"])
            let buckets = Dictionary(uniqueKeysWithValues: try await PostgresJobStore(pool: harness.pool).rateBuckets().map { ($0.key, $0) })
            let own = try #require(buckets["cognito:us-east-1"])
            let other = try #require(buckets["cognito:111111111111:us-east-1"])
            // The throttled account was slowed (its rate was cut; it climbs back within seconds,
            // so the cut itself is what is checked); the other was never cut.
            #expect(own.throttlesLastMinute > 0)
            #expect(other.throttlesLastMinute == 0 && other.currentRate == 20)
            let cuts = try await harness.pool.query(
                "SELECT key, decreased_at IS NOT NULL FROM cognito_reset.rate_limits WHERE key LIKE 'cognito:%us-east-1' ORDER BY key")
            #expect(
                try cuts.map { "\(try $0.decode(String.self, at: 0)) \(try $0.decode(Bool.self, at: 1))" }
                    == ["cognito:111111111111:us-east-1 false", "cognito:us-east-1 true"])
        }
    }
}
