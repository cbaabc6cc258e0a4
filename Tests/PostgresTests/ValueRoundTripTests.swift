import Foundation
import Postgres
import PostgresTesting
import Testing

@Suite("Values round-trip through the server")
struct ValueRoundTripTests {
    /// Sends `value` as a parameter cast to `type` and decodes what comes back.
    func echo<T: PostgresEncodable & PostgresDecodable>(
        _ value: T, as type: String, on connection: PostgresConnection
    ) async throws -> T {
        try await connection.query("SELECT \(value)::\(unescaped: type)")[0].decode(T.self, at: 0)
    }

    @Test func textIncludingUnicodeEmptyAndLarge() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            for text in ["", "plain", "ümlaut ß 東京 🙂 עברית", "tab\tnew\nline\\back'quote\"", String(repeating: "x", count: 2_000_000)] {
                #expect(try await echo(text, as: "text", on: connection) == text)
                #expect(try await echo(text, as: "varchar", on: connection) == text)
            }
            await connection.close()
        }
    }

    @Test func integersAtTheirLimits() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            for value in [Int.min, -1, 0, 1, Int.max] {
                #expect(try await echo(value, as: "bigint", on: connection) == value)
            }
            for value in [Int32.min, 0, Int32.max] {
                #expect(try await echo(value, as: "integer", on: connection) == value)
            }
            for value in [Int16.min, 0, Int16.max] {
                #expect(try await echo(value, as: "smallint", on: connection) == value)
            }
            // Wider types decode into narrower Swift integers only when the value fits.
            #expect(try await connection.query("SELECT 7::bigint")[0].decode(Int16.self, at: 0) == 7)
            await #expect(throws: PostgresError.self) {
                try await connection.query("SELECT 70000::bigint")[0].decode(Int16.self, at: 0)
            }
            await connection.close()
        }
    }

    @Test func boolsDoublesAndNumerics() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            #expect(try await echo(true, as: "boolean", on: connection) == true)
            #expect(try await echo(false, as: "boolean", on: connection) == false)
            for value in [0.0, -0.0, 1.5, -2.25e-300, 1.7976931348623157e308, .infinity, -.infinity] {
                #expect(try await echo(value, as: "double precision", on: connection) == value)
            }
            #expect(try await echo(Double.nan, as: "double precision", on: connection).isNaN)
            let numerics: [(String, String)] = [
                ("0", "0"), ("-0.0001", "-0.0001"), ("12345678901234567890.123", "12345678901234567890.123"),
                ("10000", "10000"), ("0.50", "0.50"), ("-42", "-42"), ("'NaN'", "NaN"), ("1e-20", "0.00000000000000000001"),
            ]
            for (literal, text) in numerics {
                #expect(try await connection.query("SELECT \(unescaped: literal)::numeric")[0].decode(String.self, at: 0) == text)
            }
            #expect(try await connection.query("SELECT sum(x) FROM generate_series(1, 100) x")[0].decode(Int.self, at: 0) == 5050)
            #expect(try await connection.query("SELECT 2.5::numeric")[0].decode(Double.self, at: 0) == 2.5)
            await connection.close()
        }
    }

    @Test func timestampsKeepMicrosecondsWhateverTheSessionTimeZone() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            try await connection.execute("SET TimeZone = 'Pacific/Chatham'")
            let date = Date(timeIntervalSince1970: 1_764_384_978.123456)
            let back = try await echo(date, as: "timestamptz", on: connection)
            #expect(abs(back.timeIntervalSince1970 - date.timeIntervalSince1970) < 0.000_001)
            let text = try await connection.query(
                "SELECT to_char(\(date) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")[0].decode(String.self, at: 0)
            #expect(text == "2025-11-29 02:56:18.123456")
            #expect(try await echo(Date.distantFuture, as: "timestamptz", on: connection) == .distantFuture)
            let day = try await connection.query("SELECT DATE '2000-01-02'")[0].decode(Date.self, at: 0)
            #expect(day.timeIntervalSince1970 == 946_684_800 + 86_400)
            await connection.close()
        }
    }

    @Test func bytesUUIDsAndJSON() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let bytes = Data((0..<5_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            #expect(try await echo(bytes, as: "bytea", on: connection) == bytes)
            #expect(try await echo(Data(), as: "bytea", on: connection) == Data())
            let uuid = UUID()
            #expect(try await echo(uuid, as: "uuid", on: connection) == uuid)
            let json = try PostgresJSON(encoding: ["b": "2", "a": "ü"])
            let back = try await echo(json, as: "jsonb", on: connection)
            #expect(try back.decode([String: String].self) == ["a": "ü", "b": "2"])
            let viaJSON = try await connection.query("SELECT \(json)::json")[0].decode(PostgresJSON.self, at: 0)
            #expect(try viaJSON.decode([String: String].self) == ["a": "ü", "b": "2"])
            await connection.close()
        }
    }

    @Test func nullsDecodeAsNilAndRefuseNonOptionalTypes() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let none: String? = nil
            let noInt: Int? = nil
            let noDate: Date? = nil
            let row = try await connection.query(
                "SELECT \(none)::text AS t, \(noInt)::int AS i, \(noDate) AS d, NULL::jsonb AS j, NULL::bytea AS b")[0]
            #expect(try row.decode(String?.self, "t") == nil)
            #expect(try row.decode(Int?.self, "i") == nil)
            #expect(try row.decode(Date?.self, "d") == nil)
            #expect(try row.decode(PostgresJSON?.self, "j") == nil)
            #expect(try row.decode(Data?.self, "b") == nil)
            #expect(throws: PostgresError.self) { try row.decode(String.self, "t") }
            #expect(throws: PostgresError.self) { try row.decode(String.self, "missing") }
            let some: String? = "x"
            #expect(try await connection.query("SELECT \(some)::text")[0].decode(String?.self, at: 0) == "x")
            await connection.close()
        }
    }

    @Test func decodingTheWrongTypeIsAnErrorNotACrash() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let row = try await connection.query("SELECT now() AS t, 'x'::text AS s, interval '1 day' AS i")[0]
            let error = try #require(throws: PostgresError.self) { try row.decode(Int.self, "t") }
            #expect(error.code == .decoding)
            #expect(throws: PostgresError.self) { try row.decode(Date.self, "s") }
            #expect(throws: PostgresError.self) { try row.decode(String.self, "i") }
            await connection.close()
        }
    }

    @Test func interpolationBindsValuesSoQuotesCannotInject() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let hostile = "x'); DROP TABLE victims; --"
            try await connection.execute("CREATE TABLE victims (name text)")
            try await connection.execute("INSERT INTO victims VALUES (\(hostile))")
            let query: PostgresQuery = "SELECT name FROM victims WHERE name = \(hostile)"
            #expect(query.sql == "SELECT name FROM victims WHERE name = $1")
            #expect(!query.description.contains("DROP"))
            #expect(try await connection.query(query)[0].decode(String.self, at: 0) == hostile)
            await connection.close()
        }
    }
}

@Suite("Array parameters")
struct ArrayParameterTests {
    @Test func batchesTravelAsArraysWithAwkwardTextAndNulls() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let ids: [Int64] = [1, 2, 3, 4]
            let texts: [String?] = [#"quote " and \ backslash"#, nil, "comma, {brace}", "東京 🙂"]
            let dates: [Date] = [
                Date(timeIntervalSince1970: 1_764_384_978.123456), .init(timeIntervalSince1970: 0),
                .init(timeIntervalSince1970: 946_684_799.5), .init(timeIntervalSince1970: 4_102_444_800),
            ]
            let rows = try await connection.query(
                """
                SELECT id, text, at FROM unnest(\(ids)::bigint[], \(texts)::text[], \(dates)::timestamptz[]) AS t(id, text, at)
                ORDER BY id
                """)
            #expect(rows.count == 4)
            for (index, row) in rows.enumerated() {
                #expect(try row.decode(Int64.self, at: 0) == ids[index])
                #expect(try row.decode(String?.self, at: 1) == texts[index])
                let back = try row.decode(Date.self, at: 2)
                #expect(abs(back.timeIntervalSince1970 - dates[index].timeIntervalSince1970) < 0.000_001)
            }
            #expect(try await connection.query("SELECT cardinality(\([Int64]())::bigint[])")[0].decode(Int.self, at: 0) == 0)
            await connection.close()
        }
    }
}
