import Daemon
import Foundation
import Logging
import Synchronization
import Testing

/// Collects what a handler writes.
final class Lines: Sendable {
    let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    func append(_ line: String) { lines.withLock { $0.append(line) } }
}

@Suite("Log lines")
struct LineLogHandlerTests {
    func logger(_ format: LogFormat, journald: Bool, level: Logger.Level = .info) -> (Logger, Lines) {
        let lines = Lines()
        let handler = LineLogHandler(label: "test", level: level, format: format, journald: journald, write: lines.append)
        return (Logger(label: "test", factory: { _ in handler }), lines)
    }

    @Test func logfmtQuotesWhatNeedsItAndStaysOnOneLine() {
        let (logger, lines) = logger(.logfmt, journald: false)
        logger.info("worker started", metadata: ["concurrency": "16", "note": "two\nlines \"quoted\"", "empty": ""])
        let line = lines.all[0]
        #expect(line.hasPrefix("ts="))
        #expect(line.hasSuffix("\n"))
        #expect(line.dropLast().contains("\n") == false)
        #expect(line.contains(#" level=info msg="worker started" logger=test concurrency=16 empty="" note="two\nlines \"quoted\"""#))
    }

    @Test func jsonIsOneParsableObjectPerLine() throws {
        let (logger, lines) = logger(.json, journald: false)
        logger.warning("database unavailable", metadata: ["error": "server: \u{1}bad\ttab", "activity": "claiming"])
        let object = try JSONSerialization.jsonObject(with: Data(lines.all[0].utf8)) as? [String: String]
        #expect(object?["level"] == "warning")
        #expect(object?["msg"] == "database unavailable")
        #expect(object?["error"] == "server: \u{1}bad\ttab")
        #expect(object?["activity"] == "claiming")
        #expect(object?["ts"] != nil)
    }

    @Test func underJournaldLinesCarryTheSyslogPriorityAndNoTimestamp() {
        let (logger, lines) = logger(.logfmt, journald: true, level: .trace)
        logger.debug("d")
        logger.info("i")
        logger.notice("n")
        logger.warning("w")
        logger.error("e")
        logger.critical("c")
        #expect(lines.all.map { String($0.prefix(3)) } == ["<7>", "<6>", "<5>", "<4>", "<3>", "<2>"])
        #expect(lines.all.allSatisfy { !$0.contains("ts=") })
    }

    @Test func levelsBelowTheThresholdAreDropped() {
        let (logger, lines) = logger(.logfmt, journald: false, level: .notice)
        logger.info("quiet")
        logger.notice("loud")
        #expect(lines.all.count == 1)
    }
}
