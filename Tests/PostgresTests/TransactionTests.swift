import Postgres
import PostgresTesting
import Testing

@Suite("Transactions")
struct TransactionTests {
    struct Abort: Error {}

    @Test func commitsWhenTheBodySucceedsAndRollsBackWhenItThrows() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            try await connection.execute("CREATE TABLE t (n int)")
            let value = try await connection.transaction { connection in
                try await connection.execute("INSERT INTO t VALUES (1)")
                return 42
            }
            #expect(value == 42)
            await #expect(throws: Abort.self) {
                try await connection.transaction { connection in
                    try await connection.execute("INSERT INTO t VALUES (2)")
                    throw Abort()
                }
            }
            // A failing statement inside also rolls the whole transaction back.
            await #expect(throws: PostgresError.self) {
                try await connection.transaction { connection in
                    try await connection.execute("INSERT INTO t VALUES (3)")
                    try await connection.execute("INSERT INTO t VALUES ('not a number')")
                }
            }
            let rows = try await connection.query("SELECT n FROM t ORDER BY n").map { try $0.decode(Int.self, at: 0) }
            #expect(rows == [1])
            // The connection is back outside any transaction and usable.
            #expect(try await connection.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
            await connection.close()
        }
    }

    @Test func isolationLevelIsApplied() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let level = try await connection.transaction(isolationLevel: .repeatableRead) { connection in
                try await connection.query("SHOW transaction_isolation")[0].decode(String.self, at: 0)
            }
            #expect(level == "repeatable read")
            await connection.close()
        }
    }
}
