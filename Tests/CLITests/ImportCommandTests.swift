import Foundation
import Postgres
import PostgresTesting
import SystemTesting
import Testing

/// `cognito-reset import`: CSV files, good and bad, against a real database.
@Suite("cognito-reset import")
struct ImportCommandTests {
    /// Runs `body` with a migrated database, its environment and a folder for files.
    func withDatabase(_ body: ([String: String], PostgresConnection, URL) async throws -> Void) async throws {
        try await TemporaryDatabase.with { database in
            let env = ["DATABASE_URL": database.configuration.resolvedConnectionString()]
            #expect(try await CognitoResetBinary.run(["migrate"], environment: env).status == 0)
            let folder = FileManager.default.temporaryDirectory.appending(path: "import-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let connection = try await database.connect()
            try await body(env, connection, folder)
            await connection.close()
        }
    }

    func write(_ bytes: [UInt8], _ name: String, in folder: URL) throws -> String {
        let url = folder.appending(path: name)
        try Data(bytes).write(to: url)
        return url.path
    }

    func count(_ sql: String, _ connection: PostgresConnection) async throws -> Int {
        try await connection.query(PostgresQuery(sql))[0].decode(Int.self, at: 0)
    }

    func report(_ result: ChildProcess.Result) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)\(result.stderr)")
    }

    @Test func importsRFC4180WithLineNumbersDedupeAndRejections() async throws {
        try await withDatabase { env, connection, folder in
            try await connection.execute("INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('eu-west-1_Imp1', 'active')")
            // BOM, CRLF and LF mixed, quotes with commas and a line break, a repeated user, a user
            // with an active job, a blank line, a short line, invalid UTF-8, metadata and run_at.
            var bytes: [UInt8] = [0xEF, 0xBB, 0xBF]
            bytes += Array("Username,User_Pool_Id,client_metadata.Ticket,run_at\r\n".utf8)
            bytes += Array("alice,eu-west-1_Imp1,T-1,\r\n".utf8)  // 2 accepted
            bytes += Array("\"b,o\"\"b\",eu-west-1_Imp1,,\n".utf8)  // 3 accepted: b,o"b
            bytes += Array("\"two\nlines\",eu-west-1_Imp1,,\r\n".utf8)  // 4-5 rejected (line break)
            bytes += Array("carol,not a pool,,\n".utf8)  // 6 rejected
            bytes += Array("alice,eu-west-1_Imp1,T-2,\n".utf8)  // 7 duplicate in the file
            bytes += Array("\r\n".utf8)  // 8 blank
            bytes += Array("dave,eu-west-1_Imp1\n".utf8)  // 9 wrong field count
            bytes += [0xFF, 0xFE] + Array("eve,eu-west-1_Imp1,,\n".utf8)  // 10 invalid UTF-8
            bytes += Array("active,eu-west-1_Imp1,,\n".utf8)  // 11 duplicate (active job)
            bytes += Array("=cmd|foo!A0,eu-west-1_Imp1,,2030-01-01T00:00:00Z\n".utf8)  // 12 accepted, verbatim
            bytes += Array("frank,eu-west-1_Imp1,,tomorrow\n".utf8)  // 13 rejected run_at
            let path = try write(bytes, "users.csv", in: folder)

            let result = try await CognitoResetBinary.run(["import", path, "--json", "--requested-by", "ops"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            let summary = try report(result)
            #expect(summary["read"] as? Int == 11)
            #expect(summary["accepted"] as? Int == 3)
            #expect(summary["duplicate"] as? Int == 2)
            #expect(summary["rejected"] as? Int == 6)
            let rejections = (summary["rejections"] as? [[String: Any]] ?? []).map { ($0["line"] as? Int ?? 0, $0["reason"] as? String ?? "") }
            #expect(rejections.map(\.0) == [4, 6, 8, 9, 10, 13], "\(rejections)")
            #expect(rejections.first { $0.0 == 9 }?.1 == "wrong number of fields: expected 4, found 2")
            #expect(rejections.first { $0.0 == 10 }?.1 == "invalid UTF-8")
            #expect(rejections.first { $0.0 == 8 }?.1 == "blank line")

            // Ids (the claim order among jobs due at once) follow the usernames, not the file:
            // the import inserts sorted by user, so the user index grows at its right edge.
            let users = try await connection.query(
                "SELECT username FROM cognito_reset.jobs WHERE import_id IS NOT NULL ORDER BY id"
            ).map { try $0.decode(String.self, at: 0) }
            #expect(users == ["=cmd|foo!A0", "alice", "b,o\"b"])
            #expect(
                try await count("SELECT count(*) FROM cognito_reset.jobs WHERE username = 'alice' AND client_metadata = '{\"Ticket\": \"T-1\"}'", connection)
                    == 1)
            #expect(
                try await count("SELECT count(*) FROM cognito_reset.jobs WHERE username = '=cmd|foo!A0' AND run_at = '2030-01-01T00:00:00Z'", connection) == 1)
            #expect(try await count("SELECT count(*) FROM cognito_reset.import_rejections", connection) == 6)
            #expect(
                try await count(
                    """
                    SELECT count(*) FROM cognito_reset.imports WHERE rows_read = 11 AND rows_accepted = 3 AND rows_duplicate = 2
                    AND rows_rejected = 6 AND requested_by = 'ops' AND file_name = 'users.csv'
                    """, connection) == 1)

            // The formula-looking username is stored verbatim and never printed unescaped.
            let listed = try await CognitoResetBinary.run(["jobs", "list"], environment: env)
            #expect(listed.stdout.contains("\t'=cmd|foo!A0\t"))
            #expect(!listed.stdout.contains("\t=cmd"))

            // The same file again adds nothing and says so.
            let again = try await CognitoResetBinary.run(["import", path], environment: env)
            #expect(again.status == 0)
            #expect(again.stdout.contains("already imported"))
            #expect(try await count("SELECT count(*) FROM cognito_reset.jobs", connection) == 4)
            // Forced, the active-job dedupe still adds nothing.
            let forced = try await CognitoResetBinary.run(["import", path, "--force", "--json"], environment: env)
            #expect(try report(forced)["accepted"] as? Int == 0)
            #expect(try await count("SELECT count(*) FROM cognito_reset.jobs", connection) == 4)
        }
    }

    @Test func dryRunStdinPoolAndScheduleWriteNothingOrTheWholeBatch() async throws {
        try await withDatabase { env, connection, folder in
            let csv = "username\n" + (1...500).map { "user\($0)" }.joined(separator: "\n") + "\n"
            let dry = try await CognitoResetBinary.run(["import", "-", "--pool", "eu-west-1_Imp2", "--dry-run", "--json"], environment: env, stdin: csv)
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(try report(dry)["accepted"] as? Int == 500)
            #expect(try await count("SELECT count(*) FROM cognito_reset.jobs", connection) == 0)
            #expect(try await count("SELECT count(*) FROM cognito_reset.imports", connection) == 0)

            let scheduled = try await CognitoResetBinary.run(
                ["import", "-", "--pool", "eu-west-1_Imp2", "--run-at", "+2h", "--priority", "500"], environment: env, stdin: csv)
            #expect(scheduled.status == 0, "\(scheduled.stderr)")
            #expect(scheduled.stdout.contains("500 lines read, 500 new jobs, 0 duplicates, 0 rejected"), "\(scheduled.stdout)")
            #expect(
                try await count(
                    """
                    SELECT count(*) FROM cognito_reset.jobs
                    WHERE priority = 500 AND run_at BETWEEN now() + interval '119 minutes' AND now() + interval '121 minutes'
                    """, connection) == 500)
            _ = folder
        }
    }

    @Test func badFilesGetOneClearLineAndWriteNothing() async throws {
        try await withDatabase { env, connection, folder in
            let huge = "username,user_pool_id\nalice,eu-west-1_Imp3\n" + String(repeating: "x", count: 10_000_000) + ",eu-west-1_Imp3\n"
            let cases: [(String, [UInt8], [String], Int32, String)] = [
                ("empty", [], [], 2, "the file is empty"),
                ("header only", Array("username,user_pool_id\n".utf8), [], 0, "a header and no lines"),
                ("binary", [0x7F, 0x45, 0x4C, 0x46, 0x02, 0x01, 0x01, 0x00, 0xFF, 0xFE, 0x00, 0x10], [], 2, "line 1: holds a NUL byte"),
                ("not UTF-8", [0x7F, 0x45, 0x4C, 0x46, 0xFF, 0xFE, 0x10, 0x0A], [], 2, "not valid UTF-8"),
                ("no username column", Array("user,user_pool_id\nx,eu-west-1_Imp3\n".utf8), [], 2, "unknown column user"),
                ("no pool column", Array("username\nx\n".utf8), [], 2, "no user_pool_id column"),
                // No valid line is that long: the file is refused while reading, not buffered.
                ("10 MB line", Array(huge.utf8), [], 2, "line 3: longer than 1048576 bytes"),
            ]
            for (name, bytes, arguments, status, message) in cases {
                let path = try write(bytes, "\(name).csv", in: folder)
                let result = try await CognitoResetBinary.run(["import", path] + arguments, environment: env)
                #expect(result.status == status, "\(name): \(result.stderr)")
                #expect((result.stdout + result.stderr).contains(message), "\(name): \(result.stdout)\(result.stderr)")
                if status == 2 {
                    #expect(result.stderr.split(separator: "\n").count == 1, "\(name): one line")
                }
            }
            #expect(try await count("SELECT count(*) FROM cognito_reset.jobs", connection) == 0, "nothing half-imported")
            let missing = try await CognitoResetBinary.run(["import", folder.appending(path: "nope.csv").path], environment: env)
            #expect(missing.status == 2)
            #expect(missing.stderr.contains("cannot open"))
            let previewInbox = try await CognitoResetBinary.run(["import", "--inbox", folder.path, "--dry-run"], environment: env)
            #expect(previewInbox.status == 2)
            #expect(previewInbox.stderr.contains("--inbox: cannot be combined with --dry-run"))
            // A NUL anywhere, client metadata included, means the file is not CSV text.
            let nul = try await CognitoResetBinary.run(
                ["import", "-", "--pool", "eu-west-1_Imp3", "--json"], environment: env,
                stdin: "username,client_metadata.note\nok1,fine\nbad1,a\u{0}b\n")
            #expect(nul.status == 2, "\(nul.stdout)\(nul.stderr)")
            #expect(nul.stderr.hasPrefix("error: -: line 3: holds a NUL byte"), "\(nul.stderr)")
            #expect(nul.stderr.split(separator: "\n").count == 1)
            #expect(try await count("SELECT count(*) FROM cognito_reset.jobs", connection) == 0)
            let badPool = try await CognitoResetBinary.run(["import", "-", "--pool", "nope"], environment: env, stdin: "username\nx\n")
            #expect(badPool.status == 2)
            #expect(badPool.stderr.hasPrefix("error: --pool:"))
        }
    }

    /// What cognito-reset-import.service runs when files land in the inbox.
    @Test func theInboxImportsEachFileAndFilesItWithAReport() async throws {
        try await withDatabase { env, connection, folder in
            let inbox = folder.appending(path: "inbox")
            try FileManager.default.createDirectory(at: inbox, withIntermediateDirectories: true)
            _ = try write(Array("username,user_pool_id\na1,eu-west-1_Inb1\na2,eu-west-1_Inb1\nbad user,eu-west-1_Inb1\n".utf8), "inbox/a.csv", in: folder)
            _ = try write(Array("who,what\nx,y\n".utf8), "inbox/b.csv", in: folder)
            _ = try write(Array("username,user_pool_id\nhalf".utf8), "inbox/.c.csv.part", in: folder)  // still being written
            _ = try write(Array("username,user_pool_id\nn1,eu-west-1_Inb1\n".utf8), "inbox/notes.txt", in: folder)

            let result = try await CognitoResetBinary.run(["import", "--inbox", inbox.path], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("a.csv: Import"), "\(result.stdout)")
            #expect(result.stdout.contains("b.csv: rejected: header: unknown column who"), "\(result.stdout)")
            let manager = FileManager.default
            #expect(Set(try manager.contentsOfDirectory(atPath: inbox.path)) == [".c.csv.part", "notes.txt", "done", "rejected"])
            #expect(Set(try manager.contentsOfDirectory(atPath: inbox.appending(path: "done").path)) == ["a.csv", "a.csv.report.json"])
            #expect(Set(try manager.contentsOfDirectory(atPath: inbox.appending(path: "rejected").path)) == ["b.csv", "b.csv.report.json"])
            let report = try #require(
                JSONSerialization.jsonObject(
                    with: Data(contentsOf: inbox.appending(path: "done/a.csv.report.json"))) as? [String: Any])
            #expect(report["accepted"] as? Int == 2)
            #expect((report["rejections"] as? [[String: Any]])?.first?["line"] as? Int == 4)
            #expect(try await count("SELECT count(*) FROM cognito_reset.jobs", connection) == 2)

            // The same content again is filed as rejected, with the reason, and adds nothing.
            _ = try write(Array("username,user_pool_id\na1,eu-west-1_Inb1\na2,eu-west-1_Inb1\nbad user,eu-west-1_Inb1\n".utf8), "inbox/a.csv", in: folder)
            let again = try await CognitoResetBinary.run(["import", "--inbox", inbox.path], environment: env)
            #expect(again.stdout.contains("a.csv: rejected: already imported"), "\(again.stdout)")
            #expect(try manager.contentsOfDirectory(atPath: inbox.appending(path: "rejected").path).contains { $0.hasSuffix("-a.csv") || $0 == "a.csv" })
            #expect(try await count("SELECT count(*) FROM cognito_reset.jobs", connection) == 2)

            // Refused for a reason that is not the file's (a role without the grant): it stays.
            let owner = try #require(env["DATABASE_URL"].flatMap { try? ConnectionConfiguration($0) })
            try await TestRole.with("inbox", on: owner, memberOf: ["cognito_reset_monitor"]) { monitor in
                _ = try write(Array("username,user_pool_id\ny1,eu-west-1_Inb1\n".utf8), "inbox/y.csv", in: folder)
                let denied = try await CognitoResetBinary.run(
                    ["import", "--inbox", inbox.path], environment: ["DATABASE_URL": monitor.configuration.resolvedConnectionString()])
                #expect(denied.status == 1, "\(denied.stdout)\(denied.stderr)")
                #expect(manager.fileExists(atPath: inbox.appending(path: "y.csv").path))
                try FileManager.default.removeItem(at: inbox.appending(path: "y.csv"))
            }

            // A malformed connection string is the service's fault, not the file's: exit 2, it stays.
            _ = try write(Array("username,user_pool_id\nw1,eu-west-1_Inb1\n".utf8), "inbox/w.csv", in: folder)
            let misconfigured = try await CognitoResetBinary.run(
                ["import", "--inbox", inbox.path], environment: ["DATABASE_URL": "host=db.example.com dbname"])
            #expect(misconfigured.status == 2, "\(misconfigured.stdout)\(misconfigured.stderr)")
            #expect(manager.fileExists(atPath: inbox.appending(path: "w.csv").path))
            try FileManager.default.removeItem(at: inbox.appending(path: "w.csv"))

            // The database away: the file stays for the next run, exit 3.
            _ = try write(Array("username,user_pool_id\nz1,eu-west-1_Inb1\n".utf8), "inbox/z.csv", in: folder)
            let down = try await CognitoResetBinary.run(
                ["import", "--inbox", inbox.path], environment: ["DATABASE_URL": "postgresql://127.0.0.1:1/none?connect_timeout=2"])
            #expect(down.status == 3, "\(down.stderr)")
            #expect(manager.fileExists(atPath: inbox.appending(path: "z.csv").path))
        }
    }

    /// Anyone who may drop files may also drop a link to a file only the service can read (its
    /// database password), a FIFO or a folder: each is refused and filed, never read, and the run
    /// neither hangs nor leaves them to start the path unit again.
    @Test func theInboxRefusesLinksFIFOsAndFolders() async throws {
        try await withDatabase { env, connection, folder in
            let inbox = folder.appending(path: "inbox")
            try FileManager.default.createDirectory(at: inbox.appending(path: "d.csv"), withIntermediateDirectories: true)
            let secret = try write(Array("s3cret-password,x\n".utf8), "database-password", in: folder)
            try FileManager.default.createSymbolicLink(atPath: inbox.appending(path: "a.csv").path, withDestinationPath: secret)
            #expect(mkfifo(inbox.appending(path: "f.csv").path, 0o600) == 0)
            _ = try write(Array("username,user_pool_id\nok1,eu-west-1_Inb2\n".utf8), "inbox/ok.csv", in: folder)

            let run = try await CognitoResetBinary.run(["import", "--inbox", inbox.path], environment: env)
            #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
            #expect(!(run.stdout + run.stderr).contains("s3cret"))
            for name in ["a.csv", "d.csv", "f.csv"] {
                #expect(run.stdout.contains("\(name): rejected:"), "\(run.stdout)")
                let report = try String(contentsOf: inbox.appending(path: "rejected/\(name).report.json"), encoding: .utf8)
                #expect(!report.contains("s3cret"))
            }
            #expect(Set(try FileManager.default.contentsOfDirectory(atPath: inbox.path)) == ["done", "rejected"])
            #expect(try String(contentsOfFile: secret, encoding: .utf8) == "s3cret-password,x\n")
            #expect(try await count("SELECT count(*) FROM cognito_reset.jobs", connection) == 1)
        }
    }

    /// The inbox service imports as a login role in cognito_reset_enqueuer (the worker's role
    /// may not create jobs): a file and the inbox both work, and a user another system already
    /// has an active job for (a row this role cannot even see) is counted as a duplicate.
    @Test func anEnqueuerRoleImportsFilesAndTheInbox() async throws {
        try await withDatabase { env, connection, folder in
            let owner = try ConnectionConfiguration(try #require(env["DATABASE_URL"]))
            try await TestRole.with("importer", on: owner, memberOf: ["cognito_reset_enqueuer"]) { importer in
                let login = importer.name
                try await connection.execute("INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('eu-west-1_Enq1', 'taken')")
                let url = importer.configuration.resolvedConnectionString()

                let path = try write(Array("username,user_pool_id\ne1,eu-west-1_Enq1\ntaken,eu-west-1_Enq1\n".utf8), "e.csv", in: folder)
                let file = try await CognitoResetBinary.run(["import", path, "--json"], environment: ["DATABASE_URL": url])
                #expect(file.status == 0, "\(file.stderr)")
                let summary = try report(file)
                #expect(summary["accepted"] as? Int == 1)
                #expect(summary["duplicate"] as? Int == 1)

                let inbox = folder.appending(path: "inbox")
                try FileManager.default.createDirectory(at: inbox, withIntermediateDirectories: true)
                _ = try write(Array("username,user_pool_id\ni1,eu-west-1_Enq1\nbad user,eu-west-1_Enq1\n".utf8), "inbox/i.csv", in: folder)
                let run = try await CognitoResetBinary.run(["import", "--inbox", inbox.path], environment: ["DATABASE_URL": url])
                #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
                #expect(FileManager.default.fileExists(atPath: inbox.appending(path: "done/i.csv").path), "\(run.stdout)")
                #expect(try await count("SELECT count(*) FROM cognito_reset.jobs WHERE enqueued_by = '\(login)'", connection) == 2)
                #expect(try await count("SELECT count(*) FROM cognito_reset.import_rejections", connection) == 1)
            }
        }
    }

    /// The progress bar appears on a terminal (util-linux `script` gives the command one) and
    /// never in piped output.
    @Test func aProgressBarOnATerminalOnly() async throws {
        try await withDatabase { env, connection, folder in
            let csv = "username,user_pool_id\n" + (1...20_000).map { "tty\($0),eu-west-1_Tty1" }.joined(separator: "\n") + "\n"
            let path = try write(Array(csv.utf8), "tty.csv", in: folder)
            let piped = try await CognitoResetBinary.run(["import", path, "--dry-run"], environment: env)
            #expect(piped.status == 0, "\(piped.stderr)")
            #expect(piped.stderr.isEmpty, "no progress bar when piped: \(piped.stderr)")

            let command = ([CognitoResetBinary.url.path, "import", path, "--dry-run"]).map { "'\($0)'" }.joined(separator: " ")
            let onTerminal = try await ChildProcess.run(
                URL(fileURLWithPath: "/usr/bin/script"), ["-qefc", command, "/dev/null"],
                environment: CognitoResetBinary.environment(env))
            #expect(onTerminal.status == 0, "\(onTerminal.stdout)")
            #expect(onTerminal.stdout.contains("MB/s") && onTerminal.stdout.contains("ETA"), "\(onTerminal.stdout)")
            #expect(onTerminal.stdout.contains("20000 lines read"))
            _ = connection
        }
    }

    /// Another system enqueues one of the file's users while the import runs: the fast insert
    /// meets the unique index, and the import falls back to skipping that user, not failing.
    @Test func aUserEnqueuedDuringTheImportIsCountedAsADuplicate() async throws {
        try await withDatabase { env, connection, folder in
            let path = try write(Array("username,user_pool_id\nracer,eu-west-1_Race1\nother,eu-west-1_Race1\n".utf8), "race.csv", in: folder)
            let observer = try await PostgresConnection.connect(try ConnectionConfiguration(try #require(env["DATABASE_URL"])))
            var importer: ChildProcess?
            try await connection.transaction { transaction in
                // Not committed yet: invisible to the import's anti-join, but its insert of
                // "racer" must wait on the unique index for this transaction to end.
                try await transaction.execute("INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('eu-west-1_Race1', 'racer')")
                importer = try CognitoResetBinary.start(["import", path, "--json"], environment: env)
                try await withDeadline(.seconds(60), "the import's insert to wait for this transaction") {
                    while try await observer.query(
                        """
                        SELECT count(*) FROM pg_stat_activity
                        WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO cognito_reset.jobs%'
                        """)[0].decode(Int.self, at: 0) == 0
                    {
                        try await Task.sleep(for: .milliseconds(50))  // polling a condition, bounded by the deadline
                    }
                }
            }
            let result = try #require(await importer?.wait())
            #expect(result.status == 0, "\(result.stderr)")
            let summary = try report(result)
            #expect(summary["accepted"] as? Int == 1)
            #expect(summary["duplicate"] as? Int == 1)
            #expect(try await count("SELECT count(*) FROM cognito_reset.jobs WHERE username = 'racer'", connection) == 1)
            await observer.close()
        }
    }

}
