import SystemTesting
import Testing

@testable import CognitoClient

/// The deadline of one HTTP exchange (`HTTPTransport.race`): the first of the work, the timer and
/// the caller's cancellation answers; a result is never turned into a timeout; on time the work is
/// cancelled and not waited for.
@Suite("Transport deadline")
struct TransportRaceTests {
    /// Work that ends only when the test lets it (cancellation alone does not end it, as a write
    /// stuck in the kernel would not), and records whether it was cancelled.
    final class StuckWork: Sendable {
        let cancelled = LockedValue(false)
        let released = AsyncStream<Void>.makeStream()

        func run() async -> Int {
            await withTaskCancellationHandler {
                for await _ in released.stream { break }
                return 7
            } onCancel: {
                cancelled.withLock { $0 = true }
            }
        }

        func release() { released.continuation.finish() }
    }

    /// A transport for `body`, shut down after it whatever happened (its connection pool must be).
    func withTransport(_ body: (HTTPTransport) async throws -> Void) async throws {
        let transport = HTTPTransport()
        do {
            try await body(transport)
        } catch {
            await transport.shutdown()
            throw error
        }
        await transport.shutdown()
    }

    @Test func aResultBeforeTheLimitIsTheAnswer() async throws {
        try await withTransport { transport in
            let value = try await transport.race(.seconds(30)) { 42 }
            #expect(value == 42)
        }
    }

    @Test func onTimeTheWorkIsCancelledAndNotWaitedFor() async throws {
        try await withTransport { transport in
            let work = StuckWork()
            await #expect(throws: TimeoutError.self) {
                _ = try await transport.race(.milliseconds(50)) { await work.run() }
            }
            // race returned while the work still runs: it did not wait for it.
            #expect(work.cancelled.withLock { $0 })
            work.release()
        }
    }

    @Test func cancellingTheCallerCancelsTheWorkAndAnswersAtOnce() async throws {
        try await withTransport { transport in
            let work = StuckWork()
            let started = AsyncStream<Void>.makeStream()
            let caller = Task {
                try await transport.race(.seconds(30)) {
                    started.continuation.yield()
                    return await work.run()
                }
            }
            for await _ in started.stream { break }
            caller.cancel()
            await #expect(throws: CancellationError.self) { _ = try await caller.value }
            #expect(work.cancelled.withLock { $0 })
            work.release()
        }
    }
}
