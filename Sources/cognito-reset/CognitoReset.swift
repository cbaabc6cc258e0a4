import ArgumentParser
import CognitoClient
import Foundation
import ResetQueue

/// The `cognito-reset` command line. Thin: parses, wires the libraries, maps errors to exit codes.
@main
struct CognitoReset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cognito-reset",
        abstract: "Amazon Cognito password resets from a PostgreSQL job queue.",
        discussion: """
            Exit codes: 0 ok, 1 failure, 2 usage or bad input, 3 cannot reach a dependency.
            Database: DATABASE_URL (libpq URI or conninfo; PG* variables, ~/.pgpass and sslmode work as in psql).
            """,
        version: CognitoResetVersion.description,
        subcommands: [
            MigrateCommand.self, WorkerCommand.self, EnqueueCommand.self, ImportCommand.self, StatusCommand.self, JobsCommand.self, PruneCommand.self,
            RateCommand.self, PoolCommand.self,
            AdminResetCommand.self, ChangePasswordCommand.self,
        ]
    )

    /// Parses and runs the command, turning every error into one line on stderr and an exit code.
    static func main() async {
        ProcessSignals.unblockTermination()
        let code: Int32
        if let invalid = RawInputCheck.check() {
            end(report(invalid))
        }
        do {
            var command = try parseAsRoot()
            // After parsing, so --help and --version work whatever the environment holds (a help
            // request parses as the parser's own help command, which reads no setting).
            if String(describing: type(of: command)) != "HelpCommand" {
                try Settings.checkEnvironment(ProcessInfo.processInfo.environment)
            }
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            code = 0
        } catch {
            code = report(error)
        }
        end(code)
    }

    /// Ends the process once its output is flushed, without C's exit-time handlers.
    ///
    /// Every resource a command opened is closed by then, but a libpq thread can still be on its
    /// way out: a `LISTEN` thread that the stop woke while it was inside a connect finishes that
    /// connect (a SCRAM handshake, OpenSSL's hashing) before it sees the stop. `exit` would run
    /// OpenSSL's exit-time cleanup under it and free what it is using: a drain that ended during
    /// that handshake died of a double free or a bad pointer (seen in CI, and reproduced with a
    /// slow SCRAM verifier). Nothing of ours needs an exit handler, so none runs.
    static func end(_ code: Int32) -> Never {
        fflush(nil)
        _exit(code)
    }

    /// Prints `error` for a person and returns the exit code it maps to.
    static func report(_ error: any Error) -> Int32 {
        if let error = error as? CLIError {
            printError(error.message)
            return error.exitCode
        }
        let exitCode = exitCode(for: error)
        if exitCode == .success {  // --help, --version
            print(fullMessage(for: error))
            return 0
        }
        if let code = error as? ExitCode { return code.rawValue }
        printError(message(for: error).replacingOccurrences(of: "Error: ", with: ""))
        // Usage errors get our exit code for bad input; anything unexpected is a failure.
        return exitCode == .validationFailure ? CLIError.badInputCode : CLIError.failureCode
    }
}

/// Writes one line to standard error.
func printError(_ message: String) {
    let line = "error: " + SafeText.escaped(message.split(whereSeparator: \.isNewline).joined(separator: " ")) + "\n"
    FileHandle.standardError.write(Data(line.utf8))
}

/// Signal set-up before anything else runs.
enum ProcessSignals {
    /// A parent may start us with SIGTERM/SIGINT blocked (the mask is inherited); a daemon that
    /// cannot see SIGTERM cannot shut down gracefully. Unblock them while this is the only thread.
    static func unblockTermination() {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        sigprocmask(SIG_UNBLOCK, &signals, nil)
    }
}
