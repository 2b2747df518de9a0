// Producer: the claim loop (cf. river's producer). It never claims more jobs than it has free slots; it
// wakes on a NOTIFY (through the Doorbell), when a job finishes, or every poll interval, so a lost
// notification delays a job but never strands it. Each claimed job runs as a child task. On graceful
// shutdown it stops claiming, gives running jobs the grace period to finish (checkpointing executors are
// asked to stop at once), then asks the rest to stop; their jobs are released back to the queue.
import Foundation
import Logging
import ServiceLifecycle
import Storage

/// Claims jobs and runs them, up to `concurrency` at a time.
public struct Producer: Service {
    let configuration: QueueConfiguration
    let store: JobStore
    let registry: ExecutorRegistry
    let monitor: QueueMonitor
    let doorbell: Doorbell
    let logger: Logger
    private let runner: JobRunner

    /// - Parameters:
    ///   - leaseStore: where heartbeats go; give it a connection of its own so that a lease is never renewed
    ///     behind a claim or a large final write on the shared one (default: `store`).
    ///   - completionStore: where outcomes are recorded; a connection of its own keeps finished jobs' writes
    ///     from queueing behind claims and the other way round (default: `store`).
    public init(
        configuration: QueueConfiguration, store: JobStore, registry: ExecutorRegistry, monitor: QueueMonitor,
        doorbell: Doorbell, logger: Logger, leaseStore: JobStore? = nil, completionStore: JobStore? = nil
    ) {
        self.configuration = configuration
        self.store = store
        self.registry = registry
        self.monitor = monitor
        self.doorbell = doorbell
        self.logger = logger
        self.runner = JobRunner(
            registry: registry,
            keeper: LeaseKeeper(store: leaseStore ?? store, monitor: monitor, configuration: configuration),
            completer: Completer(
                store: completionStore ?? store, monitor: monitor, retryPolicy: configuration.retryPolicy))
    }

    public func run() async {
        let stopping = Flag()
        monitor.phase = .running
        logger.info(
            "claiming \(configuration.kinds.joined(separator: ",")) jobs from \(configuration.queues.joined(separator: ",")), \(configuration.concurrency) at a time"
        )
        await withGracefulShutdownHandler {
            if #available(macOS 14.0, *) {
                await withDiscardingTaskGroup { group in
                    await claimLoop(stopping: stopping) { context in group.addTask { await runJob(context) } }
                    await drain()
                }
            } else {
                // Older macOS: results pile up until the group ends (development use only; muwad runs on Linux).
                await withTaskGroup(of: Void.self) { group in
                    await claimLoop(stopping: stopping) { context in group.addTask { await runJob(context) } }
                    await drain()
                }
            }
        } onGracefulShutdown: {
            stopping.set()
            doorbell.ring()
        }
        monitor.phase = .stopped
        logger.info("producer stopped after \(monitor.finishedCount) jobs")
    }

    private func runJob(_ context: JobContext) async {
        await runner.run(context)
        monitor.remove(context.job.id)
        doorbell.ring()
    }

    /// Claims and dispatches until `stopping` is set.
    private func claimLoop(stopping: Flag, spawn: (JobContext) -> Void) async {
        var failureDelay = 0.1
        var reportedOutage = false
        while !stopping.isSet, !Task.isCancelled {
            monitor.tick()
            let free = configuration.concurrency - monitor.activeCount
            if free > 0 {
                do {
                    let jobs = try await store.claim(
                        queues: configuration.queues, kinds: configuration.kinds, limit: free,
                        workerID: configuration.workerID, leaseSeconds: configuration.leaseSeconds)
                    monitor.tick()
                    monitor.noteDatabase(problem: nil)
                    if reportedOutage {
                        logger.info("claiming again")
                        reportedOutage = false
                    }
                    failureDelay = 0.1
                    for job in jobs {
                        let context = JobContext(job: job, stateDirectory: configuration.stateDirectory, logger: logger)
                        monitor.add(context)
                        spawn(context)
                    }
                    // A full batch suggests more work is waiting: claim again once a slot frees up.
                    if jobs.count == free { continue }
                } catch {
                    monitor.tick()
                    let message = (error as? StorageError)?.message ?? "\(error)"
                    if (error as? StorageError)?.isTransient ?? false {
                        monitor.noteDatabase(problem: message)
                    }
                    if !reportedOutage {
                        logger.warning("cannot claim jobs, will retry: \(error)")
                        reportedOutage = true
                    }
                    await doorbell.wait(seconds: min(failureDelay, configuration.pollSeconds))
                    failureDelay = min(failureDelay * 2, 5)
                    continue
                }
            }
            await doorbell.wait(seconds: configuration.pollSeconds)
        }
    }

    /// Lets running jobs finish within the grace period, then asks the rest to stop.
    private func drain() async {
        monitor.phase = .draining
        let running = monitor.activeJobs
        guard !running.isEmpty else { return }
        logger.notice(
            "draining: \(running.count) running job(s) get \(formatSeconds(configuration.gracePeriodSeconds)) to finish"
        )
        for context in running where registry.executor(for: context.job.kind)?.checkpointsOnShutdown ?? false {
            context.logger.notice("asking the job to checkpoint and stop for the shutdown")
            context.requestStop(.shuttingDown)
        }
        let deadline = ContinuousClock.now + .milliseconds(Int64(configuration.gracePeriodSeconds * 1000))
        while monitor.activeCount > 0, ContinuousClock.now < deadline, !Task.isCancelled {
            monitor.tick()
            let left = deadline - ContinuousClock.now
            await doorbell.wait(
                seconds: min(0.2, Double(left.components.seconds) + Double(left.components.attoseconds) * 1e-18))
        }
        for context in monitor.activeJobs {
            context.logger.notice("grace period over; asking the job to stop so it can be released")
            context.requestStop(.shuttingDown)
        }
        // The group waits for the runners; keep ticking for the watchdog meanwhile.
        while monitor.activeCount > 0, !Task.isCancelled {
            monitor.tick()
            await doorbell.wait(seconds: 0.2)
        }
    }
}

/// A one-way boolean, safe to set from a signal-handling task.
final class Flag: @unchecked Sendable {
    private var value = false
    private let lock = NSLock()

    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
