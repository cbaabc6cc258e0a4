import Foundation
import SystemTesting
import Testing

/// `--version` names the release (the repository's VERSION file) and the commit it was built from.
@Suite("--version")
struct VersionTests {
    @Test func printsTheVersionFileAndTheCheckoutsRevision() async throws {
        let version = try String(contentsOf: repositoryRoot.appending(path: "VERSION"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let git = try await ChildProcess.run(
            URL(fileURLWithPath: "/usr/bin/git"), ["-C", repositoryRoot.path, "rev-parse", "HEAD"],
            environment: ProcessInfo.processInfo.environment)
        try #require(git.status == 0, "git rev-parse: \(git.stderr)")
        let revision = git.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let result = try await CognitoResetBinary.run(["--version"])
        #expect(result.status == 0)
        #expect(result.stdout == "\(version) (revision \(revision))\n")
    }
}
