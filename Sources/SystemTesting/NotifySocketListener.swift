public import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A datagram socket standing in for systemd's `$NOTIFY_SOCKET`: tests hand `name` to a daemon
/// and read what it reports (READY=1, STATUS=…, WATCHDOG=1, STOPPING=1).
///
/// A thread of its own drains the socket as datagrams arrive, as systemd does: a unix datagram
/// queue holds only a few messages (`net.unix.max_dgram_qlen`, 10 by default), and a sender that
/// must not block drops the rest.
public final class NotifySocketListener: Sendable {
    private struct State {
        var received: [String] = []
        var consumed = 0
        var waiter: CheckedContinuation<Void, Never>?
        var closed = false
    }

    /// Shared with the reader thread, which outlives nothing: it stops once `closed` is set.
    private final class Shared: Sendable {
        let state = Mutex(State())
    }

    private let fd: Int32
    private let shared = Shared()
    /// The value for `$NOTIFY_SOCKET`: `@…` for an abstract socket, else a file path.
    public let name: String

    public init(abstract: Bool = true) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let tag = UUID().uuidString.prefix(8)
        name =
            abstract
            ? "@cognito-reset-test-\(tag)"
            : FileManager.default.temporaryDirectory.appending(path: "notify-\(tag).sock").path
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(name.utf8)
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + bytes.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL)
        }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        Thread.detachNewThread { [fd, shared] in Self.readLoop(fd, shared) }
    }

    /// Drains the socket until the listener is gone, then closes it.
    private static func readLoop(_ fd: Int32, _ shared: Shared) {
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !shared.state.withLock({ $0.closed }) {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { continue }  // the 200 ms timeout: check for close
            let message = String(decoding: buffer[..<count], as: UTF8.self)
            let waiter = shared.state.withLock { state -> CheckedContinuation<Void, Never>? in
                state.received.append(message)
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }

    /// The next datagram not yet returned, or nil if none arrives within `timeout`.
    public func next(timeout: Duration = .seconds(10)) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let message = shared.state.withLock({ state -> String? in
                guard state.consumed < state.received.count else { return nil }
                state.consumed += 1
                return state.received[state.consumed - 1]
            }) {
                return message
            }
            guard ContinuousClock.now < deadline else { return nil }
            // Wait for the reader, at most 100 ms at a time (simple and bounded; no lost wake-up
            // can stall this longer than that).
            let timer = Task { [self] in
                try? await Task.sleep(for: .milliseconds(100))
                shared.state.withLock { state -> CheckedContinuation<Void, Never>? in
                    defer { state.waiter = nil }
                    return state.waiter
                }?.resume()
            }
            await withCheckedContinuation { continuation in
                let ready = shared.state.withLock { state -> Bool in
                    if state.consumed < state.received.count || state.waiter != nil { return true }
                    state.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
            timer.cancel()
        }
    }

    /// Marks every datagram received so far as read and returns them: what a test collects
    /// next was sent after this point.
    @discardableResult
    public func skipReceived() -> [String] {
        shared.state.withLock { state in
            defer { state.consumed = state.received.count }
            return Array(state.received[state.consumed...])
        }
    }

    /// Reads datagrams until one satisfies `done` (returned with all before it) or `timeout`
    /// passes between two datagrams.
    public func collect(until done: (String) -> Bool, timeout: Duration = .seconds(30)) async -> [String] {
        var messages: [String] = []
        while let message = await next(timeout: timeout) {
            messages.append(message)
            if done(message) { break }
        }
        return messages
    }

    deinit {
        // The reader notices within its 200 ms receive timeout and closes the socket.
        shared.state.withLock { $0.closed = true }
        if !name.hasPrefix("@") { unlink(name) }
    }
}
