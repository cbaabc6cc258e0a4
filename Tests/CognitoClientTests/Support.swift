import CognitoTesting
import Foundation
import Synchronization

@testable import CognitoClient

/// Test credentials whose secret parts are easy to search for in output.
enum TestSecrets {
    static let secretKey = "SECRETKEY-do-not-print-0123456789"
    static let sessionToken = "SESSIONTOKEN-do-not-print-abcdefgh"
    static let credentials = AWSCredentials(
        accessKeyID: "AKIDTEST", secretAccessKey: secretKey, sessionToken: sessionToken, source: "test")
}

/// Records the delays a client asked to sleep, without sleeping.
final class RecordedSleeps: Sendable {
    private let delays = Mutex<[Duration]>([])
    var all: [Duration] { delays.withLock { $0 } }
    func record(_ duration: Duration) { delays.withLock { $0.append(duration) } }
    var sleep: @Sendable (Duration) async throws -> Void {
        { [self] duration in record(duration) }
    }
}

/// A client pointed at a fake server, with deterministic time, jitter and sleeping.
struct ClientFixture {
    /// Generous timeouts, so a busy test machine never turns a scripted reply into a timeout.
    static let patient = HTTPTransport.Timeouts(connect: .seconds(5), read: .seconds(10), total: .seconds(20))
    /// Short timeouts for the scenarios that are about timing out.
    static let impatient = HTTPTransport.Timeouts(connect: .seconds(5), read: .milliseconds(300), total: .seconds(20))

    let server: FakeHTTPServer
    let transport: HTTPTransport
    let client: CognitoIdentityProviderClient
    let sleeps: RecordedSleeps
    let credentials: CachingCredentialProvider

    static func make(
        timeouts: HTTPTransport.Timeouts = ClientFixture.patient,
        quota: RetryQuota = RetryQuota(), credentials base: any CredentialProvider = StaticCredentials(TestSecrets.credentials),
        keepsRequests: Bool = true
    ) async throws -> ClientFixture {
        let server = try await FakeHTTPServer.start(keepsRequests: keepsRequests)
        let transport = HTTPTransport(timeouts: timeouts)
        let sleeps = RecordedSleeps()
        let credentials = CachingCredentialProvider(base: base)
        let client = CognitoIdentityProviderClient(
            endpoints: CognitoEndpointResolver(configuredRegion: "eu-west-1", endpointOverride: server.url),
            credentials: credentials, transport: transport, retryQuota: quota,
            dependencies: ClientDependencies(now: { Date(timeIntervalSince1970: 1_800_000_000) }, random: { 0.5 }, sleep: sleeps.sleep))
        return ClientFixture(server: server, transport: transport, client: client, sleeps: sleeps, credentials: credentials)
    }

    /// Runs `body` with a fresh fixture and always shuts it down (async-http-client insists).
    static func with(
        timeouts: HTTPTransport.Timeouts = ClientFixture.patient,
        quota: RetryQuota = RetryQuota(), credentials: any CredentialProvider = StaticCredentials(TestSecrets.credentials),
        keepsRequests: Bool = true, _ body: (ClientFixture) async throws -> Void
    ) async throws {
        let fixture = try await make(timeouts: timeouts, quota: quota, credentials: credentials, keepsRequests: keepsRequests)
        do {
            try await body(fixture)
        } catch {
            await fixture.shutdown()
            throw error
        }
        await fixture.shutdown()
    }

    func reset() async throws(CognitoError) -> CognitoResponse {
        try await client.adminResetUserPassword(userPoolID: try! UserPoolID("eu-west-1_Test1"), username: try! Username("alice"))
    }

    func shutdown() async {
        await transport.shutdown()
        await server.shutdown()
    }
}
