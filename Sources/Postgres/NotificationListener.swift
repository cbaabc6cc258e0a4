import CLibPQ
import Foundation
public import Logging
import Synchronization

/// A `NOTIFY` received on a channel this listener subscribed to.
public struct PostgresNotification: Sendable, Hashable {
    public let channel: String
    public let payload: String
    /// The server process that sent it.
    public let senderPID: Int32
}

/// What a `NotificationListener` stream delivers.
public enum ListenerEvent: Sendable {
    /// Subscribed. After a reconnect (`reconnected == true`) notifications sent while the
    /// connection was down are lost: consumers should check for work they may have missed.
    case listening(reconnected: Bool)
    case notification(PostgresNotification)
    /// The connection broke or could not be opened; the listener retries with backoff.
    case disconnected(PostgresError)
}

/// `LISTEN` on a dedicated connection, delivered as an `AsyncStream`.
///
/// A dedicated thread waits with `poll(2)` on the connection's socket (and on a wake-up pipe used
/// to stop it), so an idle listener uses no CPU and notifications arrive within milliseconds. The
/// connection is re-opened with backoff whenever it breaks, and checked with a tiny query after
/// `healthCheckInterval` of silence so a dead peer is noticed. Ending the stream's iteration (or
/// cancelling the iterating task) stops the thread and closes the connection, in the thread's own
/// time: a connect under way finishes first (within its `connect_timeout`). A process that ends
/// meanwhile must not run C's exit-time handlers, which would clean OpenSSL up under that
/// connect's SCRAM handshake (the CLI ends with `_exit`).
public enum NotificationListener {
    public static func events(
        configuration: ConnectionConfiguration,
        channels: [String],
        backoff: ReconnectBackoff = ReconnectBackoff(),
        healthCheckInterval: Duration = .seconds(30),
        logger: Logger = Logger(label: "cognito-reset.postgres")
    ) -> AsyncStream<ListenerEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: ListenerEvent.self, bufferingPolicy: .unbounded)
        let stop = WakePipe()
        let loop = ListenLoop(
            configuration: configuration, channels: channels, backoff: backoff,
            healthCheckMilliseconds: Int32(clamping: Int64(healthCheckInterval / .milliseconds(1))),
            logger: logger, stop: stop, continuation: continuation)
        continuation.onTermination = { _ in stop.signal() }
        let thread = Thread { loop.run() }
        thread.name = "libpq-listen"
        thread.start()
        return stream
    }
}

/// A pipe whose read end becomes readable once `signal()` is called: wakes a thread out of `poll`.
final class WakePipe: Sendable {
    let readDescriptor: Int32
    private let writeDescriptor: Int32
    private let signalled = Atomic(false)

    init() {
        var descriptors: [Int32] = [-1, -1]
        if pipe(&descriptors) == 0 {
            for descriptor in descriptors {
                _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
                _ = fcntl(descriptor, F_SETFL, O_NONBLOCK)
            }
        }
        readDescriptor = descriptors[0]
        writeDescriptor = descriptors[1]
    }

    var isSignalled: Bool { signalled.load(ordering: .acquiring) }

    func signal() {
        signalled.store(true, ordering: .releasing)
        var byte: UInt8 = 1
        _ = write(writeDescriptor, &byte, 1)
    }

    deinit {
        close(readDescriptor)
        close(writeDescriptor)
    }
}

/// The listener thread's work. Its mutable state is local to `run()`, on that one thread.
private struct ListenLoop: Sendable {
    let configuration: ConnectionConfiguration
    let channels: [String]
    let backoff: ReconnectBackoff
    let healthCheckMilliseconds: Int32
    let logger: Logger
    let stop: WakePipe
    let continuation: AsyncStream<ListenerEvent>.Continuation

    func run() {
        var connection: OpaquePointer?
        var subscribedBefore = false
        var failures = 0
        defer {
            if let connection { PQfinish(connection) }
            continuation.finish()
        }
        while !stop.isSignalled {
            guard let open = connection else {
                do {
                    connection = try subscribe()
                    continuation.yield(.listening(reconnected: subscribedBefore))
                    subscribedBefore = true
                    failures = 0
                } catch {
                    continuation.yield(.disconnected(error))
                    let delay = backoff.delay(attempt: failures)
                    failures += 1
                    logger.warning("listener cannot connect, retrying", metadata: ["error": "\(error)"])
                    if waitForStop(milliseconds: Int32(clamping: Int64(delay / .milliseconds(1)))) { return }
                }
                continue
            }
            switch waitForInput(open) {
            case .stop:
                return
            case .readable:
                guard PQconsumeInput(open) == 1 else {
                    connection = drop(open)
                    continue
                }
                deliverNotifications(open)
            case .quiet:
                // Nothing for a while: make sure the server is still there.
                let result = PQexec(open, "SELECT 1")
                let healthy = result.map { PQresultStatus($0) == PGRES_TUPLES_OK } ?? false
                if let result { PQclear(result) }
                guard healthy else {
                    connection = drop(open)
                    continue
                }
                deliverNotifications(open)
            }
        }
    }

    private func subscribe() throws(PostgresError) -> OpaquePointer {
        let connection = try LibPQ.connect(configuration)
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        for channel in channels {
            let result = PQexec(connection, "LISTEN \(PostgresQuery.quoteIdentifier(channel))")
            defer { if let result { PQclear(result) } }
            guard let result, PQresultStatus(result) == PGRES_COMMAND_OK else {
                let error = LibPQ.statementError(
                    result, connection: connection, password: configuration.secretsForRedaction)
                PQfinish(connection)
                throw error
            }
        }
        return connection
    }

    private func drop(_ connection: OpaquePointer) -> OpaquePointer? {
        let error = LibPQ.statementError(nil, connection: connection, password: configuration.secretsForRedaction)
        PQfinish(connection)
        logger.warning("listener lost its connection, reconnecting", metadata: ["error": "\(error)"])
        continuation.yield(.disconnected(PostgresError(code: .connectionLost, message: error.message)))
        return nil
    }

    private func deliverNotifications(_ connection: OpaquePointer) {
        while let notify = PQnotifies(connection) {
            let notification = PostgresNotification(
                channel: String(cString: notify.pointee.relname),
                payload: String(cString: notify.pointee.extra),
                senderPID: notify.pointee.be_pid)
            PQfreemem(notify)
            continuation.yield(.notification(notification))
        }
    }

    private enum Wake { case readable, quiet, stop }

    private func waitForInput(_ connection: OpaquePointer) -> Wake {
        var descriptors = [
            pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0),
            pollfd(fd: stop.readDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        let ready = poll(&descriptors, 2, healthCheckMilliseconds)
        if stop.isSignalled || descriptors[1].revents != 0 { return .stop }
        if ready == 0 { return .quiet }
        return .readable  // includes errors and hang-ups: PQconsumeInput then reports them
    }

    /// Sleeps up to `milliseconds`, returning early (true) if asked to stop.
    private func waitForStop(milliseconds: Int32) -> Bool {
        var descriptor = pollfd(fd: stop.readDescriptor, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, milliseconds)
        return stop.isSignalled
    }
}
