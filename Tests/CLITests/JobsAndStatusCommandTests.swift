import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import SystemTesting
import Testing

@Suite("cognito-reset jobs and status")
struct JobsAndStatusCommandTests {
    /// A migrated database with jobs in several states.
    func withJobs(_ body: ([String: String], PostgresConnection) async throws -> Void) async throws {
        try await TemporaryDatabase.with { database in
            let env = ["DATABASE_URL": database.configuration.resolvedConnectionString()]
            #expect(try await CognitoResetBinary.run(["migrate"], environment: env).status == 0)
            let connection = try await database.connect()
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, finished_at, last_error_code, last_error_message)
                VALUES ('eu-west-1_P1', 'ok1', 'succeeded', 1, now(), NULL, NULL),
                       ('eu-west-1_P1', 'gone1', 'failed', 1, now(), 'UserNotFoundException', 'User does not exist.'),
                       ('eu-west-1_P1', 'gone1', 'failed', 1, now(), 'UserNotFoundException', 'User does not exist.'),
                       ('eu-west-1_P2', 'off1', 'failed', 1, now(), 'NotAuthorizedException', 'User is disabled'),
                       ('eu-west-1_P2', 'wait1', 'pending', 0, NULL, NULL, NULL),
                       ('eu-west-1_P2', 'wait2', 'pending', 0, NULL, NULL, NULL)
                """)
            try await body(env, connection)
            await connection.close()
        }
    }

    func count(_ connection: PostgresConnection, _ state: String) async throws -> Int {
        try await connection.query("SELECT count(*) FROM cognito_reset.jobs WHERE state = \(state)")[0].decode(Int.self, at: 0)
    }

    @Test func listShowAndStatus() async throws {
        try await withJobs { env, _ in
            let list = try await CognitoResetBinary.run(["jobs", "list", "--state", "failed", "--json"], environment: env)
            #expect(list.status == 0, "\(list.stderr)")
            let jobs = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]]
            #expect(jobs?.count == 3)
            #expect(Set(jobs?.compactMap { $0["last_error_code"] as? String } ?? []) == ["UserNotFoundException", "NotAuthorizedException"])

            let show = try await CognitoResetBinary.run(["jobs", "show", "2"], environment: env)
            #expect(show.status == 0)
            #expect(show.stdout.contains("Last error UserNotFoundException: User does not exist."))
            let missing = try await CognitoResetBinary.run(["jobs", "show", "999"], environment: env)
            #expect(missing.status == 1)

            let status = try await CognitoResetBinary.run(["status", "--json"], environment: env)
            let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            let counts = object?["counts"] as? [String: Int]
            #expect(counts == ["pending": 2, "running": 0, "retrying": 0, "succeeded": 1, "failed": 3, "cancelled": 0])
            #expect((object?["failures_by_code"] as? [String: Int])?["UserNotFoundException"] == 2)
            let text = try await CognitoResetBinary.run(["status"], environment: env)
            #expect(text.stdout.contains("Failures    (24 h) UserNotFoundException 2, NotAuthorizedException 1"))
        }
    }

    /// A user whose failed reset was followed by a newer one that succeeded is not reset again.
    @Test func bulkRetryLeavesUsersWhoseLaterResetSucceeded() async throws {
        try await withJobs { env, connection in
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, finished_at)
                VALUES ('eu-west-1_P1', 'later1', 'failed', 1, now()), ('eu-west-1_P1', 'later1', 'succeeded', 1, now())
                """)
            let bulk = try await CognitoResetBinary.run(["jobs", "retry", "--state", "failed", "--pool", "eu-west-1_P1"], environment: env)
            #expect(bulk.stdout.contains("1 job(s) queued again."), "\(bulk.stdout)")
            let later = try await connection.query("SELECT count(*) FROM cognito_reset.jobs WHERE username = 'later1' AND state = 'pending'")
            #expect(try later[0].decode(Int.self, at: 0) == 0)
        }
    }

    @Test func retryAndCancel() async throws {
        try await withJobs { env, connection in
            // One job per user: the duplicate failed job of gone1 stays failed.
            let bulk = try await CognitoResetBinary.run(["jobs", "retry", "--state", "failed", "--pool", "eu-west-1_P1"], environment: env)
            #expect(bulk.stdout.contains("1 job(s) queued again."))
            #expect(try await count(connection, "failed") == 2)
            // The other gone1 job cannot be retried while the user has an active job.
            let conflict = try await CognitoResetBinary.run(["jobs", "retry", "2"], environment: env)
            let other = try await CognitoResetBinary.run(["jobs", "retry", "3"], environment: env)
            #expect(conflict.status == 1)
            #expect(conflict.stderr.contains("already has an active job"))
            #expect(other.status == 1, "job 3 is the one queued again: it is pending, not failed")
            #expect(other.stderr.contains("not failed or cancelled"))

            let one = try await CognitoResetBinary.run(["jobs", "cancel", "5"], environment: env)
            #expect(one.stdout.contains("1 job(s) cancelled."))
            let byPool = try await CognitoResetBinary.run(["jobs", "cancel", "--pool", "eu-west-1_P2"], environment: env)
            #expect(byPool.stdout.contains("1 job(s) cancelled."))
            #expect(try await count(connection, "cancelled") == 2)
            let again = try await CognitoResetBinary.run(["jobs", "retry", "5"], environment: env)
            #expect(again.status == 0)
            #expect(try await connection.query("SELECT attempt FROM cognito_reset.jobs WHERE id = 5")[0].decode(Int.self, at: 0) == 0)

            for bad in [
                ["jobs", "cancel"], ["jobs", "cancel", "1", "--pool", "x"], ["jobs", "retry"], ["jobs", "list", "--state", "done"],
                ["jobs", "retry", "--state", "pending"], ["jobs", "list", "--limit", "0"],
            ] {
                let result = try await CognitoResetBinary.run(bad, environment: env)
                #expect(result.status == 2, "\(bad)")
                #expect(result.stderr.split(separator: "\n").count == 1)
            }
        }
    }
}
