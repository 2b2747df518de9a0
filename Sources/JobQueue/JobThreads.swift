// JobThreads: the threads job executors run on, apart from Swift's cooperative pool.
//
// Swift's cooperative pool has one thread per core (two here). If an executor does CPU-bound work inside
// `execute` — tokenizing a long prompt, parsing a dataset, loading an adapter, matching a regex — it holds
// one of those threads, and with a few such jobs the heartbeats, LISTEN, the rescuer and the systemd
// watchdog of the whole daemon stop: leases expire and other workers take running jobs away. So JobRunner
// starts every executor with a *task executor preference* for this pool (SE-0417): the executor's own code,
// and the default actors it calls (ModelCache, …), run on these threads, and the cooperative pool is left to
// the daemon's control loops, which only ever wait.
//
// The pool never makes a job wait for another: when no thread is idle, a new one is started (up to
// `maximumThreads`), so a job stuck in a long computation costs one thread, not everyone's progress.
// Threads idle for `idleSeconds` exit (above `minimumThreads`). Instances live as long as the process: tasks
// keep only an unowned reference to their preferred executor, so a pool must outlive every task using it.
import Foundation

/// A growing pool of plain threads usable as a Swift `TaskExecutor`.
public final class JobThreads: TaskExecutor, @unchecked Sendable {
    /// The pool JobRunner uses. Lives for the whole process.
    public static let shared = JobThreads(name: "muwa-job")

    public let name: String
    public let maximumThreads: Int
    private let minimumThreads: Int
    private let idleSeconds: Double
    private let stackSize: Int

    private let condition = NSCondition()
    // Guarded by `condition`.
    private var queue: [UnownedJob] = []
    private var head = 0
    private var threads = 0
    private var idle = 0
    private var started = 0

    /// - Parameters:
    ///   - maximumThreads: a bound for a pathological daemon (every job stuck); past it, work queues up.
    ///   - stackSize: executor code runs deep call chains (model loading, JSON); 16 MiB like BlockingWork.
    public init(
        name: String, minimumThreads: Int = 1, maximumThreads: Int = 256, idleSeconds: Double = 30,
        stackSize: Int = 16 << 20
    ) {
        self.name = name
        self.minimumThreads = max(0, minimumThreads)
        self.maximumThreads = max(1, maximumThreads)
        self.idleSeconds = idleSeconds
        self.stackSize = stackSize
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        queue.append(unowned)
        // Every queued job needs an idle thread of its own; waking one that another job will take is not enough.
        let spawn = queue.count - head > idle && threads < maximumThreads
        if spawn {
            threads += 1
            started += 1
        } else {
            condition.signal()
        }
        let number = started
        condition.unlock()
        if spawn { startThread(number: number) }
    }

    /// Threads alive now and threads started so far (for tests and `muwad status`).
    public var counts: (alive: Int, started: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (threads, started)
    }

    private func startThread(number: Int) {
        let thread = Thread { [self] in serve() }
        thread.name = "\(name)-\(number)"
        thread.stackSize = stackSize
        thread.start()
    }

    private func serve() {
        let executor = asUnownedTaskExecutor()
        while let job = next() {
            job.runSynchronously(on: executor)
        }
    }

    /// The next job, or nil when this thread should exit (idle too long and above the minimum).
    private func next() -> UnownedJob? {
        condition.lock()
        defer { condition.unlock() }
        while head == queue.count {
            idle += 1
            let signalled = condition.wait(until: Date().addingTimeInterval(idleSeconds))
            idle -= 1
            if !signalled, head == queue.count, threads > minimumThreads {
                threads -= 1
                return nil
            }
        }
        let job = queue[head]
        head += 1
        if head == queue.count {
            queue.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024, head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
        return job
    }
}
