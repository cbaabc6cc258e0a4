/// The live state of one running worker: what is in flight, what it has done, whether it stops.
actor WorkerRunState {
    let wake = WakeSignal()
    private(set) var isStopping = false
    /// Claimed and not yet finished (waiting for a token, or calling Cognito).
    private(set) var inFlight = 0
    private(set) var status = WorkerStatus()
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []
    private var pausers: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextPauser = 0

    func requestStop() async {
        guard !isStopping else { return }
        isStopping = true
        status.state = "draining"
        pausers.values.forEach { $0.resume() }
        pausers.removeAll()
        await wake.signal()
    }

    /// Sleeps for `duration`, or less if the worker is asked to stop meanwhile.
    func pause(for duration: Duration) async {
        guard !isStopping else { return }
        let id = nextPauser
        nextPauser += 1
        let timer = Task { [weak self] in
            try? await Task.sleep(for: duration)
            await self?.endPause(id)
        }
        await withCheckedContinuation { pausers[id] = $0 }
        timer.cancel()
    }

    private func endPause(_ id: Int) {
        pausers.removeValue(forKey: id)?.resume()
    }

    func claimed(_ count: Int) {
        inFlight += count
        status.inFlight = inFlight
    }

    /// A claimed job leaves: called, recorded or given back.
    func finished(_ newState: JobState?) async {
        inFlight -= 1
        status.inFlight = inFlight
        switch newState {
        case .succeeded: status.succeeded += 1
        case .failed: status.failed += 1
        case .retrying: status.retried += 1
        default: break
        }
        if inFlight == 0 {
            idleWaiters.forEach { $0.resume() }
            idleWaiters.removeAll()
        }
        await wake.signal()
    }

    /// Returns true when nothing is in flight any more, false if `timeout` passed first.
    func waitUntilIdle(timeout: Duration) async -> Bool {
        if inFlight == 0 { return true }
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.releaseIdleWaiters()
        }
        await withCheckedContinuation { idleWaiters.append($0) }
        timer.cancel()
        return inFlight == 0
    }

    private func releaseIdleWaiters() {
        idleWaiters.forEach { $0.resume() }
        idleWaiters.removeAll()
    }
}
