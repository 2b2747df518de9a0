// Rescuer: every worker periodically takes back jobs whose lease expired (their worker was killed, lost
// power, or lost the database for longer than a lease), cf. river's job_rescuer. A rescued job goes back
// to `queued` with its attempt counted and a line in its error history, or to `failed` when its attempts
// are used up, or when its runs were lost `maxLostRuns` times (a job that crashes the daemon). Right after a PostgreSQL restart it waits one lease period, so that workers that are alive
// get the chance to renew their leases first. It also marks vanished workers `lost` in muwa.workers.
import Logging
import ServiceLifecycle
import Storage

/// Periodic maintenance: expired leases and vanished workers.
public struct Rescuer: Service {
    let configuration: QueueConfiguration
    let store: JobStore
    let workers: WorkerStore
    let monitor: QueueMonitor
    let logger: Logger

    public init(
        configuration: QueueConfiguration, store: JobStore, workers: WorkerStore, monitor: QueueMonitor, logger: Logger
    ) {
        self.configuration = configuration
        self.store = store
        self.workers = workers
        self.monitor = monitor
        var logger = logger
        logger[metadataKey: "service"] = "rescuer"
        self.logger = logger
    }

    public func run() async {
        var rounds = 0
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            await rescueOnce(pruneWorkers: rounds % 1000 == 0)
            rounds += 1
            do {
                try await cancelWhenGracefulShutdown {
                    try await Task.sleep(for: .milliseconds(Int64(configuration.rescueIntervalSeconds * 1000)))
                }
            } catch {
                return
            }
        }
    }

    /// One round: rescue expired leases (in batches), mark vanished workers lost.
    public func rescueOnce(pruneWorkers: Bool = false) async {
        do {
            var rescued: [RescuedJob]
            repeat {
                rescued = try await store.rescueExpired(
                    limit: 100,
                    minimumServerUptime: configuration.leaseSeconds,
                    retryDelaySeconds: configuration.retryPolicy.delay(afterAttempt: 1),
                    maxLostRuns: configuration.maxLostRuns)
                for job in rescued {
                    var jobLogger = logger
                    jobLogger[metadataKey: "job"] = "\(job.id)"
                    jobLogger[metadataKey: "kind"] = "\(job.kind)"
                    jobLogger.warning(
                        "rescued from worker \(job.lostWorker) after its lease expired (attempt \(job.attempt)); now \(job.status.rawValue)"
                    )
                }
            } while rescued.count == 100
            let unseen = max(configuration.leaseSeconds * 2, configuration.heartbeatSeconds * 10)
            for worker in try await workers.markLost(unseenFor: unseen) {
                logger.warning("worker \(worker) has not been seen for \(formatSeconds(unseen)); marked lost")
            }
            if pruneWorkers {
                try await workers.prune(olderThanDays: 7)
            }
        } catch {
            logger.debug("rescue round skipped: \(error)")
        }
    }
}
