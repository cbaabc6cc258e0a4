import CognitoTesting
import Testing

@testable import CognitoClient

/// The fake Cognito's two ways of keeping track: every request (tests read them back), or a count
/// only (the bench's long-running `--serve`, whose memory must stay flat over millions of calls).
@Suite struct FakeServerTests {
    @Test func aServerKeepsEveryRequestByDefault() async throws {
        try await ClientFixture.with { fixture in
            for _ in 0..<3 { _ = try await fixture.reset() }
            await fixture.server.waitForRequests(3)
            #expect(fixture.server.receivedCount == 3)
            #expect(fixture.server.requests.count == 3)
        }
    }

    @Test func aServerThatOnlyCountsAnswersCountsAndKeepsNothing() async throws {
        try await ClientFixture.with(keepsRequests: false) { fixture in
            for _ in 0..<3 {
                let response = try await fixture.reset()
                #expect(response.requestID == "req-ok")
            }
            await fixture.server.waitForRequests(3)
            #expect(fixture.server.receivedCount == 3)
            #expect(fixture.server.requests.isEmpty)
        }
    }
}
