import CognitoTesting
import Foundation
import Testing

@testable import CognitoClient

/// Secrets never appear in a description, log line or error message, on any error path.
@Suite("Secrets stay secret")
struct SecretsTests {
    static let accessToken =
        "eyJraWQiOiJ0ZXN0In0.eyJpc3MiOiJodHRwczovL2NvZ25pdG8taWRwLmV1LXdlc3QtMS5hbWF6b25hd3MuY29tL2V1LXdlc3QtMV9UZXN0MSJ9.c2lnbmF0dXJlLXNlY3JldA"
    static let previous = "Old-Passw0rd!secret"
    static let proposed = "New-Passw0rd!secret"
    static let all = [TestSecrets.secretKey, TestSecrets.sessionToken, accessToken, previous, proposed]

    static let signingSecrets = [TestSecrets.secretKey, TestSecrets.sessionToken]
    static let userSecrets = [accessToken, previous, proposed]

    func assertClean(_ text: String, of secrets: [String] = all, sourceLocation: SourceLocation = #_sourceLocation) {
        for secret in secrets {
            #expect(!text.contains(secret), "leaked a secret: \(text.prefix(200))", sourceLocation: sourceLocation)
        }
    }

    @Test func credentialsAndSecretValuesDescribeThemselvesRedacted() {
        assertClean("\(TestSecrets.credentials)")
        assertClean(String(reflecting: TestSecrets.credentials))
        assertClean("\(Secret(Self.proposed)) \(String(reflecting: Secret(Self.previous)))")
        #expect("\(Secret("x"))" == "<redacted>")
    }

    /// Each error path of both operations, with a server that echoes secrets back: nothing a
    /// request carried (signing key and token; access token and passwords) reaches the error.
    @Test(arguments: [
        FakeHTTPServer.Reply.cognitoError(400, type: "InvalidPasswordException", message: "bad: \(proposed) \(previous) \(accessToken)"),
        .cognitoError(400, type: "NotAuthorizedException", message: "token \(accessToken) key \(TestSecrets.secretKey)"),
        .cognitoError(400, type: "UnrecognizedClientException", message: "token \(TestSecrets.sessionToken)"),
        .cognitoError(400, type: "TooManyRequestsException", message: "slow down \(accessToken)"),
        .respond(status: 500, body: "not json \(TestSecrets.secretKey)"),
        .closeConnection,
        .hang,
    ])
    func noErrorPathLeaksASecret(_ reply: FakeHTTPServer.Reply) async throws {
        try await ClientFixture.with(timeouts: ClientFixture.impatient) { fixture in
            for _ in 0..<4 { fixture.server.enqueue(reply) }
            do {
                _ = try await fixture.reset()
                Issue.record("expected an error")
            } catch {
                assertClean("\(error)", of: Self.signingSecrets)
                assertClean(String(reflecting: error), of: Self.signingSecrets)
                assertClean((error as? CognitoError)?.message ?? "", of: Self.signingSecrets)
            }
            for _ in 0..<4 { fixture.server.enqueue(reply) }
            do {
                _ = try await fixture.client.changePassword(
                    accessToken: Secret(Self.accessToken), previousPassword: Secret(Self.previous), proposedPassword: Secret(Self.proposed))
                Issue.record("expected an error")
            } catch {
                assertClean("\(error)", of: Self.userSecrets)
                assertClean(String(reflecting: error), of: Self.userSecrets)
            }
        }
    }

    @Test func invalidInputErrorsDoNotQuoteTheValue() async throws {
        try await ClientFixture.with { fixture in
            for (token, previous, proposed) in [
                ("bad token with spaces " + Self.previous, Self.previous, Self.proposed),
                (Self.accessToken, "has space " + Self.previous, Self.proposed),
                (Self.accessToken, Self.previous, String(repeating: "p", count: 257) + Self.proposed),
            ] {
                do {
                    _ = try await fixture.client.changePassword(
                        accessToken: Secret(token), previousPassword: Secret(previous), proposedPassword: Secret(proposed))
                    Issue.record("expected an error")
                } catch {
                    #expect(error is InvalidInput)
                    assertClean("\(error)")
                }
            }
            #expect(fixture.server.requests.isEmpty, "nothing is sent when the input is invalid")
        }
    }

    @Test func credentialErrorsNameTheSourceNotTheSecret() async throws {
        let error = try await #require(throws: CredentialError.self) {
            try await EnvironmentCredentialProvider(environment: ["AWS_SECRET_ACCESS_KEY": TestSecrets.secretKey]).credentials()
        }
        assertClean("\(error)")
    }
}

@Suite("ChangePassword")
struct ChangePasswordTests {
    @Test func isSentUnsignedWithTheModelsBody() async throws {
        try await ClientFixture.with { fixture in
            let response = try await fixture.client.changePassword(
                accessToken: Secret(SecretsTests.accessToken), previousPassword: Secret("old-pw"), proposedPassword: Secret("new-pw"))
            #expect(response.requestID == "req-ok")
            let sent = try #require(fixture.server.requests.first)
            #expect(sent.header("Authorization") == nil)
            #expect(sent.header("X-Amz-Date") == nil)
            #expect(sent.header("X-Amz-Target") == "AWSCognitoIdentityProviderService.ChangePassword")
            let body = try JSONSerialization.jsonObject(with: Data(sent.body.utf8)) as? [String: String]
            #expect(body == ["AccessToken": SecretsTests.accessToken, "PreviousPassword": "old-pw", "ProposedPassword": "new-pw"])
        }
    }

    @Test func theRegionComesFromTheTokensIssuerWhenNoneIsConfigured() {
        #expect(CognitoIdentityProviderClient.region(fromAccessToken: SecretsTests.accessToken) == "eu-west-1")
        #expect(CognitoIdentityProviderClient.region(fromAccessToken: "not-a-jwt") == nil)
    }
}

@Suite("Endpoints and regions")
struct EndpointTests {
    @Test func regionAndEndpointFromTheEnvironment() throws {
        let standard = try CognitoEndpointResolver.fromEnvironment(["AWS_DEFAULT_REGION": "eu-west-1"])
        #expect(standard.configuredRegion == "eu-west-1")
        #expect(standard.url(region: "eu-west-1").absoluteString == "https://cognito-idp.eu-west-1.amazonaws.com/")
        #expect(standard.url(region: "cn-north-1").absoluteString == "https://cognito-idp.cn-north-1.amazonaws.com.cn/")
        let regionWins = try CognitoEndpointResolver.fromEnvironment(
            ["AWS_REGION": "us-east-2", "AWS_DEFAULT_REGION": "eu-west-1"], profileRegion: "ap-south-1")
        #expect(regionWins.configuredRegion == "us-east-2")
        #expect(try CognitoEndpointResolver.fromEnvironment([:], profileRegion: "ap-south-1").configuredRegion == "ap-south-1")
        let fips = try CognitoEndpointResolver.fromEnvironment(["AWS_USE_FIPS_ENDPOINT": "true"])
        #expect(fips.url(region: "us-east-1").absoluteString == "https://cognito-idp-fips.us-east-1.amazonaws.com/")
    }

    @Test func serviceSpecificOverrideBeatsTheGlobalOne() throws {
        let resolver = try CognitoEndpointResolver.fromEnvironment([
            "AWS_ENDPOINT_URL": "http://global:1", "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": "http://127.0.0.1:5000",
        ])
        #expect(resolver.url(region: "eu-west-1").absoluteString == "http://127.0.0.1:5000")
        #expect(try CognitoEndpointResolver.fromEnvironment(["AWS_ENDPOINT_URL": "http://global:1"]).url(region: "x").absoluteString == "http://global:1")
        #expect(throws: InvalidInput.self) { try CognitoEndpointResolver.fromEnvironment(["AWS_ENDPOINT_URL": "ftp://nope"]) }
    }

    @Test func thePoolsRegionIsUsedWhateverTheConfiguredOne() throws {
        let unconfigured = CognitoEndpointResolver(configuredRegion: nil)
        #expect(try unconfigured.region(for: UserPoolID("ap-southeast-2_Abc")).rawValue == "ap-southeast-2")
        let configured = CognitoEndpointResolver(configuredRegion: "eu-west-1")
        #expect(try configured.region(for: UserPoolID("eu-west-1_Abc")).rawValue == "eu-west-1")
        #expect(try configured.region(for: UserPoolID("us-east-1_Abc")).rawValue == "us-east-1")
        #expect(configured.url(region: "cn-north-1").absoluteString == "https://cognito-idp.cn-north-1.amazonaws.com.cn/")
        let error = #expect(throws: InvalidInput.self) { try configured.region(for: UserPoolID("Bad_Region_Abc")) }
        #expect(error?.field == "UserPoolId")
    }
}
