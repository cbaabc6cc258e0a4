public import CognitoClient
public import Foundation
import Postgres

/// A pool called through an IAM role in its own account (`cognito_reset.pool_roles`).
public struct PoolRoleMapping: Sendable, Codable, Equatable {
    public let userPoolID: String
    public let region: String
    public let roleARN: String
    public let accountID: String
    public let externalID: String?
    /// The bucket its calls draw from: `cognito:<account>:<region>`.
    public let rateKey: String
    public let updatedAt: Date
    public let updatedBy: String
}

extension PostgresJobStore {
    enum PoolSQL {
        /// Maps the pool to the role (or changes the mapping).
        static let setRole = """
            INSERT INTO cognito_reset.pool_roles AS p (user_pool_id, role_arn, external_id)
            VALUES ($1, $2, $3)
            ON CONFLICT (user_pool_id) DO UPDATE
            SET role_arn = excluded.role_arn, external_id = excluded.external_id, updated_at = now(),
                updated_by = current_user
            """
        static let unsetRole = "DELETE FROM cognito_reset.pool_roles WHERE user_pool_id = $1 RETURNING 1"
        static let list = """
            SELECT user_pool_id, cognito_reset.pool_region(user_pool_id), role_arn, account_id, external_id,
                   updated_at, updated_by
            FROM cognito_reset.pool_roles ORDER BY user_pool_id
            """
    }

    /// Calls for `userPool` go through `role` from now on (the next claim of its jobs).
    public func setPoolRole(_ userPool: UserPoolID, role: PoolRole) async throws {
        try await pool.query(PostgresQuery(PoolSQL.setRole, [userPool.rawValue, role.arn.rawValue, role.externalID?.rawValue]))
    }

    /// Calls for `userPool` use the worker's own credentials again; false if it had no role.
    public func unsetPoolRole(_ userPool: UserPoolID) async throws -> Bool {
        try await !pool.query(PostgresQuery(PoolSQL.unsetRole, [userPool.rawValue])).isEmpty
    }

    /// Every pool mapped to a role.
    public func poolRoles() async throws -> [PoolRoleMapping] {
        try await pool.query(PostgresQuery(PoolSQL.list)).map { row in
            let region = try row.decode(String.self, at: 1)
            let account = try row.decode(String.self, at: 3)
            return PoolRoleMapping(
                userPoolID: try row.decode(String.self, at: 0), region: region, roleARN: try row.decode(String.self, at: 2),
                accountID: account, externalID: try row.decode(String?.self, at: 4),
                rateKey: SharedRateLimit.roleKey(account: account, region: region), updatedAt: try row.decode(Date.self, at: 5),
                updatedBy: try row.decode(String.self, at: 6))
        }
    }
}
