import CognitoClient
import Testing

@Suite("Input validation against the service model")
struct InputValidationTests {
    @Test(arguments: ["eu-west-1_AbC123", "us-east-1_a", "cn-north-1_X9", "my_custom-pool_abc", "a_b"])
    func acceptsValidPoolIDs(_ id: String) throws {
        #expect(try UserPoolID(id).rawValue == id)
    }

    @Test(arguments: ["", "eu-west-1", "eu-west-1_", "_abc", "eu west-1_abc", "eu-west-1_ab-c", "eu-west-1_ab!c",
                      "eu-west-1_" + String(repeating: "a", count: 46), "ëu-west-1_abc"])
    func refusesInvalidPoolIDs(_ id: String) {
        #expect(throws: InvalidInput.self) { try UserPoolID(id) }
    }

    @Test func thePoolIDCarriesItsRegion() throws {
        #expect(try UserPoolID("eu-west-1_AbC123").region == "eu-west-1")
        #expect(try UserPoolID("us-gov-west-1_x").region == "us-gov-west-1")
    }

    @Test(arguments: ["alice", "alice@example.com", "Zoë", "東京", "+4915112345678", "a!#$%&'*+/=?^_`{|}~-",
                      String(repeating: "u", count: 128)])
    func acceptsValidUsernames(_ name: String) throws {
        #expect(try Username(name).rawValue == name)
    }

    @Test(arguments: ["", "al ice", "tab\there", "new\nline", "nul\u{0}", "nbsp\u{00A0}x", String(repeating: "u", count: 129),
                      String(repeating: "🙂", count: 65)])
    func refusesInvalidUsernames(_ name: String) {
        #expect(throws: InvalidInput.self) { try Username(name) }
    }

    @Test func errorsNameTheFieldAndRuleButNotTheValue() {
        let secretish = "very secret value"
        let error = #expect(throws: InvalidInput.self) { try Username(secretish) }
        #expect(error?.field == "Username")
        #expect(error.map { !"\($0)".contains(secretish) } == true)
        #expect(throws: InvalidInput.self) { try ClientMetadata(["": "x"]) }
    }
}
