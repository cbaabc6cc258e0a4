import CognitoClient
import Testing

@Suite("Input validation against the service model")
struct InputValidationTests {
    @Test(arguments: ["eu-west-1_AbC123", "us-east-1_a", "cn-north-1_X9", "my_custom-pool_abc", "a_b"])
    func acceptsValidPoolIDs(_ id: String) throws {
        #expect(try UserPoolID(id).rawValue == id)
    }

    @Test(arguments: [
        "", "eu-west-1", "eu-west-1_", "_abc", "eu west-1_abc", "eu-west-1_ab-c", "eu-west-1_ab!c",
        "eu-west-1_" + String(repeating: "a", count: 46), "ëu-west-1_abc",
    ])
    func refusesInvalidPoolIDs(_ id: String) {
        #expect(throws: InvalidInput.self) { try UserPoolID(id) }
    }

    @Test func thePoolIDCarriesItsRegion() throws {
        #expect(try UserPoolID("eu-west-1_AbC123").region == "eu-west-1")
        #expect(try UserPoolID("us-gov-west-1_x").region == "us-gov-west-1")
    }

    @Test(arguments: [
        "alice", "alice@example.com", "Zoë", "東京", "+4915112345678", "a!#$%&'*+/=?^_`{|}~-",
        String(repeating: "u", count: 128),
    ])
    func acceptsValidUsernames(_ name: String) throws {
        #expect(try Username(name).rawValue == name)
    }

    @Test(arguments: [
        "", "al ice", "tab\there", "new\nline", "nul\u{0}", "nbsp\u{00A0}x", String(repeating: "u", count: 129),
        String(repeating: "🙂", count: 65),
    ])
    func refusesInvalidUsernames(_ name: String) {
        #expect(throws: InvalidInput.self) { try Username(name) }
    }

    /// Plain ASCII is decided on bytes: each ASCII character must get the same answer there as
    /// next to a non-ASCII one, where every scalar's general category decides.
    @Test func asciiUsernamesGetTheSameAnswerOnBothPaths() {
        for code in UInt8(0)..<0x80 {
            let character = String(UnicodeScalar(code))
            let fast = (try? Username("a" + character)) != nil
            let slow = (try? Username("é" + character)) != nil
            #expect(fast == slow, "U+\(String(code, radix: 16))")
            #expect(fast == (0x21...0x7E).contains(code), "U+\(String(code, radix: 16))")
        }
    }

    /// Only ASCII letters and digits (and '-', '_' before the last '_') make a pool id.
    @Test func poolIDsTakeOnlyTheirASCIICharacters() {
        for code in UInt8(0)..<0x80 {
            let character = Character(UnicodeScalar(code))
            let alphanumeric = character.isLetter || character.isNumber
            #expect(((try? UserPoolID("eu-west-1\(character)_Ab1")) != nil) == (alphanumeric || character == "-" || character == "_"))
            // An '_' there is the last one, so the id splits there instead ("eu-west-1_A" + "b").
            #expect(((try? UserPoolID("eu-west-1_A\(character)b")) != nil) == (alphanumeric || character == "_"))
        }
        for id in ["eu-west-1_Ab\u{E9}", "eu-wést-1_Ab", "eu-west-1_Ab\u{301}", "eu-west-1_\u{FF21}b"] {
            #expect(throws: InvalidInput.self) { try UserPoolID(id) }
        }
    }

    @Test func errorsNameTheFieldAndRuleButNotTheValue() {
        let secretish = "very secret value"
        let error = #expect(throws: InvalidInput.self) { try Username(secretish) }
        #expect(error?.field == "Username")
        #expect(error.map { !"\($0)".contains(secretish) } == true)
        #expect(throws: InvalidInput.self) { try ClientMetadata(["": "x"]) }
    }
}
