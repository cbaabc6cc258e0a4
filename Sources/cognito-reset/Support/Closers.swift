import Synchronization

/// What a command opened and must close however it ends (success, a refusal at start-up, an
/// error), last opened first: one place, instead of a cleanup on every early exit.
final class Closers: Sendable {
    private let closers = Mutex<[@Sendable () async -> Void]>([])

    /// Closes `close`'s resource when the scope ends, before anything opened earlier.
    func add(_ close: @escaping @Sendable () async -> Void) {
        closers.withLock { $0.append(close) }
    }

    fileprivate func closeAll() async {
        let all = closers.withLock { closers in
            defer { closers.removeAll() }
            return closers
        }
        for close in all.reversed() { await close() }
    }
}

/// Runs `body`, then closes everything it registered with the `Closers`, whether it returned or
/// threw.
func withClosers<T>(_ body: (Closers) async throws -> T) async throws -> T {
    let closers = Closers()
    do {
        let value = try await body(closers)
        await closers.closeAll()
        return value
    } catch {
        await closers.closeAll()
        throw error
    }
}
