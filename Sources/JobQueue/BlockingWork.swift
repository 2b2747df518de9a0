// BlockingWork: runs CPU-heavy or blocking code (a model forward pass, a training step) on a thread of its
// own, so Swift's few cooperative threads stay free for heartbeats, LISTEN and the watchdog. If the awaiting
// task is cancelled (a hard stop) the await returns at once with CancellationError; the thread runs to its
// end in the background and its result is dropped.
import Foundation

/// Bridges blocking work into async code.
public enum BlockingWork {
    /// Runs `body` on a new thread with a large stack and returns its result.
    public static func run<T: Sendable>(
        label: String, stackSize: Int = 16 << 20, _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        let slot = ResultSlot<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
                guard slot.install(continuation) else { return }
                let thread = Thread {
                    slot.deliver(Result { try body() })
                }
                thread.name = label
                thread.stackSize = stackSize
                thread.start()
            }
        } onCancel: {
            slot.deliver(.failure(CancellationError()))
        }
    }
}

/// Resumes a continuation exactly once, whichever comes first: the result or a cancellation.
private final class ResultSlot<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, Error>?
    private var early: Result<T, Error>?
    private var done = false

    /// Returns false when the result (a cancellation) arrived before the continuation: it is resumed here.
    func install(_ continuation: CheckedContinuation<T, Error>) -> Bool {
        let early: Result<T, Error>? = lock.withLock {
            if let early = self.early {
                done = true
                return early
            }
            self.continuation = continuation
            return nil
        }
        if let early {
            continuation.resume(with: early)
            return false
        }
        return true
    }

    func deliver(_ result: Result<T, Error>) {
        let continuation: CheckedContinuation<T, Error>? = lock.withLock {
            guard !done else { return nil }
            guard let continuation = self.continuation else {
                if early == nil { early = result }
                return nil
            }
            done = true
            self.continuation = nil
            return continuation
        }
        continuation?.resume(with: result)
    }
}
