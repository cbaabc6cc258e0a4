import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import SystemTesting
import Testing

extension WorkerProcessTests {
    /// A SCRAM verifier of 400,000 iterations (PostgreSQL's default is 4,096) for the password
    /// `slowHandshakePassword`: a client that logs in with it spends about half a second of
    /// OpenSSL hashing. Computed once, outside the tests (PBKDF2-HMAC-SHA-256, RFC 7677).
    static let slowHandshakeVerifier =
        "SCRAM-SHA-256$400000:Y29nbml0by1yZXNldC10MQ==$as5U04dzdK/IbFnnwk2zj41YO6oL8eyTwrDlibCCXq0=:YOvJCj0wnRCrh6mTohiTOfgsrlS2MW/QH5CY+cTYuCg="
    static let slowHandshakePassword = "listener-slow-handshake"

    /// A drain that finds nothing ends within milliseconds, while its `LISTEN` thread may still be
    /// inside its connect. Here that connect logs in with a slow SCRAM verifier, so the thread is
    /// certainly hashing when the process ends. The process must end without running OpenSSL's
    /// exit-time cleanup under that thread: before, about one drain in eight died of a double free
    /// or a bad pointer (a CI chaos run's final drain did, with signal 11), so twenty drains
    /// catch that nearly always.
    @Test func aDrainThatEndsWhileItsListenerStillLogsInExitsCleanly() async throws {
        let server = try await FakeHTTPServer.start()
        try await TemporaryDatabase.with { database in
            let env = environment(database, server)
            #expect(try await CognitoResetBinary.run(["migrate"], environment: env).status == 0)
            // A role of the test's own (dropped however the test ends), its password then set to
            // the slow verifier; the pool keeps logging in as the database's owner.
            try await TestRole.with("slow_listener", on: database.configuration) { role in
                let connection = try await database.connect()
                try await connection.execute(
                    "ALTER ROLE \(unescaped: role.name) PASSWORD '\(unescaped: Self.slowHandshakeVerifier)'")
                await connection.close()
                let listenURL = role.configuration.setting("password", to: Self.slowHandshakePassword).resolvedConnectionString()
                var outcomes: [Int32] = []
                for _ in 0..<20 {
                    let drain = try await CognitoResetBinary.run(
                        ["worker", "--drain", "--rate", "unlimited"], environment: env.merging(["COGNITO_RESET_LISTEN_URL": listenURL]) { $1 })
                    if drain.status != 0 { Issue.record("drain exited \(drain.status): \(drain.stderr.suffix(1500))") }
                    outcomes.append(drain.status)
                }
                #expect(outcomes == Array(repeating: 0, count: 20))
            }
        }
        await server.shutdown()
    }
}
