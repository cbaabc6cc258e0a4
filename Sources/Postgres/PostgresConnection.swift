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
    /// False once the server lost a prepared statement between prepare and execution (a pooler
    /// in transaction mode): every statement then goes unnamed.
    private var preparedStatementsWork = true
    /// Called when a statement overruns its deadline (for health reports); from this connection's thread.
    private let onDeadline: @Sendable () -> Void

    private init(configuration: ConnectionConfiguration, logger: Logger, onDeadline: @escaping @Sendable () -> Void) {
        self.executor = ThreadExecutor(name: "libpq")
        self.configuration = configuration
        self.logger = logger
        self.onDeadline = onDeadline
        self.notices = NoticeSink(logger: logger)
    }

    /// Opens a connection. Connection errors name host and port and never contain the password.
    /// `onDeadline` hears of every statement that overran the statement deadline.
    public static func connect(
        _ configuration: ConnectionConfiguration,
        logger: Logger = Logger(label: "cognito-reset.postgres"),
        onDeadline: @escaping @Sendable () -> Void = {}
    ) async throws(PostgresError) -> PostgresConnection {
        let connection = PostgresConnection(configuration: configuration, logger: logger, onDeadline: onDeadline)
        try await connection.open()
        return connection
    }

    private func open() throws(PostgresError) {
        let connection = try LibPQ.connect(configuration)
        handle = connection
        backendPID = PQbackendPID(connection)
        canceller.replace(with: PQgetCancel(connection))
        // libpq prints NOTICEs to stderr unless told otherwise; send them to the logger instead.
        PQsetNoticeReceiver(
            connection,
            { context, result in
                guard let context, let result else { return }
                let field = { (code: Character) in PQresultErrorField(result, Int32(code.asciiValue!)).map { String(cString: $0) } }
                Unmanaged<NoticeSink>.fromOpaque(context).takeUnretainedValue()
                    .receive(field("M") ?? "", severity: field("V") ?? "NOTICE", detail: field("D"))
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
    /// The statement ends, one way or another, by the connection's statement deadline
    /// (`ConnectionConfiguration.statementDeadline`) and promptly once the calling task is
    /// cancelled: a cancel request goes to the server (`PQcancel`, SQLSTATE 57014), and a server
    /// that does not answer it either within `cancelGrace` costs the connection (`.timedOut`).
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresResult {
        try Task.checkCancellation()
        return try run(query)
    }

    /// Runs a statement ignoring its rows and returns the affected-row count.
    @discardableResult
    public func execute(_ query: PostgresQuery) throws(PostgresError) -> Int {
        try run(query).affectedRows ?? 0
    }

    private func run(_ query: PostgresQuery) throws(PostgresError) -> PostgresResult {
        let connection = try liveHandle()
        let parameters = query.parameters
        // Text parameters travel as C strings: a NUL byte would silently cut the value short.
        for (index, parameter) in parameters.enumerated()
        where parameter.format == .text && parameter.bytes?.contains(0) == true {
            throw PostgresError(code: .invalidParameter, message: "parameter $\(index + 1) contains a NUL byte")
        }
        let deadline = configuration.statementDeadline.map { ContinuousClock.now + $0 }
        let types = parameters.map { Oid($0.type.oid) }
        var name: String?
        if query.isPrepared && preparedStatementsWork {
            name = try prepare(query, types: types, on: connection, deadline: deadline)
        }
        do {
            return try send(query, types: types, preparedName: name, on: connection, deadline: deadline)
        } catch let error where name != nil && error.sqlState == SQLState.undefinedPreparedStatement {
            // The server connection does not know the statement: it forgot it (DISCARD ALL), or a
            // pooler in transaction mode (PgBouncer) sent the prepare and this execution to
            // different server connections. Unnamed statements work everywhere: use them from now on.
            preparedStatementsWork = false
            preparedNames.removeAll()
            logger.debug("prepared statements do not persist on this connection; sending statements unprepared")
            return try send(query, types: types, preparedName: nil, on: connection, deadline: deadline)
        }
    }

    /// Sends the statement (named if prepared, unnamed otherwise) and waits for its result.
    private func send(
        _ query: PostgresQuery, types: [Oid], preparedName: String?, on connection: OpaquePointer,
        deadline: ContinuousClock.Instant?
    ) throws(PostgresError) -> PostgresResult {
        let parameters = query.parameters
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
        let formats = parameters.map { $0.format.rawValue }
        let lengths = parameters.map { Int32($0.bytes?.count ?? 0) }
        let sent = buffer.withUnsafeBufferPointer { bytes -> Int32 in
            let base = UnsafeRawPointer(bytes.baseAddress)
            let values: [UnsafePointer<CChar>?] = offsets.map { offset in
                offset.flatMap { base?.advanced(by: $0).assumingMemoryBound(to: CChar.self) }
            }
            guard let preparedName else {
                return PQsendQueryParams(
                    connection, query.sql, Int32(parameters.count), types, values, lengths, formats,
                    PostgresFormat.binary.rawValue)
            }
            return PQsendQueryPrepared(
                connection, preparedName, Int32(parameters.count), values, lengths, formats, PostgresFormat.binary.rawValue)
        }
        guard sent == 1 else { throw statementError(nil, connection) }
        return try awaitResult(connection, deadline: deadline)
    }

    /// Prepares `query` on this connection unless it is already; returns its name.
    ///
    /// The name is derived from the statement's text and parameter types, so the same name means
    /// the same statement on every connection of every process. Behind a pooler that shares
    /// server connections between clients, a name another client prepared there is then the same
    /// statement, never another one run with our parameters.
    private func prepare(
        _ query: PostgresQuery, types: [Oid], on connection: OpaquePointer, deadline: ContinuousClock.Instant?
    ) throws(PostgresError) -> String {
        let key = types.map(String.init).joined(separator: ",") + ";" + query.sql
        if let name = preparedNames[key] { return name }
        let name = Self.statementName(key)
        guard PQsendPrepare(connection, name, query.sql, Int32(types.count), types) == 1 else {
            throw statementError(nil, connection)
        }
        do {
            _ = try awaitResult(connection, deadline: deadline)
        } catch let error where error.sqlState == SQLState.duplicatePreparedStatement {
            // Prepared on this server connection already (by us before a reconnect of the pooler,
            // or another client): the name fixes the text, so it is this statement.
        }
        preparedNames[key] = name
        return name
    }

    /// `cognito_reset_` and 64 bits of FNV-1a over the statement's types and text.
    static func statementName(_ key: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return "cognito_reset_" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Runs trusted, parameterless SQL that may hold several statements (migration files) with
    /// the simple query protocol. Never pass data here: use `query(_:)`.
    public func executeScript(_ sql: String) throws(PostgresError) {
        let connection = try liveHandle()
        guard PQsendQuery(connection, sql) == 1 else { throw statementError(nil, connection) }
        _ = try awaitResult(connection, deadline: configuration.statementDeadline.map { ContinuousClock.now + $0 })
    }

    // MARK: Waiting for the server

    /// How long a server gets to answer a cancel request before the connection is given up.
    static let cancelGrace: Duration = .seconds(2)

    /// Collects the results of the statement just sent, waiting on the socket in short slices so
    /// that the calling task's cancellation and the deadline are noticed even when the server
    /// never answers (a stopped server, a lost network, a commit waiting for a standby that is
    /// gone). Either sends a cancel request; a server that then answers ends the statement its
    /// usual way (SQLSTATE 57014, or a commit that completes with a warning), and one that does
    /// not is given up after `cancelGrace`: the connection is closed and `.timedOut` thrown.
    /// Several results (a script) give the first error, or else the last result.
    private func awaitResult(_ connection: OpaquePointer, deadline: ContinuousClock.Instant?) throws(PostgresError) -> PostgresResult {
        var firstError: PostgresError?
        var last: PostgresResult?
        var cancelSent: ContinuousClock.Instant?
        var deadlinePassed = false
        /// A COPY TO STDOUT, which nothing here reads: the connection cannot go on.
        var copyOut = false
        func take(_ result: OpaquePointer) {
            defer { PQclear(result) }
            switch PQresultStatus(result) {
            case PGRES_COPY_IN:
                // COPY belongs to `copyIn`; here it would never end. Refuse the data: the server
                // then fails the statement and the results go on.
                _ = PQputCopyEnd(connection, "COPY FROM STDIN is not supported here")
                if firstError == nil {
                    firstError = PostgresError(code: .unexpectedResult, message: "COPY FROM STDIN is not supported here")
                }
            case PGRES_COPY_OUT, PGRES_COPY_BOTH:
                copyOut = true
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
                last = LibPQ.makeResult(result)
            case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR, PGRES_BAD_RESPONSE:
                if firstError == nil { firstError = statementError(result, connection) }
            default:
                let status = String(cString: PQresStatus(PQresultStatus(result)))
                if firstError == nil {
                    firstError = PostgresError(code: .unexpectedResult, message: "unexpected result status \(status)")
                }
            }
        }
        while true {
            if PQconsumeInput(connection) == 0 {
                // The connection broke: take what libpq still reports, then fail.
                while let result = PQgetResult(connection) { take(result) }
                var error = firstError ?? statementError(nil, connection)
                error.code = .connectionLost
                throw error
            }
            while PQisBusy(connection) == 0 {
                guard let result = PQgetResult(connection) else {
                    if var error = firstError {
                        // FATAL ends the session (pg_terminate_backend, a shutdown) even before
                        // libpq has read the end of the stream.
                        if error.severity == "FATAL" || error.severity == "PANIC" { error.code = .connectionLost }
                        if deadlinePassed && error.sqlState == SQLState.queryCanceled {
                            error.message = "the statement did not finish within its deadline and was cancelled"
                        }
                        throw error
                    }
                    guard let last else { throw PostgresError(code: .unexpectedResult, message: "the statement returned no result") }
                    return last
                }
                take(result)
                if copyOut {
                    giveUp()
                    throw PostgresError(code: .unexpectedResult, message: "COPY TO STDOUT is not supported here; the connection was closed")
                }
            }
            let now = ContinuousClock.now
            if cancelSent == nil && (Task.isCancelled || deadline.map { now >= $0 } == true) {
                deadlinePassed = !Task.isCancelled
                if deadlinePassed { onDeadline() }
                cancelSent = now
                requestCancel()
            }
            if let cancelSent, now - cancelSent >= Self.cancelGrace {
                giveUp()
                throw PostgresError(
                    code: .timedOut,
                    message: deadlinePassed
                        ? "the server did not answer within the statement's deadline, nor a cancel request; the connection was closed"
                        : "the server did not answer a cancel request; the connection was closed")
            }
            // Wakes at once when the server's answer arrives; the slice only bounds how late a
            // deadline or a cancellation is noticed.
            var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, 50)
        }
    }

    /// Sends a cancel request for the running statement from a thread of its own: `PQcancel`
    /// opens a connection and blocks until the server answers, which a stopped server never does.
    private func requestCancel() {
        let canceller = self.canceller
        canceller.beginCancel()
        Thread.detachNewThread {
            canceller.cancel()
            canceller.endCancel()
        }
    }

    /// Closes a connection whose server stopped answering; later calls fail with `.closed` and
    /// the pool discards it.
    private func giveUp() {
        logger.warning("the database did not answer in time; closing the connection", metadata: ["backend_pid": "\(backendPID)"])
        close()
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
            guard poll(&descriptor, 1, 0) > 0 else { return PQstatus(handle) == CONNECTION_OK && !notices.sessionEnding }
            // An error that arrives while idle reaches the notice receiver: a FATAL one means
            // the server is closing this session, whether or not its end has arrived yet (the
            // backend leaves pg_stat_activity before its socket closes). PQconsumeInput only
            // reads; PQisBusy parses what was read, which is what calls the receiver.
            guard PQconsumeInput(handle) == 1 else { return false }
            _ = PQisBusy(handle)
            guard PQstatus(handle) == CONNECTION_OK, !notices.sessionEnding else { return false }
        }
        // Still readable after several reads while idle: something is wrong with this session.
        return false
    }
}
