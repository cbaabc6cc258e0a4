import CognitoTesting
import Foundation
import Testing

@testable import CognitoClient

/// Cognito AdminResetUserPassword requests signed by botocore with time frozen at
/// 2015-08-30T12:36:00Z (Fixtures/cognito-sigv4-vectors.json): we must match byte for byte.
@Suite("SigV4: botocore-signed Cognito requests")
struct CognitoVectorTests {
    // The fixture files' own JSON keys, decoded as they are written.
    // swift-format-ignore: AlwaysUseLowerCamelCase
    struct Vectors: Decodable {
        struct Case: Decodable, Sendable, CustomTestStringConvertible {
            struct Credentials: Decodable, Sendable {
                let access_key_id: String
                let secret_access_key: String
                let session_token: String?
            }
            struct Request: Decodable, Sendable {
                let method: String
                let url: String
                let headers: [String: String]
                let body_utf8: String
            }
            struct Expected: Decodable, Sendable {
                let canonical_request: String
                let string_to_sign: String
                let authorization: String
                let x_amz_date: String
                let signature: String
            }
            let name: String
            let credentials: Credentials
            let region: String
            let service: String
            let timestamp: String
            let request: Request
            let expected: Expected
            var testDescription: String { name }
        }
        let cases: [Case]
    }

    static let cases: [Vectors.Case] = {
        let url = Bundle.module.resourceURL!.appending(path: "Fixtures/cognito-sigv4-vectors.json")
        return (try? JSONDecoder().decode(Vectors.self, from: Data(contentsOf: url)).cases) ?? []
    }()

    static let frozen = Date(timeIntervalSince1970: 1_440_938_160)  // 2015-08-30T12:36:00Z

    @Test func theVectorsAreLoaded() {
        #expect(Self.cases.count >= 4)
    }

    @Test(arguments: cases)
    func signsExactlyLikeBotocore(_ vector: Vectors.Case) throws {
        let credentials = AWSCredentials(
            accessKeyID: vector.credentials.access_key_id, secretAccessKey: vector.credentials.secret_access_key,
            sessionToken: vector.credentials.session_token, source: "test")
        // The client sends these three headers in this order.
        let headers = ["Content-Type", "X-Amz-Target", "Host"].map { (name: $0, value: vector.request.headers[$0]!) }
        let request = SigningRequest(method: vector.request.method, path: "/", headers: headers, body: Array(vector.request.body_utf8.utf8))
        let result = SigV4Signer(region: vector.region, service: vector.service).sign(request, credentials: credentials, date: Self.frozen)
        #expect(result.canonicalRequest == vector.expected.canonical_request)
        #expect(result.stringToSign == vector.expected.string_to_sign)
        #expect(result.signature == vector.expected.signature)
        #expect(result.authorization == vector.expected.authorization)
        #expect(result.addedHeaders.first { $0.name == "X-Amz-Date" }?.value == vector.expected.x_amz_date)
    }

    /// The client builds the same body bytes botocore signed (member order, compact, raw UTF-8).
    @Test(arguments: cases)
    func theClientSendsTheSameBodyAndHeaders(_ vector: Vectors.Case) async throws {
        let bodyObject = try JSONSerialization.jsonObject(with: Data(vector.request.body_utf8.utf8)) as! [String: Any]
        let server = try await FakeHTTPServer.start()
        let transport = HTTPTransport()
        let credentials = AWSCredentials(
            accessKeyID: vector.credentials.access_key_id, secretAccessKey: vector.credentials.secret_access_key,
            sessionToken: vector.credentials.session_token, source: "test")
        let client = CognitoIdentityProviderClient(
            endpoints: CognitoEndpointResolver(configuredRegion: vector.region, endpointOverride: server.url),
            credentials: CachingCredentialProvider(base: StaticCredentials(credentials)),
            transport: transport, dependencies: ClientDependencies(now: { Self.frozen }))
        _ = try await client.adminResetUserPassword(
            userPoolID: UserPoolID(bodyObject["UserPoolId"] as! String), username: Username(bodyObject["Username"] as! String),
            clientMetadata: (bodyObject["ClientMetadata"] as? [String: String]).map { try ClientMetadata($0) })
        let sent = try #require(server.requests.first)
        #expect(sent.body == vector.request.body_utf8)
        #expect(sent.method == "POST")
        #expect(sent.uri == "/")
        #expect(sent.header("Content-Type") == "application/x-amz-json-1.1")
        #expect(sent.header("X-Amz-Target") == "AWSCognitoIdentityProviderService.AdminResetUserPassword")
        #expect(sent.header("X-Amz-Date") == vector.expected.x_amz_date)
        #expect(sent.header("X-Amz-Security-Token") == vector.credentials.session_token)
        // Same request, only the Host differs (the fake server's): recompute and compare.
        let signed = SigV4Signer(region: vector.region, service: "cognito-idp").sign(
            SigningRequest(
                method: "POST",
                headers: [
                    ("Content-Type", "application/x-amz-json-1.1"),
                    ("X-Amz-Target", "AWSCognitoIdentityProviderService.AdminResetUserPassword"),
                    ("Host", "127.0.0.1:\(server.url.port!)"),
                ], body: Array(sent.body.utf8)),
            credentials: credentials, date: Self.frozen)
        #expect(sent.header("Authorization") == signed.authorization)
        await transport.shutdown()
        await server.shutdown()
    }

    @Test func datesAreUTCWhateverTheMachineTimeZone() {
        setenv("TZ", "Pacific/Kiritimati", 1)
        tzset()
        defer {
            unsetenv("TZ")
            tzset()
        }
        let (amzDate, day) = SigV4Signer.timestamps(Self.frozen)
        #expect(amzDate == "20150830T123600Z")
        #expect(day == "20150830")
    }
}

/// Fixed credentials for tests.
struct StaticCredentials: CredentialProvider {
    let value: AWSCredentials?
    init(_ value: AWSCredentials?) { self.value = value }
    var name: String { "static" }
    func credentials() async throws(CredentialError) -> AWSCredentials? { value }
}
