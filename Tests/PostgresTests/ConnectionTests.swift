import Foundation
import Postgres
import PostgresTesting
import SystemTesting
import Testing

@Suite("Connections")
struct ConnectionTests {
    @Test func connectsAndReportsItsBackend() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let pid = try await connection.query("SELECT pg_backend_pid()")[0].decode(Int32.self, at: 0)
            #expect(pid == (await connection.backendPID))
            #expect(await connection.isOpen)
            await connection.close()
            #expect(await !connection.isOpen)
            await #expect(throws: PostgresError.self) { try await connection.query("SELECT 1") }
        }
    }

    @Test func connectionErrorNamesHostAndPortButNeverThePassword() async throws {
        let server = try TemporaryDatabase.serverConfiguration()
        let password = try #require(server.value(for: "password"))
        // A port nobody listens on.
        let closedPort = try TestPorts.unused()
        let unreachable = server.setting("port", to: String(closedPort))
        let error = try await #require(throws: PostgresError.self) {
            try await PostgresConnection.connect(unreachable)
        }
        #expect(error.code == .connectionFailed)
        #expect(error.host == "127.0.0.1")
        #expect(error.port == String(closedPort))
        #expect(!"\(error)".contains(password))
        #expect(!error.message.contains(password))
        #expect("\(error)".contains("127.0.0.1:\(closedPort)"))
        #expect(!"\(unreachable)".contains(password), "descriptions redact the password")
    }

    @Test func wrongPasswordIsReportedWithoutEchoingIt() async throws {
        let wrong = "not-the-password-\(UUID().uuidString)"
        let configuration = try TemporaryDatabase.serverConfiguration().setting("password", to: wrong)
        let error = try await #require(throws: PostgresError.self) {
            try await PostgresConnection.connect(configuration)
        }
        #expect(error.code == .connectionFailed)
        #expect(error.message.contains("password authentication failed"))
        #expect(!"\(error)".contains(wrong))
    }

    @Test func malformedConnectionStringIsRefusedWithoutQuotingIt() throws {
        let secret = "s3cr%zzet"
        let error = try #require(throws: PostgresError.self) {
            try ConnectionConfiguration("postgresql://user:\(secret)@localhost/db")
        }
        #expect(error.code == .invalidConfiguration)
        #expect(!"\(error)".contains(secret))
        #expect(!"\(error)".contains("zz"))
    }

    @Test func queryErrorsKeepSQLStateAndTheConnectionStaysUsable() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let syntax = try await #require(throws: PostgresError.self) { try await connection.query("SELEC 1") }
            #expect(syntax.code == .server)
            #expect(syntax.sqlState == "42601")
            let division = try await #require(throws: PostgresError.self) { try await connection.query("SELECT 1/0") }
            #expect(division.sqlState == "22012")
            #expect(division.severity == "ERROR")

            try await connection.execute("CREATE TABLE t (id int PRIMARY KEY, n int CONSTRAINT n_positive CHECK (n > 0))")
            try await connection.execute("INSERT INTO t VALUES (1, 1)")
            let duplicate = try await #require(throws: PostgresError.self) {
                try await connection.execute("INSERT INTO t VALUES (\(1), \(2))")
            }
            #expect(duplicate.sqlState == SQLState.uniqueViolation)
            #expect(duplicate.constraintName == "t_pkey")
            #expect(duplicate.tableName == "t")
            #expect(duplicate.detail?.contains("already exists") == true)
            #expect(!"\(duplicate)".contains("(id)=(1)"), "description leaves out the detail, which quotes values")
            let check = try await #require(throws: PostgresError.self) {
                try await connection.execute("INSERT INTO t VALUES (\(2), \(-5))")
            }
            #expect(check.sqlState == SQLState.checkViolation)
            #expect(check.constraintName == "n_positive")
            #expect(try await connection.query("SELECT count(*) FROM t")[0].decode(Int.self, at: 0) == 1)
            await connection.close()
        }
    }

    @Test func textWithANulByteIsRefusedBeforeSending() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let error = try await #require(throws: PostgresError.self) {
                try await connection.query("SELECT \("a\u{0}b")::text")
            }
            #expect(error.code == .invalidParameter)
            await connection.close()
        }
    }

    @Test func cancellingTheTaskCancelsTheRunningStatement() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let started = ContinuousClock.now
            let task = Task { try await connection.query("SELECT pg_sleep(60)") }
            // Wait until the server runs the statement, then cancel the task.
            let pid = await connection.backendPID
            let observer = try await database.connect()
            try await withDeadline(.seconds(20), "pg_sleep to start") {
                while try await observer.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = \(pid) AND state = 'active'"
                )[0].decode(Int.self, at: 0) == 0 {
                    await Task.yield()
                }
            }
            task.cancel()
            let error = try await #require(throws: PostgresError.self) { try await task.value }
            #expect(error.sqlState == SQLState.queryCanceled)
            #expect(ContinuousClock.now - started < .seconds(30))
            #expect(try await connection.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
            await connection.close()
            await observer.close()
        }
    }

    /// libpq blocks; it must block its own threads, not Swift's two cooperative ones.
    @Test func blockingStatementsLeaveTheCooperativePoolFree() async throws {
        try await TemporaryDatabase.with { database in
            var opened: [PostgresConnection] = []
            for _ in 0..<4 { opened.append(try await database.connect()) }
            let connections = opened
            let sleepers = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for connection in connections {
                        group.addTask { try await connection.execute("SELECT pg_sleep(5)") }
                    }
                    try await group.waitForAll()
                }
            }
            let activeSleeps: PostgresQuery = """
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep(5)%' AND state = 'active'
                """
            // Four statements now block four threads. Ordinary async work must still run at once.
            let observer = try await database.connect()
            try await withDeadline(.seconds(20), "the sleeps to start") {
                while try await observer.query(activeSleeps)[0].decode(Int.self, at: 0) < 4 {
                    await Task.yield()
                }
            }
            let value = await Task.detached { (1...1000).reduce(0, +) }.value
            #expect(value == 500_500)
            // Had the statements held the cooperative threads, this work would have waited for them.
            #expect(
                try await observer.query(activeSleeps)[0].decode(Int.self, at: 0) == 4,
                "work ran while all four statements were still blocking")
            try await sleepers.value
            for connection in connections { await connection.close() }
            await observer.close()
        }
    }
}
