import CognitoTesting
import Foundation
import Logging
import Postgres
import PostgresTesting
import SystemTesting
import Testing

@Suite("cognito-reset enqueue")
struct EnqueueCommandTests {
    @Test func enqueuesThenReportsTheActiveJobForTheSameUser() async throws {
        try await withMigrated { environment, database in
            let arguments = ["enqueue", "--pool", "eu-west-1_AbC123", "--user", "alice", "--metadata", "ticket=T-9"]
            let first = try await CognitoResetBinary.run(arguments + ["--json"], environment: environment)
            #expect(first.status == 0, "\(first.stderr)")
            let object = try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any]
            #expect(object?["created"] as? Bool == true)
            #expect(object?["state"] as? String == "pending")
            let id = try #require(object?["job_id"] as? Int)

            let second = try await CognitoResetBinary.run(arguments, environment: environment)
            #expect(second.status == 0)
            #expect(second.stdout.contains("Job \(id) is already active"))
            #expect(try await jobCount(database) == 1)
        }
    }

    @Test func schedulesForLaterWithRunAt() async throws {
        try await withMigrated { environment, database in
            let result = try await CognitoResetBinary.run(
                ["enqueue", "--pool", "eu-west-1_AbC123", "--user", "bob", "--run-at", "+2h", "--priority", "5"],
                environment: environment)
            #expect(result.status == 0, "\(result.stderr)")
            let connection = try await database.connect()
            let row = try await connection.query(
                "SELECT run_at > now() + interval '119 minutes', priority FROM cognito_reset.jobs")[0]
            #expect(try row.decode(Bool.self, at: 0))
            #expect(try row.decode(Int.self, at: 1) == 5)
            await connection.close()
        }
    }

    struct BadInput: Sendable, CustomTestStringConvertible {
        let testDescription: String
        let arguments: [String]
        let mentions: String
    }

    static let badInputs: [BadInput] = [
        .init(testDescription: "pool id without region", arguments: ["--pool", "AbC123", "--user", "a"], mentions: "--pool"),
        .init(
            testDescription: "129-character username", arguments: ["--pool", "eu-west-1_a", "--user", String(repeating: "u", count: 129)], mentions: "--user"),
        .init(testDescription: "username with a space", arguments: ["--pool", "eu-west-1_a", "--user", "a b"], mentions: "--user"),
        .init(testDescription: "negative priority", arguments: ["--pool", "eu-west-1_a", "--user", "a", "--priority", "-1"], mentions: "--priority"),
        .init(testDescription: "zero attempts", arguments: ["--pool", "eu-west-1_a", "--user", "a", "--max-attempts", "0"], mentions: "--max-attempts"),
        .init(
            testDescription: "time without a zone", arguments: ["--pool", "eu-west-1_a", "--user", "a", "--run-at", "2027-01-01T00:00:00"], mentions: "--run-at"
        ),
        .init(testDescription: "a delay past ten years", arguments: ["--pool", "eu-west-1_a", "--user", "a", "--run-at", "+200000000d"], mentions: "--run-at"),
        .init(testDescription: "metadata without =", arguments: ["--pool", "eu-west-1_a", "--user", "a", "--metadata", "oops"], mentions: "--metadata"),
        .init(testDescription: "missing --user", arguments: ["--pool", "eu-west-1_a"], mentions: "--user"),
        .init(
            testDescription: "priority that is not a number", arguments: ["--pool", "eu-west-1_a", "--user", "a", "--priority", "high"], mentions: "--priority"),
    ]

    @Test(arguments: badInputs)
    func badInputExitsWith2InOneLineAndWritesNothing(_ input: BadInput) async throws {
        try await withMigrated { environment, database in
            let result = try await CognitoResetBinary.run(["enqueue"] + input.arguments, environment: environment)
            #expect(result.status == 2)
            #expect(result.stderr.hasPrefix("error: "))
            #expect(result.stderr.contains(input.mentions))
            #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
            #expect(result.stdout.isEmpty)
            #expect(try await jobCount(database) == 0)
        }
    }

    @Test func helpExitsZero() async throws {
        let help = try await CognitoResetBinary.run(["enqueue", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("--pool"))
    }
}
