import Daemon
import Foundation
import SystemTesting
import Testing

@Suite("systemd notify protocol")
struct SystemdNotifierTests {
    @Test(arguments: [true, false])
    func sendsOneDatagramOfLines(abstract: Bool) async throws {
        let listener = try NotifySocketListener(abstract: abstract)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.name])
        #expect(notifier.send(["READY=1", "STATUS=3 in flight\nsecond line"]))
        #expect(await listener.next() == "READY=1\nSTATUS=3 in flight second line")
    }

    @Test func withoutTheVariableNothingIsSent() {
        let notifier = SystemdNotifier(environment: [:])
        #expect(!notifier.isEnabled)
        #expect(!notifier.send(["READY=1"]))
    }

    @Test func namesThatCannotBeSocketsAreRefused() {
        #expect(!SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]).send(["READY=1"]))
        #expect(!SystemdNotifier(environment: ["NOTIFY_SOCKET": "/" + String(repeating: "x", count: 200)]).send(["READY=1"]))
        #expect(!SystemdNotifier(environment: ["NOTIFY_SOCKET": "/nonexistent/socket"]).send(["READY=1"]))
    }

    @Test func watchdogFollowsItsVariablesAndOnlyForItsOwnProcess() {
        #expect(WatchdogSettings(environment: [:]) == nil)
        #expect(WatchdogSettings(environment: ["WATCHDOG_USEC": "0"]) == nil)
        #expect(WatchdogSettings(environment: ["WATCHDOG_USEC": "soon"]) == nil)
        let mine = WatchdogSettings(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"], pid: 42)
        #expect(mine?.timeout == .seconds(30))
        #expect(mine?.pingInterval == .seconds(15))
        #expect(WatchdogSettings(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "43"], pid: 42) == nil)
        #expect(WatchdogSettings(environment: ["WATCHDOG_USEC": "30000000"], pid: 42) != nil)
    }
}
