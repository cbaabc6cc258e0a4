import CLibPQ
import Dispatch
import Logging
import Synchronization

/// Holds libpq's cancel object so another thread can cancel the running statement.
///
/// `PQcancel` is documented thread-safe, but it blocks until the server answers, which a stopped
/// server never does: it runs on a thread of its own, holding its own reference to the cancel
/// object, so closing the connection meanwhile neither waits for it nor frees what it uses.
final class QueryCanceller: Sendable {
    /// One `PGcancel`, freed when the last holder lets go.
    private final class Token: @unchecked Sendable {
        // Safe: the pointer is set once, read only by PQcancel (thread-safe on a shared object)
        // and freed in deinit, when no thread can hold the token any more.
        let pointer: OpaquePointer
        init(_ pointer: OpaquePointer) { self.pointer = pointer }
        deinit { PQfreeCancel(pointer) }
    }
    private let token = Mutex<Token?>(nil)
    /// Cancel requests dispatched but not yet delivered to the server.
    private let pending = DispatchGroup()

    /// Marks a cancel request as on its way (call before handing `cancel()` to another thread).
    func beginCancel() { pending.enter() }
    func endCancel() { pending.leave() }

    /// Blocks (the connection's own thread, never the cooperative pool) until every cancel
    /// request dispatched so far has reached the server, or 10 s: a cancel that cannot reach the
    /// server (a partition; PQcancel has no timeout) must not wedge the connection forever.
    func waitForPendingCancels() { _ = pending.wait(timeout: .now() + 10) }

    func replace(with pointer: OpaquePointer?) {
        let new = pointer.map(Token.init)
        token.withLock { $0 = new }
    }

    func cancel() {
        guard let token = token.withLock({ $0 }) else { return }
        var errorBuffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(token.pointer, &errorBuffer, Int32(errorBuffer.count))
    }
}

/// Receives the server's NOTICE messages (e.g. "relation already exists, skipping").
final class NoticeSink: Sendable {
    let logger: Logger
    private let fatal = Atomic(false)
    init(logger: Logger) { self.logger = logger }

    /// The server sent a FATAL or PANIC message outside any statement (pg_terminate_backend, a
    /// shutdown): the session is ending, even before libpq has read the end of the stream.
    var sessionEnding: Bool { fatal.load(ordering: .acquiring) }

    /// NOTICEs ("relation already exists, skipping") at debug; WARNINGs at warning: among them
    /// "canceling wait for synchronous replication" when a commit past its deadline was
    /// cancelled, which leaves it committed on the primary only until a later commit is
    /// replicated, and an operator must hear of that.
    func receive(_ message: String, severity: String, detail: String?) {
        if severity == "FATAL" || severity == "PANIC" { fatal.store(true, ordering: .releasing) }
        let level: Logger.Level = severity == "WARNING" ? .warning : .debug
        var metadata: Logger.Metadata = ["notice": "\(message)"]
        if level == .warning, let detail { metadata["detail"] = "\(detail)" }
        logger.log(level: level, "postgres \(severity.lowercased())", metadata: metadata)
    }
}
