/// Thrown when an awaited event does not happen before its deadline.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let what: String
    public var description: String { "timed out waiting for \(what)" }
}

/// Awaits `operation`, failing with `DeadlineExceeded` if it takes longer than `deadline`.
/// Tests wait on events this way: the deadline only bounds a hang, it never paces the test.
public func withDeadline<T: Sendable>(
    _ deadline: Duration = .seconds(20), _ what: String,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: deadline)
            throw DeadlineExceeded(what: what)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Collects events pushed by a callback, so a test can await the first one that matches.
public final class EventRecorder<Event: Sendable>: Sendable {
    public let stream: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation

    public init() {
        (stream, continuation) = AsyncStream.makeStream(of: Event.self)
    }

    /// The callback to hand to the code under test.
    public var record: @Sendable (Event) -> Void {
        { [continuation] in continuation.yield($0) }
    }

    /// Waits for the next recorded event matching `predicate` (earlier non-matching ones are dropped).
    public func next(
        _ what: String, deadline: Duration = .seconds(20), where predicate: @escaping @Sendable (Event) -> Bool
    ) async throws -> Event {
        let stream = self.stream
        return try await withDeadline(deadline, what) {
            for await event in stream where predicate(event) { return event }
            throw DeadlineExceeded(what: what)
        }
    }
}
