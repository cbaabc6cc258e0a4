import CognitoClient
import Foundation
import Logging

/// Builds the Cognito client from the standard AWS environment (region, endpoint override,
/// credential chain), as every AWS SDK would.
struct CognitoSetup {
    let client: CognitoIdentityProviderClient
    let transport: HTTPTransport

    init(environment: [String: String] = ProcessInfo.processInfo.environment, connections: Int = 16, logger: Logger) throws {
        let profileRegion = SharedFilesCredentialProvider(environment: environment).region()
        let endpoints: CognitoEndpointResolver
        do {
            endpoints = try CognitoEndpointResolver.fromEnvironment(environment, profileRegion: profileRegion)
        } catch {
            throw CLIError.badInput("\(error.field): \(error.rule)")
        }
        let transport = HTTPTransport(connectionsPerHost: connections)
        let chain = CredentialChain.standard(environment: environment, transport: transport, region: endpoints.configuredRegion)
        self.transport = transport
        self.client = CognitoIdentityProviderClient(
            endpoints: endpoints, credentials: CachingCredentialProvider(base: chain), transport: transport,
            stsEndpoint: STSEndpoint(environment: environment), logger: logger)
    }

    /// Runs `body` and always closes the HTTP connection pool.
    static func with<T>(logger: Logger, _ body: (CognitoIdentityProviderClient) async throws -> T) async throws -> T {
        let setup = try CognitoSetup(logger: logger)
        do {
            let value = try await body(setup.client)
            await setup.transport.shutdown()
            return value
        } catch {
            await setup.transport.shutdown()
            throw error
        }
    }
}

extension CLIError {
    /// Maps a failed Cognito call to the exit codes (docs/design.md, "Exit codes"): missing credentials or input
    /// the service model refuses are bad input (2); an unreachable or failing service (or credentials source)
    /// after retries is an unavailable dependency (3); everything the service refused is a failure (1).
    init(_ error: CognitoError) {
        switch (error.kind, error.errorClass) {
        case (.noCredentials, _), (.invalidInput, _):
            self = .badInput(error.message)
        case (_, .transient):
            self = .unavailable("cannot reach Cognito: \(error)")
        default:
            self = .failure("\(error)")
        }
    }
}
