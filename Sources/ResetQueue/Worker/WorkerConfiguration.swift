import Foundation

/// How a worker behaves. Defaults: docs/design.md, "Worker defaults", and the README.
public struct WorkerConfiguration: Sendable {
    /// `host:pid:random`, unique per process; written to `locked_by` and `workers.id`.
    public var workerID: String
    /// Cognito calls in flight at most (`--concurrency`, default 16).
    public var concurrency: Int = 16
    /// Jobs claimed ahead of a free call slot, without the shared bucket (`--rate unlimited`);
    /// nil: half the concurrency. A call that ends finds its successor claimed already instead of
    /// waiting for a claim's round trip (docs/design.md, "Claiming ahead"). With the bucket the
    /// claim hands out timed slots instead, and nothing is claimed ahead.
    public var claimAhead: Int?
    /// How long a claim holds a job before any worker may rescue it (default 30 s).
    public var lease: Duration = .seconds(30)
    /// Leases and the `workers` row are renewed, and expired leases rescued, this often
    /// (default a third of the lease: `defaultHeartbeat(lease:)`).
    public var heartbeatInterval: Duration = WorkerConfiguration.defaultHeartbeat(lease: .seconds(30))
    /// An idle worker looks for work at least this often even without a NOTIFY (default 1 s).
    public var pollInterval: Duration = .seconds(1)
    /// At most this many jobs per claim statement.
    public var claimBatchSize: Int = 100
    /// Exit once nothing is runnable and nothing is in flight (`--drain`).
    public var drain = false
    /// On SIGTERM, in-flight calls get this long to finish (default 20 s; keep it below
    /// systemd's TimeoutStopSec).
    public var gracePeriod: Duration = .seconds(20)
    /// Outcomes are written in batches at least this often (successes are batched).
    public var flushInterval: Duration = .milliseconds(20)
    public var retryPolicy = JobRetryPolicy()
    /// Draw every call from this fleet-wide bucket (claiming only as many jobs as it has slots
    /// for). nil (`--rate unlimited`): no fleet-wide limit; an import's own rate still holds.
    public var sharedRate: SharedRateLimit?
    /// The regions whose pools this worker serves (`COGNITO_RESET_REGIONS`); nil: every region.
    /// It never claims a job of another region: a fleet deployed per region leaves the others'
    /// jobs alone.
    public var regions: [String]?
    /// Log usernames in full (per-job lines, at debug); otherwise masked (`a***@example.com`).
    public var logUsernames = false

    /// Jobs claimed ahead of a free call slot: none with the shared bucket.
    var claimAheadCount: Int { sharedRate == nil ? max(0, claimAhead ?? concurrency / 2) : 0 }

    /// Jobs called whose outcome is not yet written, at most (twice the concurrency): what a crash
    /// makes the fleet call again. Jobs claimed ahead wait for a slot past it.
    var maxCalledUnsettled: Int { 2 * concurrency }

    /// How many jobs the claim loop keeps claimed at most: the call slots and those claimed ahead.
    var claimCapacity: Int { concurrency + claimAheadCount }

    /// While calls are in flight, the claim loop refills once this many places are free, so a
    /// busy worker claims several jobs per statement instead of one per finished call: half the
    /// jobs claimed ahead (the other half keeps the slots busy through the claim's round trip),
    /// or without claiming ahead an eighth of the slots.
    var refillThreshold: Int { claimAheadCount > 1 ? claimAheadCount / 2 : max(1, concurrency / 8) }

    /// A third of the lease: two renewals can be lost before the lease runs out.
    public static func defaultHeartbeat(lease: Duration) -> Duration { lease / 3 }

    /// The fleet-wide ceiling a worker seeds a new shared bucket with (`--rate`, default 25/s:
    /// Cognito's default quota for `AdminResetUserPassword`).
    public static let defaultRate: Double = 25

    public init(workerID: String = WorkerConfiguration.makeWorkerID()) {
        self.workerID = workerID
    }

    /// `host:pid:xxxxxx`.
    public static func makeWorkerID() -> String {
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier):\(suffix)"
    }
}
