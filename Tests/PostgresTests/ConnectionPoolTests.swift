import Postgres
import PostgresTesting
import Synchronization
import Testing

@Suite("Connection pool")
struct ConnectionPoolTests {
    func pid(_ pool: ConnectionPool) async throws -> Int32 {
        try await pool.query("SELECT pg_backend_pid()")[0].decode(Int32.self, at: 0)
    }

    @Test func reusesConnectionsAndNeverOpensMoreThanItsMaximum() async throws {
        try await TemporaryDatabase.with { database in
            let pool = ConnectionPool(configuration: database.configuration, options: .init(maximumConnections: 3))
            let pids = try await withThrowingTaskGroup(of: Int32.self) { group in
                for _ in 0..<12 {
                    group.addTask {
                        try await pool.withConnection { connection in
                            try await connection.execute("SELECT pg_sleep(0.05)")
                            return await connection.backendPID
                        }
                    }
                }
                return try await group.reduce(into: Set<Int32>()) { $0.insert($1) }
            }
            #expect(pids.count <= 3)
            #expect(pids.count >= 1)
            await pool.close()
        }
    }

    @Test func replacesAnIdleConnectionTheServerKilled() async throws {
        try await TemporaryDatabase.with { database in
            let pool = ConnectionPool(configuration: database.configuration, options: .init(maximumConnections: 1))
            let first = try await pid(pool)
            let admin = try await database.connect()
            try await admin.execute("SELECT pg_terminate_backend(\(first))")
            // Wait until the server has really ended that backend.
            try await withDeadline(.seconds(20), "the backend to exit") {
                while try await admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = \(first)")[0]
                    .decode(Int.self, at: 0) > 0
                { await Task.yield() }
            }
            // The dead connection is noticed on checkout and replaced: the caller sees no error.
            let second = try await pid(pool)
            #expect(second != first)
            await admin.close()
            await pool.close()
        }
    }

    @Test func aConnectionKilledMidStatementFailsThatStatementOnlyThenRecovers() async throws {
        try await TemporaryDatabase.with { database in
            let events = EventRecorder<ConnectionPool.Event>()
            let pool = ConnectionPool(
                configuration: database.configuration, options: .init(maximumConnections: 1), onEvent: events.record)
            let victim = try await pid(pool)
            let statement = Task { try await pool.query("SELECT pg_sleep(60)") }
            let admin = try await database.connect()
            try await withDeadline(.seconds(20), "the statement to start") {
                while try await admin.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = \(victim) AND state = 'active'"
                )[0].decode(Int.self, at: 0) == 0 { await Task.yield() }
            }
            try await admin.execute("SELECT pg_terminate_backend(\(victim))")
            let error = try await #require(throws: PostgresError.self) { try await statement.value }
            #expect(error.isConnectionError)
            #expect(error.code == .connectionLost)
            _ = try await events.next("the broken connection to be discarded") {
                if case .discarded = $0 { true } else { false }
            }
            #expect(try await pid(pool) != victim)
            await admin.close()
            await pool.close()
        }
    }

    @Test func ridesOutAnOutageWithBackoffAndReconnects() async throws {
        try await TemporaryDatabase.with { database in
            let events = EventRecorder<ConnectionPool.Event>()
            let pool = ConnectionPool(
                configuration: database.configuration,
                options: .init(
                    maximumConnections: 2, connectDeadline: .seconds(60),
                    backoff: ReconnectBackoff(initial: .milliseconds(20), maximum: .milliseconds(200))),
                onEvent: events.record)
            let before = try await pid(pool)
            let admin = try await PostgresConnection.connect(database.adminConfiguration)
            let name = PostgresQuery.quoteIdentifier(database.name)
            // "Server down": refuse new connections to this database and end the existing ones.
            try await admin.execute("ALTER DATABASE \(unescaped: name) ALLOW_CONNECTIONS false")
            try await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = \(database.name)")
            try await withDeadline(.seconds(20), "the backends to exit") {
                while try await admin.query("SELECT count(*) FROM pg_stat_activity WHERE datname = \(database.name)")[0]
                    .decode(Int.self, at: 0) > 0
                { await Task.yield() }
            }
            let query = Task { try await pid(pool) }
            for attempt in 0..<2 {
                _ = try await events.next("connect attempt \(attempt + 1) to fail") {
                    if case .connectFailed = $0 { true } else { false }
                }
            }
            // "Server back": the waiting query goes through on the next attempt.
            try await admin.execute("ALTER DATABASE \(unescaped: name) ALLOW_CONNECTIONS true")
            let after = try await query.value
            #expect(after != before)
            await admin.close()
            await pool.close()
        }
    }

    @Test func givesUpAfterItsConnectDeadlineWithTheLastError() async throws {
        let server = try TemporaryDatabase.serverConfiguration()
        let pool = ConnectionPool(
            configuration: server.setting("dbname", to: "no_such_database_\(Int.random(in: 0..<1_000_000))"),
            options: .init(
                maximumConnections: 1, connectDeadline: .milliseconds(300),
                backoff: ReconnectBackoff(initial: .milliseconds(10), maximum: .milliseconds(50))))
        let error = try await #require(throws: PostgresError.self) { try await pool.query("SELECT 1") }
        #expect(error.code == .connectionFailed)
        #expect(error.message.contains("does not exist"))
        await pool.close()
    }

    @Test func rollsBackWhatABorrowerLeftOpenBeforeLendingTheConnectionAgain() async throws {
        try await TemporaryDatabase.with { database in
            let pool = ConnectionPool(configuration: database.configuration, options: .init(maximumConnections: 1))
            try await pool.query("CREATE TABLE t (n int)")
            try await pool.withConnection { connection in
                try await connection.execute("BEGIN")
                try await connection.execute("INSERT INTO t VALUES (1)")
                // returned without COMMIT
            }
            // Same single connection: had the transaction stayed open, this session would see its row.
            let count = try await pool.query("SELECT count(*) FROM t")[0].decode(Int.self, at: 0)
            #expect(count == 0)
            await pool.close()
        }
    }

    @Test func aClosedPoolRefusesWork() async throws {
        try await TemporaryDatabase.with { database in
            let pool = ConnectionPool(configuration: database.configuration)
            try await pool.query("SELECT 1")
            await pool.close()
            let error = try await #require(throws: PostgresError.self) { try await pool.query("SELECT 1") }
            #expect(error.code == .closed)
        }
    }
}
