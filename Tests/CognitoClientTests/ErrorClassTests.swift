import CognitoTesting
import Foundation
import Synchronization
import Testing

@testable import CognitoClient

/// Every error class, produced by a scripted fake server, with retries as botocore's standard mode.
@Suite("Errors and retries")
struct ErrorClassTests {
    struct Scenario: Sendable, CustomTestStringConvertible {
        let testDescription: String
        let replies: [FakeHTTPServer.Reply]
        let code: String
        let errorClass: CognitoError.ErrorClass
        /// Requests the server should see (1 = not retried).
        let requests: Int
        /// Only the scenarios about timing out use short timeouts.
        var timeouts = ClientFixture.patient
    }

    static let failures: [Scenario] = [
        .init(
            testDescription: "throttling is returned at once", replies: [.cognitoError(400, type: "TooManyRequestsException", message: "Rate exceeded")],
            code: "TooManyRequestsException", errorClass: .throttled, requests: 1),
        .init(
            testDescription: "HTTP 429 without a type is throttling", replies: [.respond(status: 429, body: "")],
            code: "HTTP 429", errorClass: .throttled, requests: 1),
        .init(
            testDescription: "LimitExceeded is long throttling",
            replies: [.cognitoError(400, type: "LimitExceededException", message: "Attempt limit exceeded")],
            code: "LimitExceededException", errorClass: .throttledLong, requests: 1),
        .init(
            testDescription: "500 InternalError is retried to the limit",
            replies: Array(repeating: .cognitoError(500, type: "InternalErrorException", message: "oops"), count: 3),
            code: "InternalErrorException", errorClass: .transient, requests: 3),
        .init(
            testDescription: "503 without a body", replies: Array(repeating: .respond(status: 503), count: 3),
            code: "HTTP 503", errorClass: .transient, requests: 3),
        .init(
            testDescription: "connection reset", replies: Array(repeating: .closeConnection, count: 3),
            code: "NetworkError", errorClass: .transient, requests: 3),
        .init(
            testDescription: "no answer times out", replies: Array(repeating: .hang, count: 3),
            code: "Timeout", errorClass: .transient, requests: 3, timeouts: ClientFixture.impatient),
        .init(
            testDescription: "a body slower than the read timeout",
            replies: Array(repeating: .slowBody(status: 200, headers: [], chunks: ["{", "}"], pause: .seconds(2)), count: 3),
            code: "Timeout", errorClass: .transient, requests: 3, timeouts: ClientFixture.impatient),
        .init(
            testDescription: "a non-JSON 502 body", replies: Array(repeating: .respond(status: 502, body: "<html>Bad Gateway</html>"), count: 3),
            code: "HTTP 502", errorClass: .transient, requests: 3),
        .init(
            testDescription: "a truncated JSON body", replies: [.respond(status: 400, body: #"{"__type":"UserNotFo"#)],
            code: "HTTP 400", errorClass: .permanent, requests: 1),
        .init(
            testDescription: "an unknown 4xx type", replies: [.cognitoError(400, type: "BrandNewException", message: "new")],
            code: "BrandNewException", errorClass: .permanent, requests: 1),
        .init(
            testDescription: "an unknown 5xx type", replies: Array(repeating: .cognitoError(599, type: "BrandNewFault", message: "new"), count: 3),
            code: "BrandNewFault", errorClass: .transient, requests: 3),
        .init(
            testDescription: "user not found", replies: [.cognitoError(400, type: "UserNotFoundException", message: "User does not exist.")],
            code: "UserNotFoundException", errorClass: .permanent, requests: 1),
        .init(
            testDescription: "a namespaced type in the header only",
            replies: [.respond(status: 400, headers: [("X-Amzn-ErrorType", "aws.cognito#ResourceNotFoundException:http://internal.amazon.com/")], body: "")],
            code: "ResourceNotFoundException", errorClass: .permanent, requests: 1),
        .init(
            testDescription: "pool configuration errors", replies: [.cognitoError(400, type: "InvalidEmailRoleAccessPolicyException", message: "x")],
            code: "InvalidEmailRoleAccessPolicyException", errorClass: .permanent, requests: 1),
    ]

    @Test(arguments: failures)
    func classifies(_ scenario: Scenario) async throws {
        try await ClientFixture.with(timeouts: scenario.timeouts) { fixture in
            fixture.server.enqueue(contentsOf: scenario.replies)
            let error = try await #require(throws: CognitoError.self) { try await fixture.reset() }
            #expect(error.code == scenario.code)
            #expect(error.errorClass == scenario.errorClass)
            #expect(error.operation == "AdminResetUserPassword")
            #expect(fixture.server.requests.count == scenario.requests)
            #expect(fixture.sleeps.all.count == scenario.requests - 1)
        }
    }

    @Test func anErrorKeepsTheServiceMessageStatusAndRequestID() async throws {
        try await ClientFixture.with { fixture in
            fixture.server.enqueue(.cognitoError(400, type: "UserNotFoundException", message: "User does not exist.", requestID: "abc-123"))
            let error = try await #require(throws: CognitoError.self) { try await fixture.reset() }
            #expect(error.message == "User does not exist.")
            #expect(error.httpStatus == 400)
            #expect(error.requestID == "abc-123")
            #expect("\(error)" == "AdminResetUserPassword failed: UserNotFoundException: User does not exist. (HTTP 400, request id abc-123)")
        }
    }

    @Test func aTransientFailureThenSuccessSucceedsWithJitteredBackoff() async throws {
        try await ClientFixture.with { fixture in
            fixture.server.enqueue(.respond(status: 503), .closeConnection, .cognitoSuccess(requestID: "ok-1"))
            let response = try await fixture.reset()
            #expect(response.requestID == "ok-1")
            #expect(response.attempts == 3)
            // Full jitter with random() = 0.5: 0.5 × 1 s, then 0.5 × 2 s.
            #expect(fixture.sleeps.all == [.milliseconds(500), .seconds(1)])
        }
    }

    @Test func backoffIsCappedAtTwentySeconds() {
        let policy = RetryPolicy()
        #expect(policy.delay(beforeRetry: 1, unitRandom: 0.999) < .seconds(1))
        #expect(policy.delay(beforeRetry: 10, unitRandom: 1) == .seconds(20))
        #expect(policy.delay(beforeRetry: 3, unitRandom: 0) == .zero)
    }

    @Test func anExhaustedRetryQuotaStopsRetrying() async throws {
        // Room for one retry only (cost 5): the outage does not multiply traffic.
        let quota = RetryQuota(capacity: 7)
        try await ClientFixture.with(quota: quota) { fixture in
            fixture.server.enqueue(.respond(status: 500), .respond(status: 500))
            _ = try? await fixture.reset()
            #expect(fixture.server.requests.count == 2)
            #expect(quota.tokens == 2)
            fixture.server.enqueue(.respond(status: 500))
            _ = try? await fixture.reset()
            #expect(fixture.server.requests.count == 3, "no token left: the second call is not retried")
            // Successes refill the bucket.
            _ = try await fixture.reset()
            #expect(quota.tokens == 3)
        }
    }

    @Test func rejectedCredentialsAreRefreshedOnceThenReported() async throws {
        let counter = CountingCredentials()
        try await ClientFixture.with(credentials: counter) { fixture in
            fixture.server.enqueue(
                .cognitoError(400, type: "ExpiredTokenException", message: "The security token included in the request is expired"),
                .cognitoError(400, type: "UnrecognizedClientException", message: "The security token included in the request is invalid."))
            let error = try await #require(throws: CognitoError.self) { try await fixture.reset() }
            #expect(error.errorClass == .credentials)
            #expect(fixture.server.requests.count == 2)
            #expect(counter.calls == 2, "fetched at first use and once more after the rejection")

            fixture.server.enqueue(.cognitoError(400, type: "ExpiredTokenException", message: "expired"), .cognitoSuccess())
            #expect(try await fixture.reset().attempts == 2)
        }
    }

    @Test func noCredentialsIsACredentialsErrorAndNothingIsSent() async throws {
        try await ClientFixture.with(credentials: StaticCredentials(nil)) { fixture in
            let error = try await #require(throws: CognitoError.self) { try await fixture.reset() }
            #expect(error.code == "NoCredentials")
            #expect(error.errorClass == .credentials)
            #expect(fixture.server.requests.isEmpty)
        }
    }

    @Test func aPoolFromAnotherRegionIsCalledInItsOwnRegion() async throws {
        try await ClientFixture.with { fixture in
            // The client's configured region is eu-west-1: only a default for calls without a pool.
            _ = try await fixture.client.adminResetUserPassword(userPoolID: UserPoolID("us-east-1_Other"), username: Username("bob"))
            let request = try #require(fixture.server.requests.first)
            #expect(request.signingRegion == "us-east-1")
            #expect(request.signingService == "cognito-idp")
        }
    }

    @Test func aPoolWhoseIdNamesNoRegionFailsForGoodWithoutSending() async throws {
        try await ClientFixture.with { fixture in
            let error = try await #require(throws: CognitoError.self) {
                try await fixture.client.adminResetUserPassword(userPoolID: UserPoolID("Not_A_Region_x1"), username: Username("bob"))
            }
            #expect(error.code == CognitoError.invalidInput)
            #expect(error.errorClass == .permanent)
            #expect(error.message.contains("UserPoolId"))
            #expect(fixture.server.requests.isEmpty)
        }
    }
}

/// Hands out fresh credentials on every fetch and counts the fetches.
final class CountingCredentials: CredentialProvider, Sendable {
    private let count = Mutex(0)
    var calls: Int { count.withLock { $0 } }
    var name: String { "counting" }
    func credentials() async throws(CredentialError) -> AWSCredentials? {
        let n = count.withLock {
            $0 += 1
            return $0
        }
        return AWSCredentials(accessKeyID: "AKID\(n)", secretAccessKey: TestSecrets.secretKey, source: name)
    }
}

extension FakeHTTPServer {
    func enqueue(contentsOf replies: [Reply]) {
        for reply in replies { enqueue(reply) }
    }
}
