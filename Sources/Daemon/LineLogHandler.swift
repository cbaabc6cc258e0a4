import Foundation
public import Logging
import TerminalSafety

/// How log lines look: `key=value` pairs (logfmt) or one JSON object per line.
public enum LogFormat: String, Sendable, CaseIterable {
    case logfmt
    case json
}

/// One line per event on stderr, in logfmt or JSON, with metadata as fields.
///
/// Under systemd (`$JOURNAL_STREAM` set) each line starts with its syslog priority (`<6>` for
/// info…), which journald turns into the entry's priority, and the timestamp is left to journald.
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let format: LogFormat
    let journald: Bool
    let write: @Sendable (String) -> Void

    public init(
        label: String, level: Logger.Level, format: LogFormat, journald: Bool,
        write: @escaping @Sendable (String) -> Void = LineLogHandler.writeToStandardError
    ) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.journald = journald
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        if let error = event.error { fields["error"] = "\(error)" }
        write(line(level: event.level, message: "\(event.message)", fields: fields, date: Date()))
    }

    /// The line for one event, ending in a newline.
    func line(level: Logger.Level, message: String, fields: Logger.Metadata, date: Date) -> String {
        var head: [(String, String)] = []
        if !journald { head.append(("ts", Self.timestamp(date))) }
        head.append(("level", level.rawValue))
        head.append(("msg", message))
        head.append(("logger", label))
        let tail = fields.sorted { $0.key < $1.key }.map { ($0.key, Self.flatten($0.value)) }
        let prefix = journald ? "<\(Self.syslogPriority(level))>" : ""
        switch format {
        case .logfmt:
            return prefix + (head + tail).map { "\(Self.logfmtKey($0.0))=\(Self.logfmtValue($0.1))" }.joined(separator: " ") + "\n"
        case .json:
            // Foundation does the escaping; keys come out sorted, so lines diff and grep well.
            let object = Dictionary((tail + head).map { ($0.0, $0.1) }) { _, last in last }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
            return prefix + SafeText.jsonEscaped(String(decoding: data, as: UTF8.self)) + "\n"
        }
    }

    /// journald's priorities (syslog levels) for swift-log's levels.
    public static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let value): value.description
        case .array(let values): values.map(flatten).joined(separator: ",")
        case .dictionary(let values): values.sorted { $0.key < $1.key }.map { "\($0.key):\(flatten($0.value))" }.joined(separator: ",")
        }
    }

    static func logfmtKey(_ key: String) -> String {
        let cleaned = key.unicodeScalars.map { scalar -> Character in
            scalar.properties.isWhitespace || scalar == "=" || scalar == "\"" ? "_" : Character(scalar)
        }
        return cleaned.isEmpty ? "_" : String(cleaned)
    }

    /// Quoted when it holds a space, `=`, a quote or a control character, with JSON's string
    /// escapes (as Go's logfmt writers do); never spans lines.
    static func logfmtValue(_ value: String) -> String {
        let needsQuotes =
            value.isEmpty
            || value.unicodeScalars.contains {
                $0 == " " || $0 == "=" || $0 == "\"" || SafeText.isControl($0)
            }
        guard needsQuotes else { return value }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        return (try? encoder.encode(value)).map { SafeText.jsonEscaped(String(decoding: $0, as: UTF8.self)) } ?? "\"\""
    }

    static func timestamp(_ date: Date) -> String {
        Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date)
    }

    /// One `write(2)` per line, so lines from concurrent tasks never interleave.
    public static let writeToStandardError: @Sendable (String) -> Void = { line in
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }
}
