import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import SystemTesting
import Testing

/// Input a hostile but fair user gives: each case exits 2 with one line naming the field and the
/// rule, changes nothing, prints no secret and no raw control character.
@Suite("Hostile input at the command line")
struct HostileInputCommandTests {
    /// Exit 2, one line on stderr naming `field`, nothing on stdout.
    func expectBadInput(_ result: ChildProcess.Result, naming field: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == 2, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.hasPrefix("error: \(field)"), "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stdout.isEmpty, sourceLocation: sourceLocation)
    }

    // MARK: Row 1 and 12: connection strings

    /// Refused at once: the one line on stderr also says no retry warning was logged.
    @Test func aMistypedURLNeverPrintsItsPassword() async throws {
        for url in [
            "postgress://app:S3cr3tPW!@127.0.0.1/db", "mysql://app:S3cr3tPW!@127.0.0.1/db",
            " postgresql://app:S3cr3tPW!@127.0.0.1/db", "postgres:/app:S3cr3tPW!@127.0.0.1/db",
            "host=127.0.0.1 dbname=postgress://app:S3cr3tPW!@127.0.0.1/db", "postgresql://app:p@sS3cr3tPW!@127.0.0.1/db",
        ] {
            let result = try await CognitoResetBinary.run(["status"], environment: ["DATABASE_URL": url])
            expectBadInput(result, naming: "DATABASE_URL")
            #expect(!result.stderr.contains("S3cr3tPW"), "\(url)")
        }
        let variable = try await CognitoResetBinary.run(
            ["status"], environment: ["DATABASE_URL": "host=127.0.0.1", "PGDATABASE": "postgres://app:S3cr3tPW!@h/db"])
        expectBadInput(variable, naming: "PGDATABASE")
        #expect(!variable.stderr.contains("S3cr3tPW"))
    }

    @Test func aMalformedSettingIsBadInputNotAnOutage() async throws {
        for (setting, key) in [
            ("sslmode=bogus", "sslmode"), ("port=abc", "port"), ("connect_timeout=abc", "connect_timeout"),
            ("target_session_attrs=maybe", "target_session_attrs"), ("hostaddr=abc", "hostaddr"),
        ] {
            let result = try await CognitoResetBinary.run(
                ["status"], environment: ["DATABASE_URL": "postgresql://app:pw-secret-1@127.0.0.1:1/db?\(setting)"])
            expectBadInput(result, naming: "DATABASE_URL: \(key)")
            #expect(!result.stderr.contains("pw-secret-1"))
            let flag = try await CognitoResetBinary.run(["status", "--database-url", "host=127.0.0.1 \(setting)"])
            expectBadInput(flag, naming: "--database-url: \(key)")
        }
        let variable = try await CognitoResetBinary.run(["status"], environment: ["DATABASE_URL": "host=127.0.0.1", "PGSSLMODE": "bogus"])
        expectBadInput(variable, naming: "PGSSLMODE")
    }

    @Test func changePasswordRefusesAPasswordThatIsNotUTF8() async throws {
        let server = try await FakeHTTPServer.start()
        let result = try await ChildProcess.run(
            URL(fileURLWithPath: "/bin/sh"),
            [
                "-c",
                #"t=$(mktemp); echo token > "$t"; printf 'old-password\n\377\376\n' | "$0" change-password --access-token-file "$t"; s=$?; rm -f "$t"; exit $s"#,
                CognitoResetBinary.url.path,
            ],
            environment: CognitoResetBinary.environment(["AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": server.url.absoluteString]))
        expectBadInput(result, naming: "new password")
        #expect(server.requests.isEmpty)
        await server.shutdown()
    }

    // MARK: Row 5: bytes that are not UTF-8

    @Test func invalidUTF8IsRefusedNamingTheOption() async throws {
        try await withMigrated { environment, database in
            for option in ["--user", "--metadata", "--idempotency-key", "--requested-by"] {
                // Swift strings cannot hold these bytes: a shell passes them, as an operator's would.
                let value = option == "--metadata" ? #"k=$(printf '\377\376')"# : #"$(printf '\377\376')"#
                let extra = option == "--user" ? "" : "--user alice"
                let script = #""$0" enqueue --pool eu-west-1_AbC123 \#(extra) \#(option) "\#(value)""#
                let result = try await ChildProcess.run(
                    URL(fileURLWithPath: "/bin/sh"), ["-c", script, CognitoResetBinary.url.path],
                    environment: CognitoResetBinary.environment(environment))
                expectBadInput(result, naming: option)
                #expect(result.stderr.contains("UTF-8"))
            }
            #expect(try await jobCount(database) == 0)
        }
    }

    @Test func invalidUTF8InAnEqualsFormAndForAdminReset() async throws {
        let result = try await ChildProcess.run(
            URL(fileURLWithPath: "/bin/sh"), ["-c", #""$0" admin-reset --pool eu-west-1_Abc "--user=$(printf 'a\377')""#, CognitoResetBinary.url.path],
            environment: CognitoResetBinary.environment([
                "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "sk-sk-sk",
                "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": "http://127.0.0.1:1",
            ]))
        expectBadInput(result, naming: "--user")
    }

    // MARK: Row 15: metadata size

    @Test func metadataAbove256KiBIsRefusedAndAtTheLimitAccepted() async throws {
        try await withMigrated { environment, database in
            // One argument may hold at most 128 KiB on Linux: three keys make the total.
            let chunk = String(repeating: "v", count: 100_000)
            let tooMuch = ["--metadata", "a=\(chunk)", "--metadata", "b=\(chunk)", "--metadata", "c=\(chunk)"]
            let refused = try await CognitoResetBinary.run(
                ["enqueue", "--pool", "eu-west-1_AbC123", "--user", "alice"] + tooMuch, environment: environment)
            expectBadInput(refused, naming: "--metadata")
            #expect(refused.stderr.contains("262144"))
            #expect(try await jobCount(database) == 0)
            // Exactly 262144 bytes of keys and values.
            let exact = ["--metadata", "a=\(chunk)", "--metadata", "b=\(chunk)", "--metadata", "c=\(String(repeating: "v", count: 262_144 - 200_003))"]
            let accepted = try await CognitoResetBinary.run(
                ["enqueue", "--pool", "eu-west-1_AbC123", "--user", "alice"] + exact, environment: environment)
            #expect(accepted.status == 0, "\(accepted.stderr)")
        }
    }

    // MARK: Rows 6 and 7: times

    static let badTimes = [
        "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T02:60:00Z", "2026-01-01T02:00:61Z",
        "2026-01-01T00:00:00Zgarbage", "2026-01-01T00:00:00+01:00xyz", "2026-01-01T00:00:00Z[Europe/Paris]",
        "0000-01-01T00:00:00Z", "1500-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "4001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z", "3000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-13-01T00:00:00Z", "2026-1-01T00:00:00Z", "+-5m", "+5",
        "2026-01-01T00:00:00+24:00",
    ]

    @Test func aTimeThatIsNotARealInstantInRangeIsRefused() async throws {
        try await withMigrated { environment, database in
            for time in Self.badTimes {
                let result = try await CognitoResetBinary.run(
                    ["enqueue", "--pool", "eu-west-1_AbC123", "--user", "alice", "--run-at", time], environment: environment)
                expectBadInput(result, naming: "--run-at")
            }
            #expect(try await jobCount(database) == 0)
        }
    }

    @Test func theStoredInstantIsTheOneEchoed() async throws {
        try await withMigrated { environment, database in
            for (index, time) in ["2029-02-28T23:59:59+02:30", "2028-02-29T00:00:00z", "2999-12-31T23:59:59Z", "1970-01-01T00:00:00Z"].enumerated() {
                let result = try await CognitoResetBinary.run(
                    ["enqueue", "--pool", "eu-west-1_AbC123", "--user", "u\(index)", "--run-at", time, "--json"], environment: environment)
                #expect(result.status == 0, "\(result.stderr)")
                let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
                let echoed = try #require(object?["run_at"] as? String)
                let id = try #require(object?["job_id"] as? Int)
                let connection = try await database.connect()
                let stored = try await connection.query(
                    PostgresQuery("SELECT to_char(run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM cognito_reset.jobs WHERE id = $1", [id])
                )[0].decode(String.self, at: 0)
                await connection.close()
                #expect(stored == echoed, "\(time)")
            }
        }
    }

    // MARK: Rows 8 and 17: the environment and filters

    @Test func anUnknownSettingIsRefusedByEveryCommand() async throws {
        for arguments in [["enqueue", "--pool", "eu-west-1_AbC123", "--user", "alice"], ["status"], ["jobs", "list"], ["rate", "show"]] {
            try await anUnknownSettingIsRefused(by: arguments)
        }
    }

    func anUnknownSettingIsRefused(by arguments: [String]) async throws {
        try await withMigrated { environment, database in
            var withTypo = environment
            withTypo["COGNITO_RESET_CONCURENCY"] = "1"
            expectBadInput(try await CognitoResetBinary.run(arguments, environment: withTypo), naming: "COGNITO_RESET_CONCURENCY")
            var badValue = environment
            badValue["COGNITO_RESET_LOG_USERNAMES"] = "maybe"
            expectBadInput(try await CognitoResetBinary.run(arguments, environment: badValue), naming: "COGNITO_RESET_LOG_USERNAMES")
            var badKey = environment
            badKey["COGNITO_RESET_RATE_KEY"] = "k\u{1B}[2J"
            expectBadInput(try await CognitoResetBinary.run(arguments, environment: badKey), naming: "COGNITO_RESET_RATE_KEY")
            #expect(try await jobCount(database) == 0)
        }
        // --help still works whatever the environment holds.
        let help = try await CognitoResetBinary.run([arguments[0], "--help"], environment: ["COGNITO_RESET_CONCURENCY": "1"])
        #expect(help.status == 0)
    }

    @Test func aPoolFilterIsCheckedLikeEveryPoolID() async throws {
        try await withMigrated { environment, _ in
            for arguments in [
                ["jobs", "cancel", "--pool", "bad pool"], ["jobs", "list", "--pool", "x'--"], ["jobs", "retry", "--state", "failed", "--pool", "nope"],
            ] {
                expectBadInput(try await CognitoResetBinary.run(arguments, environment: environment), naming: "--pool")
            }
        }
    }

    // MARK: Rows 11 and 16: what reaches a terminal

    @Test func rateKeysArePrintableText() async throws {
        try await withMigrated { environment, database in
            for key in ["evil\u{1B}[31mRED", "with space", "tab\tkey", String(repeating: "k", count: 201), "ключ"] {
                expectBadInput(try await CognitoResetBinary.run(["rate", "set", "5", "--key", key], environment: environment), naming: "--key")
            }
            let worker = try await CognitoResetBinary.run(["worker", "--drain", "--rate-key", "k\u{1B}[2J"], environment: environment)
            expectBadInput(worker, naming: "--rate-key")
            let connection = try await database.connect()
            #expect(try await connection.query("SELECT count(*) FROM cognito_reset.rate_limits")[0].decode(Int.self, at: 0) == 0)
            await connection.close()
        }
    }

    @Test func cognitosTextIsPrintedEscaped() async throws {
        let server = try await FakeHTTPServer.start()
        server.enqueue(
            .respond(
                status: 400, headers: [("x-amzn-requestid", "rid-1")],
                body: #"{"__type":"InvalidParameterException","message":"no \u001b[2Jclear \u202eevil"}"#))
        let result = try await CognitoResetBinary.run(
            ["admin-reset", "--pool", "eu-west-1_Abc", "--user", "alice"],
            environment: [
                "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "cli-secret-key-value",
                "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": server.url.absoluteString,
            ])
        #expect(result.status == 1)
        #expect(result.stderr.contains("\\x1b[2Jclear"))
        #expect(result.stderr.contains("\\u{202e}evil"))
        #expect(!result.stderr.dropLast().unicodeScalars.contains { $0.value < 0x20 || $0 == "\u{202E}" })
        await server.shutdown()
    }

    @Test func aSuccessIsOnlyWhatTheProtocolCallsOne() async throws {
        let server = try await FakeHTTPServer.start(fallback: .respond(status: 200, body: #"{"__type":"UserNotFoundException"}"#))
        let environment = [
            "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "cli-secret-key-value",
            "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": server.url.absoluteString,
        ]
        let result = try await CognitoResetBinary.run(["admin-reset", "--pool", "eu-west-1_Abc", "--user", "alice"], environment: environment)
        #expect(result.status != 0)
        #expect(!result.stdout.contains("Password reset started"))
        await server.shutdown()
    }

    @Test func jobsShowAndListEscapeWhatOtherSystemsStored() async throws {
        try await withMigrated { environment, database in
            let connection = try await database.connect()
            let id = try await connection.query(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, requested_by, idempotency_key, state, finished_at, attempt,
                                               last_error_code, last_error_message)
                VALUES ('eu-west-1_Abc', 'alice', 'ops' || chr(27) || '[2J', 'key' || chr(155) || 'x', 'failed', now(), 1,
                        'Bad' || chr(27) || '[31m' || chr(10) || 'forged' || chr(9) || 'row', 'msg ' || chr(27) || ']0;title' || chr(7) || chr(10) || 'forged line')
                RETURNING id
                """)[0].decode(Int.self, at: 0)
            await connection.close()
            for arguments in [["jobs", "show", String(id)], ["jobs", "list"], ["jobs", "show", String(id), "--json"], ["jobs", "list", "--json"]] {
                let result = try await CognitoResetBinary.run(arguments, environment: environment)
                #expect(result.status == 0, "\(result.stderr)")
                let raw = result.stdout.unicodeScalars.filter { ($0.value < 0x20 && $0 != "\n" && $0 != "\t") || (0x7F...0x9F).contains($0.value) }
                #expect(raw.isEmpty, "\(arguments): \(result.stdout.debugDescription)")
                #expect(!result.stdout.contains("\nforged"), "a value cannot start a line of its own")
            }
        }
    }
}
