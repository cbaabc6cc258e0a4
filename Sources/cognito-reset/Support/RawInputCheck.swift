import Foundation

/// Swift decodes the command line and the environment with repair: bytes that are not UTF-8
/// become U+FFFD, so `--user $'\xff\xfe'` would be stored and sent as two replacement characters,
/// a user nobody asked for. The raw bytes are checked before anything is parsed.
enum RawInputCheck {
    /// Environment variables the commands read, by prefix.
    static let environmentPrefixes = ["COGNITO_RESET_", "DATABASE_URL", "PG", "AWS_", "CREDENTIALS_DIRECTORY"]

    /// The first argument or variable that is not valid UTF-8, as bad input naming it.
    static func firstInvalid(arguments: [[UInt8]], environment: [[UInt8]]) -> CLIError? {
        let terminator = arguments.firstIndex(of: Array("--".utf8)) ?? arguments.count
        for (index, bytes) in arguments.enumerated() where index > 0 && !isUTF8(bytes) {
            // After `--` every argument is positional: named by its position, never by an option.
            let name = index > terminator ? "argument \(index)" : optionName(at: index, in: arguments)
            return .badInput("\(name): must be valid UTF-8 text")
        }
        for entry in environment {
            let name = entry.split(separator: UInt8(ascii: "="), maxSplits: 1).first.map(Array.init) ?? entry
            guard isUTF8(name) else { continue }  // not a name we read
            let text = String(decoding: name, as: UTF8.self)
            if environmentPrefixes.contains(where: { text.hasPrefix($0) }), !isUTF8(entry) {
                return .badInput("\(text): must be valid UTF-8 text")
            }
        }
        return nil
    }

    /// The option a bad argument belongs to: `--user=...`, or the option before a value, or its position.
    static func optionName(at index: Int, in arguments: [[UInt8]]) -> String {
        let bytes = arguments[index]
        if bytes.starts(with: Array("--".utf8)), let equals = bytes.firstIndex(of: UInt8(ascii: "=")),
            isUTF8(Array(bytes[..<equals]))
        {
            return String(decoding: bytes[..<equals], as: UTF8.self)
        }
        if index > 1 {
            let previous = arguments[index - 1]
            if previous.first == UInt8(ascii: "-"), isUTF8(previous), !previous.contains(UInt8(ascii: "=")) {
                return String(decoding: previous, as: UTF8.self)
            }
        }
        return "argument \(index)"
    }

    static func isUTF8(_ bytes: [UInt8]) -> Bool {
        String(validating: bytes, as: UTF8.self) != nil
    }

    /// This process's arguments and environment, as raw bytes.
    static func check() -> CLIError? {
        let arguments = (0..<Int(CommandLine.argc)).map { index in
            CommandLine.unsafeArgv[index].map { Array(UnsafeBufferPointer(start: UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self), count: strlen($0))) }
                ?? []
        }
        var environment: [[UInt8]] = []
        var pointer = environ
        while let entry = pointer.pointee {
            environment.append(Array(UnsafeBufferPointer(start: UnsafeRawPointer(entry).assumingMemoryBound(to: UInt8.self), count: strlen(entry))))
            pointer += 1
        }
        return firstInvalid(arguments: arguments, environment: environment)
    }
}
