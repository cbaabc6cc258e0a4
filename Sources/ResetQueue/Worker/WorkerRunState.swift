import CoreMetrics
import Postgres

/// The live state of one running worker: what is in flight, what it has done, whether it stops.
actor WorkerRunState {
    let clock: WorkerClock
    let wake: WakeSignal
    private(set) var isStopping = false
    /// When a stop was requested, the moment by which everything must be done.
    private(set) var stopDeadline: WorkerClock.Moment?
    /// Jobs claimed whose outcome (or give-back) is not yet written, with how many such claims
    /// each has: their leases are renewed. Counted, because this worker can claim a job again
    /// before an older claim's outcome is written (an operator's cancel and retry, or a retry
    /// due at once); settling the old claim must not stop renewing the new one.
    private var holds: [Int64: Int] = [:]
    /// The jobs whose leases this worker keeps.
    var held: [Int64] { Array(holds.keys) }
    /// When each held job's lease was last set, on this worker's clock: the start of the claim or
    /// heartbeat statement that set it (the server set it later, so the lease lasts at least
    /// `lease` from here).
    private var leaseSetAt: [Int64: WorkerClock.Moment] = [:]
    /// Claims whose outcome is not yet written.
    private(set) var unsettled = 0
    /// A database error that retrying cannot fix (permissions, missing schema); stops the worker.
    private(set) var fatal: PostgresError?
    /// Claim statements sent whose jobs are not yet in `held`. While one is, this worker's own
    /// expired leases are not rescued: on a starved machine a reply can take longer to be
    /// handled than the lease lasts, and would look like a lost one.
    private(set) var claimsInProgress = 0
    /// Claimed and not yet finished (waiting for its slot, or calling Cognito).
    private(set) var inFlight = 0
    private(set) var status = WorkerStatus()
    /// The shared bucket's adaptive rate as of the last paced claim.
    var sharedRate: Double?
    /// Calls to Cognito now (not jobs claimed ahead and waiting for a slot).
    private let callsGauge = Gauge(label: "cognito_reset_calls_in_flight")
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []
    private var pausers: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextPauser = 0
    /// Statements of the claim loop in progress, cancelled when a stop is requested.
    private var stopCancellers: [Int: @Sendable () -> Void] = [:]
    private var nextStopCanceller = 0

    /// Cognito calls at most at once (`--concurrency`); jobs claimed ahead wait here for a slot.
    let callSlots: Int
    /// Jobs called (or calling) whose outcome is not yet written, at most: what a crash would
    /// make the fleet call again.
    let maxCalledUnsettled: Int
    private var callsInProgress = 0
    /// Per job, its claims that took a call slot and are not yet settled.
    private var calledHolds: [Int64: Int] = [:]
    private var calledUnsettled = 0
    /// Jobs waiting for a call slot, first come first served.
    private var callSlotWaiters: [(job: Int64, continuation: CheckedContinuation<Bool, Never>)] = []

    init(clock: WorkerClock, callSlots: Int = .max, maxCalledUnsettled: Int = .max) {
        self.clock = clock
        self.callSlots = max(1, callSlots)
        self.maxCalledUnsettled = max(1, maxCalledUnsettled)
        wake = WakeSignal(clock: clock)
    }

    /// Returns true once job `id` may call: fewer than `callSlots` calls are in progress and
    /// fewer than `maxCalledUnsettled` called jobs wait for their outcome to be written. Returns
    /// false at once when stopping, with no slot taken (the job then gives itself back). A slot
    /// taken is given up by `finished(_:releasingSlot:)`.
    func acquireCallSlot(for id: Int64) async -> Bool {
        guard !isStopping else { return false }
        if callSlotWaiters.isEmpty, mayStartCall {
            startCall(id)
            return true
        }
        // Counted by `admitWaiters`, which hands the slot over.
        return await withCheckedContinuation { callSlotWaiters.append((id, $0)) }
    }

    /// Jobs waiting for a call slot now.
    var waitingForSlot: Int { callSlotWaiters.count }

    private var mayStartCall: Bool { callsInProgress < callSlots && calledUnsettled < maxCalledUnsettled }

    private func startCall(_ id: Int64) {
        callsInProgress += 1
        calledUnsettled += 1
        calledHolds[id, default: 0] += 1
        callsGauge.record(callsInProgress)
    }

    /// Lets the longest waiters call, as far as both bounds allow.
    private func admitWaiters() {
        while !callSlotWaiters.isEmpty, mayStartCall {
            let waiter = callSlotWaiters.removeFirst()
            startCall(waiter.job)
            waiter.continuation.resume(returning: true)
        }
    }

    /// A call (or a job that left without one) gives its slot up.
    private func releaseCallSlot() {
        callsInProgress -= 1
        callsGauge.record(callsInProgress)
        admitWaiters()
    }

    /// Stopping: jobs waiting for a slot give themselves back instead.
    private func releaseCallSlotWaiters() {
        for waiter in callSlotWaiters { waiter.continuation.resume(returning: false) }
        callSlotWaiters.removeAll()
    }

    func requestStop(grace: Duration) async {
        guard !isStopping else { return }
        isStopping = true
        stopDeadline = clock.now + grace
        status.state = "draining"
        for pauser in pausers.values { pauser.resume() }
        pausers.removeAll()
        // Jobs claimed ahead stop waiting for a slot: they give themselves back.
        releaseCallSlotWaiters()
        for cancel in stopCancellers.values { cancel() }
        stopCancellers.removeAll()
        await wake.signal()
    }

    /// Runs `body` as a task of its own that a stop request cancels: a claim-loop statement
    /// waiting on a hung database must not hold the stop up (its cancel reaches the server, or
    /// the connection is given up). Stopped before or meanwhile, it throws what the cancelled
    /// statement throws (SQLSTATE 57014, `.timedOut`, or `CancellationError` if it had not started).
    nonisolated func cancellingOnStop<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let task = Task { try await body() }
        let id = await addStopCanceller { task.cancel() }
        // A task of its own does not inherit the caller's cancellation: pass it on.
        let result = await withTaskCancellationHandler {
            await task.result
        } onCancel: {
            task.cancel()
        }
        if let id { await removeStopCanceller(id) }
        return try result.get()
    }

    private func addStopCanceller(_ cancel: @escaping @Sendable () -> Void) -> Int? {
        guard !isStopping else {
            cancel()
            return nil
        }
        let id = nextStopCanceller
        nextStopCanceller += 1
        stopCancellers[id] = cancel
        return id
    }

    private func removeStopCanceller(_ id: Int) {
        stopCancellers.removeValue(forKey: id)
    }

    /// Sleeps for `duration`, or less if the worker is asked to stop meanwhile.
    func pause(for duration: Duration) async {
        guard !isStopping else { return }
        let id = nextPauser
        nextPauser += 1
        let timer = clock.timer(after: duration) { [weak self] in await self?.endPause(id) }
        await withCheckedContinuation { pausers[id] = $0 }
        timer.cancel()
    }

    private func endPause(_ id: Int) {
        pausers.removeValue(forKey: id)?.resume()
    }

    func observeSharedRate(_ rate: Double) {
        sharedRate = rate
    }

    func claimStarted() {
        claimsInProgress += 1
    }

    /// The claim's reply was handled (its jobs, if any, are in `held`), or it failed.
    func claimEnded() {
        claimsInProgress -= 1
    }

    /// What the rescue must leave alone: the held jobs, and every job of ours while a claim is
    /// in progress.
    func rescueExclusions() -> (held: [Int64], claimInProgress: Bool) {
        (held, claimsInProgress > 0)
    }

    /// A claim's reply was handled: its jobs (maybe none) are held from now on, their leases set
    /// by a statement sent at `sentAt`.
    func claimed(_ jobs: [ClaimedJob], sentAt: WorkerClock.Moment) {
        claimsInProgress -= 1
        guard !jobs.isEmpty else { return }
        for job in jobs { leaseSetAt[job.id] = sentAt }
        inFlight += jobs.count
        status.inFlight = inFlight
        for job in jobs { holds[job.id, default: 0] += 1 }
        unsettled += jobs.count
    }

    /// One claim each of these jobs has its outcome written (or given up on): stop renewing
    /// their leases unless they were claimed again meanwhile, and let the claim loop use the
    /// room this makes.
    func settled(_ ids: [Int64]) async {
        for id in ids {
            guard let count = holds[id] else { continue }
            holds[id] = count > 1 ? count - 1 : nil
            if count == 1 { leaseSetAt[id] = nil }
            unsettled -= 1
            if let called = calledHolds[id] {
                calledHolds[id] = called > 1 ? called - 1 : nil
                calledUnsettled -= 1
            }
        }
        admitWaiters()
        await wake.signal()
    }

    /// A heartbeat (or a single renewal) sent at `sentAt` renewed these jobs' leases.
    func renewed(_ ids: [Int64], sentAt: WorkerClock.Moment) {
        for id in ids where holds[id] != nil {
            leaseSetAt[id] = max(leaseSetAt[id] ?? sentAt, sentAt)
        }
    }

    /// Whether `id`'s lease surely lasts `margin` more, by this worker's clock. False after the
    /// worker was frozen or cut off from the database past it: the job may have been rescued and
    /// be running elsewhere.
    func leaseLasts(_ id: Int64, lease: Duration, margin: Duration) -> Bool {
        guard let setAt = leaseSetAt[id] else { return false }
        return clock.now + margin < setAt + lease
    }

    func fail(_ error: PostgresError, grace: Duration) async {
        fatal = fatal ?? error
        await requestStop(grace: grace)
    }

    /// A claimed job leaves: called, recorded or given back, giving up its call slot if it held one.
    func finished(_ newState: JobState?, releasingSlot: Bool) async {
        if releasingSlot { releaseCallSlot() }
        inFlight -= 1
        status.inFlight = inFlight
        switch newState {
        case .succeeded: status.succeeded += 1
        case .failed: status.failed += 1
        case .retrying: status.retried += 1
        default: break
        }
        if inFlight == 0 {
            for waiter in idleWaiters { waiter.resume() }
            idleWaiters.removeAll()
        }
        await wake.signal()
    }

    /// Returns true when nothing is in flight any more, false if `deadline` passed first.
    func waitUntilIdle(until deadline: WorkerClock.Moment) async -> Bool {
        if inFlight == 0 { return true }
        let timer = clock.timer(after: deadline - clock.now) { [weak self] in await self?.releaseIdleWaiters() }
        await withCheckedContinuation { idleWaiters.append($0) }
        timer.cancel()
        return inFlight == 0
    }

    private func releaseIdleWaiters() {
        for waiter in idleWaiters { waiter.resume() }
        idleWaiters.removeAll()
    }
}
