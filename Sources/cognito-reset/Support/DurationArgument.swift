import ArgumentParser

/// A duration on the command line: `500ms`, `30s`, `2m`, `1h`, `30d`, or plain seconds (`1.5`).
struct DurationArgument: ExpressibleByArgument, Sendable {
    let duration: Duration

    init(_ duration: Duration) { self.duration = duration }

    init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, scale) in units where argument.hasSuffix(suffix) {
            guard let value = Double(argument.dropLast(suffix.count)), value >= 0, value.isFinite else { return nil }
            duration = .seconds(value * scale)
            return
        }
        guard let value = Double(argument), value >= 0, value.isFinite else { return nil }
        duration = .seconds(value)
    }

    /// `30d`, `12h`, `90s`: the largest whole unit.
    static func describe(_ duration: Duration) -> String {
        let seconds = duration.components.seconds
        for (suffix, size) in [("d", Int64(86_400)), ("h", 3600), ("m", 60)] where seconds >= size && seconds % size == 0 {
            return "\(seconds / size)\(suffix)"
        }
        return "\(seconds)s"
    }

    static var defaultCompletionKind: CompletionKind { .default }
}
