import Foundation
import Logging
import Postgres
import PostgresTesting
import ResetQueue
import Testing

@Suite("Migrations")
struct MigrationTests {
    let logger = Logger(label: "test")

    func migration(_ fileName: String, _ sql: String) throws -> Migration {
        try Migration(fileName: fileName, contents: Data(sql.utf8))
    }

    func migrator(_ migrations: [Migration]) throws -> Migrator {
        try Migrator(migrations: migrations, schema: "cognito_reset", lockKey: 42, logger: logger)
    }

    @Test func applyToAnEmptyDatabaseAndCreateTheWholeSchema() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let migrator = try CognitoResetSchema.migrator(logger: logger)
            let applied = try await migrator.migrate(on: connection)
            #expect(applied.map(\.version) == migrator.migrations.map(\.version))
            #expect(applied.first?.fileName == "0001_initial.sql")
            for relation in ["jobs", "attempts", "workers", "imports", "import_rejections", "rate_limits", "queue_status", "schema_migrations"] {
                #expect(try await connection.scalar("SELECT to_regclass(\("cognito_reset." + relation)) IS NOT NULL", as: Bool.self), "\(relation)")
            }
            #expect(
                try await connection.scalar(
                    "SELECT count(*) FROM pg_proc WHERE proname = 'enqueue_reset' AND pronamespace = 'cognito_reset'::regnamespace",
                    as: Int.self) == 1)
            for role in ["cognito_reset_enqueuer", "cognito_reset_worker", "cognito_reset_monitor"] {
                #expect(try await connection.scalar("SELECT NOT rolcanlogin FROM pg_roles WHERE rolname = \(role)", as: Bool.self))
            }
            #expect(try await migrator.status(on: connection).isCurrent)
            await connection.close()
        }
    }

    @Test func migratingAgainAppliesNothing() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let migrator = try CognitoResetSchema.migrator(logger: logger)
            try await migrator.migrate(on: connection)
            let recorded = try await connection.scalar("SELECT max(applied_at) FROM cognito_reset.schema_migrations", as: Date.self)
            #expect(try await migrator.migrate(on: connection).isEmpty)
            #expect(try await migrator.migrate(on: connection, dryRun: true).isEmpty)
            #expect(try await connection.scalar("SELECT max(applied_at) FROM cognito_reset.schema_migrations", as: Date.self) == recorded)
            await connection.close()
        }
    }

    @Test func concurrentMigratorsApplyEachFileOnce() async throws {
        try await TemporaryDatabase.with { database in
            let migrator = try CognitoResetSchema.migrator(logger: logger)
            let results = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let connection = try await database.connect()
                        let applied = try await migrator.migrate(on: connection)
                        await connection.close()
                        return applied.map(\.version)
                    }
                }
                return try await group.reduce(into: [[Int]]()) { $0.append($1) }
            }
            // Exactly one migrator applied everything; the others waited for the lock and found nothing to do.
            #expect(results.filter { !$0.isEmpty }.count == 1)
            #expect(results.flatMap { $0 }.sorted() == migrator.migrations.map(\.version))
            let connection = try await database.connect()
            #expect(
                try await connection.scalar("SELECT count(*) FROM cognito_reset.schema_migrations", as: Int.self)
                    == migrator.migrations.count)
            await connection.close()
        }
    }

    @Test func aChangedAppliedFileIsRefusedBeforeAnythingRuns() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            try await migrator([try migration("0001_a.sql", "CREATE TABLE cognito_reset.a (n int);")]).migrate(on: connection)
            let edited = try migrator([
                try migration("0001_a.sql", "CREATE TABLE cognito_reset.a (n bigint);"),
                try migration("0002_b.sql", "CREATE TABLE cognito_reset.b (n int);"),
            ])
            let error = try await #require(throws: MigrationError.self) { try await edited.migrate(on: connection) }
            #expect(error.code == .checksumMismatch)
            #expect(error.message.contains("0001_a.sql"))
            await #expect(throws: MigrationError.self) { try await edited.migrate(on: connection, dryRun: true) }
            #expect(try await connection.scalar("SELECT to_regclass('cognito_reset.b') IS NULL", as: Bool.self))
            let status = try await edited.status(on: connection)
            #expect(status.changed.map(\.version) == [1])
            #expect(status.pending == [2])
            await connection.close()
        }
    }

    @Test func aDryRunListsPendingFilesAndChangesNothing() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let migrator = try CognitoResetSchema.migrator(logger: logger)
            let wouldRun = try await migrator.migrate(on: connection, dryRun: true)
            #expect(wouldRun.map(\.version) == migrator.migrations.map(\.version))
            #expect(try await connection.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'cognito_reset'", as: Int.self) == 0)
            await connection.close()
        }
    }

    @Test func aFailingFileLeavesNoTraceAndStopsTheRun() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let migrations = try migrator([
                try migration("0001_a.sql", "CREATE TABLE cognito_reset.a (n int);"),
                try migration("0002_b.sql", "CREATE TABLE cognito_reset.b (n int);\nSELECT no_such_function();"),
                try migration("0003_c.sql", "CREATE TABLE cognito_reset.c (n int);"),
            ])
            let error = try await #require(throws: MigrationError.self) { try await migrations.migrate(on: connection) }
            #expect(error.code == .failed)
            #expect(error.message.contains("0002_b.sql"))
            #expect(error.underlying?.sqlState == "42883")
            #expect(try await connection.scalar("SELECT to_regclass('cognito_reset.a') IS NOT NULL", as: Bool.self))
            #expect(try await connection.scalar("SELECT to_regclass('cognito_reset.b') IS NULL", as: Bool.self))
            #expect(try await connection.scalar("SELECT to_regclass('cognito_reset.c') IS NULL", as: Bool.self))
            #expect(
                try await connection.scalar("SELECT array_agg(version ORDER BY version)::text FROM cognito_reset.schema_migrations", as: String.self) == "{1}")
            // The lock was released: another migrator can run at once.
            let other = try await database.connect()
            #expect(try await other.scalar("SELECT pg_try_advisory_lock(42)", as: Bool.self))
            await other.close()
            await connection.close()
        }
    }

    @Test func aFileMarkedNoTransactionCanBuildIndexesConcurrently() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let migrations = try migrator([
                try migration("0001_a.sql", "CREATE TABLE cognito_reset.a (n int);"),
                try migration("0002_index.sql", "\(Migration.noTransactionMarker)\nCREATE INDEX CONCURRENTLY a_n ON cognito_reset.a (n);"),
            ])
            #expect(migrations.migrations[1].runsInTransaction == false)
            try await migrations.migrate(on: connection)
            #expect(try await connection.scalar("SELECT to_regclass('cognito_reset.a_n') IS NOT NULL", as: Bool.self))
            await connection.close()
        }
    }

    @Test func fileNamesAndDuplicateVersionsAreChecked() throws {
        #expect(throws: MigrationError.self) { try migration("initial.sql", "") }
        #expect(throws: MigrationError.self) { try migration("0001_a.txt", "") }
        #expect(throws: MigrationError.self) { try migration("0000_zero.sql", "") }
        #expect(throws: MigrationError.self) {
            try migrator([try migration("0001_a.sql", ""), try migration("0001_b.sql", "")])
        }
        let parsed = try migration("0012_add_things.sql", "SELECT 1;")
        #expect(parsed.version == 12)
        #expect(parsed.name == "add_things")
        #expect(parsed.checksum == "17db4fd369edb9244b9f91d9aeed145c3d04ad8ba6e95d06247f07a63527d11a")  // sha256 of the bytes
    }

    @Test func theEmbeddedFilesAreTheFilesInTheMigrationsFolder() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appending(path: "../../migrations")
        let onDisk = try Migration.load(directory: folder.standardizedFileURL)
        let embedded = try CognitoResetSchema.embeddedMigrations()
        #expect(embedded.map(\.fileName) == onDisk.map(\.fileName))
        #expect(embedded.map(\.checksum) == onDisk.map(\.checksum))
    }

    /// 0004 applies to a database already holding what the older schema let in (infinite times,
    /// rates a hair above zero), and puts those rows right.
    @Test func migration0004RepairsRowsTheOlderSchemaAllowed() async throws {
        try await TemporaryDatabase.with { database in
            let connection = try await database.connect()
            let all = try CognitoResetSchema.embeddedMigrations()
            let before = try Migrator(
                migrations: all.filter { $0.fileName < "0004" }, schema: CognitoResetSchema.name,
                lockKey: CognitoResetSchema.migrationLockKey, logger: logger)
            _ = try await before.migrate(on: connection)
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, run_at) VALUES ('eu-west-1_a1', 'never', 'infinity'),
                    ('eu-west-1_a1', 'always', '-infinity')
                """)
            try await connection.execute(
                """
                INSERT INTO cognito_reset.imports (file_name, sha256, rate, next_slot_at) VALUES ('f.csv', repeat('a', 64), 1e-300, 'infinity')
                """)
            try await connection.execute("INSERT INTO cognito_reset.rate_limits (key, rate, floor_rate) VALUES ('k', 1e-300, 1e-4)")

            let applied = try await CognitoResetSchema.migrator(logger: logger).migrate(on: connection)
            #expect(applied.map(\.fileName).contains { $0.hasPrefix("0004") })
            #expect(try await connection.scalar("SELECT state FROM cognito_reset.jobs WHERE username = 'never'", as: String.self) == "cancelled")
            #expect(try await connection.scalar("SELECT state FROM cognito_reset.jobs WHERE username = 'always'", as: String.self) == "pending")
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.jobs WHERE isfinite(run_at)", as: Int.self) == 2)
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.imports WHERE next_slot_at IS NULL AND rate = 0.001", as: Int.self) == 1)
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.rate_limits WHERE rate = 0.001 AND floor_rate = 0.001", as: Int.self) == 1)
            await connection.close()
        }
    }
}
