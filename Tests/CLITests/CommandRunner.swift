import Foundation
import SystemTesting

/// The checkout the tests run from (VERSION, migrations/, systemd/, .build/).
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Runs the built `cognito-reset` binary as a subprocess, the way operators and scripts do.
enum CognitoResetBinary {
    /// `$COGNITO_RESET_BIN` (set by scripts/test.sh), else the debug build in this checkout.
    static var url: URL {
        if let path = ProcessInfo.processInfo.environment["COGNITO_RESET_BIN"] {
            return URL(fileURLWithPath: path)
        }
        return repositoryRoot.appending(path: ".build/debug/cognito-reset")
    }

    /// Runs with `arguments`. The environment is this process's minus DATABASE_URL, PG* and AWS*
    /// variables, plus `environment`, so each test says exactly which database and AWS it means.
    static func run(_ arguments: [String], environment: [String: String] = [:], stdin: String? = nil) async throws -> ChildProcess.Result {
        try await ChildProcess.run(url, arguments, environment: Self.environment(environment), stdin: stdin)
    }

    /// Starts the binary without waiting (daemons), environment as for `run`.
    static func start(_ arguments: [String], environment: [String: String]) throws -> ChildProcess {
        try ChildProcess(url, arguments, environment: Self.environment(environment))
    }

    /// This process's environment minus DATABASE_URL, PG*, AWS* and COGNITO_RESET_* (the daemon
    /// refuses unknown COGNITO_RESET_ names such as the test runner's COGNITO_RESET_BIN), plus `extra`.
    static func environment(_ extra: [String: String]) -> [String: String] {
        var merged = ProcessInfo.processInfo.environment.filter { key, _ in
            key != "DATABASE_URL" && !key.hasPrefix("PG") && !key.hasPrefix("AWS_") && !key.hasPrefix("COGNITO_RESET_")
        }
        merged["AWS_EC2_METADATA_DISABLED"] = "true"
        merged.merge(extra) { _, new in new }
        return merged
    }
}
