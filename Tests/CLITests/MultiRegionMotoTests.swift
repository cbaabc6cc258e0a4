import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import SystemTesting
import Testing

/// Pools in two regions of moto's default account and one in a second account (reached through
/// STS AssumeRole: moto acts in the account of the role assumed), reset by `worker --drain`.
@Suite("Regions and accounts against moto")
struct MultiRegionMotoTests {
    static let role = "arn:aws:iam::111111111111:role/cognito-reset"

    struct Pools {
        let us: String
        let eu: String
        let otherAccount: String
        /// Each pool's users and how moto_fixture reaches it.
        var all: [(pool: String, users: [String], fixture: [String])] {
            [
                (us, ["us-a", "us-b"], ["--region", "us-east-1"]), (eu, ["eu-a", "eu-b"], ["--region", "eu-west-1"]),
                (otherAccount, ["acct-a", "acct-b"], ["--region", "us-east-1", "--role-arn", MultiRegionMotoTests.role]),
            ]
        }
    }

    /// A migrated database with the three pools' users enqueued and the second account's pool
    /// mapped to its role.
    func withQueue(_ body: (TemporaryDatabase, [String: String], Pools, URL) async throws -> Void) async throws {
        let moto = try Moto.sharedEndpoint()
        func pool(_ arguments: [String]) async throws -> String {
            try #require(try await Moto.fixture(["pool"] + arguments, endpoint: moto)["pool_id"])
        }
        let pools = Pools(
            us: try await pool(["--region", "us-east-1", "--users", "us-a:confirmed", "us-b:confirmed"]),
            eu: try await pool(["--region", "eu-west-1", "--users", "eu-a:confirmed", "eu-b:confirmed"]),
            otherAccount: try await pool(["--region", "us-east-1", "--role-arn", Self.role, "--users", "acct-a:confirmed", "acct-b:confirmed"]))
        try await TemporaryDatabase.with { database in
            let env = [
                "DATABASE_URL": database.configuration.resolvedConnectionString(), "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": moto.absoluteString,
            ]
            #expect(try await CognitoResetBinary.run(["migrate"], environment: env).status == 0)
            let setRole = try await CognitoResetBinary.run(["pool", "set-role", pools.otherAccount, Self.role], environment: env)
            #expect(setRole.status == 0, "\(setRole.stderr)")
            #expect(setRole.stdout.contains("bucket cognito:111111111111:us-east-1"))
            let connection = try await database.connect()
            for (pool, users, _) in pools.all {
                for user in users {
                    try await connection.execute(
                        PostgresQuery(
                            "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ($1, $2)", [pool, user]))
                }
            }
            await connection.close()
            try await body(database, env, pools, moto)
        }
    }

    func states(_ database: TemporaryDatabase) async throws -> [String: String] {
        let connection = try await database.connect()
        defer { Task { await connection.close() } }
        var states: [String: String] = [:]
        for row in try await connection.query("SELECT username, state || coalesce(':' || last_error_code, '') FROM cognito_reset.jobs") {
            states[try row.decode(String.self, at: 0)] = try row.decode(String.self, at: 1)
        }
        return states
    }

    func motoStatus(_ pool: String, _ user: String, _ fixture: [String], _ moto: URL) async throws -> String? {
        try await Moto.fixture(["status", "--pool", pool, "--user", user] + fixture, endpoint: moto)["status"]
    }

    @Test func oneWorkerResetsEveryPoolInEveryRegionAndAccount() async throws {
        try await withQueue { database, env, pools, moto in
            let drained = try await CognitoResetBinary.run(["worker", "--drain", "--rate", "unlimited"], environment: env)
            #expect(drained.status == 0, "\(drained.stderr)")
            #expect(try await states(database).values.allSatisfy { $0 == "succeeded" })
            for (pool, users, fixture) in pools.all {
                for user in users {
                    #expect(try await motoStatus(pool, user, fixture, moto) == "RESET_REQUIRED", "\(pool) \(user)")
                }
            }
            let list = try await CognitoResetBinary.run(["pool", "list", "--json"], environment: env)
            let mappings = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
            #expect(mappings.count == 1)
            #expect(mappings.first?["user_pool_id"] as? String == pools.otherAccount)
            #expect(mappings.first?["account_id"] as? String == "111111111111")
        }
    }

    @Test func aWorkerLimitedToARegionTouchesOnlyThatRegionsJobs() async throws {
        try await withQueue { database, env, pools, moto in
            var limited = env
            limited["COGNITO_RESET_REGIONS"] = "eu-west-1"
            let drained = try await CognitoResetBinary.run(["worker", "--drain", "--rate", "unlimited"], environment: limited)
            #expect(drained.status == 0, "\(drained.stderr)")
            let states = try await states(database)
            #expect(states["eu-a"] == "succeeded" && states["eu-b"] == "succeeded")
            #expect(["us-a", "us-b", "acct-a", "acct-b"].allSatisfy { states[$0] == "pending" })
            #expect(try await motoStatus(pools.us, "us-a", ["--region", "us-east-1"], moto) == "CONFIRMED")
            // Nobody serves us-east-1 now: its jobs wait, and `status` says why.
            let status = try await CognitoResetBinary.run(["status"], environment: env)
            #expect(status.stdout.contains("us-east-1: runnable 4"), "\(status.stdout)")
            #expect(status.stdout.contains("(runnable, no worker serves us-east-1)"), "\(status.stdout)")
        }
    }

    @Test func aRoleSTSRefusesFailsOnlyItsPoolsJobs() async throws {
        let sts = try await FakeHTTPServer.start(fallback: .stsError(403, code: "AccessDenied", message: "not authorized to perform sts:AssumeRole"))
        try await withQueue { database, env, _, _ in
            var refusing = env
            refusing["AWS_ENDPOINT_URL_STS"] = sts.url.absoluteString
            let drained = try await CognitoResetBinary.run(["worker", "--drain", "--rate", "unlimited"], environment: refusing)
            #expect(drained.status == 0, "\(drained.stderr)")
            let states = try await states(database)
            #expect(states["acct-a"] == "failed:AssumeRoleDenied" && states["acct-b"] == "failed:AssumeRoleDenied")
            #expect(["us-a", "us-b", "eu-a", "eu-b"].allSatisfy { states[$0] == "succeeded" })
            // One refusal is remembered: both jobs failed on one STS call, not a storm.
            #expect(sts.requests.count == 1)
        }
        await sts.shutdown()
    }

    @Test func poolCommandsCheckTheirInputAndNeedTheAdminRole() async throws {
        try await TemporaryDatabase.with { database in
            let env = ["DATABASE_URL": database.configuration.resolvedConnectionString()]
            #expect(try await CognitoResetBinary.run(["migrate"], environment: env).status == 0)
            for (arguments, field) in [
                (["pool", "set-role", "no-underscore", Self.role], "POOL_ID"),
                (["pool", "set-role", "eu-west-1_P1", "arn:aws:iam::1:role/x"], "ROLE_ARN"),
                (["pool", "set-role", "eu-west-1_P1", Self.role, "--external-id", "x\u{1B}[2J"], "--external-id"),
                (["pool", "unset-role", "eu-west-1 P1"], "POOL_ID"),
            ] {
                let result = try await CognitoResetBinary.run(arguments, environment: env)
                #expect(result.status == 2, "\(arguments)")
                #expect(result.stderr.contains(field), "\(result.stderr)")
                #expect(!result.stderr.contains("\u{1B}"))
            }
            let set = try await CognitoResetBinary.run(["pool", "set-role", "eu-west-1_P1", Self.role, "--external-id", "tenant-1"], environment: env)
            #expect(set.status == 0)
            #expect(set.stdout.contains("external id tenant-1"))
            #expect(try await CognitoResetBinary.run(["pool", "unset-role", "eu-west-1_P1"], environment: env).status == 0)
            #expect(try await CognitoResetBinary.run(["pool", "unset-role", "eu-west-1_P1"], environment: env).status == 1)
            let empty = try await CognitoResetBinary.run(["pool", "list"], environment: env)
            #expect(empty.stdout.contains("No pool is mapped"))
        }
    }
}
