import CognitoTesting
import Foundation
import SystemTesting
import Testing

@Suite("cognito-reset admin-reset and change-password")
struct CognitoCommandTests {
    func environment(_ server: FakeHTTPServer) -> [String: String] {
        [
            "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "cli-secret-key-value",
            "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": server.url.absoluteString,
        ]
    }

    @Test func adminResetPrintsTheRequestID() async throws {
        let server = try await FakeHTTPServer.start(fallback: .cognitoSuccess(requestID: "rid-42"))
        let result = try await CognitoResetBinary.run(
            ["admin-reset", "--pool", "eu-west-1_Abc", "--user", "alice", "--metadata", "ticket=T-1"], environment: environment(server))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("rid-42"))
        let sent = try #require(server.requests.first)
        #expect(sent.body == #"{"UserPoolId":"eu-west-1_Abc","Username":"alice","ClientMetadata":{"ticket":"T-1"}}"#)
        #expect(sent.header("Authorization")?.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDTEST/") == true)
        await server.shutdown()
    }

    @Test func adminResetExitCodesFollowTheErrorClass() async throws {
        let server = try await FakeHTTPServer.start()
        server.enqueue(.cognitoError(400, type: "UserNotFoundException", message: "User does not exist.", requestID: "rid-1"))
        let missing = try await CognitoResetBinary.run(["admin-reset", "--pool", "eu-west-1_Abc", "--user", "x"], environment: environment(server))
        #expect(missing.status == 1)
        #expect(missing.stderr == "error: AdminResetUserPassword failed: UserNotFoundException: User does not exist. (HTTP 400, request id rid-1)\n")

        server.enqueue(.respond(status: 503), .respond(status: 503), .respond(status: 503))
        let down = try await CognitoResetBinary.run(["admin-reset", "--pool", "eu-west-1_Abc", "--user", "x"], environment: environment(server))
        #expect(down.status == 3)
        #expect(down.stderr.hasPrefix("error: cannot reach Cognito"))

        let badPool = try await CognitoResetBinary.run(["admin-reset", "--pool", "nope", "--user", "x"], environment: environment(server))
        #expect(badPool.status == 2)
        #expect(badPool.stderr.hasPrefix("error: --pool:"))

        // A pool id whose prefix is no region name: no endpoint to call.
        let noRegion = try await CognitoResetBinary.run(["admin-reset", "--pool", "Not_A_Region_Abc", "--user", "x"], environment: environment(server))
        #expect(noRegion.status == 2)
        #expect(noRegion.stderr.contains("UserPoolId"))

        var noKeys = environment(server)
        noKeys["AWS_ACCESS_KEY_ID"] = nil
        noKeys["AWS_SECRET_ACCESS_KEY"] = nil
        noKeys["HOME"] = "/nonexistent"
        let unconfigured = try await CognitoResetBinary.run(["admin-reset", "--pool", "eu-west-1_Abc", "--user", "x"], environment: noKeys)
        #expect(unconfigured.status == 2)
        #expect(unconfigured.stderr.contains("no AWS credentials found"))

        for result in [missing, down, badPool, noRegion, unconfigured] {
            #expect(!result.stderr.contains("cli-secret-key-value"))
            #expect(result.stderr.split(separator: "\n").count == 1)
        }
        #expect(server.requests.count == 4, "bad input sends nothing")

        // A pool of another region than AWS_REGION is called in its own region.
        let otherRegion = try await CognitoResetBinary.run(["admin-reset", "--pool", "us-east-1_Abc", "--user", "x"], environment: environment(server))
        #expect(otherRegion.status == 0, "\(otherRegion.stderr)")
        #expect(server.requests.last?.signingRegion == "us-east-1")
        await server.shutdown()
    }

    @Test func changePasswordReadsPasswordsFromStdinNeverArguments() async throws {
        let server = try await FakeHTTPServer.start(fallback: .cognitoSuccess(requestID: "rid-cp"))
        let tokenFile = FileManager.default.temporaryDirectory.appending(path: "token-\(UUID().uuidString)")
        try "access.token.value\n".write(to: tokenFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: tokenFile) }
        let result = try await CognitoResetBinary.run(
            ["change-password", "--access-token-file", tokenFile.path], environment: environment(server),
            stdin: "Old-Passw0rd!\nNew-Passw0rd!\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("rid-cp"))
        for secret in ["Old-Passw0rd!", "New-Passw0rd!", "access.token.value"] {
            #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret))
        }
        let sent = try #require(server.requests.first)
        #expect(sent.header("Authorization") == nil)
        #expect(sent.body.contains(#""ProposedPassword":"New-Passw0rd!""#))

        let onArgv = try await CognitoResetBinary.run(
            ["change-password", "--access-token-file", tokenFile.path, "--proposed-password", "x"], environment: environment(server))
        #expect(onArgv.status == 2)
        let oneLine = try await CognitoResetBinary.run(
            ["change-password", "--access-token-file", tokenFile.path], environment: environment(server), stdin: "only-one\n")
        #expect(oneLine.status == 2)
        let noFile = try await CognitoResetBinary.run(
            ["change-password", "--access-token-file", "/nonexistent/token"], environment: environment(server), stdin: "a\nb\n")
        #expect(noFile.status == 2)
        #expect(noFile.stderr.hasPrefix("error: --access-token-file:"))
        await server.shutdown()
    }
}
