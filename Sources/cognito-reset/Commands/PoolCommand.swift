import ArgumentParser
import CognitoClient
import Foundation
import Logging
import Postgres
import ResetQueue

/// `cognito-reset pool set-role|list|unset-role`: pools in other AWS accounts, called through an
/// IAM role there (STS `AssumeRole`).
struct PoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool", abstract: "Map user pools to IAM roles in their own AWS accounts.",
        discussion: """
            A pool with a role is called with that role's temporary credentials (STS AssumeRole with \
            the worker's own), and its calls draw from the bucket cognito:<account>:<region>. Pools \
            without a role use the worker's own credentials. Changing a mapping needs the migration \
            owner or the cognito_reset_admin role; the monitor and worker roles can read it.
            """,
        subcommands: [SetRole.self, List.self, UnsetRole.self])

    struct SetRole: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-role", abstract: "Call a pool through an IAM role in its own account.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: ArgumentHelp("The user pool, e.g. eu-west-1_AbC123.", valueName: "POOL_ID")) var poolID: String
        @Argument(help: ArgumentHelp("The role, e.g. arn:aws:iam::111111111111:role/cognito-reset.", valueName: "ROLE_ARN"))
        var roleARN: String
        @Option(help: ArgumentHelp("The external id the role's trust policy requires.", valueName: "X")) var externalId: String?
        @Flag(help: "Print JSON for machines.") var json = false

        func run() async throws {
            let pool = try PoolCommand.checkedPool(poolID)
            let role: PoolRole
            do {
                role = PoolRole(arn: try RoleARN(roleARN), externalID: try externalId.map { try ExternalID($0) })
            } catch let error as InvalidInput {
                throw CLIError(error)
            }
            let logger = try database.logger()
            let mapping = try await database.withJobStore(logger: logger) { store in
                try await PoolCommand.needingAdmin {
                    try await store.setPoolRole(pool, role: role)
                    return try await store.poolRoles().first { $0.userPoolID == pool.rawValue }
                }
            }
            logger.notice("pool role set", metadata: ["pool": "\(pool)", "role": "\(role.arn)"])
            if json {
                Terminal.json(try jsonEncoder().encode(mapping))
            } else if let mapping {
                Terminal.say(PoolCommand.describe(mapping))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the pools mapped to a role.")
        @OptionGroup var database: DatabaseOptions
        @Flag(help: "Print JSON for machines.") var json = false

        func run() async throws {
            let mappings = try await database.withJobStore(logger: try database.logger()) { try await $0.poolRoles() }
            if json {
                Terminal.json(try jsonEncoder().encode(mappings))
            } else if mappings.isEmpty {
                Terminal.say("No pool is mapped to a role: every pool is called with the workers' own credentials.")
            } else {
                for mapping in mappings { Terminal.say(PoolCommand.describe(mapping)) }
            }
        }
    }

    struct UnsetRole: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "unset-role", abstract: "Call a pool with the workers' own credentials again.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: ArgumentHelp("The user pool.", valueName: "POOL_ID")) var poolID: String

        func run() async throws {
            let pool = try PoolCommand.checkedPool(poolID)
            let logger = try database.logger()
            let removed = try await database.withJobStore(logger: logger) { store in
                try await PoolCommand.needingAdmin { try await store.unsetPoolRole(pool) }
            }
            guard removed else { throw CLIError.failure("pool \(pool) has no role") }
            logger.notice("pool role removed", metadata: ["pool": "\(pool)"])
            Terminal.say("\(pool): the workers' own credentials, bucket \(SharedRateLimit.defaultKey(region: pool.region))")
        }
    }

    /// The POOL_ID argument, checked as every pool id is.
    static func checkedPool(_ text: String) throws -> UserPoolID {
        do {
            return try relabel("POOL_ID") { () throws(InvalidInput) in try UserPoolID(text) }
        } catch {
            throw CLIError(error)
        }
    }

    /// One line per mapping; every value passed the table's checks (plain ASCII).
    static func describe(_ mapping: PoolRoleMapping) -> String {
        "\(mapping.userPoolID)  role \(mapping.roleARN)"
            + (mapping.externalID.map { "  external id \($0)" } ?? "")
            + "  bucket \(mapping.rateKey)  (set by \(SafeText.escaped(mapping.updatedBy)) \(mapping.updatedAt.formatted(.iso8601)))"
    }

    /// A change refused for lack of privilege says which role grants it.
    static func needingAdmin<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PostgresError where error.sqlState == SQLState.insufficientPrivilege {
            throw CLIError.failure("permission denied: changing pool roles needs the migration owner or a member of cognito_reset_admin")
        }
    }
}
