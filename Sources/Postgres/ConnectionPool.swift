public import Logging

/// A small pool of connections shared by concurrent tasks.
///
/// - Connections open lazily, up to `maximumConnections`; callers beyond that wait for one to be
///   returned (first come, first served when a connection is handed back).
/// - A connection handed out is checked first: an idle connection the server closed (restart,
///   `pg_terminate_backend`) is noticed without a round trip and replaced.
/// - A connection that broke during use, or comes back inside a transaction that cannot be rolled
///   back, is discarded rather than reused.
/// - Opening a connection retries with exponential backoff and jitter until `connectDeadline`, so
///   a server restart or a short outage is ridden out; after that the error reaches the caller.
public actor ConnectionPool {
    /// How the pool behaves.
    public struct Options: Sendable {
        public var maximumConnections: Int
        /// How long one `withConnection` keeps retrying to open a connection before failing.
        public var connectDeadline: Duration
        public var backoff: ReconnectBackoff

        public init(
            maximumConnections: Int = 4, connectDeadline: Duration = .seconds(30),
            backoff: ReconnectBackoff = ReconnectBackoff()
        ) {
            self.maximumConnections = max(1, maximumConnections)
            self.connectDeadline = connectDeadline
            self.backoff = backoff
        }
    }

    /// Something the pool did, for logs, metrics and tests.
    public enum Event: Sendable {
        case connected(backendPID: Int32)
        case connectFailed(PostgresError, attempt: Int)
        case discarded(reason: String)
        /// A statement overran the configuration's `statementDeadline` (a hung or overloaded
        /// server, a commit waiting for a standby); a cancel request was sent.
        case statementDeadlineExceeded
    }

    public let configuration: ConnectionConfiguration
    public let options: Options
    private let logger: Logger
    private let onEvent: @Sendable (Event) -> Void

    private var idle: [PostgresConnection] = []
    /// Connections open or being opened, handed out or idle.
    private var openCount = 0
    /// Tasks waiting for a connection; resumed with one, or with nil meaning "a slot freed, retry".
    private var waiters: [(id: Int, continuation: CheckedContinuation<PostgresConnection?, any Error>)] = []
    private var nextWaiterID = 0
    private var isClosed = false

    public init(
        configuration: ConnectionConfiguration, options: Options = Options(),
        logger: Logger = Logger(label: "cognito-reset.postgres"),
        onEvent: @escaping @Sendable (Event) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.options = options
        self.logger = logger
        self.onEvent = onEvent
    }

    /// Lends a connection to `body` and takes it back afterwards, whatever happens.
    public nonisolated func withConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await acquire()
        do {
            let value = try await body(connection)
            await release(connection)
            return value
        } catch {
            await release(connection)
            throw error
        }
    }

    /// Runs one statement on a pooled connection.
    @discardableResult
    public nonisolated func query(_ query: PostgresQuery) async throws -> PostgresResult {
        try await withConnection { try await $0.query(query) }
    }

    /// Runs `body` in a transaction on a pooled connection (see `PostgresConnection.transaction`).
    public nonisolated func transaction<T>(
        isolationLevel: IsolationLevel? = nil, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withConnection { try await $0.transaction(isolationLevel: isolationLevel, body) }
    }

    /// Closes idle connections and refuses new work; connections in use close when returned.
    public func close() async {
        isClosed = true
        let closing = idle
        idle.removeAll()
        openCount -= closing.count
        for connection in closing { await connection.close() }
        let pending = waiters
        waiters.removeAll()
        for waiter in pending { waiter.continuation.resume(throwing: Self.closedError) }
    }

    private static let closedError = PostgresError(code: .closed, message: "the connection pool is closed")

    // MARK: Lending

    func acquire() async throws -> PostgresConnection {
        while true {
            guard !isClosed else { throw Self.closedError }
            if let connection = idle.popLast() {
                if await connection.isAliveWhileIdle() { return connection }
                await discard(connection, reason: "closed by the server while idle")
                continue
            }
            if openCount < options.maximumConnections {
                openCount += 1
                do {
                    return try await openWithBackoff()
                } catch {
                    openCount -= 1
                    wakeOneWaiter(with: nil)
                    throw error
                }
            }
            if let connection = try await waitForRelease() { return connection }
        }
    }

    func release(_ connection: PostgresConnection) async {
        guard !isClosed, await connection.prepareForReuse() else {
            await discard(connection, reason: isClosed ? "pool closed" : "broken or stuck in a transaction")
            return
        }
        if !wakeOneWaiter(with: connection) { idle.append(connection) }
    }

    private func discard(_ connection: PostgresConnection, reason: String) async {
        openCount -= 1
        await connection.close()
        logger.debug("discarded a database connection", metadata: ["reason": "\(reason)"])
        onEvent(.discarded(reason: reason))
        wakeOneWaiter(with: nil)
    }

    @discardableResult
    private func wakeOneWaiter(with connection: PostgresConnection?) -> Bool {
        guard !waiters.isEmpty else { return false }
        waiters.removeFirst().continuation.resume(returning: connection)
        return true
    }

    private func waitForRelease() async throws -> PostgresConnection? {
        let id = nextWaiterID
        nextWaiterID += 1
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiters.append((id, continuation))
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(id) }
        }
    }

    private func cancelWaiter(_ id: Int) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(throwing: CancellationError())
    }

    private func openWithBackoff() async throws -> PostgresConnection {
        let clock = ContinuousClock()
        let deadline = clock.now + options.connectDeadline
        var attempt = 0
        while true {
            do {
                let connection = try await PostgresConnection.connect(configuration, logger: logger) { [onEvent] in
                    onEvent(.statementDeadlineExceeded)
                }
                let pid = await connection.backendPID
                if attempt > 0 { logger.info("database connection restored", metadata: ["attempts": "\(attempt + 1)"]) }
                onEvent(.connected(backendPID: pid))
                return connection
            } catch {
                onEvent(.connectFailed(error, attempt: attempt))
                let delay = options.backoff.delay(attempt: attempt)
                guard !isClosed, clock.now + delay < deadline else { throw error }
                // The first failure at warning; the retries that follow at debug, so an outage
                // does not fill the journal (the worker reports it once, and again on recovery).
                logger.log(
                    level: attempt == 0 ? .warning : .debug,
                    "cannot connect to the database, retrying",
                    metadata: ["error": "\(error)", "retry_in_ms": "\(Int64(delay / .milliseconds(1)))"])
                attempt += 1
                try await Task.sleep(for: delay)
            }
        }
    }
}
