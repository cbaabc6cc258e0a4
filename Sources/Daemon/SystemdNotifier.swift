import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// systemd's notify protocol (`sd_notify`), without libsystemd: one datagram of `KEY=VALUE`
/// lines to the `AF_UNIX` socket named by `$NOTIFY_SOCKET`.
///
/// A name starting with `@` is an abstract socket: the `@` becomes a NUL byte and the address
/// length covers exactly the name (the full `sockaddr_un` size would name another socket).
/// Without `$NOTIFY_SOCKET` (not run by systemd) every send is a no-op.
public struct SystemdNotifier: Sendable {
    /// The socket's name as systemd gave it, or nil when not running under `Type=notify`.
    public let socketName: String?

    public init(environment: [String: String]) {
        let name = environment["NOTIFY_SOCKET"] ?? ""
        socketName = name.isEmpty ? nil : name
    }

    public var isEnabled: Bool { socketName != nil }

    /// Sends `fields` (e.g. `["READY=1", "STATUS=…"]`) as one datagram; false if it could not be
    /// delivered. Never blocks: a full socket queue drops the message (systemd reads quickly).
    @discardableResult
    public func send(_ fields: [String]) -> Bool {
        guard let socketName else { return false }
        let message = fields.map { $0.replacingOccurrences(of: "\n", with: " ") }.joined(separator: "\n")
        guard var address = Self.address(socketName) else { return false }
        #if canImport(Glibc)
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
            let fd = socket(AF_UNIX, SOCK_DGRAM, 0)
        #endif
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let sent = message.utf8CString.withUnsafeBufferPointer { bytes in
            withUnsafePointer(to: &address.storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count - 1, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), $0, address.length)
                }
            }
        }
        return sent == message.utf8.count
    }

    /// A `sockaddr_un` and the length that names it.
    struct Address {
        var storage = sockaddr_un()
        var length: socklen_t = 0
    }

    /// nil for names that cannot be a unix socket (too long, or neither a path nor abstract).
    static func address(_ name: String) -> Address? {
        var bytes = Array(name.utf8)
        guard let first = bytes.first, first == UInt8(ascii: "/") || first == UInt8(ascii: "@") else { return nil }
        let isAbstract = first == UInt8(ascii: "@")
        if isAbstract { bytes[0] = 0 }
        var address = Address()
        address.storage.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.storage.sun_path)
        // A path needs room for its terminating NUL; an abstract name does not have one.
        guard bytes.count <= capacity - (isAbstract ? 0 : 1) else { return nil }
        withUnsafeMutableBytes(of: &address.storage.sun_path) { path in
            path.copyBytes(from: bytes)
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
        address.length = socklen_t(pathOffset + bytes.count + (isAbstract ? 0 : 1))
        return address
    }
}

/// The watchdog systemd asked for (`WatchdogSec=` → `$WATCHDOG_USEC`, `$WATCHDOG_PID`).
public struct WatchdogSettings: Sendable, Equatable {
    /// systemd restarts the service if no `WATCHDOG=1` arrives within this interval.
    public let timeout: Duration

    /// Ping at half the timeout, as systemd recommends.
    public var pingInterval: Duration { timeout / 2 }

    /// nil without a watchdog, or when `$WATCHDOG_PID` names another process (the variable was
    /// inherited by a child).
    public init?(environment: [String: String], pid: Int32? = nil) {
        let pid = pid ?? getpid()
        guard let text = environment["WATCHDOG_USEC"], let micros = Int64(text), micros > 0 else { return nil }
        if let owner = environment["WATCHDOG_PID"], !owner.isEmpty, Int32(owner) != pid { return nil }
        timeout = .microseconds(micros)
    }
}
