/// Wakes the worker's claim loop: a NOTIFY, a finished call (a free slot), or a stop request.
/// Signals are not counted: any number of them before a wait wakes it once.
actor WakeSignal {
    private let clock: WorkerClock
    private var pending = false
    private var waiter: CheckedContinuation<Void, Never>?

    init(clock: WorkerClock) {
        self.clock = clock
    }

    func signal() {
        if let waiter {
            self.waiter = nil
            waiter.resume()
        } else {
            pending = true
        }
    }

    /// Returns when signalled, or after `timeout` (nil: only when signalled).
    func wait(timeout: Duration?) async {
        if pending {
            pending = false
            return
        }
        let timer = timeout.map { timeout in clock.timer(after: timeout) { [weak self] in await self?.signal() } }
        await withCheckedContinuation { waiter = $0 }
        pending = false
        timer?.cancel()
    }
}
