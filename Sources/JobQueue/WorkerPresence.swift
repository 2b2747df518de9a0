// WorkerPresence: keeps this daemon's row in muwa.workers current (state, running jobs, status line) every
// heartbeat interval, and writes 'stopped' on the way out. Purely informational: dashboards and
// `muwad status` read it; leases, not this row, decide who owns a job.
import Logging
import ServiceLifecycle
import Storage

/// This worker's row in muwa.workers.
public struct WorkerPresence: Service {
    let identity: WorkerIdentity
    let configuration: QueueConfiguration
    let workers: WorkerStore
    let monitor: QueueMonitor
    let logger: Logger

    public init(
        identity: WorkerIdentity, configuration: QueueConfiguration, workers: WorkerStore, monitor: QueueMonitor,
        logger: Logger
    ) {
        self.identity = identity
        self.configuration = configuration
        self.workers = workers
        self.monitor = monitor
        var logger = logger
        logger[metadataKey: "service"] = "presence"
        self.logger = logger
    }

    public func run() async {
        let interval = min(configuration.heartbeatSeconds, 15)
        var registered = false
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                if !registered {
                    try await workers.register(
                        identity, queues: configuration.queues, kinds: configuration.kinds,
                        concurrency: configuration.concurrency)
                    registered = true
                }
                try await update()
            } catch {
                logger.debug("cannot update muwa.workers: \(error)")
            }
            do {
                try await cancelWhenGracefulShutdown {
                    try await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
                }
            } catch {
                break
            }
        }
        // Shut down after the producer (services stop in reverse order): the jobs are done or released.
        if registered {
            do {
                try await workers.update(identity.id, state: .stopped, currentJobs: [], statusLine: "stopped")
            } catch {
                logger.debug("cannot mark this worker stopped: \(error)")
            }
        }
    }

    private func update() async throws {
        let state: WorkerState
        switch monitor.phase {
        case .starting: state = .starting
        case .running: state = .running
        case .draining: state = .draining
        case .stopped: state = .stopped
        }
        try await workers.update(
            identity.id, state: state, currentJobs: monitor.activeJobs.map { $0.job.id },
            statusLine: monitor.statusLine)
    }
}
