import Foundation
import Postgres
import PostgresTesting
import Synchronization
import Testing

/// Statement deadlines: the server-side statement_timeout sent at connect, the client-side
/// deadline that cancels, and prompt task cancellation. (A server that answers nothing at all is
/// tested with a stopped server in Tests/CLITests/DatabaseFaultTests.swift.)
@Suite("Statement deadlines")
struct DeadlineTests {
    @Test func statementTimeoutIsSetForTheSessionAndAddedToGivenOptions() async throws {
        try await TemporaryDatabase.with { database in
            var configuration = database.configuration.setting("options", to: "-c work_mem=8MB")
            configuration.statementTimeout = .milliseconds(1500)
            let connection = try await PostgresConnection.connect(configuration)
            #expect(try await connection.query("SELECT current_setting('statement_timeout')")[0].decode(String.self, at: 0) == "1500ms")
            #expect(try await connection.query("SELECT current_setting('work_mem')")[0].decode(String.self, at: 0) == "8MB")
            await connection.close()
        }
    }

    @Test func theClientDeadlineCancelsAStatementTheServerLetsRun() async throws {
        try await TemporaryDatabase.with { database in
            var configuration = database.configuration
            configuration.statementDeadline = .milliseconds(300)
            let overran = Atomic(0)
            let connection = try await PostgresConnection.connect(configuration) { overran.add(1, ordering: .relaxed) }
            let started = ContinuousClock.now
            let error = try await #require(throws: PostgresError.self) { try await connection.query("SELECT pg_sleep(30)") }
            #expect(error.sqlState == SQLState.queryCanceled)
            #expect(error.message.contains("deadline"))
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect(overran.load(ordering: .relaxed) == 1)
            // The server answered the cancel: the connection is still good.
            #expect(try await connection.query("SELECT 41 + 1")[0].decode(Int.self, at: 0) == 42)
            await connection.close()
        }
    }

    @Test func cancellingTheTaskCancelsTheStatementPromptly() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let pid = await connection.backendPID  // before: the actor is busy while its statement runs
            let statement = Task { try await connection.query("SELECT pg_sleep(30)") }
            let admin = try await database.connect()
            try await withDeadline(.seconds(20), "the statement to start") {
                while try await admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = \(pid) AND state = 'active'")[0]
                    .decode(Int.self, at: 0) == 0
                { await Task.yield() }
            }
            let cancelledAt = ContinuousClock.now
            statement.cancel()
            let error = try await #require(throws: PostgresError.self) { try await statement.value }
            #expect(error.sqlState == SQLState.queryCanceled)
            #expect(ContinuousClock.now - cancelledAt < .seconds(10), "not the 30 s of the statement")
            #expect(try await connection.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
            await admin.close()
            await connection.close()
        }
    }

    /// A server process that does not answer at all (stopped), not even the cancel: the caller
    /// gets `.timedOut` soon after the deadline and the connection is closed, never reused.
    @Test func aBackendThatNeverAnswersCostsTheConnectionNotTheCaller() async throws {
        try await TemporaryDatabase.with { database in
            var configuration = database.configuration
            configuration.statementDeadline = .milliseconds(300)
            let connection = try await PostgresConnection.connect(configuration)
            let pid = await connection.backendPID
            kill(pid, SIGSTOP)
            let started = ContinuousClock.now
            var failure: PostgresError?
            do {
                _ = try await connection.query("SELECT 1")
            } catch let error as PostgresError {
                failure = error
            }
            let took = ContinuousClock.now - started
            kill(pid, SIGCONT)
            let error = try #require(failure, "a stopped backend answered")
            #expect(error.code == .timedOut)
            #expect(took < .seconds(10), "deadline 300 ms plus the cancel's 2 s: \(took)")
            #expect(await !connection.isOpen)
        }
    }

    @Test func preparedStatementNamesFollowTheirTextSoEveryConnectionAgrees() async throws {
        try await TemporaryDatabase.with { database in
            let first = try await database.connect()
            let second = try await database.connect()
            let query = PostgresQuery("SELECT $1::int + 1", [41]).prepared()
            #expect(try await first.query(query)[0].decode(Int.self, at: 0) == 42)
            #expect(try await second.query(query)[0].decode(Int.self, at: 0) == 42)
            let names = { (connection: PostgresConnection) in
                try await connection.query("SELECT name FROM pg_prepared_statements").map { try $0.decode(String.self, at: 0) }
            }
            let firstNames = try await names(first)
            #expect(firstNames.count == 1 && firstNames.first?.hasPrefix("cognito_reset_") == true)
            #expect(try await names(second) == firstNames)
            await first.close()
            await second.close()
        }
    }
}
