import ArgumentParser
import CognitoClient
import Foundation

/// `cognito-reset admin-reset --pool ID --user NAME`: one direct AdminResetUserPassword call.
struct AdminResetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin-reset",
        abstract: "Call Cognito AdminResetUserPassword once for one user, without the queue.",
        discussion: """
            AWS settings come from the standard chain: AWS_REGION, AWS_ACCESS_KEY_ID..., profiles, \
            web identity, container or instance credentials, $CREDENTIALS_DIRECTORY/aws-credentials. \
            AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER points it at an emulator.
            """
    )

    @Option(name: .customLong("pool"), help: ArgumentHelp("User pool id, e.g. eu-west-1_AbC123.", valueName: "ID"))
    var pool: String

    @Option(name: .customLong("user"), help: ArgumentHelp("Username in the pool.", valueName: "NAME"))
    var user: String

    @Option(help: ArgumentHelp("ClientMetadata for the pool's Lambda triggers (repeatable).", valueName: "KEY=VALUE"))
    var metadata: [String] = []

    @OptionGroup var logging: LoggingOptions

    @Flag(help: "Print JSON for machines.")
    var json = false

    func run() async throws {
        let logger = try logging.bootstrap()
        let (poolID, username, clientMetadata) = try await mappingErrors {
            (
                try relabel("pool") { () throws(InvalidInput) in try UserPoolID(pool) },
                try relabel("user") { () throws(InvalidInput) in try Username(user) },
                try MetadataArguments.parse(metadata)
            )
        }
        let response = try await mappingErrors {
            try await CognitoSetup.with(logger: logger) { client in
                try await client.adminResetUserPassword(userPoolID: poolID, username: username, clientMetadata: clientMetadata)
            }
        }
        let requestID = response.requestID ?? "none"
        if json {
            try printJSON(["outcome": "succeeded", "request_id": response.requestID ?? NSNull(), "attempts": response.attempts])
        } else {
            Terminal.say("Password reset started: the user must set a new password with the code Cognito sends (request id \(requestID)).")
        }
    }
}

/// `--metadata KEY=VALUE` options shared by the commands that take them.
enum MetadataArguments {
    static func parse(_ pairs: [String]) throws(InvalidInput) -> ClientMetadata? {
        var values: [String: String] = [:]
        for pair in pairs {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw InvalidInput(field: "metadata", rule: "must be KEY=VALUE with a non-empty key")
            }
            let key = String(pair[..<equals])
            guard values[key] == nil else { throw InvalidInput(field: "metadata", rule: "each key may be given once") }
            values[key] = String(pair[pair.index(after: equals)...])
        }
        return values.isEmpty ? nil : try relabel("metadata") { () throws(InvalidInput) in try ClientMetadata(values) }
    }
}
