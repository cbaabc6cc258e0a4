import CognitoClient
import CognitoTesting
import Foundation
import SystemTesting
import Testing

/// Against moto, a real open-source Cognito emulator (started by scripts/test.sh; one pool per test).
@Suite("End to end against moto")
struct MotoEndToEndTests {
    /// A client for the shared moto, with moto's dummy keys, and a fresh pool with these users.
    func withPool(
        users: [String], _ body: (CognitoIdentityProviderClient, [String: String], URL) async throws -> Void
    ) async throws {
        let endpoint = try Moto.sharedEndpoint()
        let pool = try await Moto.fixture(["pool", "--users"] + users, endpoint: endpoint)
        let credentials = AWSCredentials(accessKeyID: "testing", secretAccessKey: "testing", source: "test")
        try await withClient(endpoint: endpoint, credentials: credentials) { try await body($0, pool, endpoint) }
    }

    func withClient(endpoint: URL, credentials: AWSCredentials, _ body: (CognitoIdentityProviderClient) async throws -> Void) async throws {
        let transport = HTTPTransport()
        let client = CognitoIdentityProviderClient(
            endpoints: CognitoEndpointResolver(configuredRegion: "us-east-1", endpointOverride: endpoint),
            credentials: CachingCredentialProvider(base: FixedCredentials(credentials)), transport: transport,
            dependencies: ClientDependencies(sleep: { _ in }))
        do {
            try await body(client)
        } catch {
            await transport.shutdown()
            throw error
        }
        await transport.shutdown()
    }

    @Test func resettingAConfirmedUserWithAVerifiedEmailRequiresANewPassword() async throws {
        try await withPool(users: ["alice:confirmed"]) { client, pool, endpoint in
            let response = try await client.adminResetUserPassword(
                userPoolID: UserPoolID(pool["pool_id"]!), username: Username("alice"),
                clientMetadata: ClientMetadata(["source": "test"]))
            #expect(response.requestID?.isEmpty == false)
            let status = try await Moto.fixture(["status", "--pool", pool["pool_id"]!, "--user", "alice"], endpoint: endpoint)
            #expect(status["status"] == "RESET_REQUIRED")
        }
    }

    @Test(arguments: [
        ("nobody", "UserNotFoundException"),
        ("carol", "NotAuthorizedException"),  // disabled
        ("bob", "InvalidParameterException"),  // no verified email
    ])
    func refusalsArePermanentErrorsWithTheServiceCode(user: String, code: String) async throws {
        try await withPool(users: ["bob:unverified", "carol:disabled"]) { client, pool, _ in
            let error = try await #require(throws: CognitoError.self) {
                try await client.adminResetUserPassword(userPoolID: UserPoolID(pool["pool_id"]!), username: Username(user))
            }
            #expect(error.code == code)
            #expect(error.errorClass == .permanent)
            #expect(error.httpStatus == 400)
            #expect(error.requestID != nil)
        }
    }

    @Test func anUnknownPoolIsResourceNotFound() async throws {
        try await withPool(users: []) { client, _, _ in
            let error = try await #require(throws: CognitoError.self) {
                try await client.adminResetUserPassword(userPoolID: UserPoolID("us-east-1_NoSuchPool9"), username: Username("alice"))
            }
            #expect(error.code == "ResourceNotFoundException")
            #expect(error.errorClass == .permanent)
        }
    }

    @Test func changePasswordWithATokenMotoIssued() async throws {
        try await withPool(users: ["dora:confirmed"]) { client, pool, endpoint in
            let token = try await Moto.fixture(
                ["token", "--pool", pool["pool_id"]!, "--client", pool["client_id"]!, "--user", "dora", "--password", pool["password"]!],
                endpoint: endpoint)["access_token"]!
            let wrong = try await #require(throws: CognitoError.self) {
                try await client.changePassword(
                    accessToken: Secret(token), previousPassword: Secret("Not-The-Passw0rd!"), proposedPassword: Secret("Next-Passw0rd!1"))
            }
            #expect(wrong.code == "NotAuthorizedException")
            let changed = try await client.changePassword(
                accessToken: Secret(token), previousPassword: Secret(pool["password"]!), proposedPassword: Secret("Next-Passw0rd!1"))
            #expect(changed.requestID != nil)
            // The new password works: moto issues a token for it.
            let again = try await Moto.fixture(
                ["token", "--pool", pool["pool_id"]!, "--client", pool["client_id"]!, "--user", "dora", "--password", "Next-Passw0rd!1"],
                endpoint: endpoint)
            #expect(again["access_token"]?.isEmpty == false)
        }
    }

    /// moto with signature checking on: after the first 6 requests (the fixture), every request
    /// must carry a valid SigV4 signature from a key in moto's IAM.
    @Test func motoAcceptsOurSignatureAndRejectsAWrongSecret() async throws {
        let (moto, endpoint) = try await Moto.start(environment: ["INITIAL_NO_AUTH_ACTION_COUNT": "6"])
        do {
            let setup = try await Moto.fixture(["signed"], endpoint: endpoint)
            let good = AWSCredentials(accessKeyID: setup["access_key_id"]!, secretAccessKey: setup["secret_access_key"]!, source: "moto iam")
            try await withClient(endpoint: endpoint, credentials: good) { client in
                let response = try await client.adminResetUserPassword(
                    userPoolID: UserPoolID(setup["pool_id"]!), username: Username(setup["username"]!))
                #expect(response.requestID != nil)
            }
            let bad = AWSCredentials(accessKeyID: setup["access_key_id"]!, secretAccessKey: "wrong" + setup["secret_access_key"]!, source: "test")
            try await withClient(endpoint: endpoint, credentials: bad) { client in
                let error = try await #require(throws: CognitoError.self) {
                    try await client.adminResetUserPassword(userPoolID: UserPoolID(setup["pool_id"]!), username: Username(setup["username"]!))
                }
                #expect(error.code == "SignatureDoesNotMatch")
                #expect(error.httpStatus == 403)
                #expect(error.errorClass == .credentials)
            }
        } catch {
            await moto.stop()
            throw error
        }
        await moto.stop()
    }
}

/// Fixed credentials.
struct FixedCredentials: CredentialProvider {
    let value: AWSCredentials
    init(_ value: AWSCredentials) { self.value = value }
    var name: String { "fixed" }
    func credentials() async throws(CredentialError) -> AWSCredentials? { value }
}
