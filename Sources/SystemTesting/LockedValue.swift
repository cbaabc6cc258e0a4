import Synchronization

/// A value shared by a test and the closures it hands out (a fake server's responder, a clock),
/// behind a lock: `Mutex` itself cannot be captured by an escaping closure.
public final class LockedValue<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    public init(_ value: Value) {
        mutex = Mutex(value)
    }

    public var value: Value { mutex.withLock { $0 } }

    /// Changes the value and returns what `body` returns.
    @discardableResult
    public func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T {
        mutex.withLock { body(&$0) }
    }
}
