public import Foundation
public import Logging
public import Postgres

/// The `cognito_reset` schema: its name, its migrations and how to apply them.
///
/// The migration files are embedded in the binary at build time (the `EmbedMigrations` plugin
/// reads `migrations/*.sql`), so a built `cognito-reset` needs no source tree beside it. A folder
/// can be given instead, e.g. to inspect or test a set of files.
public enum CognitoResetSchema {
    /// The schema every table, view and function lives in (Firm).
    public static let name = "cognito_reset"
    /// The channel the insert trigger notifies (Firm).
    public static let jobsChannel = "cognito_reset_jobs"
    /// Key of the advisory lock that serialises `migrate` across hosts ("cognitor" in ASCII).
    public static let migrationLockKey: Int64 = 0x636F_676E_6974_6F72

    /// The migrations this binary was built with.
    public static func embeddedMigrations() throws(MigrationError) -> [Migration] {
        var migrations: [Migration] = []
        for file in embeddedMigrationFiles {
            guard let contents = Data(base64Encoded: file.base64) else {
                throw MigrationError(code: .invalidFile, message: "\(file.fileName): corrupt embedded copy")
            }
            migrations.append(try Migration(fileName: file.fileName, contents: contents))
        }
        return try Migration.ordered(migrations)
    }

    /// A migrator for this schema, from the embedded files or from `directory` when given.
    public static func migrator(directory: URL? = nil, logger: Logger) throws(MigrationError) -> Migrator {
        let migrations: [Migration]
        if let directory {
            migrations = try Migration.load(directory: directory)
        } else {
            migrations = try embeddedMigrations()
        }
        return try Migrator(migrations: migrations, schema: name, lockKey: migrationLockKey, logger: logger)
    }
}
