public import CognitoClient
import CoreMetrics
import Foundation
public import Logging
public import Postgres
public import ServiceLifecycle

/// Something a worker did, for tests (which wait on these instead of sleeping) and metrics.
public enum WorkerEvent: Sendable {
    case registered
    case claimed([ClaimedJob])
    /// Outcomes written; the ids whose job moved on (others had been cancelled or rescued).
    case recorded(Set<Int64>)
    /// Nothing runnable; waiting for a NOTIFY, the poll interval or the next run_at.
    case idle
    case rescued(Int)
    case heartbeat(renewedLeases: Int)
    /// Every statement of a heartbeat begun at `since` (renewal, rescue) was answered: evidence
    /// the database is healthy again, if nothing went wrong since.
    case databaseAnswered(since: WorkerClock.Moment)
    case databaseUnavailable(PostgresError)
    /// Claiming has ended; in-flight calls get the grace period.
    case stopping
    case stopped
}

/// `cognito-reset worker`: claims runnable jobs (as many as the shared rate limit has slots for),
/// calls Cognito for each at its slot, records every outcome, and keeps its leases and status row fresh. See docs/design.md
/// (job lifecycle; claim, lease, heartbeat, rescue, record); defaults in `WorkerConfiguration`.
///
/// A `Service` for swift-service-lifecycle: on graceful shutdown (SIGTERM/SIGINT) it stops
/// claiming, lets in-flight calls finish within the grace period, gives back claimed jobs that
/// never started, marks itself `stopped` and returns.
public final class QueueWorker: Service, Sendable {
    public let configuration: WorkerConfiguration
    let store: PostgresJobStore
    /// Where to LISTEN for inserts; nil: no LISTEN, the poll interval alone finds new jobs.
    let listenConfiguration: ConnectionConfiguration?
    let cognito: CognitoIdentityProviderClient
    let limiter: any RateLimiter
    /// Set when calls are paced by the shared bucket (`configuration.sharedRate`).
    let throttleReporter: ThrottleReporter?
    let logger: Logger
    let random: @Sendable () -> Double
    let onEvent: @Sendable (WorkerEvent) -> Void
    let state: WorkerRunState
    /// Where the worker's time comes from (`ContinuousClock` unless a test gives another).
    public let clock: WorkerClock
    let metrics = WorkerMetrics()
    /// Beats on every turn of the claim loop: the watchdog's evidence that the worker is not wedged.
    public let pulse: LoopPulse

    public init(
        configuration: WorkerConfiguration, store: PostgresJobStore, listenConfiguration: ConnectionConfiguration?,
        cognito: CognitoIdentityProviderClient, limiter: any RateLimiter, logger: Logger,
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        onEvent: @escaping @Sendable (WorkerEvent) -> Void = { _ in },
        pulse: LoopPulse = LoopPulse(), clock: WorkerClock = .continuous
    ) {
        self.clock = clock
        self.state = WorkerRunState(
            clock: clock, callSlots: configuration.concurrency, maxCalledUnsettled: configuration.maxCalledUnsettled)
        self.pulse = pulse
        self.configuration = configuration
        self.store = store
        self.listenConfiguration = listenConfiguration
        self.cognito = cognito
        self.limiter = limiter
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.workerID)"
        self.logger = logger
        self.throttleReporter = configuration.sharedRate.map { _ in ThrottleReporter(store: store, logger: logger) }
        self.random = random
        self.onEvent = onEvent
    }

    /// Stop requested (SIGTERM, `stop()`, drained, or a fatal error): claiming has ended and
    /// in-flight calls are finishing within the grace period.
    public var isStopping: Bool {
        get async { await state.isStopping }
    }

    /// The rate calls are paced at now, in requests per second (nil: unlimited). With the shared
    /// bucket, its adaptive rate as of the last claim.
    public var currentRate: Double? {
        get async {
            configuration.sharedRate == nil ? await limiter.currentRate : await state.sharedRate
        }
    }

    /// What the worker is doing now (its `workers` row, live).
    public func snapshot() async -> WorkerStatus {
        await state.status
    }

    /// Asks the worker to stop as on SIGTERM (for callers that run it without a ServiceGroup).
    public func stop() async {
        await state.requestStop(grace: configuration.gracePeriod)
    }

    /// Runs until stopped (SIGTERM through swift-service-lifecycle, `stop()`, or `--drain`
    /// finding nothing to do). Throws if the database refuses the worker in a way retrying cannot
    /// fix (no permission, no schema).
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await runUntilStopped()
        } onGracefulShutdown: { [state, configuration] in
            Task { await state.requestStop(grace: configuration.gracePeriod) }
        }
        if let fatal = await state.fatal { throw fatal }
    }

    /// The end of the grace period, kept for writing outcomes and marking the worker stopped:
    /// in-flight calls get the rest, so that the whole stop fits in `--grace`.
    var stopReserve: Duration { min(.seconds(3), configuration.gracePeriod / 4) }

    /// SQLSTATE classes that retrying cannot fix: the worker stops instead of looping.
    static func isFatal(_ error: any Error) -> Bool {
        guard let error = error as? PostgresError, let state = error.sqlState else { return false }
        return [
            SQLState.insufficientPrivilege, SQLState.undefinedTable, SQLState.undefinedFunction, SQLState.undefinedColumn,
            SQLState.invalidSchemaName,
        ].contains(state)
    }

    private func runUntilStopped() async throws {
        guard await register() else { return }
        let recorder = OutcomeRecorder(
            store: store, workerID: configuration.workerID, interval: configuration.flushInterval,
            eagerCount: configuration.concurrency, clock: clock, logger: logger,
            onWritten: { [state, onEvent] written in
                await state.settled(written.settled)
                onEvent(.recorded(written.movedOn))
            },
            onFailure: { [self] error in reportDatabaseError(error, while: "recording") })
        await withTaskGroup(of: Void.self) { background in
            background.addTask { await recorder.run() }
            background.addTask { await self.keepHeartbeat() }
            background.addTask { await self.listenForInserts() }
            await claimLoop(recorder: recorder)
            // One deadline for the whole stop (SIGTERM + grace): outcomes are written in the time
            // kept for them, and statements still waiting then are cancelled.
            let stopDeadline = await state.stopDeadline ?? clock.now
            let writeBy = max(stopDeadline - stopReserve / 3, clock.now + .milliseconds(200))
            // withTimeout returns on time even if a statement cannot be interrupted at once.
            _ = try? await withTimeout(writeBy - clock.now) { await recorder.drain(until: writeBy) }
            await recorder.stop()
            background.cancelAll()
        }
        let status = await state.status
        // Within the grace period when a stop was requested; a drain that ended by itself has time.
        let remaining = await state.stopDeadline.map { $0 - clock.now } ?? .seconds(5)
        let marked =
            (try? await withTimeout(max(remaining, .milliseconds(100))) { [store, configuration] in
                try await store.markWorkerStopped(id: configuration.workerID, status: status)
            }) != nil
        if !marked {
            logger.warning("cannot mark the worker stopped; its row will be marked once its heartbeat is stale")
        }
        let final = await state.status
        logger.info("worker stopped", metadata: ["succeeded": "\(final.succeeded)", "failed": "\(final.failed)"])
        onEvent(.stopped)
    }

    /// Registers the worker row, retrying while the database is unreachable. False if asked to
    /// stop before it worked.
    private func register() async -> Bool {
        var failures = 0
        while !(await state.isStopping) {
            do {
                try await store.registerWorker(
                    id: configuration.workerID, host: ProcessInfo.processInfo.hostName,
                    pid: ProcessInfo.processInfo.processIdentifier, version: CognitoResetVersion.current,
                    concurrency: configuration.concurrency, regions: configuration.regions,
                    heartbeatInterval: configuration.heartbeatInterval)
                logger.info(
                    "worker started",
                    metadata: [
                        "concurrency": "\(configuration.concurrency)",
                        "regions": "\(configuration.regions?.joined(separator: ",") ?? "all")",
                    ])
                await ensureHistoryPartitions()
                onEvent(.registered)
                return true
            } catch {
                failures += 1
                reportDatabaseError(error, while: "registering")
                if Self.isFatal(error) {
                    await state.fail(error as! PostgresError, grace: configuration.gracePeriod)
                    return false
                }
                await state.wake.wait(timeout: backoff(failures))
            }
        }
        return false
    }

    // MARK: Claiming

    private func claimLoop(recorder: OutcomeRecorder) async {
        await withDiscardingTaskGroup { jobs in
            var failures = 0
            // Call slots plus, without the shared bucket, jobs claimed ahead of a free slot; a
            // refill waits for a few free places (`refillThreshold`) while calls are in flight.
            let (capacity, refillThreshold) = (configuration.claimCapacity, configuration.refillThreshold)
            // Claimed jobs whose outcome is not yet written are bounded too: a slow database then
            // slows claiming down. Of those, the called ones are bounded by the call slots'
            // gate (`maxCalledUnsettled`): a crash repeats at most that many calls.
            let maxUnsettled = configuration.maxCalledUnsettled + configuration.claimAheadCount
            loop: while !(await state.isStopping) {
                pulse.beat()
                let inFlight = await state.inFlight
                let unsettled = await state.unsettled
                let free = min(capacity - inFlight, maxUnsettled - unsettled)
                guard free > 0, inFlight == 0 || free >= refillThreshold else {
                    await state.wake.wait(timeout: configuration.pollInterval)
                    continue
                }
                let limit = min(free, configuration.claimBatchSize)
                do {
                    if let shared = configuration.sharedRate {
                        switch try await claimPaced(shared, limit: limit, jobs: &jobs, recorder: recorder) {
                        case .claimed:
                            failures = 0
                            continue
                        case .nothingRunnable:
                            failures = 0
                        }
                    } else {
                        // `--rate unlimited`: the same claim without a bucket.
                        let claim = try await claim(limit: limit, rate: nil)
                        failures = 0
                        if !claim.jobs.isEmpty {
                            await dispatch(claim, paced: false, jobs: &jobs, recorder: recorder)
                            continue
                        }
                    }
                    if configuration.drain {
                        switch try await drainState(recorder) {
                        case .drained: break loop
                        case .waiting(let wait):
                            await state.wake.wait(timeout: min(configuration.pollInterval, wait))
                            continue
                        case .working: break
                        }
                    }
                    onEvent(.idle)
                    let next = try await state.cancellingOnStop { [store, configuration] in
                        try await store.nextRunAt(regions: configuration.regions)
                    }
                    await state.wake.wait(timeout: min(configuration.pollInterval, next ?? configuration.pollInterval))
                } catch {
                    // A stop cancels the statement in progress: that is no database failure.
                    if await state.isStopping { break }
                    failures += 1
                    reportDatabaseError(error, while: "claiming")
                    if Self.isFatal(error) {
                        await state.fail(error as! PostgresError, grace: configuration.gracePeriod)
                        break
                    }
                    await state.wake.wait(timeout: backoff(failures))
                }
            }
            // Stopping: unstarted jobs give themselves back; in-flight calls get the grace period.
            onEvent(.stopping)
            // The end of the grace period is kept for writing what the calls did.
            let deadline = (await state.stopDeadline ?? clock.now) - stopReserve
            if await !state.waitUntilIdle(until: deadline) {
                logger.warning("grace period over, abandoning in-flight calls to lease rescue")
                jobs.cancelAll()
            }
        }
    }

    private func backoff(_ failures: Int) -> Duration {
        let ceiling = min(10.0, 0.2 * Double(1 << min(failures, 8)))
        return .seconds(ceiling * (0.5 + random() / 2))
    }

    private func reportDatabaseError(_ error: any Error, while activity: String) {
        let postgresError = error as? PostgresError ?? PostgresError(code: .unexpectedResult, message: "\(error)")
        metrics.databaseError(during: activity)
        if Self.isFatal(postgresError) {
            // Retrying cannot fix it (a grant, the schema): an operator must.
            logger.error("the database refuses the worker's statement", metadata: ["activity": "\(activity)", "error": "\(postgresError)"])
        } else {
            logger.warning("database unavailable", metadata: ["activity": "\(activity)", "error": "\(postgresError)"])
        }
        onEvent(.databaseUnavailable(postgresError))
    }

    // MARK: Background

    /// History's daily partitions for the next days (finished jobs land in the default partition
    /// otherwise, and prune must then delete them row by row). A failure is only logged: the
    /// next hour tries again.
    private func ensureHistoryPartitions() async {
        do {
            try await store.ensureHistoryPartitions()
        } catch {
            reportDatabaseError(error, while: "creating history partitions")
        }
    }

    /// Renews leases and the status row, rescues expired leases, every heartbeat interval; makes
    /// history's partitions every hour.
    private func keepHeartbeat() async {
        var partitionsMade = clock.now
        while !Task.isCancelled {
            do {
                try await clock.sleep(for: configuration.heartbeatInterval)
            } catch {
                return
            }
            let began = clock.now
            do {
                let held = await state.held
                let renewed = try await store.heartbeat(
                    workerID: configuration.workerID, lease: configuration.lease, status: await state.status, holding: held)
                await state.renewed(renewed, sentAt: began)
                onEvent(.heartbeat(renewedLeases: renewed.count))
                // Read together (one actor call): a claim moves from "in progress" to "held" at once.
                let (holding, claimInProgress) = await state.rescueExclusions()
                let rescued = try await store.rescueExpiredLeases(
                    exceptHeldBy: configuration.workerID, holding: holding, claimInProgress: claimInProgress)
                if rescued > 0 {
                    reportRescued(rescued)
                    await state.wake.signal()
                }
                try await store.markSilentWorkersStopped(after: configuration.lease * 4)
                onEvent(.databaseAnswered(since: began))
                if clock.now - partitionsMade >= .seconds(3600) {
                    partitionsMade = clock.now
                    await ensureHistoryPartitions()
                }
            } catch {
                // Cancelled on the way out: no database trouble.
                if Task.isCancelled { return }
                reportDatabaseError(error, while: "heartbeat")
            }
        }
    }

    /// LISTEN for inserts; every notification (and every reconnect) wakes the claim loop.
    private func listenForInserts() async {
        guard let listenConfiguration else { return }
        let events = NotificationListener.events(
            configuration: listenConfiguration, channels: [CognitoResetSchema.jobsChannel], logger: logger)
        for await event in events {
            switch event {
            case .listening(let reconnected):
                if reconnected { metrics.reconnects.increment() }
                await state.wake.signal()
            case .notification:
                await state.wake.signal()
            case .disconnected:
                break
            }
        }
    }
}
