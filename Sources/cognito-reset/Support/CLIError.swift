import CognitoClient
import Foundation
import Postgres

/// An error the command line reports as one line and an exit code (docs/design.md, "Exit codes").
struct CLIError: Error {
    static let failureCode: Int32 = 1
    static let badInputCode: Int32 = 2
    static let unavailableCode: Int32 = 3

    let message: String
    let exitCode: Int32

    static func badInput(_ message: String) -> CLIError { CLIError(message: message, exitCode: badInputCode) }
    static func failure(_ message: String) -> CLIError { CLIError(message: message, exitCode: failureCode) }
    static func unavailable(_ message: String) -> CLIError { CLIError(message: message, exitCode: unavailableCode) }

    /// Bad input named by field and rule.
    init(_ invalid: InvalidInput) {
        // Command-line options are lower-case (`--pool`); API fields (`ProposedPassword`) are not.
        let field = invalid.field.first?.isLowercase == true ? "--\(invalid.field)" : invalid.field
        self.init(message: "\(field): \(invalid.rule)", exitCode: Self.badInputCode)
    }

    init(message: String, exitCode: Int32) {
        self.message = message
        self.exitCode = exitCode
    }

    /// Maps a database error: unreachable → 3; a row the schema refuses (constraint, bad value) → 2
    /// naming the constraint; anything else → 1.
    init(_ error: PostgresError) {
        if error.isConnectionError {
            self = .unavailable("cannot reach the database: \(error)")
        } else if error.code == .invalidConfiguration {
            self = .badInput("DATABASE_URL: \(error.message)")
        } else if let state = error.sqlState, state.hasPrefix("23") || state.hasPrefix("22") {
            let constraint = error.constraintName.map { " (constraint \($0))" } ?? ""
            self = .badInput("the database refused the values: \(error.message)\(constraint)")
        } else {
            self = .failure("database error: \(error)")
        }
    }
}

/// Runs `body`, converting library errors into `CLIError`s.
func mappingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as InvalidInput {
        throw CLIError(error)
    } catch let error as PostgresError {
        throw CLIError(error)
    } catch let error as CognitoError {
        throw CLIError(error)
    }
}

/// The encoder for `--json` output: snake_case keys, sorted, ISO 8601 dates.
func jsonEncoder() -> JSONEncoder {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = [.sortedKeys]
    return encoder
}

/// Prints one JSON object on stdout (keys sorted), for `--json` output.
func printJSON(_ object: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    Terminal.json(data)
}

/// Runs `body`, naming the command-line option in its error instead of the API field.
func relabel<T>(_ option: String, _ body: () throws(InvalidInput) -> T) throws(InvalidInput) -> T {
    do {
        return try body()
    } catch {
        throw InvalidInput(field: option, rule: error.rule)
    }
}
