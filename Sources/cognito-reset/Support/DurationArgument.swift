import ArgumentParser

/// A duration on the command line: `500ms`, `30s`, `2m`, `1h`, `30d`, or plain seconds (`1.5`),
/// at most a hundred years (far larger values would overflow `Duration`; a retention of decades
/// means "keep").
struct DurationArgument: ExpressibleByArgument, Sendable {
    let duration: Duration

    static let maximumSeconds = 36_500.0 * 86_400

    init(_ duration: Duration) { self.duration = duration }

    init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        let (number, scale) =
            units.first { argument.hasSuffix($0.0) }.map { (argument.dropLast($0.0.count), $0.1) }
            ?? (Substring(argument), 1)
        guard let value = Double(number), value >= 0, value * scale <= Self.maximumSeconds else { return nil }
        duration = .seconds(value * scale)
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
