import Foundation

/// Runs blocking file-system work (reading a config file, listing and moving inbox files) on a
/// thread of its own, so Swift's cooperative pool (two threads on small machines) never waits
/// on a disk.
func blockingIO<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try body() })
        }
    }
}
