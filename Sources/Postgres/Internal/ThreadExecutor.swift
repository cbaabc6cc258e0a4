import Dispatch
import Foundation
import Synchronization

/// A serial executor that runs every job on one dedicated OS thread.
///
/// libpq's calls block (connect, execute, COPY). Running them on Swift's cooperative pool (two
/// threads on our machines) would stall every other task, so each connection actor uses one of
/// these as its executor: the actor's methods, and so every libpq call, run on this thread.
final class ThreadExecutor: SerialExecutor {
    private enum Item: Sendable {
        case job(UnownedJob)
        case stop
    }

    /// FIFO of pending items; `head` avoids O(n) removal from the front.
    private struct Queue: ~Copyable {
        var items: [Item] = []
        var head = 0

        mutating func push(_ item: Item) { items.append(item) }

        mutating func pop() -> Item? {
            guard head < items.count else { return nil }
            let item = items[head]
            head += 1
            if head > 64, head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
            return item
        }
    }

    private let queue = Mutex(Queue())
    /// Signalled once per pushed item, so the thread sleeps exactly while the queue is empty.
    private let available = DispatchSemaphore(value: 0)

    /// Starts the thread. It lives until `shutdown()` and keeps the executor alive meanwhile.
    init(name: String) {
        let thread = Thread { [self] in self.runLoop() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        queue.withLock { $0.push(.job(unowned)) }
        available.signal()
    }

    /// Asks the thread to finish the jobs already queued and then exit.
    func shutdown() {
        queue.withLock { $0.push(.stop) }
        available.signal()
    }

    private func runLoop() {
        let executor = asUnownedSerialExecutor()
        while true {
            available.wait()
            guard let item = queue.withLock({ $0.pop() }) else { continue }
            switch item {
            case .job(let job): job.runSynchronously(on: executor)
            case .stop: return
            }
        }
    }
}
