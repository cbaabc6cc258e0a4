import Dispatch
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Ends the process once `grace` has passed since a stop began, whatever the worker's statements
/// are doing. The worker's own shutdown fits in the grace period (statements are cancelled, a
/// server that does not answer loses its connection); this is the guarantee behind it, so that
/// SIGTERM never waits on a hung database. Jobs still held then return through lease rescue.
///
/// The timer starts from the signal itself, on a dispatch queue: a machine so loaded that the
/// cooperative pool is late to run the group's shutdown must not push the exit past the grace.
struct StopBackstop: Service, CustomStringConvertible {
    var description: String { "StopBackstop" }
    let grace: Duration
    let logger: Logger

    func run() async throws {
        let armed = Mutex(false)
        let (grace, logger) = (grace, logger)
        let arm: @Sendable () -> Void = {
            guard
                armed.withLock({ armed in
                    defer { armed = true }
                    return !armed
                })
            else { return }
            Self.exit(after: grace, logger: logger)
        }
        // Beside the group's own handling of the same signals (dispatch runs every source).
        let sources = [SIGTERM, SIGINT].map { signal in
            let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
            source.setEventHandler(handler: arm)
            source.resume()
            return source
        }
        defer { for source in sources { source.cancel() } }
        // Returns when the group starts shutting down (this service is listed last, so it hears
        // of it first); a cancelled group needs no backstop.
        guard (try? await gracefulShutdown()) != nil else { return }
        arm()
    }

    private static func exit(after grace: Duration, logger: Logger) {
        let delay: TimeInterval = grace / .seconds(1)
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: delay)
            logger.error(
                "the grace period is over and the worker has not finished stopping (the database is not answering); exiting, its jobs return through lease rescue",
                metadata: ["grace_s": "\(String(format: "%g", delay))"])
            fflush(nil)  // every stream
            _exit(1)
        }
    }
}
