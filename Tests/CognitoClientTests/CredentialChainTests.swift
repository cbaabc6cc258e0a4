import CognitoTesting
import Foundation
import Synchronization
import Testing

@testable import CognitoClient

@Suite("Credential providers and the chain")
struct CredentialChainTests {
    /// A scratch folder for credential files.
    func withFolder<T>(_ body: (URL) async throws -> T) async throws -> T {
        let folder = FileManager.default.temporaryDirectory.appending(path: "creds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        return try await body(folder)
    }

    func withTransport<T>(_ body: (HTTPTransport) async throws -> T) async throws -> T {
        let transport = HTTPTransport(timeouts: .init(connect: .seconds(5), read: .seconds(10), total: .seconds(20)))
        do {
            let value = try await body(transport)
            await transport.shutdown()
            return value
        } catch {
            await transport.shutdown()
            throw error
        }
    }

    @Test func environmentKeysWithAnOptionalSessionToken() async throws {
        let found = try await EnvironmentCredentialProvider(environment: [
            "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token",
        ]).credentials()
        #expect(found?.accessKeyID == "AKID")
        #expect(found?.sessionToken == "token")
        #expect(try await EnvironmentCredentialProvider(environment: [:]).credentials() == nil)
        await #expect(throws: CredentialError.self) {
            try await EnvironmentCredentialProvider(environment: ["AWS_ACCESS_KEY_ID": "AKID"]).credentials()
        }
    }

    @Test func sharedFilesHonourProfilesAndTheCredentialsFileWins() async throws {
        try await withFolder { folder in
            let credentials = folder.appending(path: "credentials")
            let config = folder.appending(path: "config")
            try """
            [default]
            aws_access_key_id = AKIDDEFAULT
            aws_secret_access_key = secret-default

            # a comment
            [ops]
            aws_access_key_id=AKIDOPS
            aws_secret_access_key=secret-ops
            aws_session_token = token-ops
            """.write(to: credentials, atomically: true, encoding: .utf8)
            try """
            [default]
            region = eu-central-1
            [profile ops]
            region = eu-west-1
            aws_access_key_id = AKIDCONFIGOPS
            aws_secret_access_key = ignored-because-credentials-file-wins
            [profile config-only]
            aws_access_key_id = AKIDCONFIGONLY
            aws_secret_access_key = secret-config-only
            """.write(to: config, atomically: true, encoding: .utf8)
            let base = ["AWS_SHARED_CREDENTIALS_FILE": credentials.path, "AWS_CONFIG_FILE": config.path]
            let standard = SharedFilesCredentialProvider(environment: base)
            #expect(try await standard.credentials()?.accessKeyID == "AKIDDEFAULT")
            #expect(standard.region() == "eu-central-1")
            let ops = SharedFilesCredentialProvider(environment: base.merging(["AWS_PROFILE": "ops"]) { $1 })
            #expect(try await ops.credentials()?.accessKeyID == "AKIDOPS")
            #expect(try await ops.credentials()?.sessionToken == "token-ops")
            #expect(ops.region() == "eu-west-1")
            let configOnly = SharedFilesCredentialProvider(environment: base.merging(["AWS_PROFILE": "config-only"]) { $1 })
            #expect(try await configOnly.credentials()?.accessKeyID == "AKIDCONFIGONLY")
            // A profile named explicitly must exist, and one needing unsupported machinery is refused:
            // the chain must not fall through to some other identity.
            let missing = SharedFilesCredentialProvider(environment: base.merging(["AWS_PROFILE": "nope"]) { $1 })
            await #expect(throws: CredentialError.self) { try await missing.credentials() }
            try (try String(contentsOf: config, encoding: .utf8) + "\n[profile assume]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n")
                .write(to: config, atomically: true, encoding: .utf8)
            let assume = SharedFilesCredentialProvider(environment: base.merging(["AWS_PROFILE": "assume"]) { $1 })
            let error = try await #require(throws: CredentialError.self) { try await assume.credentials() }
            #expect(error.message.contains("role_arn"))
        }
    }

    @Test func systemdLoadCredentialFile() async throws {
        try await withFolder { folder in
            try "[default]\naws_access_key_id = AKIDSYSTEMD\naws_secret_access_key = secret-systemd\n"
                .write(to: folder.appending(path: "aws-credentials"), atomically: true, encoding: .utf8)
            let found = try await SystemdCredentialProvider(environment: ["CREDENTIALS_DIRECTORY": folder.path]).credentials()
            #expect(found?.accessKeyID == "AKIDSYSTEMD")
            #expect(found?.source == "systemd credentials")
            #expect(try await SystemdCredentialProvider(environment: [:]).credentials() == nil)
            // The unit's SetCredential= fallback (a lone newline) means "not configured here".
            try "\n".write(to: folder.appending(path: "aws-credentials"), atomically: true, encoding: .utf8)
            #expect(try await SystemdCredentialProvider(environment: ["CREDENTIALS_DIRECTORY": folder.path]).credentials() == nil)
        }
    }

    @Test func webIdentityExchangesTheTokenWithSTS() async throws {
        try await withFolder { folder in
            try await withTransport { transport in
                let server = try await FakeHTTPServer.start(
                    fallback: .respond(
                        status: 200,
                        body: """
                            <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
                              <AssumeRoleWithWebIdentityResult>
                                <Credentials>
                                  <AccessKeyId>ASIAWEB</AccessKeyId>
                                  <SecretAccessKey>secret&amp;web</SecretAccessKey>
                                  <SessionToken>token-web</SessionToken>
                                  <Expiration>2030-01-01T00:00:00Z</Expiration>
                                </Credentials>
                              </AssumeRoleWithWebIdentityResult>
                            </AssumeRoleWithWebIdentityResponse>
                            """))
                let tokenFile = folder.appending(path: "token")
                try "eyJ.web.token\n".write(to: tokenFile, atomically: true, encoding: .utf8)
                let provider = WebIdentityCredentialProvider(
                    environment: [
                        "AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile.path, "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/reset",
                        "AWS_ROLE_SESSION_NAME": "sess", "AWS_ENDPOINT_URL_STS": server.url.absoluteString,
                    ], transport: transport, region: "eu-west-1")
                let found = try #require(try await provider.credentials())
                #expect(found.accessKeyID == "ASIAWEB")
                #expect(found.secretAccessKey == "secret&web")
                #expect(found.sessionToken == "token-web")
                #expect(found.expiration == Date(timeIntervalSince1970: 1_893_456_000))
                let sent = try #require(server.requests.first)
                #expect(sent.method == "POST")
                #expect(sent.header("Authorization") == nil, "AssumeRoleWithWebIdentity is unsigned")
                #expect(sent.body.contains("Action=AssumeRoleWithWebIdentity"))
                #expect(sent.body.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Freset"))
                #expect(sent.body.contains("WebIdentityToken=eyJ.web.token"))
                #expect(sent.body.contains("RoleSessionName=sess"))

                server.enqueue(
                    .respond(status: 403, body: "<ErrorResponse><Error><Code>AccessDenied</Code><Message>Not authorized</Message></Error></ErrorResponse>"))
                let error = try await #require(throws: CredentialError.self) { try await provider.credentials() }
                #expect(error.message.contains("AccessDenied"))
                await server.shutdown()
            }
        }
    }

    @Test func containerCredentialsWithAnAuthorizationToken() async throws {
        try await withTransport { transport in
            let server = try await FakeHTTPServer.start(
                fallback: .respond(
                    status: 200,
                    body: """
                        {"AccessKeyId":"ASIACONTAINER","SecretAccessKey":"secret-container","Token":"token-container","Expiration":"2030-01-01T00:00:00Z"}
                        """))
            let provider = ContainerCredentialProvider(
                environment: [
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI": server.url.absoluteString + "/creds",
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN": "Bearer abc",
                ], transport: transport, timeout: .seconds(60))
            let found = try #require(try await provider.credentials())
            #expect(found.accessKeyID == "ASIACONTAINER")
            #expect(found.sessionToken == "token-container")
            #expect(server.requests.first?.header("Authorization") == "Bearer abc")
            #expect(server.requests.first?.uri == "/creds")
            // Plain http to anywhere but loopback or the agents' addresses is refused.
            await #expect(throws: CredentialError.self) {
                try await ContainerCredentialProvider(environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://example.com/creds"], transport: transport)
                    .credentials()
            }
            await server.shutdown()
        }
    }

    @Test func instanceMetadataV2WithASessionToken() async throws {
        try await withTransport { transport in
            let server = try await FakeHTTPServer.start()
            server.enqueue(
                .respond(status: 200, body: "imds-session-token"),
                .respond(status: 200, body: "reset-role\n"),
                .respond(
                    status: 200,
                    body:
                        #"{"Code":"Success","AccessKeyId":"ASIAIMDS","SecretAccessKey":"secret-imds","Token":"token-imds","Expiration":"2030-01-01T00:00:00Z"}"#
                ))
            let provider = InstanceMetadataCredentialProvider(
                environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.url.absoluteString], transport: transport,
                timeout: .seconds(60))
            let found = try #require(try await provider.credentials())
            #expect(found.accessKeyID == "ASIAIMDS")
            let requests = server.requests
            #expect(requests.map(\.method) == ["PUT", "GET", "GET"])
            #expect(requests[0].uri == "/latest/api/token")
            #expect(requests[0].header("x-aws-ec2-metadata-token-ttl-seconds") == "21600")
            #expect(requests[1].uri == "/latest/meta-data/iam/security-credentials/")
            #expect(requests[2].uri == "/latest/meta-data/iam/security-credentials/reset-role")
            #expect(requests[2].header("x-aws-ec2-metadata-token") == "imds-session-token")
            #expect(try await InstanceMetadataCredentialProvider(environment: ["AWS_EC2_METADATA_DISABLED": "true"], transport: transport).credentials() == nil)
            await server.shutdown()
        }
    }

    /// A source's bad moment (5xx, 429, throttling) is "unreachable": the worker retries instead
    /// of exiting as misconfigured (exit 2, which systemd does not restart). A refusal is not.
    @Test func sourcesHavingABadMomentAreUnreachableNotMisconfigured() async throws {
        try await withFolder { folder in
            try await withTransport { transport in
                let server = try await FakeHTTPServer.start()
                let tokenFile = folder.appending(path: "token")
                try "eyJ.web.token\n".write(to: tokenFile, atomically: true, encoding: .utf8)
                let sts = WebIdentityCredentialProvider(
                    environment: [
                        "AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile.path, "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/reset",
                        "AWS_ENDPOINT_URL_STS": server.url.absoluteString,
                    ], transport: transport, region: "eu-west-1")
                let container = ContainerCredentialProvider(
                    environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": server.url.absoluteString + "/creds"], transport: transport,
                    timeout: .seconds(60))
                let imds = InstanceMetadataCredentialProvider(
                    environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.url.absoluteString], transport: transport, timeout: .seconds(60))
                let throttled = "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>"
                let cases: [(String, [FakeHTTPServer.Reply], any CredentialProvider, Bool)] = [
                    ("STS 503", [.respond(status: 503)], sts, true),
                    ("STS throttling", [.respond(status: 400, body: throttled)], sts, true),
                    ("STS access denied", [.respond(status: 403, body: "<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>")], sts, false),
                    ("container 500", [.respond(status: 500)], container, true),
                    ("container 403", [.respond(status: 403)], container, false),
                    ("instance metadata 503", [.respond(status: 200, body: "t"), .respond(status: 503)], imds, true),
                    (
                        "instance metadata 429 for the role", [.respond(status: 200, body: "t"), .respond(status: 200, body: "r\n"), .respond(status: 429)],
                        imds, true
                    ),
                ]
                for (what, replies, provider, unreachable) in cases {
                    server.enqueue(replies)
                    let error = await #expect(throws: CredentialError.self, "\(what)") { try await provider.credentials() }
                    #expect(error?.isUnreachable == unreachable, "\(what)")
                }
                await server.shutdown()
            }
        }
    }

    /// A malformed endpoint variable is a configuration error, not a crash.
    @Test func aMalformedInstanceMetadataEndpointIsAConfigurationError() async throws {
        try await withTransport { transport in
            for endpoint in ["http://[fd00:ec2::254", "ftp://169.254.169.254", "not a url"] {
                let provider = InstanceMetadataCredentialProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": endpoint], transport: transport)
                let error = await #expect(throws: CredentialError.self, "\(endpoint)") { try await provider.credentials() }
                #expect(error?.message.contains("AWS_EC2_METADATA_SERVICE_ENDPOINT") == true)
                #expect(error?.isUnreachable == false)
            }
        }
    }

    @Test func noInstanceMetadataServiceMeansNoCredentialsNotAnError() async throws {
        try await withTransport { transport in
            let server = try await FakeHTTPServer.start()
            let closed = server.url
            await server.shutdown()
            let provider = InstanceMetadataCredentialProvider(
                environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": closed.absoluteString], transport: transport)
            #expect(try await provider.credentials() == nil)
        }
    }

    @Test func theChainTakesTheFirstConfiguredSourceInTheSDKOrder() async throws {
        try await withFolder { folder in
            try await withTransport { transport in
                let imds = try await FakeHTTPServer.start(fallback: .respond(status: 500))
                try "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s\n"
                    .write(to: folder.appending(path: "credentials"), atomically: true, encoding: .utf8)
                try "[default]\naws_access_key_id = AKIDSYSTEMD\naws_secret_access_key = s\n"
                    .write(to: folder.appending(path: "aws-credentials"), atomically: true, encoding: .utf8)
                let files = [
                    "AWS_SHARED_CREDENTIALS_FILE": folder.appending(path: "credentials").path,
                    "AWS_CONFIG_FILE": folder.appending(path: "none").path,
                    "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url.absoluteString,
                ]
                let env = ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s"]
                let systemd = ["CREDENTIALS_DIRECTORY": folder.path]
                func chain(_ environment: [String: String]) -> CredentialChain {
                    .standard(environment: environment, transport: transport, region: "eu-west-1", metadataTimeout: .seconds(60))
                }
                #expect(try await chain(files.merging(env) { $1 }.merging(systemd) { $1 }).credentials()?.accessKeyID == "AKIDENV")
                #expect(try await chain(files.merging(systemd) { $1 }).credentials()?.accessKeyID == "AKIDSYSTEMD")
                #expect(try await chain(files).credentials()?.accessKeyID == "AKIDFILE")
                #expect(chain(files).providers.map(\.name) == ["environment", "systemd credentials", "web identity", "shared files", "container", "imds"])
                var nothing = files
                nothing["AWS_SHARED_CREDENTIALS_FILE"] = folder.appending(path: "missing").path
                #expect(try await chain(nothing).credentials() == nil)
                #expect(imds.requests.map(\.uri) == ["/latest/api/token"], "IMDS asked only when nothing else answered")
                await imds.shutdown()
            }
        }
    }

    @Test func temporaryCredentialsAreCachedAndRefreshedOnceBeforeExpiry() async throws {
        let clock = MutableClock(Date(timeIntervalSince1970: 1_800_000_000))
        let source = ExpiringCredentials(clock: clock, lifetime: 3600)
        let cache = CachingCredentialProvider(base: source, now: { clock.now })
        // A burst of concurrent requests: one fetch.
        try await withThrowingTaskGroup(of: AWSCredentials.self) { group in
            for _ in 0..<50 { group.addTask { try await cache.credentials() } }
            for try await found in group { #expect(found.accessKeyID == "ASIA1") }
        }
        #expect(source.fetches == 1)
        clock.advance(by: 40 * 60)  // 20 minutes left: still outside the 15-minute window
        #expect(try await cache.credentials().accessKeyID == "ASIA1")
        clock.advance(by: 6 * 60)  // 14 minutes left: refresh, once, for everyone
        try await withThrowingTaskGroup(of: AWSCredentials.self) { group in
            for _ in 0..<50 { group.addTask { try await cache.credentials() } }
            for try await found in group { #expect(found.accessKeyID == "ASIA2") }
        }
        #expect(source.fetches == 2)
        // A failing refresh inside the advisory window keeps the old credentials...
        source.failNext = true
        clock.advance(by: 46 * 60)  // 14 minutes left again
        #expect(try await cache.credentials().accessKeyID == "ASIA2")
        // ...but not inside the mandatory window.
        source.failNext = true
        clock.advance(by: 5 * 60)  // 9 minutes left
        await #expect(throws: CredentialError.self) { try await cache.credentials() }
    }
}

final class MutableClock: Sendable {
    private let value: Mutex<Date>
    init(_ start: Date) { value = Mutex(start) }
    var now: Date { value.withLock { $0 } }
    func advance(by seconds: TimeInterval) { value.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

/// Temporary credentials that expire `lifetime` seconds after they are fetched.
final class ExpiringCredentials: CredentialProvider, Sendable {
    private struct State {
        var fetches = 0
        var failNext = false
    }
    private let state = Mutex(State())
    let clock: MutableClock
    let lifetime: TimeInterval
    init(clock: MutableClock, lifetime: TimeInterval) {
        self.clock = clock
        self.lifetime = lifetime
    }
    var name: String { "expiring" }
    var fetches: Int { state.withLock { $0.fetches } }
    var failNext: Bool {
        get { state.withLock { $0.failNext } }
        set { state.withLock { $0.failNext = newValue } }
    }
    func credentials() async throws(CredentialError) -> AWSCredentials? {
        let (count, fail) = state.withLock { state -> (Int, Bool) in
            let fail = state.failNext
            state.failNext = false
            if !fail { state.fetches += 1 }
            return (state.fetches, fail)
        }
        if fail { throw CredentialError(provider: name, message: "STS is down") }
        return AWSCredentials(
            accessKeyID: "ASIA\(count)", secretAccessKey: "s", sessionToken: "t",
            expiration: clock.now.addingTimeInterval(lifetime), source: name)
    }
}
