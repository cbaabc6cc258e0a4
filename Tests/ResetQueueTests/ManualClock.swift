import Synchronization

/// A clock that moves only when a test moves it: sleepers wake once `advance(by:)` takes the
/// time past their deadline. Tests of the worker's timing use it instead of waiting in real time.
final class ManualClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        let offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (left: Instant, right: Instant) -> Bool { left.offset < right.offset }
    }

    private struct Sleeper {
        let deadline: Instant
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var sleepers: [Int: Sleeper] = [:]
        var cancelled: Set<Int> = []
        var nextID = 0
        var watchers: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    var now: Instant { state.withLock { $0.now } }
    var minimumResolution: Duration { .zero }

    func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (resume, watchers) = state.withLock { state -> (Result<Void, any Error>?, [CheckedContinuation<Void, Never>]) in
                    let watchers = Array(state.watchers.values)
                    state.watchers = [:]
                    if state.cancelled.remove(id) != nil { return (.failure(CancellationError()), watchers) }
                    if deadline <= state.now { return (.success(()), watchers) }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return (nil, watchers)
                }
                for watcher in watchers { watcher.resume() }
                if let resume { continuation.resume(with: resume) }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                if let sleeper = state.sleepers.removeValue(forKey: id) { return sleeper }
                state.cancelled.insert(id)
                return nil
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the time on by `duration`, waking every sleeper whose deadline it reaches.
    func advance(by duration: Duration) {
        let due = state.withLock { state -> [Sleeper] in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.value.deadline <= now }
            for id in due.keys { state.sleepers.removeValue(forKey: id) }
            return Array(due.values)
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Whether some task sleeps on this clock with exactly `remaining` left to go.
    func hasSleeper(remaining: Duration) -> Bool {
        state.withLock { state in state.sleepers.values.contains { state.now.duration(to: $0.deadline) == remaining } }
    }

    /// Returns once some task sleeps on this clock with exactly `remaining` left to go (an event,
    /// so a test knows the code under test has reached that wait); throws `CancellationError`
    /// if cancelled first (a test's deadline).
    func waitForSleeper(remaining: Duration) async throws {
        func found(_ state: State) -> Bool {
            state.sleepers.values.contains { state.now.duration(to: $0.deadline) == remaining }
        }
        while !state.withLock({ found($0) }) {
            try Task.checkCancellation()
            let id = state.withLock { state in
                defer { state.nextID += 1 }
                return state.nextID
            }
            // Checked and registered under one lock: a sleep that starts in between wakes it.
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let ready = state.withLock { state -> Bool in
                        if found(state) || Task.isCancelled { return true }
                        state.watchers[id] = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            } onCancel: {
                state.withLock { $0.watchers.removeValue(forKey: id) }?.resume()
            }
        }
    }
}
