import CognitoClient
import CognitoTesting
import Foundation
import Logging
import Postgres
import PostgresTesting
import ResetQueue
import Synchronization

/// A migrated database, a fake Cognito, and workers wired to both with fast test timings.
struct WorkerHarness {
    let database: TemporaryDatabase
    let pool: ConnectionPool
    let server: FakeHTTPServer
    let transport: HTTPTransport
    let events = EventRecorder<WorkerEvent>()

    static let pool = "eu-west-1_Harness1"

    /// Runs `body` with a harness whose fake Cognito answers with `responder`; tears all down.
    static func with(
        responder: @escaping FakeHTTPServer.Responder = { _, _ in .cognitoSuccess() },
        timeouts: HTTPTransport.Timeouts = .init(connect: .seconds(5), read: .seconds(10), total: .seconds(20)),
        _ body: (WorkerHarness) async throws -> Void
    ) async throws {
        try await withMigratedDatabase { database in
            let server = try await FakeHTTPServer.start(responder: responder)
            let transport = HTTPTransport(timeouts: timeouts)
            let pool = ConnectionPool(
                configuration: database.configuration, options: .init(maximumConnections: 8, connectDeadline: .seconds(2)))
            let harness = WorkerHarness(database: database, pool: pool, server: server, transport: transport)
            do {
                try await body(harness)
            } catch {
                await harness.shutdown()
                throw error
            }
            await harness.shutdown()
        }
    }

    func shutdown() async {
        await pool.close()
        await transport.shutdown()
        await server.shutdown()
    }

    /// Fast timings for tests; tweak the result as needed.
    static func configuration(_ id: String = "test-worker-\(UUID().uuidString.prefix(6))") -> WorkerConfiguration {
        var configuration = WorkerConfiguration(workerID: id)
        configuration.lease = .seconds(2)
        configuration.heartbeatInterval = .milliseconds(300)
        configuration.pollInterval = .milliseconds(200)
        configuration.gracePeriod = .seconds(10)
        configuration.retryPolicy = JobRetryPolicy(
            base: .seconds(10), cap: .seconds(900), throttleMinimum: .milliseconds(10),
            throttleJitter: .milliseconds(20), limitExceededDelay: .seconds(300))
        return configuration
    }

    func makeWorker(
        _ configuration: WorkerConfiguration = WorkerHarness.configuration(), limiter: any RateLimiter = UnlimitedRateLimiter(),
        random: @escaping @Sendable () -> Double = { 0.5 }, store: PostgresJobStore? = nil,
        listen: Bool = true, clock: WorkerClock = .continuous
    ) -> QueueWorker {
        // The fake server plays STS too (pool roles).
        let cognito = CognitoIdentityProviderClient(
            endpoints: CognitoEndpointResolver(configuredRegion: "eu-west-1", endpointOverride: server.url),
            credentials: CachingCredentialProvider(base: StaticProvider()), transport: transport,
            stsEndpoint: STSEndpoint(environment: ["AWS_ENDPOINT_URL_STS": server.url.absoluteString]),
            dependencies: ClientDependencies(random: { 0.5 }, sleep: { _ in }))
        return QueueWorker(
            configuration: configuration, store: store ?? PostgresJobStore(pool: pool),
            listenConfiguration: listen ? database.configuration : nil,
            cognito: cognito, limiter: limiter, logger: Logger(label: "test-worker"), random: random,
            onEvent: events.record, clock: clock)
    }

    /// Starts `worker` in a task; `stop(_:)` ends it.
    func start(_ worker: QueueWorker) -> Task<Void, any Error> {
        Task { try await worker.run() }
    }

    func stop(_ worker: QueueWorker, _ task: Task<Void, any Error>) async throws {
        await worker.stop()
        try await task.value
    }

    /// Inserts `count` jobs for users `prefix1`... with plain SQL, as another system would.
    func insertJobs(_ count: Int, prefix: String = "user", maxAttempts: Int = 10, priority: Int = 100) async throws {
        try await pool.query(
            """
            INSERT INTO cognito_reset.jobs (user_pool_id, username, max_attempts, priority)
            SELECT \(Self.pool), \(prefix) || g, \(maxAttempts), \(priority) FROM generate_series(1, \(count)) AS g
            """)
    }

    /// Waits until no job is pending, running or retrying.
    func waitUntilAllFinished(deadline: Duration = .seconds(60)) async throws {
        try await waitUntil(
            "every job to finish", deadline: deadline,
            count: """
                SELECT count(*) FROM cognito_reset.jobs WHERE state IN ('pending', 'running', 'retrying')
                """, is: 0)
    }

    /// Waits until the count `sql` returns reaches `target`, checking again each time a worker
    /// writes outcomes, rescues, claims or goes idle (events, not sleeps).
    func waitUntil(_ what: String, deadline: Duration = .seconds(60), count sql: String, is target: Int) async throws {
        let (pool, events) = (self.pool, self.events)
        /// The count, or nil when the connection was lost (tests that take the database away
        /// can hand the pool a connection whose end it has not seen yet: ask again).
        @Sendable func current() async throws -> Int? {
            do {
                return try await pool.query(PostgresQuery(sql))[0].decode(Int.self, at: 0)
            } catch let error as PostgresError where error.isConnectionError {
                return nil
            }
        }
        try await withDeadline(deadline, what) {
            while try await current() != target {
                _ = try await events.next(what, deadline: deadline) { event in
                    switch event {
                    case .recorded, .rescued, .claimed, .idle: true
                    default: false
                    }
                }
            }
        }
    }

    func count(_ sql: String) async throws -> Int {
        try await pool.query(PostgresQuery(sql))[0].decode(Int.self, at: 0)
    }
}

struct StaticProvider: CredentialProvider {
    var name: String { "static" }
    func credentials() async throws(CredentialError) -> AWSCredentials? {
        AWSCredentials(accessKeyID: "AKIDTEST", secretAccessKey: "secret", source: name)
    }
}

/// Counts calls per username at the fake server.
func callsPerUser(_ server: FakeHTTPServer) -> [String: Int] {
    server.requests.reduce(into: [:]) { counts, request in
        if let user = request.username { counts[user, default: 0] += 1 }
    }
}
