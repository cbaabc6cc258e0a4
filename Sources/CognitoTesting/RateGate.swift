import Synchronization

/// The fake Cognito's own quota: a token bucket at `rate` per second; calls beyond it are throttled.
public final class RateGate: Sendable {
    public struct Call: Sendable {
        public let at: ContinuousClock.Instant
        public let throttled: Bool
    }
    private struct State {
        var tokens: Double
        var last: ContinuousClock.Instant
        var calls: [Call] = []
    }
    private let rate: Double
    private let burst: Double
    private let state: Mutex<State>

    public init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = burst
        state = Mutex(State(tokens: burst, last: .now))
    }

    /// Takes a token if one is left; every call is recorded either way.
    public func admit() -> Bool {
        state.withLock { state in
            let now = ContinuousClock.now
            state.tokens = min(burst, state.tokens + (now - state.last) / .seconds(1) * rate)
            state.last = now
            let admitted = state.tokens >= 1
            if admitted { state.tokens -= 1 }
            state.calls.append(Call(at: now, throttled: !admitted))
            return admitted
        }
    }

    /// Every call so far, in order.
    public var calls: [Call] { state.withLock { $0.calls } }
}
