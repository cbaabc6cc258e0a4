import CognitoTesting
import Foundation
import SystemTesting
import Testing

@testable import CognitoClient

/// Pools in other accounts: calls signed with a role's temporary credentials from STS
/// `AssumeRole`, which the fake server plays alongside Cognito.
@Suite("Pool roles (STS AssumeRole)")
struct PoolRoleTests {
    static let role = PoolRole(
        arn: try! RoleARN("arn:aws:iam::111111111111:role/cognito-reset"), externalID: try! ExternalID("tenant-42"))
    static let pool = try! UserPoolID("us-east-1_Role1")

    /// A client whose STS and Cognito are one fake server answering with `responder`; the
    /// clock is `clock`'s.
    func withClient(
        clock: LockedValue<Date>? = nil,
        _ responder: @escaping FakeHTTPServer.Responder, _ body: (CognitoIdentityProviderClient, FakeHTTPServer) async throws -> Void
    ) async throws {
        let server = try await FakeHTTPServer.start(responder: responder)
        let transport = HTTPTransport(timeouts: ClientFixture.patient)
        let now: @Sendable () -> Date
        if let clock {
            now = { clock.value }
        } else {
            now = { Date() }
        }
        let client = CognitoIdentityProviderClient(
            endpoints: CognitoEndpointResolver(configuredRegion: "eu-west-1", endpointOverride: server.url),
            credentials: CachingCredentialProvider(base: StaticCredentials(TestSecrets.credentials), now: now), transport: transport,
            stsEndpoint: STSEndpoint(environment: ["AWS_ENDPOINT_URL_STS": server.url.absoluteString]),
            dependencies: ClientDependencies(now: now, random: { 0.5 }, sleep: { _ in }))
        do {
            try await body(client, server)
        } catch {
            await transport.shutdown()
            await server.shutdown()
            throw error
        }
        await transport.shutdown()
        await server.shutdown()
    }

    static func stsOrSuccess(_ sts: FakeHTTPServer.Reply) -> FakeHTTPServer.Responder {
        { request, _ in request.isSTS ? sts : .cognitoSuccess() }
    }

    @Test func aRolesPoolIsCalledWithTheRolesTemporaryCredentials() async throws {
        try await withClient(Self.stsOrSuccess(.stsCredentials(accessKeyID: "ASIAROLE111", sessionToken: "role-token"))) { client, server in
            _ = try await client.adminResetUserPassword(userPoolID: Self.pool, username: Username("alice"), role: Self.role)
            let sts = try #require(server.requests.first)
            #expect(sts.isSTS)
            #expect(sts.formField("Action") == "AssumeRole")
            #expect(sts.formField("RoleArn") == Self.role.arn.rawValue)
            #expect(sts.formField("ExternalId") == "tenant-42")
            // Signed with the worker's own keys, for STS in the pool's region.
            #expect(sts.accessKeyID == "AKIDTEST")
            #expect(sts.signingService == "sts")
            #expect(sts.signingRegion == "us-east-1")
            let call = try #require(server.requests.last)
            #expect(!call.isSTS)
            #expect(call.accessKeyID == "ASIAROLE111")
            #expect(call.header("X-Amz-Security-Token") == "role-token")
            #expect(call.signingRegion == "us-east-1")
        }
    }

    @Test func concurrentCallsShareOneAssumeRoleAndPoolsWithoutARoleUseOwnKeys() async throws {
        try await withClient(Self.stsOrSuccess(.stsCredentials(accessKeyID: "ASIAROLE111"))) { client, server in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        _ = try await client.adminResetUserPassword(userPoolID: Self.pool, username: Username("u\(index)"), role: Self.role)
                    }
                }
                try await group.waitForAll()
            }
            _ = try await client.adminResetUserPassword(userPoolID: UserPoolID("us-east-1_Own1"), username: Username("bob"))
            #expect(server.requests.filter(\.isSTS).count == 1)
            #expect(server.requests.filter { !$0.isSTS && $0.accessKeyID == "ASIAROLE111" }.count == 20)
            #expect(server.requests.last?.accessKeyID == "AKIDTEST")
        }
    }

    @Test func credentialsAreRefreshedBeforeTheyExpire() async throws {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let clock = LockedValue(start)
        let stsCalls = LockedValue(0)
        try await withClient(
            clock: clock,
            { request, _ in
                guard request.isSTS else { return .cognitoSuccess() }
                let n = stsCalls.withLock {
                    $0 += 1
                    return $0
                }
                return .stsCredentials(accessKeyID: "ASIAROLE\(n)", expiration: start.addingTimeInterval(3600 * Double(n)))
            }
        ) { client, server in
            _ = try await client.adminResetUserPassword(userPoolID: Self.pool, username: Username("a"), role: Self.role)
            clock.withLock { $0 = start.addingTimeInterval(3600 - 20 * 60) }  // 20 minutes left: still good
            _ = try await client.adminResetUserPassword(userPoolID: Self.pool, username: Username("b"), role: Self.role)
            #expect(server.requests.filter(\.isSTS).count == 1)
            clock.withLock { $0 = start.addingTimeInterval(3600 - 5 * 60) }  // 5 minutes left: refreshed first
            _ = try await client.adminResetUserPassword(userPoolID: Self.pool, username: Username("c"), role: Self.role)
            #expect(server.requests.filter(\.isSTS).count == 2)
            #expect(server.requests.last?.accessKeyID == "ASIAROLE2")
        }
    }

    @Test func aRoleSTSRefusesFailsForGoodAndSTSIsNotAskedAgainAtOnce() async throws {
        try await withClient(Self.stsOrSuccess(.stsError(403, code: "AccessDenied", message: "not authorized to perform sts:AssumeRole"))) { client, server in
            for user in ["a", "b", "c"] {
                let error = try await #require(throws: CognitoError.self) {
                    try await client.adminResetUserPassword(userPoolID: Self.pool, username: Username(user), role: Self.role)
                }
                #expect(error.code == CognitoError.assumeRoleDenied)
                #expect(error.errorClass == .permanent)
                #expect(error.message.contains("AccessDenied"))
                #expect(error.message.contains(Self.role.arn.rawValue))
            }
            // One refusal is remembered for a while: no storm of STS calls, and no Cognito call.
            #expect(server.requests.count == 1)
            // The worker's own pools are not affected.
            _ = try await client.adminResetUserPassword(userPoolID: UserPoolID("us-east-1_Own1"), username: Username("bob"))
        }
    }

    @Test func stsRejectingTheWorkersOwnKeysIsACredentialsErrorNotADenial() async throws {
        try await withClient(Self.stsOrSuccess(.stsError(403, code: "ExpiredToken", message: "The security token included in the request is expired"))) {
            client, _ in
            let error = try await #require(throws: CognitoError.self) {
                try await client.adminResetUserPassword(userPoolID: Self.pool, username: Username("a"), role: Self.role)
            }
            #expect(error.code == CognitoError.noCredentials)
            #expect(error.errorClass == .credentials)
            #expect(error.message.contains("ExpiredToken"))
        }
    }

    @Test(arguments: [FakeHTTPServer.Reply.stsError(503, code: "ServiceUnavailable"), .stsError(400, code: "Throttling"), .closeConnection])
    func stsUnavailableIsTransient(reply: FakeHTTPServer.Reply) async throws {
        try await withClient(Self.stsOrSuccess(reply)) { client, _ in
            let error = try await #require(throws: CognitoError.self) {
                try await client.adminResetUserPassword(userPoolID: Self.pool, username: Username("a"), role: Self.role)
            }
            #expect(error.code == CognitoError.credentialsUnavailable)
            #expect(error.errorClass == .transient)
        }
    }

    @Test func namesAreCheckedAsSTSAndIAMDefineThem() throws {
        #expect(try RoleARN("arn:aws:iam::111111111111:role/path/cognito-reset").accountID == "111111111111")
        #expect(try RoleARN("arn:aws-cn:iam::222222222222:role/r").accountID == "222222222222")
        for bad in [
            "arn:aws:iam::11111111111:role/x", "arn:aws:iam::111111111111:user/x", "arn:aws:sts::111111111111:role/x",
            "arn:aws:iam::111111111111:role/", "arn:aws:iam::111111111111:role/a b", "role/x", "arn:aws:iam:eu:111111111111:role/x",
        ] {
            #expect(throws: InvalidInput.self, "\(bad)") { try RoleARN(bad) }
        }
        #expect(try ExternalID("tenant:42/x").rawValue == "tenant:42/x")
        for bad in ["x", "has space", "t\u{1B}[2J", String(repeating: "a", count: 1225)] {
            #expect(throws: InvalidInput.self) { try ExternalID(bad) }
        }
        #expect(try RegionName.list("eu-west-1, us-east-1,eu-west-1", field: "R").map(\.rawValue) == ["eu-west-1", "us-east-1"])
        for bad in ["", "EU-WEST-1", "eu_west_1", "eu-west-1,", "-eu", "eu-"] {
            #expect(throws: InvalidInput.self, "\(bad)") { try RegionName.list(bad, field: "R") }
        }
    }
}
