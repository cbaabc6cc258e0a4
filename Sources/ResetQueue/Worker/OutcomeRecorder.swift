import Logging

/// Collects call outcomes and jobs to give back, and writes them in batches: one statement for
/// many successes instead of one per call. A failed write keeps the batch and tries again (the
/// database may be restarting); if it stays down longer than the lease, rescue takes over.
actor OutcomeRecorder {
    private let store: PostgresJobStore
    private let workerID: String
    private let interval: Duration
    private let logger: Logger
    private let onWritten: @Sendable (Set<Int64>) -> Void
    private var records: [JobRecord] = []
    private var releases: [ClaimedJob] = []
    private var isFlushing = false
    private let wake = WakeSignal()

    init(store: PostgresJobStore, workerID: String, interval: Duration, logger: Logger, onWritten: @escaping @Sendable (Set<Int64>) -> Void) {
        self.store = store
        self.workerID = workerID
        self.interval = interval
        self.logger = logger
        self.onWritten = onWritten
    }

    func add(_ record: JobRecord) async {
        records.append(record)
        await wake.signal()
    }

    func release(_ job: ClaimedJob) async {
        releases.append(job)
        await wake.signal()
    }

    var isEmpty: Bool { records.isEmpty && releases.isEmpty && !isFlushing }

    /// Writes whenever something is waiting, gathering for `interval` first; idle costs nothing.
    func run() async {
        var failures = 0
        while !Task.isCancelled {
            if records.isEmpty && releases.isEmpty { await wake.wait(timeout: nil) }
            guard !Task.isCancelled else { return }
            try? await Task.sleep(for: interval)
            if await flush() {
                failures = 0
            } else {
                failures += 1
                try? await Task.sleep(for: .milliseconds(min(5_000, 100 * (1 << min(failures, 6)))))
            }
        }
    }

    /// Stops `run()` from waiting for work that will not come.
    func stopWaiting() async { await wake.signal() }

    /// Writes what is pending; false if the database refused (the batch is kept).
    @discardableResult
    func flush() async -> Bool {
        guard !isFlushing, !(records.isEmpty && releases.isEmpty) else { return true }
        isFlushing = true
        defer { isFlushing = false }
        let batch = records
        let giveBack = releases
        records.removeAll()
        releases.removeAll()
        do {
            let written = try await store.record(batch, workerID: workerID)
            if !giveBack.isEmpty { try await store.release(giveBack, workerID: workerID) }
            onWritten(written)
            return true
        } catch {
            records = batch + records
            releases = giveBack + releases
            logger.warning("cannot record outcomes, will retry", metadata: ["error": "\(error)", "pending": "\(records.count)"])
            return false
        }
    }

    /// Keeps flushing until everything is written or `deadline` passes.
    func drain(until deadline: ContinuousClock.Instant) async {
        while !(records.isEmpty && releases.isEmpty) || isFlushing, ContinuousClock.now < deadline {
            if isFlushing {
                // The writer loop is mid-write: give the actor back so that write can finish.
                try? await Task.sleep(for: .milliseconds(5))
            } else if await !flush() {
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}
