import CLibPQ
import Dispatch
import Foundation
public import Logging
import Synchronization

/// One PostgreSQL connection (libpq `PGconn`).
///
/// The actor runs on its own `ThreadExecutor`: every libpq call, all of which may block, happens
/// on that dedicated thread and never on Swift's cooperative pool. Statements are parameterised
/// (`PQexecParams`), results come back in binary format and are copied out before returning.
/// A connection serves one caller at a time; share connections through `ConnectionPool`.
public actor PostgresConnection {
    private let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private var handle: OpaquePointer?
    private let canceller = QueryCanceller()
    private let notices: NoticeSink
    let configuration: ConnectionConfiguration
    let logger: Logger

    /// The server process serving this connection (`pg_backend_pid()`), for logs and tests.
    public private(set) var backendPID: Int32 = 0

    /// Statements prepared on this connection, by SQL text and parameter types.
    private var preparedNames: [String: String] = [:]

    private init(configuration: ConnectionConfiguration, logger: Logger) {
        self.executor = ThreadExecutor(name: "libpq")
        self.configuration = configuration
        self.logger = logger
        self.notices = NoticeSink(logger: logger)
    }

    /// Opens a connection. Connection errors name host and port and never contain the password.
    public static func connect(
        _ configuration: ConnectionConfiguration,
        logger: Logger = Logger(label: "cognito-reset.postgres")
    ) async throws(PostgresError) -> PostgresConnection {
        let connection = PostgresConnection(configuration: configuration, logger: logger)
        try await connection.open()
        return connection
    }

    private func open() throws(PostgresError) {
        let connection = try LibPQ.connect(configuration)
        handle = connection
        backendPID = PQbackendPID(connection)
        canceller.replace(with: PQgetCancel(connection))
        // libpq prints NOTICEs to stderr unless told otherwise; send them to the logger instead.
        PQsetNoticeProcessor(connection, { context, message in
            guard let context, let message else { return }
            Unmanaged<NoticeSink>.fromOpaque(context).takeUnretainedValue().receive(String(cString: message))
        }, Unmanaged.passUnretained(notices).toOpaque())
    }

    /// Runs on the connection's own thread (an isolated deinit), like every other libpq call.
    isolated deinit {
        canceller.replace(with: nil)
        if let handle { PQfinish(handle) }
        executor.shutdown()
    }

    /// Closes the connection. Later calls fail with `.closed`.
    public func close() {
        canceller.replace(with: nil)
        if let handle { PQfinish(handle) }
        handle = nil
    }

    /// True while the connection is open and libpq has not seen it break.
    public var isOpen: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    func liveHandle() throws(PostgresError) -> OpaquePointer {
        // A cancel sent for an earlier statement must land before the next one starts, or it
        // would cancel that one instead (the server ignores a cancel that finds it idle).
        canceller.waitForPendingCancels()
        guard let handle else { throw PostgresError(code: .closed, message: "the connection is closed") }
        guard PQstatus(handle) == CONNECTION_OK else {
            throw PostgresError(code: .connectionLost, message: "the connection to the server was lost")
        }
        return handle
    }

    // MARK: Statements

    /// Runs one parameterised statement and returns its rows.
    ///
    /// Cancelling the calling task sends a cancel request to the server (`PQcancel`), so a long
    /// statement stops promptly with SQLSTATE 57014.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresResult {
        try Task.checkCancellation()
        return try await withTaskCancellationHandler {
            try run(query)
        } onCancel: {
            // PQcancel opens a connection of its own and may block: never on the cooperative pool.
            let canceller = self.canceller
            canceller.beginCancel()
            Thread.detachNewThread {
                canceller.cancel()
                canceller.endCancel()
            }
        }
    }

    /// Runs a statement ignoring its rows and returns the affected-row count.
    @discardableResult
    public func execute(_ query: PostgresQuery) throws(PostgresError) -> Int {
        try run(query).affectedRows ?? 0
    }

    private func run(_ query: PostgresQuery, retryingPrepared: Bool = false) throws(PostgresError) -> PostgresResult {
        let connection = try liveHandle()
        let parameters = query.parameters
        // Text parameters travel as C strings: a NUL byte would silently cut the value short.
        for (index, parameter) in parameters.enumerated()
        where parameter.format == .text && parameter.bytes?.contains(0) == true {
            throw PostgresError(code: .invalidParameter, message: "parameter $\(index + 1) contains a NUL byte")
        }
        // One buffer holds every value, each followed by a NUL terminator for the text ones.
        var buffer: [UInt8] = []
        buffer.reserveCapacity(parameters.reduce(0) { $0 + ($1.bytes?.count ?? 0) + 1 })
        var offsets: [Int?] = []
        for parameter in parameters {
            guard let bytes = parameter.bytes else {
                offsets.append(nil)
                continue
            }
            offsets.append(buffer.count)
            buffer += bytes
            buffer.append(0)
        }
        let types = parameters.map { Oid($0.type.oid) }
        let preparedKey = query.isPrepared ? types.map(String.init).joined(separator: ",") + ";" + query.sql : ""
        let preparedName = query.isPrepared ? try prepare(query, key: preparedKey, types: types, on: connection) : nil
        let formats = parameters.map { $0.format.rawValue }
        let lengths = parameters.map { Int32($0.bytes?.count ?? 0) }
        let result = buffer.withUnsafeBufferPointer { bytes -> OpaquePointer? in
            let base = UnsafeRawPointer(bytes.baseAddress)
            let values: [UnsafePointer<CChar>?] = offsets.map { offset in
                offset.flatMap { base?.advanced(by: $0).assumingMemoryBound(to: CChar.self) }
            }
            guard let name = preparedName else {
                return PQexecParams(
                    connection, query.sql, Int32(parameters.count), types, values, lengths, formats,
                    PostgresFormat.binary.rawValue)
            }
            return PQexecPrepared(
                connection, name, Int32(parameters.count), values, lengths, formats, PostgresFormat.binary.rawValue)
        }
        do {
            return try consume(result, connection: connection)
        } catch let error where preparedName != nil && error.sqlState == "26000" {
            // The server forgot the statement (DISCARD ALL, say): prepare it again, once.
            preparedNames.removeValue(forKey: preparedKey)
            guard retryingPrepared else { return try run(query, retryingPrepared: true) }
            throw error
        }
    }

    /// Prepares `query` on this connection unless it is already; returns its name.
    private func prepare(_ query: PostgresQuery, key: String, types: [Oid], on connection: OpaquePointer) throws(PostgresError) -> String {
        if let name = preparedNames[key] { return name }
        let name = "cognito_reset_\(preparedNames.count + 1)"
        _ = try consume(PQprepare(connection, name, query.sql, Int32(types.count), types), connection: connection)
        preparedNames[key] = name
        return name
    }

    /// Runs trusted, parameterless SQL that may hold several statements (migration files) with
    /// the simple query protocol. Never pass data here: use `query(_:)`.
    public func executeScript(_ sql: String) throws(PostgresError) {
        let connection = try liveHandle()
        _ = try consume(PQexec(connection, sql), connection: connection)
    }

    /// The error of the last failed libpq call on this connection (password scrubbed).
    func statementError(_ result: OpaquePointer?, _ connection: OpaquePointer) -> PostgresError {
        LibPQ.statementError(result, connection: connection, password: configuration.secretsForRedaction)
    }

    func consume(_ result: OpaquePointer?, connection: OpaquePointer) throws(PostgresError) -> PostgresResult {
        defer { if let result { PQclear(result) } }
        guard let result else { throw statementError(nil, connection) }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return LibPQ.makeResult(result)
        case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR, PGRES_BAD_RESPONSE:
            throw statementError(result, connection)
        default:
            let status = String(cString: PQresStatus(PQresultStatus(result)))
            throw PostgresError(code: .unexpectedResult, message: "unexpected result status \(status)")
        }
    }

    // MARK: State for the pool

    /// Whether the connection can go back to a pool: open, not broken, and outside any transaction.
    /// An abandoned transaction is rolled back first.
    func prepareForReuse() -> Bool {
        guard let handle, PQstatus(handle) == CONNECTION_OK else { return false }
        switch PQtransactionStatus(handle) {
        case PQTRANS_IDLE:
            return true
        case PQTRANS_INTRANS, PQTRANS_INERROR:
            return (try? execute("ROLLBACK")) != nil && PQtransactionStatus(handle) == PQTRANS_IDLE
        default:
            return false  // busy or unknown: not safe to hand out
        }
    }

    /// Detects, without a round trip, an idle connection the server has closed (restart,
    /// `pg_terminate_backend`): its socket turns readable and reading it fails.
    func isAliveWhileIdle() -> Bool {
        guard let handle, PQstatus(handle) == CONNECTION_OK else { return false }
        // A killed backend sends a FATAL message and then closes: the first read consumes the
        // message, a later one meets the end of the stream. Read until nothing is pending.
        for _ in 0..<4 {
            var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 0) > 0 else { return PQstatus(handle) == CONNECTION_OK }
            guard PQconsumeInput(handle) == 1, PQstatus(handle) == CONNECTION_OK else { return false }
        }
        // Still readable after several reads while idle: something is wrong with this session.
        return false
    }
}

/// Holds libpq's cancel object so another thread can cancel the running statement.
///
/// `PQcancel` is documented thread-safe; the mutex only keeps `PQfreeCancel` from racing it.
final class QueryCanceller: Sendable {
    private struct Handle: @unchecked Sendable {
        // Safe: the pointer is only used under `state`'s lock, by PQcancel (thread-safe) and
        // PQfreeCancel, and never escapes this type.
        var pointer: OpaquePointer?
    }
    private let state = Mutex(Handle())
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
        state.withLock { handle in
            if let old = handle.pointer { PQfreeCancel(old) }
            handle.pointer = pointer
        }
    }

    func cancel() {
        state.withLock { handle in
            guard let pointer = handle.pointer else { return }
            var errorBuffer = [CChar](repeating: 0, count: 256)
            _ = PQcancel(pointer, &errorBuffer, Int32(errorBuffer.count))
        }
    }

    deinit { replace(with: nil) }
}

/// Receives the server's NOTICE messages (e.g. "relation already exists, skipping").
final class NoticeSink: Sendable {
    let logger: Logger
    init(logger: Logger) { self.logger = logger }
    func receive(_ message: String) {
        logger.debug("postgres notice", metadata: ["notice": "\(message.trimmingCharacters(in: .newlines))"])
    }
}
