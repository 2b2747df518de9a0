// JobContext: what an executor gets besides the job: where to keep files, how to report progress, and
// whether to stop. Progress is only stored here (a lock and two assignments, never a database round
// trip); the LeaseKeeper writes the latest value at most once a second. Stop requests come from
// muwa.cancel (NOTIFY or heartbeat), graceful shutdown, the job's time limit, or a lost lease.
import Foundation
import Logging
import Storage

/// Why a running job is asked to stop at its next safe point.
public enum StopReason: Sendable, Equatable, CustomStringConvertible {
    /// Someone called muwa.cancel: the job ends `cancelled`, keeping partial results.
    case cancelRequested
    /// The daemon is shutting down: the job is released (with its checkpoint) for another worker.
    case shuttingDown
    /// The job ran past its own time limit (seconds): it fails.
    case timeLimit(Double)
    /// A heartbeat found the job taken away: nothing more is written for it.
    case leaseLost

    public var description: String {
        switch self {
        case .cancelRequested: return "cancel requested"
        case .shuttingDown: return "daemon shutting down"
        case .timeLimit(let seconds): return "time limit of \(formatSeconds(seconds)) exceeded"
        case .leaseLost: return "lease lost"
        }
    }
}

/// The running job's side channel to the daemon.
public final class JobContext: @unchecked Sendable {
    public let job: ClaimedJob
    /// The daemon's state directory (models/, adapters/, jobs/ live under it).
    public let stateDirectory: String
    /// A directory this job may use for checkpoints and artifacts (created on first use by the executor).
    public let workDirectory: String
    /// A logger with `job` and `kind` metadata.
    public let logger: Logger
    /// When the claim happened (monotonic).
    public let startedAt: ContinuousClock.Instant

    private let lock = NSLock()
    private var _stopReason: StopReason?
    private var _progress: Double?
    private var _detail: JSONValue?
    private var _progressDirty = false
    private var stopHandlers: [@Sendable (StopReason) -> Void] = []
    private var _events: [JSONValue] = []
    private var _eventsRecorded = 0
    private var meter: ProgressMeter
    private var _progressLogInterval = JobContext.defaultProgressLogInterval
    private var stopAtProgress: (fraction: Double, reason: StopReason)?

    /// MUWA_PROGRESS_LOG_INTERVAL (seconds) when set to a positive number, else 30.
    static let defaultProgressLogInterval: Double = {
        let raw = ProcessInfo.processInfo.environment["MUWA_PROGRESS_LOG_INTERVAL"] ?? ""
        guard let seconds = Double(raw.trimmingCharacters(in: .whitespaces)), seconds > 0, seconds.isFinite else {
            return 30
        }
        return seconds
    }()

    public init(job: ClaimedJob, stateDirectory: String, logger: Logger) {
        self.job = job
        self.stateDirectory = stateDirectory
        self.workDirectory = stateDirectory + "/jobs/\(job.id)"
        var logger = logger
        logger[metadataKey: "job"] = "\(job.id)"
        logger[metadataKey: "kind"] = "\(job.kind)"
        self.logger = logger
        let now = ContinuousClock.now
        self.startedAt = now
        self.meter = ProgressMeter(start: now)
    }

    // MARK: - For executors

    /// True once the job should stop at its next safe point.
    public var shouldStop: Bool {
        lock.withLock { _stopReason != nil }
    }

    /// Why the job should stop, if it should.
    public var stopReason: StopReason? {
        lock.withLock { _stopReason }
    }

    /// Records progress (0…1), an optional short detail, and optionally the tokens this attempt has
    /// processed so far (generated, trained or scored): the daemon derives an ETA and tokens per second from
    /// them. Cheap enough to call every token or step.
    public func reportProgress(_ fraction: Double, detail: JSONValue? = nil, tokens: Int? = nil) {
        let clamped = fraction.isFinite ? min(max(fraction, 0), 1) : 0
        let stop: StopReason? = lock.withLock {
            _progress = clamped
            if let detail { _detail = detail }
            _progressDirty = true
            meter.record(fraction: clamped, tokens: tokens)
            guard let at = stopAtProgress, clamped >= at.fraction else { return nil }
            stopAtProgress = nil
            return at.reason
        }
        if let stop { requestStop(stop) }
    }

    /// Requests a stop for `reason` from inside the first ``reportProgress(_:detail:tokens:)`` that reaches
    /// `fraction`: on the executor's own thread, at a known point of its work (tests use it instead of a thread
    /// that watches the progress and races the executor).
    public func stopWhenProgress(reaches fraction: Double, reason: StopReason) {
        lock.withLock { stopAtProgress = (fraction, reason) }
    }

    /// How often ``progressLine()`` answers (seconds; default 30).
    public var progressLogInterval: Double {
        get { lock.withLock { _progressLogInterval } }
        set { lock.withLock { _progressLogInterval = newValue } }
    }

    /// A line for the log ("progress 6.4%, step 120, loss 2.31, 143.0 tokens/s, elapsed 12 min, ETA 3.0 h")
    /// once every ``progressLogInterval``, nil in between or before the first report.
    public func progressLine() -> String? {
        lock.withLock { meter.line(every: _progressLogInterval, detail: _detail, at: .now) }
    }

    /// Records an event (a JSON object with a "type", e.g. a training-log row) to be written while the job
    /// runs (muwa.job_events, flushed with the heartbeat), not only at its end.
    public func record(event: JSONValue) {
        lock.withLock {
            _events.append(event)
            _eventsRecorded += 1
        }
    }

    /// How many events were recorded so far.
    public var eventsRecorded: Int {
        lock.withLock { _eventsRecorded }
    }

    /// The last reported progress, for STATUS= lines.
    public var progress: Double? {
        lock.withLock { _progress }
    }

    /// Calls `handler` once when a stop is requested (at once if it already was). For executors blocked in
    /// something other than their own loop.
    public func onStop(_ handler: @escaping @Sendable (StopReason) -> Void) {
        let reason: StopReason? = lock.withLock {
            if _stopReason == nil { stopHandlers.append(handler) }
            return _stopReason
        }
        if let reason { handler(reason) }
    }

    /// Sleeps up to `seconds`, returning early (false) when a stop is requested or the task is cancelled.
    public func sleep(seconds: Double) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if shouldStop || Task.isCancelled { return false }
            let left = deadline - ContinuousClock.now
            try? await Task.sleep(for: min(left, .milliseconds(50)))
        }
        return !shouldStop
    }

    // MARK: - For the runner

    /// Asks the job to stop (the runner does; `muwad run` on SIGINT). The first reason wins, except that a lost lease overrides everything (after it,
    /// nothing may be written).
    public func requestStop(_ reason: StopReason) {
        let handlers: [@Sendable (StopReason) -> Void] = lock.withLock {
            if _stopReason == nil || (reason == .leaseLost && _stopReason != .leaseLost) {
                _stopReason = reason
                let handlers = stopHandlers
                stopHandlers = []
                return handlers
            }
            return []
        }
        for handler in handlers { handler(reason) }
    }

    /// The progress reported since the last call, if any, its detail with eta_seconds, tokens_per_second and
    /// elapsed_seconds added.
    func takeProgress() -> (fraction: Double, detail: JSONValue?)? {
        lock.withLock {
            guard _progressDirty, let progress = _progress else { return nil }
            _progressDirty = false
            return (progress, meter.annotate(_detail, at: .now))
        }
    }

    /// The events recorded since the last call, oldest first.
    public func takeEvents() -> [JSONValue] {
        lock.withLock {
            let events = _events
            _events = []
            return events
        }
    }

    /// Puts events whose write failed back in front of any recorded since.
    func restoreEvents(_ events: [JSONValue]) {
        guard !events.isEmpty else { return }
        lock.withLock { _events.insert(contentsOf: events, at: 0) }
    }

    /// Seconds since the claim.
    public var elapsedSeconds: Double {
        let elapsed = ContinuousClock.now - startedAt
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }
}

/// "250 ms", "1.5 s", "12 min", "3.0 h".
func formatSeconds(_ seconds: Double) -> String {
    if seconds < 1 { return String(format: "%.0f ms", seconds * 1000) }
    if seconds < 120 { return String(format: "%.1f s", seconds) }
    if seconds < 7200 { return String(format: "%.0f min", seconds / 60) }
    return String(format: "%.1f h", seconds / 3600)
}
