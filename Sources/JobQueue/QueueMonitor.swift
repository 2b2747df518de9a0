// QueueMonitor: what this worker is doing right now, shared by the services of one daemon: the running
// jobs (so a cancel notification can reach its job), the lifecycle phase, whether the database answers,
// and when the producer's loop last ticked (the systemd watchdog feeds on that, not on the database).
import Foundation
import Storage

/// The lifecycle of a worker process.
public enum WorkerPhase: String, Sendable {
    case starting, running, draining, stopped
}

/// Thread-safe snapshot of one worker's activity.
public final class QueueMonitor: @unchecked Sendable {
    private let lock = NSLock()
    private var active: [Int64: JobContext] = [:]
    private var _phase: WorkerPhase = .starting
    private var _lastTick: ContinuousClock.Instant = .now
    private var _databaseProblem: String?
    private var _databaseProblemSince: Date?
    private var _finished = 0
    private var changeHandlers: [@Sendable () -> Void] = []

    public init() {}

    // MARK: - Running jobs

    func add(_ context: JobContext) {
        lock.withLock { active[context.job.id] = context }
        changed()
    }

    func remove(_ jobID: Int64) {
        lock.withLock {
            active[jobID] = nil
            _finished += 1
        }
        changed()
    }

    /// The running job with this id, if this worker runs it.
    public func context(for jobID: Int64) -> JobContext? {
        lock.withLock { active[jobID] }
    }

    /// Running jobs, oldest claim first.
    public var activeJobs: [JobContext] {
        lock.withLock { active.values.sorted { $0.startedAt < $1.startedAt } }
    }

    public var activeCount: Int { lock.withLock { active.count } }

    /// Jobs this process has finished (any outcome) since it started.
    public var finishedCount: Int { lock.withLock { _finished } }

    // MARK: - Phase, liveness, database health

    public var phase: WorkerPhase {
        get { lock.withLock { _phase } }
        set {
            lock.withLock { _phase = newValue }
            changed()
        }
    }

    /// Called by the producer loop on every turn.
    public func tick() {
        lock.withLock { _lastTick = .now }
    }

    /// Time since the producer loop last ticked.
    public var sinceLastTick: Duration {
        ContinuousClock.now - lock.withLock { _lastTick }
    }

    /// Records whether the last database call worked (nil) or why not.
    public func noteDatabase(problem: String?) {
        let flipped: Bool = lock.withLock {
            let was = _databaseProblem != nil
            _databaseProblem = problem
            if problem == nil {
                _databaseProblemSince = nil
            } else if _databaseProblemSince == nil {
                _databaseProblemSince = Date()
            }
            return was != (problem != nil)
        }
        if flipped { changed() }
    }

    public var databaseProblem: (message: String, since: Date)? {
        lock.withLock {
            guard let problem = _databaseProblem, let since = _databaseProblemSince else { return nil }
            return (problem, since)
        }
    }

    /// Calls `handler` after every change of jobs, phase or database health (on the changing thread).
    public func onChange(_ handler: @escaping @Sendable () -> Void) {
        lock.withLock { changeHandlers.append(handler) }
    }

    private func changed() {
        let handlers = lock.withLock { changeHandlers }
        for handler in handlers { handler() }
    }

    // MARK: - Status line

    /// One line for systemd's STATUS= and muwa.workers.status_line.
    public var statusLine: String {
        let jobs = activeJobs
        let phase = self.phase
        var parts: [String] = []
        switch phase {
        case .starting: parts.append("starting")
        case .running: parts.append(jobs.isEmpty ? "idle, waiting for jobs" : "running")
        case .draining: parts.append("draining (\(jobs.count) job\(jobs.count == 1 ? "" : "s") left)")
        case .stopped: parts.append("stopped")
        }
        if !jobs.isEmpty {
            let described = jobs.prefix(4).map { context -> String in
                var text = "job \(context.job.id) (\(context.job.kind)"
                if let progress = context.progress { text += String(format: " %.0f%%", progress * 100) }
                return text + ")"
            }
            parts.append(described.joined(separator: ", ") + (jobs.count > 4 ? ", …" : ""))
        }
        if let problem = databaseProblem {
            parts.append("database unavailable since \(Self.clock(problem.since)), retrying")
        }
        return parts.joined(separator: ": ")
    }

    private static func clock(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        return formatter.string(from: date)
    }
}
