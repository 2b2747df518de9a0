// QueueConfiguration: the knobs of one worker process. Defaults suit production (60 s lease renewed every
// 15 s, 5 s polling fallback, 30 s grace period); tests shrink them to keep runs short.

/// How a worker claims and runs jobs.
public struct QueueConfiguration: Sendable {
    /// Unique per process start ("host:pid:start"); recorded on every claim.
    public var workerID: String
    /// The queues this worker serves.
    public var queues: [String]
    /// The kinds this worker serves (must have executors).
    public var kinds: [String]
    /// Jobs run at once.
    public var concurrency: Int
    /// How long a claim is valid without a heartbeat.
    public var leaseSeconds: Double
    /// How often a running job's lease is renewed.
    public var heartbeatSeconds: Double
    /// How often to look for work when no notification arrives.
    public var pollSeconds: Double
    /// How long running jobs may take to finish after SIGTERM before they are asked to stop.
    public var gracePeriodSeconds: Double
    /// How long a job asked to stop (shutdown) may take to checkpoint before it is abandoned and released.
    public var stopTimeoutSeconds: Double
    /// How often this worker looks for expired leases.
    public var rescueIntervalSeconds: Double
    /// The least time between two progress writes of one job.
    public var progressIntervalSeconds: Double
    /// Backoff of retryable failures.
    public var retryPolicy: RetryPolicy
    /// Root of per-job work directories (checkpoints, adapters).
    public var stateDirectory: String
    /// The time limit of jobs that have none of their own (nil: none). Generous by default: a real
    /// opt-1.3b fine-tune on 2 cores takes days; the limit is there so that no job holds a worker for ever.
    public var defaultTimeLimitSeconds: Double?
    /// A job whose runs were lost (lease expired: the daemon crashed or was killed while running it) this
    /// many times fails permanently, whatever its max_attempts. 0: no limit.
    public var maxLostRuns: Int

    /// 7 days: the default of `defaultTimeLimitSeconds`.
    public static let standardDefaultTimeLimitSeconds: Double = 7 * 86400

    public init(
        workerID: String, queues: [String] = ["default"], kinds: [String], concurrency: Int = 1,
        leaseSeconds: Double = 60, heartbeatSeconds: Double = 15, pollSeconds: Double = 5,
        gracePeriodSeconds: Double = 30, stopTimeoutSeconds: Double = 30, rescueIntervalSeconds: Double? = nil,
        progressIntervalSeconds: Double = 1, retryPolicy: RetryPolicy = RetryPolicy(), stateDirectory: String,
        defaultTimeLimitSeconds: Double? = QueueConfiguration.standardDefaultTimeLimitSeconds, maxLostRuns: Int = 2
    ) {
        self.workerID = workerID
        self.queues = queues
        self.kinds = kinds
        self.concurrency = concurrency
        self.leaseSeconds = leaseSeconds
        self.heartbeatSeconds = heartbeatSeconds
        self.pollSeconds = pollSeconds
        self.gracePeriodSeconds = gracePeriodSeconds
        self.stopTimeoutSeconds = stopTimeoutSeconds
        self.rescueIntervalSeconds = rescueIntervalSeconds ?? min(max(leaseSeconds / 4, 0.5), 30)
        self.progressIntervalSeconds = progressIntervalSeconds
        self.retryPolicy = retryPolicy
        self.stateDirectory = stateDirectory
        self.defaultTimeLimitSeconds = defaultTimeLimitSeconds
        self.maxLostRuns = maxLostRuns
    }

    /// Problems that would make the queue misbehave, as sentences; empty when the configuration is sound.
    public func problems() -> [String] {
        var problems: [String] = []
        if queues.isEmpty { problems.append("no queues to serve") }
        if kinds.isEmpty { problems.append("no job kinds to serve") }
        if concurrency < 1 || concurrency > 1024 { problems.append("concurrency must be 1…1024, got \(concurrency)") }
        if !(leaseSeconds > 0) { problems.append("the lease must be positive") }
        if !(heartbeatSeconds > 0) || heartbeatSeconds * 2 > leaseSeconds {
            problems.append(
                "the heartbeat interval (\(heartbeatSeconds) s) must be positive and at most half the lease (\(leaseSeconds) s)"
            )
        }
        if !(pollSeconds > 0) { problems.append("the poll interval must be positive") }
        if !(gracePeriodSeconds >= 0) { problems.append("the grace period cannot be negative") }
        if !(stopTimeoutSeconds >= 0) { problems.append("the stop timeout cannot be negative") }
        if !(rescueIntervalSeconds > 0) { problems.append("the rescue interval must be positive") }
        if let limit = defaultTimeLimitSeconds, !(limit > 0) {
            problems.append("the default time limit must be positive (0 is not \"no limit\"; leave it out instead)")
        }
        if maxLostRuns < 0 || maxLostRuns > 1000 { problems.append("max lost runs must be 0…1000, got \(maxLostRuns)") }
        return problems
    }
}
