import Synchronization

/// Runs `body`, throwing `TimeoutError` if it takes longer than `limit`. Returns on time even if
/// `body` cannot stop at once (a statement stuck in libpq during a network partition): `body` is
/// cancelled and left to finish on its own. `sleep` measures the limit (a test's clock may).
public func withTimeout<T: Sendable>(
    _ limit: Duration, sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let once = ResumeOnce<T>()
    let work = Task { try await body() }
    let timer = Task {
        // Cancelled when the work finished first: then it must not report a timeout (the
        // outcome already delivered is the answer; a success turned into a timeout would be
        // retried, repeating a call that was made).
        guard (try? await sleep(limit)) != nil else { return }
        work.cancel()
        once.resume(throwing: TimeoutError())
    }
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            once.set(continuation)
            Task {
                let result = await work.result
                once.resume(with: result)  // first, so the timer cannot get in between
                timer.cancel()
            }
        }
    } onCancel: {
        work.cancel()
        timer.cancel()
        once.resume(throwing: CancellationError())
    }
}

/// A continuation resumed by whichever comes first (the work, the timer, cancellation).
final class ResumeOnce<T: Sendable>: Sendable {
    private let slot = Mutex<(continuation: CheckedContinuation<T, any Error>?, early: Result<T, any Error>?)>((nil, nil))

    func set(_ continuation: CheckedContinuation<T, any Error>) {
        // An outcome that arrived before the continuation existed is delivered now.
        let early = slot.withLock { slot -> Result<T, any Error>? in
            if let early = slot.early { return early }
            slot.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func resume(with result: Result<T, any Error>) {
        let continuation = slot.withLock { slot -> CheckedContinuation<T, any Error>? in
            if let continuation = slot.continuation {
                slot.continuation = nil
                slot.early = .failure(CancellationError())  // marks it used
                return continuation
            }
            if slot.early == nil { slot.early = result }
            return nil
        }
        continuation?.resume(with: result)
    }

    func resume(throwing error: any Error) { resume(with: .failure(error)) }
}

public struct TimeoutError: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "timed out" }
}
