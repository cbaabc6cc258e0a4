import Foundation
import SystemTesting
import Testing

/// The units in `systemd/`, checked offline with `systemd-analyze` (Debian package `systemd`,
/// which scripts/test.sh installs): no running systemd is needed, so this runs anywhere the tests do.
@Suite("systemd units")
struct SystemdUnitTests {
    static let folder = repositoryRoot.appending(path: "systemd")
    static let services = ["cognito-reset.service", "cognito-reset-prune.service", "cognito-reset-import.service"]
    static let others = ["cognito-reset-prune.timer", "cognito-reset-import.path"]
    /// `cognito-reset worker --grace`'s default (COGNITO_RESET_GRACE unset).
    static let workerDefaultGrace = "20s"

    /// Runs `systemd-analyze` with `arguments`.
    static func analyze(_ arguments: [String]) async throws -> ChildProcess.Result {
        try await ChildProcess.run(
            URL(fileURLWithPath: "/usr/bin/env"), ["systemd-analyze"] + arguments, environment: ProcessInfo.processInfo.environment)
    }

    /// Copies every unit into a new temporary folder with the installed binary's path replaced by
    /// the built binary (`verify` refuses an ExecStart= that does not exist), runs `body` with
    /// that folder, then removes it.
    static func withStagedUnits<T>(_ body: (URL) async throws -> T) async throws -> T {
        let staged = FileManager.default.temporaryDirectory.appending(path: "units-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: staged, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: staged) }
        for name in services + others {
            let text = try String(contentsOf: folder.appending(path: name), encoding: .utf8)
                .replacingOccurrences(of: "/usr/local/bin/cognito-reset", with: CognitoResetBinary.url.path)
            try Data(text.utf8).write(to: staged.appending(path: name))
        }
        return try await body(staged)
    }

    /// The values of `key` in the unit's `[Service]` section, in order.
    static func serviceValues(_ key: String, in name: String) throws -> [String] {
        var section = ""
        var values: [String] = []
        for raw in try String(contentsOf: folder.appending(path: name), encoding: .utf8).split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") { section = line }
            guard section == "[Service]", let equals = line.firstIndex(of: "="), !line.hasPrefix("#") else { continue }
            if line[..<equals] == key { values.append(String(line[line.index(after: equals)...])) }
        }
        return values
    }

    /// A systemd time span ("45s", "1min 30s") in microseconds, as systemd itself reads it.
    static func microseconds(_ span: String) async throws -> Int {
        let result = try await analyze(["timespan", span])
        let match = try #require(result.stdout.firstMatch(of: /μs: (\d+)/), "systemd-analyze timespan \(span): \(result.stderr)")
        return try #require(Int(match.1))
    }

    /// `verify` exits 0 even when it ignores a misspelled or unsupported directive (a protection
    /// silently lost), so besides the status, no message may name the unit.
    @Test(arguments: services + others)
    func unitVerifiesCleanly(_ name: String) async throws {
        try await Self.withStagedUnits { staged in
            let result = try await Self.analyze(["verify", staged.appending(path: name).path])
            #expect(result.status == 0, "\(result.stderr)")
            let complaints = (result.stdout + result.stderr).split(separator: "\n").filter { $0.contains(name) }
            #expect(complaints.isEmpty, "\(complaints.joined(separator: "\n"))")
        }
    }

    /// Each service keeps the sandbox: overall exposure at most 2.0 of 10 ("OK"), which
    /// `--threshold=20` (a 0–100 scale) also enforces through the exit status.
    @Test(arguments: services)
    func serviceExposureStaysAtMostTwo(_ name: String) async throws {
        try await Self.withStagedUnits { staged in
            let result = try await Self.analyze(["security", "--offline=true", "--threshold=20", staged.appending(path: name).path])
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            let match = try #require(
                result.stdout.firstMatch(of: /Overall exposure level for \S+: (\d+\.\d+)/), "\(result.stdout)\(result.stderr)")
            let exposure = try #require(Double(match.1))
            #expect(exposure <= 2.0, "\(result.stdout)")
        }
    }

    /// systemd SIGKILLs a worker still draining at TimeoutStopSec=, and its in-flight calls are
    /// then repeated after their leases expire: the stop timeout must outlast the drain grace.
    /// READY=1 and watchdog pings only help if the unit asks for them.
    @Test func workerUnitOutlastsTheDrainAndUsesTheNotifyProtocol() async throws {
        let unit = "cognito-reset.service"
        #expect(try Self.serviceValues("Type", in: unit) == ["notify"])
        let stop = try #require(try Self.serviceValues("TimeoutStopSec", in: unit).last, "TimeoutStopSec= is missing")
        let grace = try await Self.microseconds(Self.workerDefaultGrace)
        #expect(try await Self.microseconds(stop) > grace, "TimeoutStopSec=\(stop)")
        let watchdog = try #require(try Self.serviceValues("WatchdogSec", in: unit).last, "WatchdogSec= is missing")
        #expect(try await Self.microseconds(watchdog) > 0, "WatchdogSec=\(watchdog) turns the watchdog off")
    }

    /// The prune schedule must parse, and be in UTC so it does not move with the host's time zone.
    @Test func pruneTimerScheduleIsValidUTC() async throws {
        let timer = try String(contentsOf: Self.folder.appending(path: "cognito-reset-prune.timer"), encoding: .utf8)
        let line = try #require(timer.split(separator: "\n").first(where: { $0.hasPrefix("OnCalendar=") }), "OnCalendar= is missing")
        let result = try await Self.analyze(["calendar", String(line.dropFirst("OnCalendar=".count))])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains(/Normalized form: .* UTC\n/), "\(result.stdout)")
    }
}
