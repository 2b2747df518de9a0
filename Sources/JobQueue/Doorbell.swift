// Doorbell: wakes one waiting loop (the producer) early. Rings are remembered until the next wait, so a
// ring between two waits is never lost; many rings collapse into one.
import Foundation

/// A wake-up signal for a single waiter, with a timeout.
public final class Doorbell: @unchecked Sendable {
    private let lock = NSLock()
    private var rung = false
    private var waiter: (id: UInt64, continuation: CheckedContinuation<Void, Never>)?
    private var nextID: UInt64 = 0

    public init() {}

    /// Wakes the waiter, or the next one to wait.
    public func ring() {
        let continuation: CheckedContinuation<Void, Never>? = lock.withLock {
            if let waiter {
                self.waiter = nil
                return waiter.continuation
            }
            rung = true
            return nil
        }
        continuation?.resume()
    }

    /// Waits until rung, `seconds` pass, or the task is cancelled. Returns true when rung.
    @discardableResult
    public func wait(seconds: Double) async -> Bool {
        if lock.withLock({
            let was = rung; rung = false; return was
        }) {
            return true
        }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int64(max(0, seconds) * 1000)))
                return false
            }
            group.addTask { await self.waitForRing() }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    private func waitForRing() async -> Bool {
        let id: UInt64 = lock.withLock {
            nextID += 1
            return nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow: Bool = lock.withLock {
                    if rung || Task.isCancelled {
                        rung = false
                        return true
                    }
                    precondition(waiter == nil, "Doorbell supports one waiter at a time")
                    waiter = (id, continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation: CheckedContinuation<Void, Never>? = lock.withLock {
                guard let waiter, waiter.id == id else { return nil }
                self.waiter = nil
                return waiter.continuation
            }
            continuation?.resume()
        }
        return !Task.isCancelled
    }
}
