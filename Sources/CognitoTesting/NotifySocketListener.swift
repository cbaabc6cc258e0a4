public import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A datagram socket standing in for systemd's `$NOTIFY_SOCKET`: tests hand `name` to a daemon
/// and read what it reports (READY=1, STATUS=…, WATCHDOG=1, STOPPING=1).
public final class NotifySocketListener: Sendable {
    let fd: Int32
    /// The value for `$NOTIFY_SOCKET`: `@…` for an abstract socket, else a file path.
    public let name: String

    public init(abstract: Bool = true) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let tag = UUID().uuidString.prefix(8)
        name = abstract
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
    }

    /// The next datagram, or nil if none arrives within `timeout`. Waits on a thread of its own,
    /// never on the cooperative pool.
    public func next(timeout: Duration = .seconds(10)) async -> String? {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { [fd] in
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let millis = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
                guard poll(&poller, 1, millis) == 1 else { return continuation.resume(returning: nil) }
                var buffer = [UInt8](repeating: 0, count: 4096)
                let count = recv(fd, &buffer, buffer.count, 0)
                continuation.resume(returning: count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : nil)
            }
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
        close(fd)
        if !name.hasPrefix("@") { unlink(name) }
    }
}
