import Logging
import Postgres

/// Collects call outcomes and jobs to give back, and writes them in batches: one statement for
/// many successes instead of one per call.
///
/// - The database unreachable, or failing for a passing reason (a statement or lock timeout, a
///   read-only standby mid-failover, a full disk): the batch is kept, its jobs stay held (their
///   leases renewed), and it is written once the database takes it. Dropping it would let the
///   lease expire and rescue call Cognito again: a second reset email for the same request.
/// - A row the database refuses for its data (SQLSTATE class 22 or 23): the batch is written row
///   by row and the refused row is dropped with an error log, so one bad row can never block
///   every later outcome; its job's lease then expires and rescue returns it to the queue.
actor OutcomeRecorder {
    /// What a write did: `settled` names one job id per claim settled (a job this worker claimed
    /// again can appear twice); `movedOn` ids changed state.
    struct Written: Sendable {
        var settled: [Int64] = []
        var movedOn: Set<Int64> = []
    }

    private let store: PostgresJobStore
    private let workerID: String
    private let interval: Duration
    /// Outcomes that make a batch worth writing without waiting out `interval`.
    private let eagerCount: Int
    private let logger: Logger
    private let onWritten: @Sendable (Written) async -> Void
    /// A write failed and its outcomes are kept for the next attempt.
    private let onFailure: @Sendable (any Error) async -> Void
    private var records: [JobRecord] = []
    private var releases: [ClaimedJob] = []
    private var isFlushing = false
    /// Callers waiting for the write in progress to end.
    private var flushWaiters: [CheckedContinuation<Void, Never>] = []
    private var isStopped = false
    private let clock: WorkerClock
    private let wake: WakeSignal
    private let summaryInterval: Duration = .seconds(10)
    /// nil until the first batch, which is summarised at once so an operator sees work start.
    private var lastSummary: WorkerClock.Moment?
    private var sinceSummary = Tally()

    init(
        store: PostgresJobStore, workerID: String, interval: Duration, eagerCount: Int = 32, clock: WorkerClock = .continuous,
        logger: Logger,
        onWritten: @escaping @Sendable (Written) async -> Void,
        onFailure: @escaping @Sendable (any Error) async -> Void
    ) {
        self.clock = clock
        self.wake = WakeSignal(clock: clock)
        self.eagerCount = max(1, eagerCount)
        self.store = store
        self.workerID = workerID
        self.interval = interval
        self.logger = logger
        self.onWritten = onWritten
        self.onFailure = onFailure
    }

    func add(_ record: JobRecord) async {
        records.append(record)
        // Wake the writer for the first outcome (it starts gathering) and again when a full
        // batch is waiting (it writes at once instead of finishing the gathering interval).
        if records.count == 1 || records.count == eagerCount { await wake.signal() }
    }

    func release(_ job: ClaimedJob) async {
        releases.append(job)
        if releases.count == 1 { await wake.signal() }
    }

    var isEmpty: Bool { records.isEmpty && releases.isEmpty && !isFlushing }

    /// Writes whenever something is waiting, gathering for `interval` first; idle costs nothing.
    func run() async {
        var failures = 0
        while !Task.isCancelled {
            if records.isEmpty && releases.isEmpty {
                guard !isStopped else { return }
                await wake.wait(timeout: nil)
            }
            guard !Task.isCancelled, !isStopped || !(records.isEmpty && releases.isEmpty) else { return }
            // Gather for `interval`, or less once `eagerCount` outcomes wait: a busy worker then
            // writes full batches back to back, and its unwritten outcomes (which the claim loop
            // bounds) stay few.
            if records.count < eagerCount { await wake.wait(timeout: interval) }
            if await flush() {
                failures = 0
            } else {
                failures += 1
                try? await clock.sleep(for: .milliseconds(min(5_000, 100 * (1 << min(failures, 6)))))
            }
        }
    }

    /// Ends `run()` once nothing is left to write.
    func stop() async {
        isStopped = true
        await wake.signal()
    }

    /// Jobs whose outcome was sent in a batch whose reply never came: it may be written.
    private var maybeWritten: Set<Int64> = []

    /// Writes what is pending; false if the database could not be reached (the rest is kept).
    @discardableResult
    func flush() async -> Bool {
        guard !isFlushing, !(records.isEmpty && releases.isEmpty) else { return true }
        isFlushing = true
        defer {
            isFlushing = false
            for waiter in flushWaiters { waiter.resume() }
            flushWaiters.removeAll()
        }
        let batch = records
        records.removeAll()
        let recorded = await write(batch) { items in
            try await self.store.record(
                items, workerID: self.workerID, mayBeWritten: items.contains { self.maybeWritten.contains($0.job.id) })
        }
        // A batch kept after an error may have committed anyway (a reply lost with the connection).
        maybeWritten.subtract(recorded.settled)
        maybeWritten.formUnion(recorded.kept.map(\.job.id))
        records = recorded.kept + records
        let giveBack = releases
        releases.removeAll()
        let released = await write(giveBack) { jobs -> Set<Int64> in
            try await self.store.release(jobs, workerID: self.workerID)
            return []
        }
        releases = released.kept + releases
        var written = Written()
        written.settled = recorded.settled + released.settled
        written.movedOn = recorded.movedOn
        summarise(batch.filter { recorded.movedOn.contains($0.job.id) }, givenBack: released.settled.count)
        if !written.settled.isEmpty { await onWritten(written) }
        return recorded.kept.isEmpty && released.kept.isEmpty
    }

    /// Each written batch at debug; at info, one summary line at most every `summaryInterval`, so a
    /// bulk run does not flood the journal (or hit its rate limit) with a line per batch.
    private func summarise(_ moved: [JobRecord], givenBack: Int) {
        guard !moved.isEmpty || givenBack > 0 else { return }
        var batch = Tally()
        for record in moved {
            switch record.newState {
            case .succeeded: batch.succeeded += 1
            case .failed: batch.failed += 1
            case .retrying: batch.retrying += 1
            default: break
            }
        }
        batch.givenBack = givenBack
        logger.debug("outcomes recorded", metadata: batch.metadata)
        sinceSummary.add(batch)
        let now = clock.now
        if lastSummary.map({ now - $0 >= summaryInterval }) ?? true {
            var metadata = sinceSummary.metadata
            if let lastSummary { metadata["period_s"] = "\(Int64((now - lastSummary) / .seconds(1)))" }
            logger.info("outcomes recorded", metadata: metadata)
            sinceSummary = Tally()
            lastSummary = now
        }
    }

    struct Tally {
        var succeeded = 0, failed = 0, retrying = 0, givenBack = 0
        mutating func add(_ other: Tally) {
            succeeded += other.succeeded
            failed += other.failed
            retrying += other.retrying
            givenBack += other.givenBack
        }
        var metadata: Logger.Metadata {
            ["succeeded": "\(succeeded)", "failed": "\(failed)", "retrying": "\(retrying)", "given_back": "\(givenBack)"]
        }
    }

    /// Writes `items` in one statement; after a data error, one by one, dropping the refused.
    /// Anything else keeps them for the next attempt.
    private func write<Item: IdentifiedJob>(
        _ items: [Item], _ statement: ([Item]) async throws -> Set<Int64>
    ) async -> (kept: [Item], settled: [Int64], movedOn: Set<Int64>) {
        guard !items.isEmpty else { return ([], [], []) }
        do {
            let movedOn = try await statement(items)
            return ([], items.map(\.jobID), movedOn)
        } catch let error as PostgresError where error.isDataError {
            var settled: [Int64] = []
            var movedOn: Set<Int64> = []
            var kept: [Item] = []
            for item in items {
                do {
                    movedOn.formUnion(try await statement([item]))
                    settled.append(item.jobID)
                } catch let error as PostgresError where error.isDataError {
                    logger.error(
                        "the database refused an outcome; the job's lease will expire and rescue will retry it",
                        metadata: ["job.id": "\(item.jobID)", "error": "\(error)"])
                    settled.append(item.jobID)
                } catch {
                    kept.append(item)
                }
            }
            return (kept, settled, movedOn)
        } catch {
            // Kept, and the jobs stay held: nothing is called twice. An error no retry can fix
            // (grants, schema) stalls this worker, so it is reported where operators look.
            await onFailure(error)
            return (items, [], [])
        }
    }

    /// Keeps flushing until everything is written or `deadline` passes.
    func drain(until deadline: WorkerClock.Moment) async {
        while !(records.isEmpty && releases.isEmpty) || isFlushing, clock.now < deadline {
            if isFlushing {
                // The writer loop is mid-write: wait for it to end (the actor is free meanwhile).
                await withCheckedContinuation { flushWaiters.append($0) }
            } else if await !flush() {
                try? await clock.sleep(for: .milliseconds(200))
            }
        }
    }
}

/// Outcomes and give-backs both name a job.
protocol IdentifiedJob: Sendable {
    var jobID: Int64 { get }
}

extension JobRecord: IdentifiedJob {
    var jobID: Int64 { job.id }
}

extension ClaimedJob: IdentifiedJob {
    var jobID: Int64 { id }
}
