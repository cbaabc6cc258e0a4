import Foundation
import Logging
import ServiceLifecycle

/// Ends the process once `grace` has passed since a stop began, whatever the worker's statements
/// are doing. The worker's own shutdown fits in the grace period (statements are cancelled, a
/// server that does not answer loses its connection); this is the guarantee behind it, so that
/// SIGTERM never waits on a hung database. Jobs still held then return through lease rescue.
struct StopBackstop: Service, CustomStringConvertible {
    var description: String { "StopBackstop" }
    let grace: Duration
    let logger: Logger

    func run() async throws {
        // Returns when the group starts shutting down (this service is listed last, so it hears
        // of it first); a cancelled group needs no backstop.
        guard (try? await gracefulShutdown()) != nil else { return }
        let delay: TimeInterval = grace / .seconds(1)
        let logger = logger
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: delay)
            logger.error(
                "the grace period is over and the worker has not finished stopping (the database is not answering); exiting, its jobs return through lease rescue",
                metadata: ["grace_s": "\(delay)"])
            fflush(nil)  // every stream
            _exit(1)
        }
    }
}
