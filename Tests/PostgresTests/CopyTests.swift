import Postgres
import PostgresTesting
import Testing

@Suite("COPY FROM STDIN")
struct CopyTests {
    @Test func loadsAHundredThousandRows() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            try await connection.execute("CREATE TABLE staging (line int, username text)")
            let copied = try await connection.copyIn("COPY staging (line, username) FROM STDIN") { writer in
                for line in 1...100_000 {
                    try await writer.writeRow([String(line), "user-\(line)"])
                }
            }
            #expect(copied == 100_000)
            let row = try await connection.query("SELECT count(*), count(DISTINCT username), max(line) FROM staging")[0]
            #expect(try row.decode(Int.self, at: 0) == 100_000)
            #expect(try row.decode(Int.self, at: 1) == 100_000)
            #expect(try row.decode(Int.self, at: 2) == 100_000)
            await connection.close()
        }
    }

    @Test func escapesEveryAwkwardCharacterAndNull() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            try await connection.execute("CREATE TABLE staging (id int, value text)")
            let values: [String?] = ["tab\there", "new\nline", "carriage\rreturn", "back\\slash", "\\N", nil, "東京 🙂", ""]
            _ = try await connection.copyIn("COPY staging (id, value) FROM STDIN") { writer in
                for (index, value) in values.enumerated() { try await writer.writeRow([String(index), value]) }
            }
            let back = try await connection.query("SELECT value FROM staging ORDER BY id").map { try $0.decode(String?.self, at: 0) }
            #expect(back == values)
            await connection.close()
        }
    }

    @Test func anAbortedCopyKeepsNothingAndLeavesTheConnectionUsable() async throws {
        struct Stop: Error {}
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            try await connection.execute("CREATE TABLE staging (id int)")
            await #expect(throws: Stop.self) {
                try await connection.copyIn("COPY staging FROM STDIN") { writer in
                    for id in 0..<50_000 { try await writer.writeRow([String(id)]) }
                    throw Stop()
                }
            }
            #expect(try await connection.query("SELECT count(*) FROM staging")[0].decode(Int.self, at: 0) == 0)
            // Bad data: the server's error comes back, typed.
            let error = try await #require(throws: PostgresError.self) {
                try await connection.copyIn("COPY staging FROM STDIN") { writer in try await writer.writeRow(["nope"]) }
            }
            #expect(error.sqlState == SQLState.invalidTextRepresentation)
            #expect(try await connection.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
            await connection.close()
        }
    }
}
