public import CognitoClient
public import Foundation

/// A request to reset one user's password: what `enqueue` and `enqueue_reset(...)` take.
/// Every rule the database enforces is checked here first, so bad input is refused with the
/// field and the rule before anything is written.
public struct ResetRequest: Sendable {
    public static let priorityRange = 0...1000
    public static let defaultPriority = 100
    public static let maxAttemptsRange = 1...100
    public static let defaultMaxAttempts = 10

    public let userPoolID: UserPoolID
    public let username: Username
    /// When to run; nil means now.
    public let runAt: Date?
    /// Lower runs first; 0 is most urgent.
    public let priority: Int
    public let maxAttempts: Int
    public let clientMetadata: ClientMetadata?
    /// A caller-chosen key: enqueueing again with the same key returns the same job.
    public let idempotencyKey: String?
    /// Who asked (defaults to the database role).
    public let requestedBy: String?

    public init(
        userPoolID: UserPoolID, username: Username, runAt: Date? = nil,
        priority: Int = ResetRequest.defaultPriority, maxAttempts: Int = ResetRequest.defaultMaxAttempts,
        clientMetadata: ClientMetadata? = nil, idempotencyKey: String? = nil, requestedBy: String? = nil
    ) throws(InvalidInput) {
        try Self.check(priority: priority, maxAttempts: maxAttempts, requestedBy: requestedBy)
        if let idempotencyKey, !(1...255).contains(idempotencyKey.count) {
            throw InvalidInput(field: "idempotency-key", rule: "must be 1-255 characters")
        }
        self.userPoolID = userPoolID
        self.username = username
        self.runAt = runAt
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.clientMetadata = clientMetadata
        self.idempotencyKey = idempotencyKey
        self.requestedBy = requestedBy
    }

    /// The rules every request and every import shares.
    public static func check(priority: Int, maxAttempts: Int, requestedBy: String?) throws(InvalidInput) {
        guard priorityRange.contains(priority) else {
            throw InvalidInput(field: "priority", rule: "must be an integer from 0 (most urgent) to 1000")
        }
        guard maxAttemptsRange.contains(maxAttempts) else {
            throw InvalidInput(field: "max-attempts", rule: "must be an integer from 1 to 100")
        }
        if let requestedBy, requestedBy.count > 255 {
            throw InvalidInput(field: "requested-by", rule: "must be at most 255 characters")
        }
    }
}
