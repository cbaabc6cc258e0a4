import CognitoClient
import Foundation
import ResetQueue
import Testing

@Suite("Reset requests and schedule times")
struct ResetRequestTests {
    let pool = try! UserPoolID("eu-west-1_AbC123")
    let user = try! Username("alice")

    @Test func rangesAreCheckedWithTheFieldNamed() throws {
        #expect(throws: InvalidInput(field: "priority", rule: "must be an integer from 0 (most urgent) to 1000")) {
            try ResetRequest(userPoolID: pool, username: user, priority: -1)
        }
        #expect(throws: InvalidInput.self) { try ResetRequest(userPoolID: pool, username: user, priority: 1001) }
        #expect(throws: InvalidInput.self) { try ResetRequest(userPoolID: pool, username: user, maxAttempts: 0) }
        #expect(throws: InvalidInput.self) { try ResetRequest(userPoolID: pool, username: user, idempotencyKey: "") }
        #expect(throws: InvalidInput.self) {
            try ResetRequest(userPoolID: pool, username: user, idempotencyKey: String(repeating: "k", count: 256))
        }
        let request = try ResetRequest(userPoolID: pool, username: user)
        #expect(request.priority == 100)
        #expect(request.maxAttempts == 10)
    }

    @Test func scheduleTimesAcceptRFC3339WithAZoneAndDelays() throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(try ScheduleTime.parse("now", field: "run-at", now: now) == now)
        #expect(try ScheduleTime.parse("+90s", field: "run-at", now: now) == now.addingTimeInterval(90))
        #expect(try ScheduleTime.parse("+30m", field: "run-at", now: now) == now.addingTimeInterval(1800))
        #expect(try ScheduleTime.parse("+2h", field: "run-at", now: now) == now.addingTimeInterval(7200))
        #expect(try ScheduleTime.parse("+1d", field: "run-at", now: now) == now.addingTimeInterval(86_400))
        #expect(try ScheduleTime.parse("2027-01-15T08:00:00Z", field: "run-at", now: now).timeIntervalSince1970 == 1_800_000_000)
        #expect(
            try ScheduleTime.parse("2027-01-15T09:00:00+01:00", field: "run-at", now: now)
                == ScheduleTime.parse("2027-01-15T08:00:00Z", field: "run-at", now: now))
        #expect(
            try ScheduleTime.parse("2027-01-15T08:00:00.250Z", field: "run-at", now: now).timeIntervalSince1970
                == ScheduleTime.parse("2027-01-15T08:00:00Z", field: "run-at", now: now).timeIntervalSince1970 + 0.25)
        #expect(try ScheduleTime.parse("+3650d", field: "run-at", now: now) == now.addingTimeInterval(3650 * 86_400))
        // Ten years at most in any unit (a huge number of days once overflowed the conversion).
        for bad in ["tomorrow", "2027-01-15T08:00:00", "2027-01-15", "+5", "+-5m", "+5w", "", "+3651d", "+87601h", "+200000000d"] {
            #expect(throws: InvalidInput.self, "\(bad)") { try ScheduleTime.parse(bad, field: "run-at", now: now) }
        }
    }
}
