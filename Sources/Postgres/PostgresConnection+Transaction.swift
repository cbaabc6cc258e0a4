extension PostgresConnection {
    /// Runs `body` inside `BEGIN` … `COMMIT`. If `body` throws (or is cancelled) the transaction is
    /// rolled back and the error rethrown; there is no path that leaves it open.
    ///
    /// - Parameter isolationLevel: e.g. `"REPEATABLE READ"`; nil keeps the server default.
    public nonisolated func transaction<T>(
        isolationLevel: String? = nil,
        _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await execute(isolationLevel.map { "BEGIN ISOLATION LEVEL \(unescaped: $0)" } ?? "BEGIN")
        let value: T
        do {
            value = try await body(self)
        } catch {
            // A failed ROLLBACK means the connection broke; the pool then discards it.
            _ = try? await execute("ROLLBACK")
            throw error
        }
        try await execute("COMMIT")
        return value
    }
}
