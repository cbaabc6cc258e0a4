import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import ResetQueue
import Testing

/// The fleet-wide bucket in PostgreSQL: slots, adaptation, ceilings, priority, per-import rates.
@Suite("Shared rate limit")
struct SharedRateLimitTests {
    static let key = "cognito:test"

    func shared(_ ceiling: Double) -> SharedRateLimit {
        SharedRateLimit(key: Self.key, initialCeiling: ceiling)
    }

    /// The bucket's clock as of its last claim (`updated_at`, the time slots were counted from)
    /// and the start of its next free slot, in seconds since 1970: tests compare schedules in the
    /// database's own time, so a slow machine cannot make them flaky.
    func schedule(_ pool: ConnectionPool) async throws -> (claimedAt: Double, nextSlot: Double) {
        let row = try await pool.query(
            PostgresQuery(
                """
                SELECT extract(epoch FROM updated_at)::double precision, extract(epoch FROM next_slot_at)::double precision
                FROM cognito_reset.rate_limits WHERE key = $1
                """, [Self.key]))[0]
        return (try row.decode(Double.self, at: 0), try row.decode(Double.self, at: 1))
    }

    @Test func aClaimReservesEvenlySpacedSlotsWithinTheHorizonOnly() async throws {
        try await WorkerHarness.with { harness in
            try await harness.insertJobs(100)
            let store = PostgresJobStore(pool: harness.pool)
            let first = try await store.claimPaced(workerID: "a", limit: 50, lease: .seconds(30), rate: shared(20))
            // A new bucket starts now: slots 0, 50 ms, ... up to the 500 ms horizon.
            #expect(first.jobs.count == 11)
            for (index, slot) in first.jobs.enumerated() {
                #expect(abs(slot.callIn / .seconds(1) - Double(index) * 0.05) < 0.02, "slot \(index) at \(slot.callIn)")
            }
            #expect(first.ceiling == 20 && first.currentRate == 20)
            let firstSchedule = try await schedule(harness.pool)
            #expect(abs(firstSchedule.nextSlot - firstSchedule.claimedAt - 0.55) < 0.001, "reserved 11 slots, no more")
            // Next: nothing is free until a batch (5 slots) is, and the answer says when; a claim
            // that comes later continues the schedule without a gap or an overlap.
            let second = try await store.claimPaced(workerID: "b", limit: 50, lease: .seconds(30), rate: shared(20))
            let secondSchedule = try await schedule(harness.pool)
            if second.jobs.isEmpty {
                let wait = try #require(second.wait) / .seconds(1)
                let due = firstSchedule.nextSlot + 0.2 - 0.5 - secondSchedule.claimedAt
                #expect(abs(wait - max(0.001, due)) < 0.001, "\(wait) s, the next batch is due in \(due) s")
            } else {
                let firstSlot = secondSchedule.claimedAt + second.jobs[0].callIn / .seconds(1)
                #expect(abs(firstSlot - max(firstSchedule.nextSlot, secondSchedule.claimedAt)) < 0.001)
            }
            // The key's row was created with the given ceiling, and counts what it handed out.
            let bucket = try #require(try await store.rateBuckets(key: Self.key).first)
            #expect(bucket.ceiling == 20 && bucket.burst == 1 && !bucket.paused)
            #expect(bucket.tokensLastMinute == 11 + second.jobs.count)
        }
    }

    @Test func aCrashedWorkersUnusedSlotsCostTheFleetAtMostOneHorizon() async throws {
        try await WorkerHarness.with { harness in
            try await harness.insertJobs(100)
            let store = PostgresJobStore(pool: harness.pool)
            // Worker "dead" reserves slots and never calls (SIGKILLed right after its claim). Its
            // reservation never reaches further than one horizon (0.5 s, plus the slot at its edge).
            let dead = try await store.claimPaced(workerID: "dead", limit: 50, lease: .seconds(30), rate: shared(20))
            #expect(!dead.jobs.isEmpty)
            let deadSchedule = try await schedule(harness.pool)
            #expect(deadSchedule.nextSlot - deadSchedule.claimedAt <= 0.55 + 0.001)
            // The survivor's slots follow straight on from the dead worker's (or start at once if
            // it comes later): what the dead worker held is lost, nothing more, and then the
            // survivor has the whole rate.
            var next = try await store.claimPaced(workerID: "alive", limit: 50, lease: .seconds(30), rate: shared(20))
            while next.jobs.isEmpty {
                try await Task.sleep(for: try #require(next.wait))  // the wait the bucket asks for
                next = try await store.claimPaced(workerID: "alive", limit: 50, lease: .seconds(30), rate: shared(20))
            }
            let survivorSchedule = try await schedule(harness.pool)
            let firstSlot = survivorSchedule.claimedAt + next.jobs[0].callIn / .seconds(1)
            #expect(abs(firstSlot - max(deadSchedule.nextSlot, survivorSchedule.claimedAt)) < 0.001)
            #expect(next.jobs.count >= 5)
            for (index, slot) in next.jobs.enumerated().dropFirst() {
                #expect(abs(slot.callIn / .seconds(1) - next.jobs[0].callIn / .seconds(1) - Double(index) * 0.05) < 0.001)
            }
        }
    }

    @Test func throttlingCutsTheRateOnceASecondAndItClimbsBackToTheCeiling() async throws {
        try await WorkerHarness.with { harness in
            let store = PostgresJobStore(pool: harness.pool)
            try await store.setRateCeiling(key: Self.key, ceiling: 20)
            let cut = try #require(try await store.reportThrottles(key: Self.key, count: 3))
            #expect(abs(cut - 14) < 0.01)
            // Other workers reporting the same storm within the second do not cut again.
            #expect(abs(try #require(try await store.reportThrottles(key: Self.key, count: 5)) - 14) < 0.01)
            let bucket = try #require(try await store.rateBuckets(key: Self.key).first)
            #expect(bucket.throttlesLastMinute == 8 && bucket.lastThrottleAt != nil)
            #expect(bucket.currentRate >= 14 && bucket.currentRate <= 20, "climbing back since the cut: \(bucket.currentRate)")
            // queue_status's effective rate is the rate in force now.
            let effective = try await harness.count("SELECT round(effective_rate)::int FROM cognito_reset.queue_status")
            #expect(effective >= 14 && effective <= 20, "\(effective)")
            // CUBIC: back at the throttled rate after K = cbrt(20 × 0.3 / 0.4) ≈ 2.47 s, then on up.
            func rate(after seconds: Double) async throws -> Double {
                try await harness.pool.query(
                    PostgresQuery(
                        """
                        SELECT cognito_reset.adaptive_rate(b, b.decreased_at + make_interval(secs => $1))
                        FROM cognito_reset.rate_limits b WHERE key = $2
                        """, [seconds, Self.key]))[0].decode(Double.self, at: 0)
            }
            let climbing = try await rate(after: 1)
            #expect(climbing > 14 && climbing < 20)
            let atK = try await rate(after: cbrt(15))
            #expect(abs(atK - 20) < 0.01)
            let late = try await rate(after: 60)
            #expect(late == 20, "never above the ceiling")
            // Repeated cuts stop at the floor.
            try await harness.pool.query(
                PostgresQuery(
                    "UPDATE cognito_reset.rate_limits SET floor_rate = 5, current_rate = 6, rate_before_decrease = 6, decreased_at = now() - interval '2 s' WHERE key = $1",
                    [Self.key]))
            #expect(try #require(try await store.reportThrottles(key: Self.key, count: 1)) == 5)
        }
    }

    @Test func aCeilingOfZeroPausesEveryClaimAndLiftingItResumes() async throws {
        try await WorkerHarness.with { harness in
            try await harness.insertJobs(10)
            let store = PostgresJobStore(pool: harness.pool)
            try await store.setRateCeiling(key: Self.key, ceiling: 0)
            let paused = try await store.claimPaced(workerID: "a", limit: 10, lease: .seconds(30), rate: shared(25))
            #expect(paused.jobs.isEmpty && paused.currentRate == 0 && paused.wait == .seconds(1))
            #expect(try await store.rateBuckets(key: Self.key).first?.paused == true)
            // Plain SQL works as well as `rate set`, and the adaptive rate restarts from it.
            try await harness.pool.query(PostgresQuery("UPDATE cognito_reset.rate_limits SET rate = 10 WHERE key = $1", [Self.key]))
            let resumed = try await store.claimPaced(workerID: "a", limit: 10, lease: .seconds(30), rate: shared(25))
            #expect(!resumed.jobs.isEmpty && resumed.currentRate == 10)
        }
    }

    @Test func anImportsOwnCeilingHoldsItsJobsBackButNotOthers() async throws {
        try await WorkerHarness.with { harness in
            let importID = try await harness.pool.query(
                PostgresQuery(
                    """
                    INSERT INTO cognito_reset.imports (file_name, sha256, rate) VALUES ('bulk.csv', repeat('a', 64), 4) RETURNING id
                    """))[0].decode(Int64.self, at: 0)
            try await harness.pool.query(
                PostgresQuery(
                    """
                    INSERT INTO cognito_reset.jobs (user_pool_id, username, import_id)
                    SELECT '\(WorkerHarness.pool)', 'bulk' || g, $1 FROM generate_series(1, 1000) g
                    """, [importID]))
            try await harness.insertJobs(3, prefix: "direct", priority: 200)
            let store = PostgresJobStore(pool: harness.pool)
            let claim = try await store.claimPaced(workerID: "a", limit: 50, lease: .seconds(30), rate: shared(100))
            let bulk = claim.jobs.filter { $0.job.username.hasPrefix("bulk") }
            // 4/s over a 0.5 s horizon: slots at 0, 0.25, 0.5 for the import; the rest go to others.
            #expect(bulk.count == 3)
            #expect(bulk.map { ($0.callIn / .seconds(1) * 4).rounded() } == [0, 1, 2])
            #expect(claim.jobs.count == 6, "the three direct jobs are not held back by the import's rate")
            let claimedAt = try await schedule(harness.pool).claimedAt
            let importNext = try await harness.pool.query(
                PostgresQuery(
                    "SELECT extract(epoch FROM next_slot_at)::double precision FROM cognito_reset.imports WHERE id = $1", [importID]))[0]
                .decode(Double.self, at: 0)
            #expect(abs(importNext - claimedAt - 0.75) < 0.001, "the import's next slot is its fourth")
            // Next round: the import is exhausted, and the answer says when its next slot is due
            // (unless this machine was so slow that it is due already).
            let next = try await store.claimPaced(workerID: "a", limit: 50, lease: .seconds(30), rate: shared(100))
            let nextClaimedAt = try await schedule(harness.pool).claimedAt
            if next.jobs.isEmpty {
                let wait = try #require(next.wait) / .seconds(1)
                #expect(abs(wait - max(0.001, importNext - 0.5 - nextClaimedAt)) < 0.001, "\(wait)")
            } else {
                #expect(nextClaimedAt + 0.5 >= importNext)
            }
        }
    }
}
