import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import SystemTesting
import Testing

@Suite("cognito-reset migrate")
struct MigrateCommandTests {
    func env(_ database: TemporaryDatabase) -> [String: String] {
        ["DATABASE_URL": database.configuration.resolvedConnectionString()]
    }

    @Test func appliesThenReportsUpToDateThenShowsStatus() async throws {
        try await TemporaryDatabase.with { database in
            let dry = try await CognitoResetBinary.run(["migrate", "--dry-run"], environment: env(database))
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(dry.stdout.contains("Would apply 0001_initial.sql"))

            let first = try await CognitoResetBinary.run(["migrate"], environment: env(database))
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("Applied 0001_initial.sql"))

            let second = try await CognitoResetBinary.run(["migrate"], environment: env(database))
            #expect(second.status == 0)
            #expect(second.stdout.contains("up to date"))

            let status = try await CognitoResetBinary.run(["migrate", "status"], environment: env(database))
            #expect(status.status == 0)
            #expect(status.stdout.contains("0001  initial  applied"))
            #expect(status.stdout.contains("Up to date."))

            let json = try await CognitoResetBinary.run(["migrate", "status", "--json"], environment: env(database))
            let entries = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
            #expect(entries?.first?["state"] as? String == "applied")
        }
    }

    static let migrationsFolder = repositoryRoot.appending(path: "migrations")

    @Test func twoProcessesMigratingAtOnceApplyEachFileOnce() async throws {
        try await TemporaryDatabase.with { database in
            async let a = CognitoResetBinary.run(["migrate"], environment: env(database))
            async let b = CognitoResetBinary.run(["migrate"], environment: env(database))
            let results = try await [a, b]
            #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stderr))")
            #expect(results.filter { $0.stdout.contains("Applied 0001_initial.sql") }.count == 1)
            let connection = try await database.connect()
            let files = try FileManager.default.contentsOfDirectory(atPath: Self.migrationsFolder.path).filter { $0.hasSuffix(".sql") }
            #expect(try await connection.query("SELECT count(*) FROM cognito_reset.schema_migrations")[0].decode(Int.self, at: 0) == files.count)
            #expect(
                results.flatMap { $0.stdout.split(separator: "\n").filter { $0.hasPrefix("Applied") } }.count == files.count,
                "each file applied by exactly one of the two")
            await connection.close()
        }
    }

    @Test func refusesWithExitCode2WhenAnAppliedFileChanged() async throws {
        try await TemporaryDatabase.with { database in
            let folder = FileManager.default.temporaryDirectory.appending(path: "migrations-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let file = folder.appending(path: "0001_first.sql")
            try Data("CREATE TABLE cognito_reset.first (n int);\n".utf8).write(to: file)

            let applied = try await CognitoResetBinary.run(["migrate", "--migrations-dir", folder.path], environment: env(database))
            #expect(applied.status == 0, "\(applied.stderr)")

            try Data("CREATE TABLE cognito_reset.first (n bigint);\n".utf8).write(to: file)
            try Data("CREATE TABLE cognito_reset.second (n int);\n".utf8).write(to: folder.appending(path: "0002_second.sql"))
            let refused = try await CognitoResetBinary.run(["migrate", "--migrations-dir", folder.path], environment: env(database))
            #expect(refused.status == 2)
            #expect(refused.stderr.hasPrefix("error: migration 0001_first.sql was changed after it was applied"))
            #expect(refused.stderr.split(separator: "\n").count == 1)
            let connection = try await database.connect()
            #expect(try await connection.query("SELECT to_regclass('cognito_reset.second') IS NULL")[0].decode(Bool.self, at: 0))
            await connection.close()

            let status = try await CognitoResetBinary.run(
                ["migrate", "status", "--migrations-dir", folder.path], environment: env(database))
            #expect(status.stdout.contains("CHANGED"))
        }
    }

    @Test func anUnreachableDatabaseExitsWith3AndNeverShowsThePassword() async throws {
        let server = try TemporaryDatabase.serverConfiguration()
        let password = try #require(server.value(for: "password"))
        let url = "postgresql://postgres:\(password)@127.0.0.1:1/postgres?connect_timeout=2"
        let result = try await CognitoResetBinary.run(["migrate"], environment: ["DATABASE_URL": url])
        #expect(result.status == 3)
        #expect(result.stderr.hasPrefix("error: cannot reach the database"))
        #expect(result.stderr.contains("127.0.0.1:1"))
        #expect(!result.stderr.contains(password))
        #expect(!result.stdout.contains(password))
    }

    @Test func aMalformedDatabaseURLIsBadInput() async throws {
        let result = try await CognitoResetBinary.run(
            ["migrate"], environment: ["DATABASE_URL": "postgresql://u:pa%zzss@host/db"])
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("error: DATABASE_URL:"))
        #expect(!result.stderr.contains("pa%zzss"))
    }

    @Test func libpqEnvironmentVariablesAndPgpassWorkAsInPsql() async throws {
        try await TemporaryDatabase.with { database in
            let settings = database.configuration
            let home = FileManager.default.temporaryDirectory.appending(path: "home-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: home) }
            let pgpass = home.appending(path: ".pgpass")
            let host = try #require(settings.value(for: "host"))
            let port = try #require(settings.value(for: "port"))
            let password = try #require(settings.value(for: "password"))
            try Data("\(host):\(port):*:postgres:\(password)\n".utf8).write(to: pgpass)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: pgpass.path)
            // No DATABASE_URL, no password anywhere but ~/.pgpass.
            let result = try await CognitoResetBinary.run(
                ["migrate"],
                environment: [
                    "HOME": home.path, "PGHOST": host, "PGPORT": port, "PGUSER": "postgres", "PGDATABASE": database.name,
                ])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("Applied 0001_initial.sql"))
        }
    }
}
