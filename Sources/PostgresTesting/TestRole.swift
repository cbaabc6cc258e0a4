public import Foundation
public import Postgres

/// A role a test creates. Roles are cluster-wide, so `TestRole.with` drops it whether the test
/// passes or fails: a failed run leaves nothing that a later one could trip on.
public struct TestRole: Sendable {
    /// `prefix_` and 8 random characters.
    public let name: String
    /// Random; empty for a NOLOGIN role.
    public let password: String
    /// The database the role was made in, logging in as the role.
    public let configuration: ConnectionConfiguration

    /// Creates a role in the database `owner` connects to (as that database's owner): LOGIN with
    /// a random password unless `login` is false, a member of `groups`. Runs `body`, then drops
    /// what the role owns in that database and the role, whether `body` succeeded or not.
    public static func with<T>(
        _ prefix: String, on owner: ConnectionConfiguration, login: Bool = true, memberOf groups: [String] = [],
        _ body: (TestRole) async throws -> T
    ) async throws -> T {
        let name = "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
        let password = login ? UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() : ""
        let membership = groups.isEmpty ? "" : " IN ROLE " + groups.joined(separator: ", ")
        try await run(
            on: owner,
            login
                ? "CREATE ROLE \(name) LOGIN PASSWORD '\(password)'\(membership)"
                : "CREATE ROLE \(name) NOLOGIN\(membership)")
        let role = TestRole(
            name: name, password: password,
            configuration: login ? owner.setting("user", to: name).setting("password", to: password) : owner)
        do {
            let value = try await body(role)
            try await drop(name, on: owner)
            return value
        } catch {
            try? await drop(name, on: owner)
            throw error
        }
    }

    /// On a fresh connection: the owner's own may be why the body failed.
    private static func drop(_ name: String, on owner: ConnectionConfiguration) async throws {
        try await run(on: owner, "DROP OWNED BY \(name)")
        try await run(on: owner, "DROP ROLE \(name)")
    }

    /// Names and passwords here are made above from a prefix the test chose and a UUID: the
    /// statement is written out (roles cannot be bound as parameters).
    private static func run(on owner: ConnectionConfiguration, _ sql: String) async throws {
        let connection = try await PostgresConnection.connect(owner)
        do {
            try await connection.execute(PostgresQuery(sql))
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }
}
