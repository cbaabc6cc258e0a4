import CognitoClient
import Foundation
import Testing

/// The official AWS SigV4 test suite (from awslabs/aws-c-auth, Apache-2.0), kept in this
/// target's Fixtures so the tests need nothing outside the repository. Every case's header-signing files are compared: canonical
/// request, string to sign, signature and the full signed request.
@Suite("SigV4: official AWS test suite")
struct SigV4SuiteTests {
    static let folder = Bundle.module.resourceURL!.appending(path: "Fixtures/aws-sig-v4-test-suite")

    /// Cases this project does not run, with the reason. Every other folder must pass.
    static let skipped: [String: String] = [:]

    static var cases: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: folder.appending(path: "\($0)/request.txt").path) }
            .filter { skipped[$0] == nil }
            .sorted()
    }

    // The fixture files' own JSON keys, decoded as they are written.
    // swift-format-ignore: AlwaysUseLowerCamelCase
    struct Context: Decodable {
        struct Credentials: Decodable {
            let access_key_id: String
            let secret_access_key: String
            let token: String?
        }
        let credentials: Credentials
        let normalize: Bool
        let region: String
        let service: String
        let sign_body: Bool
        let timestamp: String
        let omit_session_token: Bool?
    }

    /// request.txt: request line, headers (continuation lines start with whitespace), blank line, body.
    struct ParsedRequest {
        var request: SigningRequest
        var headLines: [String]
        var body: String
    }

    static func parse(_ text: String) throws -> ParsedRequest {
        let (head, body): (Substring, Substring)
        if let range = text.range(of: "\n\n") {
            (head, body) = (text[..<range.lowerBound], text[range.upperBound...])
        } else {
            (head, body) = (Substring(text.hasSuffix("\n") ? String(text.dropLast()) : text), "")
        }
        let lines = head.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let requestLine = try #require(lines.first)
        let method = String(requestLine.prefix { $0 != " " })
        let target = String(requestLine.dropFirst(method.count + 1).dropLast(" HTTP/1.1".count))
        let (path, rawQuery) =
            target.firstIndex(of: "?").map {
                (String(target[..<$0]), String(target[target.index(after: $0)...]))
            } ?? (target, "")
        let query: [(name: String, value: String)] =
            rawQuery.isEmpty
            ? []
            : rawQuery.split(separator: "&").map { pair in
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(parts[0]).removingPercentEncoding ?? String(parts[0])
                let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
                return (name, value)
            }
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            if line.first == " " || line.first == "\t", !headers.isEmpty {
                headers[headers.count - 1].value += "\n" + line
            } else if let colon = line.firstIndex(of: ":") {
                headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
            }
        }
        return ParsedRequest(
            request: SigningRequest(method: method, path: path, query: query, headers: headers, body: Array(body.utf8)),
            headLines: lines, body: String(body))
    }

    func file(_ name: String, _ testCase: String) throws -> String {
        try String(contentsOf: Self.folder.appending(path: "\(testCase)/\(name)"), encoding: .utf8)
    }

    @Test(arguments: cases)
    func signsLikeTheReference(_ testCase: String) throws {
        let context = try JSONDecoder().decode(Context.self, from: Data(try file("context.json", testCase).utf8))
        let parsed = try Self.parse(try file("request.txt", testCase))
        let credentials = AWSCredentials(
            accessKeyID: context.credentials.access_key_id, secretAccessKey: context.credentials.secret_access_key,
            sessionToken: context.credentials.token, source: "test")
        let date = try #require(ISO8601DateFormatter().date(from: context.timestamp))
        let signer = SigV4Signer(
            region: context.region, service: context.service,
            options: .init(
                normalizePath: context.normalize, signSessionToken: !(context.omit_session_token ?? false),
                addContentSHA256Header: context.sign_body))
        let result = signer.sign(parsed.request, credentials: credentials, date: date)

        #expect(result.canonicalRequest == (try file("header-canonical-request.txt", testCase)))
        #expect(result.stringToSign == (try file("header-string-to-sign.txt", testCase)))
        #expect(result.signature == (try file("header-signature.txt", testCase)))
        let added = result.addedHeaders.map { "\($0.name):\($0.value)" }
        let signedRequest = (parsed.headLines + added).joined(separator: "\n") + "\n\n" + parsed.body
        #expect(signedRequest == (try file("header-signed-request.txt", testCase)))
    }

    @Test func everyCaseOfTheSuiteRuns() {
        #expect(Self.cases.count == 38)
        #expect(Self.skipped.isEmpty, "skipped cases must each say why")
    }
}
