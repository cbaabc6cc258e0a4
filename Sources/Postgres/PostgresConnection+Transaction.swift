/// Transaction isolation levels (SQL standard names).
public enum IsolationLevel: String, Sendable {
    case readCommitted = "READ COMMITTED"
    case repeatableRead = "REPEATABLE READ"
    case serializable = "SERIALIZABLE"
}

extension PostgresConnection {
    /// Runs `body` inside `BEGIN` … `COMMIT`. If `body` throws (or is cancelled) the transaction is
    /// rolled back and the error rethrown; there is no path that leaves it open.
    ///
    /// - Parameter isolationLevel: nil keeps the server default.
    public nonisolated func transaction<T>(
        isolationLevel: IsolationLevel? = nil,
        _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await execute(isolationLevel.map { "BEGIN ISOLATION LEVEL \(unescaped: $0.rawValue)" } ?? "BEGIN")
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
