public import CognitoClient
public import Foundation

/// The fleet-wide rate limit a worker draws from: one row of `cognito_reset.rate_limits`, shared
/// by every worker on every host that uses the same key (migration 0003 has the algorithm).
public struct SharedRateLimit: Sendable, Equatable {
    /// The bucket key for the worker's own account, `{region}` standing for the region of each
    /// job's pool (default `cognito:{region}`); one bucket per AWS account and region, as
    /// Cognito's quota is.
    public var key: String
    /// The ceiling (requests per second) a bucket is created with if none exists yet. An existing
    /// bucket keeps its own: operators change it with `cognito-reset rate set` or SQL.
    public var initialCeiling: Double
    /// How far ahead a worker reserves call slots. Also the most a crashed worker's unused slots
    /// can cost the fleet, and about how late a ceiling change is noticed.
    public var horizon: Duration = .milliseconds(500)

    public init(key: String, initialCeiling: Double) {
        self.key = key
        self.initialCeiling = initialCeiling
    }

    public static let keyRule = "must be 1 to 200 printable ASCII characters without spaces, e.g. cognito:eu-west-1"

    /// A bucket key as typed or configured: printable ASCII without spaces (the table's
    /// `rate_limits_key_printable` says the same), so `rate show` and `status` never print a
    /// key that moves the cursor or recolours the terminal.
    public static func checkKey(_ key: String, field: String) throws(InvalidInput) {
        guard (1...200).contains(key.utf8.count), key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw InvalidInput(field: field, rule: keyRule)
        }
    }

    /// The default key for a region: `cognito:REGION`.
    public static func defaultKey(region: String) -> String {
        "cognito:\(region)"
    }

    /// The worker's key for its own account: `{region}` stands for each pool's region, so every
    /// region gets its own bucket (Cognito's quota is per account and region). Pools mapped to a
    /// role use `cognito:<account>:<region>`, whatever this says.
    public static let defaultKeyTemplate = "cognito:{region}"

    /// The key of a pool role's account in a region: `cognito:ACCOUNT:REGION` (the claim,
    /// `claim_paced`, names buckets the same way).
    public static func roleKey(account: String, region: String) -> String {
        "cognito:\(account):\(region)"
    }
}

/// One bucket as operators see it (`cognito_reset.rate_limit_status`).
public struct RateBucketStatus: Sendable, Equatable, Codable {
    public let key: String
    /// Requests per second allowed at most; 0 pauses every worker using the key.
    public let ceiling: Double
    /// The adaptive rate in force now (lowered by throttling, climbing back to the ceiling).
    public let currentRate: Double
    public let burst: Double
    public let floor: Double
    public let paused: Bool
    public let tokensLastMinute: Int
    public let throttlesLastMinute: Int
    public let lastThrottleAt: Date?
}

/// A paced claim: the jobs, each with the moment its call may go, or why none came.
public struct PacedClaim: Sendable {
    public let jobs: [(job: ClaimedJob, callIn: Duration)]
    /// nil: nothing runnable. Otherwise how long until the next batch of slots is free.
    public let wait: Duration?
    /// The adaptive rates of the buckets the claim read, added up (nil: it read none, since
    /// nothing was runnable in the regions served).
    public let currentRate: Double?
    /// The highest ceiling among them: 0 when every bucket read is paused.
    public let ceiling: Double?
}
