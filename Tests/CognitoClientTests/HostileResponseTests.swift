import CognitoTesting
import Foundation
import Testing

@testable import CognitoClient

/// Answers a misbehaving server (or a proxy, a captive portal) may give in Cognito's place: only a
/// 2xx whose body is a JSON object with no error type is a success; a redirect is never followed;
/// the whole exchange has a deadline; the server's text comes back escaped.
@Suite("Hostile responses")
struct HostileResponseTests {
    struct Scenario: Sendable, CustomTestStringConvertible {
        let testDescription: String
        let reply: FakeHTTPServer.Reply
        let code: String
        let errorClass: CognitoError.ErrorClass
    }

    static let notSuccesses: [Scenario] = [
        .init(
            testDescription: "200 with a UserNotFoundException type",
            reply: .respond(status: 200, body: #"{"__type":"UserNotFoundException","message":"User does not exist."}"#),
            code: "UserNotFoundException", errorClass: .transient),
        .init(
            testDescription: "200 with a TooManyRequestsException type",
            reply: .respond(status: 200, body: #"{"__type":"TooManyRequestsException"}"#),
            code: "TooManyRequestsException", errorClass: .throttled),
        .init(
            testDescription: "200 with an error type in a code field",
            reply: .respond(status: 200, body: #"{"code":"UserNotFoundException"}"#),
            code: "UserNotFoundException", errorClass: .transient),
        .init(
            testDescription: "200 with an X-Amzn-ErrorType header",
            reply: .respond(status: 200, headers: [("X-Amzn-ErrorType", "InternalErrorException")], body: "{}"),
            code: "InternalErrorException", errorClass: .transient),
        .init(
            testDescription: "200 with an HTML login page",
            reply: .respond(status: 200, headers: [("Content-Type", "text/html")], body: "<html><body>Please log in</body></html>"),
            code: "InvalidResponse", errorClass: .transient),
        .init(
            testDescription: "200 with a body that is not JSON", reply: .respond(status: 200, body: "OK"),
            code: "InvalidResponse", errorClass: .transient),
        .init(
            testDescription: "200 with a JSON array", reply: .respond(status: 200, body: "[]"),
            code: "InvalidResponse", errorClass: .transient),
        .init(
            testDescription: "200 with no body", reply: .respond(status: 200, body: ""),
            code: "InvalidResponse", errorClass: .transient),
        .init(
            testDescription: "204 with no body", reply: .respond(status: 204),
            code: "InvalidResponse", errorClass: .transient),
    ]

    @Test(arguments: notSuccesses)
    func onlyACleanJSONObjectIsASuccess(_ scenario: Scenario) async throws {
        try await ClientFixture.with { fixture in
            // Transient answers are retried: the same answer each time.
            fixture.server.enqueue(contentsOf: Array(repeating: scenario.reply, count: 3))
            let error = try await #require(throws: CognitoError.self) { try await fixture.reset() }
            #expect(error.code == scenario.code)
            #expect(error.errorClass == scenario.errorClass)
        }
    }

    @Test(arguments: [301, 302, 303, 307, 308])
    func redirectsAreErrorsAndNeverFollowed(_ status: Int) async throws {
        let elsewhere = try await FakeHTTPServer.start()
        defer { Task { await elsewhere.shutdown() } }
        try await ClientFixture.with { fixture in
            let redirect = FakeHTTPServer.Reply.respond(status: status, headers: [("Location", elsewhere.url.absoluteString + "/")])
            fixture.server.enqueue(contentsOf: Array(repeating: redirect, count: 3))
            let error = try await #require(throws: CognitoError.self) { try await fixture.reset() }
            #expect(error.code == "Redirect")
            #expect(error.errorClass == .transient)
            #expect(error.httpStatus == status)
            #expect(elsewhere.requests.isEmpty, "the pool id and username must not reach the redirect's host")
        }
        await elsewhere.shutdown()
    }

    @Test func aBodyTrickledPastTheDeadlineTimesOut() async throws {
        // Every byte arrives well within the read timeout, the whole body long after the deadline.
        let timeouts = HTTPTransport.Timeouts(connect: .seconds(5), read: .seconds(2), total: .seconds(1))
        try await ClientFixture.with(timeouts: timeouts) { fixture in
            // A valid body, complete after 30 s: without the deadline each attempt would succeed then.
            let trickle = FakeHTTPServer.Reply.slowBody(
                status: 200, headers: [], chunks: ["{"] + Array(repeating: " ", count: 58) + ["}"], pause: .milliseconds(500))
            fixture.server.enqueue(contentsOf: Array(repeating: trickle, count: 3))
            let started = ContinuousClock.now
            let error = try await #require(throws: CognitoError.self) { try await fixture.reset() }
            #expect(error.code == "Timeout")
            #expect(error.errorClass == .transient)
            // Three attempts of one second each (sleeps are recorded, not slept), with a wide
            // margin for a loaded machine; one trickle alone takes 30 s.
            #expect(ContinuousClock.now - started < .seconds(29))
        }
    }

    @Test func theServersTextComesBackEscaped() async throws {
        try await ClientFixture.with { fixture in
            fixture.server.enqueue(
                .respond(
                    status: 400, headers: [("x-amzn-requestid", "id-\u{202E}-1")],
                    body: #"{"__type":"InvalidParameterException","message":"bad \u001b[31mred\u001b[0m \u202e txt"}"#))
            let error = try await #require(throws: CognitoError.self) { try await fixture.reset() }
            #expect(error.message == "bad \\x1b[31mred\\x1b[0m \\u{202e} txt")
            #expect(error.requestID == "id-\\u{202e}-1")
            #expect(!"\(error)".unicodeScalars.contains { $0.value < 0x20 })
        }
    }

    @Test func aCleanSuccessIsASuccess() async throws {
        try await ClientFixture.with { fixture in
            fixture.server.enqueue(.respond(status: 200, headers: [("x-amzn-requestid", "ok-9")], body: #"{"CodeDeliveryDetails":{}}"#))
            let response = try await fixture.reset()
            #expect(response.requestID == "ok-9")
        }
    }
}
