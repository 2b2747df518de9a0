// LeaseKeeper: runs beside each job. It renews the lease every heartbeat interval, writes the latest
// progress at most once per progress interval (the same guarded UPDATE also renews the lease), enforces the
// job's time limit (or the daemon's default time limit for a job without one), writes the events the executor recorded (training-log rows) with the same cadence as
// progress, turns a cancel flag into a stop request, and abandons an executor that ignores a stop
// request for longer than the stop timeout. A heartbeat that matches no row means the job was taken away:
// the executor is stopped and nothing more is written for it.
import Logging
import Storage

struct LeaseKeeper: Sendable {
    let store: JobStore
    let monitor: QueueMonitor
    let configuration: QueueConfiguration

    /// Keeps the lease of `context`'s job until the task is cancelled. Calls `abandon` when the executor
    /// does not stop within the stop timeout after being asked to.
    func keep(_ context: JobContext, abandon: @Sendable () -> Void) async {
        let lease = context.job.lease
        let tick = min(configuration.progressIntervalSeconds, configuration.heartbeatSeconds)
        var lastRenewal = ContinuousClock.now
        var lastProgressWrite = ContinuousClock.now - .seconds(3600)
        let progressInterval = Duration.milliseconds(Int64(configuration.progressIntervalSeconds * 1000))
        var failing = false
        var stopSeen: ContinuousClock.Instant?
        var abandoned = false
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(Int64(tick * 1000)))
            if Task.isCancelled { return }

            if let line = context.progressLine() { context.logger.notice("\(line)") }
            if let limit = context.job.timeLimitSeconds ?? configuration.defaultTimeLimitSeconds,
                context.elapsedSeconds > limit
            {
                context.requestStop(.timeLimit(limit))
            }
            if let reason = context.stopReason {
                let seen = stopSeen ?? .now
                stopSeen = seen
                if !abandoned,
                    ContinuousClock.now - seen > .milliseconds(Int64(configuration.stopTimeoutSeconds * 1000))
                {
                    context.logger.error(
                        "the executor did not stop within \(formatSeconds(configuration.stopTimeoutSeconds)) (\(reason)); abandoning it"
                    )
                    abandoned = true
                    abandon()
                }
                if reason == .leaseLost { continue }
            }

            // Progress rides on the lease renewal, but never more often than the progress interval.
            let progress = ContinuousClock.now - lastProgressWrite >= progressInterval ? context.takeProgress() : nil
            let heartbeatDue =
                ContinuousClock.now - lastRenewal
                >= .milliseconds(Int64(configuration.heartbeatSeconds * 1000))
            guard progress != nil || heartbeatDue || failing else { continue }
            do {
                let events = context.takeEvents()
                do {
                    _ = try await store.appendEvents(lease, runID: context.job.runID, events: events)
                } catch {
                    context.restoreEvents(events)
                    throw error
                }
                let result = try await store.heartbeat(
                    lease, leaseSeconds: configuration.leaseSeconds, progress: progress?.fraction,
                    detail: progress?.detail)
                if failing {
                    context.logger.info("lease renewed again after a database outage")
                }
                failing = false
                monitor.noteDatabase(problem: nil)
                switch result {
                case .renewed(let cancelRequested):
                    lastRenewal = .now
                    if progress != nil { lastProgressWrite = .now }
                    if cancelRequested, context.stopReason == nil {
                        context.logger.notice("cancel requested; stopping at the next safe point")
                        context.requestStop(.cancelRequested)
                    }
                case .lost:
                    let state = try? await store.state(of: lease.jobID)
                    let now =
                        state.map { "now \($0.status.rawValue) by \($0.workerID ?? "-") (attempt \($0.attempt))" }
                        ?? "gone"
                    context.logger.warning(
                        "lease lost: the job was taken away (\(now)); stopping it, writing nothing more")
                    context.requestStop(.leaseLost)
                }
            } catch {
                if !failing {
                    context.logger.warning("cannot renew the lease (the job keeps running): \(error)")
                }
                failing = true
                if let storageError = error as? StorageError, storageError.isTransient {
                    monitor.noteDatabase(problem: storageError.message)
                }
            }
        }
    }
}
