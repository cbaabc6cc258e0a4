import ArgumentParser
import CognitoClient
import Foundation

/// `cognito-reset change-password --access-token-file FILE`: Cognito ChangePassword for the
/// user the access token belongs to. Passwords are read from the terminal without echo, or as
/// two lines on stdin when it is not a terminal; never from arguments or the environment.
struct ChangePasswordCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "change-password",
        abstract: "Change a user's password with their access token (Cognito ChangePassword).",
        discussion: """
            On a terminal, asks for the current and the new password without echoing them. \
            Otherwise reads two lines from stdin: the current password (empty if the user has none) \
            and the new one.
            """
    )

    @Option(help: ArgumentHelp("File holding the user's access token.", valueName: "FILE"))
    var accessTokenFile: String

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = try logging.bootstrap()
        guard let data = FileManager.default.contents(atPath: accessTokenFile),
            let text = String(data: data, encoding: .utf8)
        else {
            throw CLIError.badInput("--access-token-file: cannot read \(accessTokenFile)")
        }
        let token = Secret(text.trimmingCharacters(in: .whitespacesAndNewlines))
        let (previous, proposed) = try PasswordInput.read()
        let response = try await mappingErrors {
            try await CognitoSetup.with(logger: logger) { client in
                try await client.changePassword(accessToken: token, previousPassword: previous, proposedPassword: proposed)
            }
        }
        Terminal.say("Password changed (request id \(response.requestID ?? "none")).")
    }
}

/// Reads the two passwords: from the terminal without echo, or two lines of stdin.
enum PasswordInput {
    static func read() throws -> (previous: Secret?, proposed: Secret) {
        if isatty(STDIN_FILENO) == 1 {
            let previous = try prompt("Current password (empty if none): ")
            let proposed = try prompt("New password: ")
            guard try prompt("Repeat the new password: ") == proposed else {
                throw CLIError.badInput("new password: the two entries differ")
            }
            return (previous.isEmpty ? nil : Secret(previous), Secret(proposed))
        }
        guard let previous = try line(naming: "current password"), let proposed = try line(naming: "new password") else {
            throw CLIError.badInput("stdin: expected two lines, the current password (may be empty) and the new one")
        }
        return (previous.isEmpty ? nil : Secret(previous), Secret(proposed))
    }

    /// One line of stdin without its line break, nil at the end of input. `readLine` would turn
    /// bytes that are not UTF-8 into U+FFFD, setting a password nobody typed: they are refused.
    private static func line(naming field: String) throws -> String? {
        var bytes: [UInt8] = []
        while true {
            let next = getchar()
            if next == EOF {
                if bytes.isEmpty { return nil }
                break
            }
            if next == 0x0A { break }
            bytes.append(UInt8(truncatingIfNeeded: next))
        }
        if bytes.last == 0x0D { bytes.removeLast() }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw CLIError.badInput("\(field): must be valid UTF-8 text")
        }
        return text
    }

    /// Prompts on stderr and reads one line with the terminal's echo turned off.
    private static func prompt(_ text: String) throws -> String {
        FileHandle.standardError.write(Data(text.utf8))
        var original = termios()
        tcgetattr(STDIN_FILENO, &original)
        var silent = original
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
        defer {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &original)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line = try line(naming: "password") else {
            throw CLIError.badInput("password: no input")
        }
        return line
    }
}
