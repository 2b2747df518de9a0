// JobExecutor: what runs one kind of job (generate, finetune, evaluate, ping), cf. river's Worker.
// An executor is a function of the claimed job: it reads the payload, does the work, reports progress
// through its JobContext, checks `context.shouldStop` at safe points, and returns a JobOutcome. It never
// touches the database: the runner and completer do that, guarded by the job's lease.
import Storage

/// Runs the jobs of one kind.
public protocol JobExecutor: Sendable {
    /// The `muwa.jobs.kind` this executor serves.
    var kind: String { get }

    /// True when the executor can checkpoint and resume: on graceful shutdown it is asked to stop at once
    /// (and its job is released with the checkpoint) instead of being given the grace period to finish.
    var checkpointsOnShutdown: Bool { get }

    /// Runs one job. Throw a ``JobFailure`` (or return `.failed`) for failures; other errors count as
    /// retryable failures described by their text.
    ///
    /// JobRunner calls this on ``JobThreads`` (a task executor preference), not on Swift's cooperative pool,
    /// so CPU-bound work here cannot stall heartbeats. Long computations that should survive an abandoned
    /// await (a training run) still go through ``BlockingWork/run(label:_:)``, and check `context.shouldStop`.
    func execute(_ job: ClaimedJob, context: JobContext) async throws -> JobOutcome
}

extension JobExecutor {
    public var checkpointsOnShutdown: Bool { false }
}

/// The executors this daemon can run, by kind.
public struct ExecutorRegistry: Sendable {
    private var executors: [String: any JobExecutor] = [:]

    public init(_ executors: [any JobExecutor] = []) {
        for executor in executors { register(executor) }
    }

    /// Adds (or replaces) the executor for its kind.
    public mutating func register(_ executor: any JobExecutor) {
        executors[executor.kind] = executor
    }

    public func executor(for kind: String) -> (any JobExecutor)? {
        executors[kind]
    }

    /// Every kind with an executor, sorted.
    public var kinds: [String] { executors.keys.sorted() }
}
