extension Duration {
    /// The duration in (fractional) seconds, for measurements in tests and benchmarks.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
