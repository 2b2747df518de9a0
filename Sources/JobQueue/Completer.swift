// Completer: persists how an attempt ended (cf. river's jobcompleter). Every write is guarded by the lease;
// zero rows means the job was taken away and the outcome is dropped (and said so in the log). Through a
// database outage it keeps retrying with backoff, so a job that finished while PostgreSQL was down is
// reported once the database is back.
import Logging
import Storage

/// The final word on one attempt.
enum Completion: Sendable {
    case succeeded(result: JSONValue?, outputs: [JSONValue])
    case cancelled(partial: JSONValue?, outputs: [JSONValue])
    case failed(JobFailure)
    /// Back to the queue without using up the attempt (graceful shutdown).
    case released(checkpoint: JSONValue?, reason: String)
}

/// Writes completions, guarded by the job's lease.
struct Completer: Sendable {
    let store: JobStore
    let monitor: QueueMonitor
    let retryPolicy: RetryPolicy

    /// Records `completion`, retrying transient database errors until it is written, found moot, or the task
    /// is cancelled (then the lease expires and the rescuer takes over).
    func record(_ completion: Completion, for context: JobContext) async {
        var delay = 0.1
        var warned = false
        while true {
            do {
                try await write(completion, context: context)
                monitor.noteDatabase(problem: nil)
                return
            } catch let error as StorageError where error.isTransient {
                monitor.noteDatabase(problem: error.message)
                if !warned {
                    context.logger.warning("cannot record the outcome yet, will retry: \(error.message)")
                    warned = true
                }
                if Task.isCancelled {
                    context.logger.error(
                        "stopping before the outcome was recorded; the lease will expire and the job will be rescued")
                    return
                }
                try? await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
                delay = min(delay * 2, 5)
            } catch {
                // Not transient: the statement itself is wrong for this data (e.g. a result jsonb rejects).
                context.logger.error("cannot record the outcome: \(error)")
                if case .failed = completion { return }
                let failure = JobFailure.permanent("muwad could not store the job's outcome: \(error)")
                await record(.failed(failure), for: context)
                return
            }
        }
    }

    private func write(_ completion: Completion, context: JobContext) async throws {
        let lease = context.job.lease
        // Events recorded since the last heartbeat go first, so a finished job's log is complete.
        let events = context.takeEvents()
        do {
            _ = try await store.appendEvents(lease, runID: context.job.runID, events: events)
        } catch {
            context.restoreEvents(events)
            throw error
        }
        let logger = context.logger
        let elapsed = formatSeconds(context.elapsedSeconds)
        switch completion {
        case .succeeded(let result, let outputs):
            if try await store.finish(lease, status: .succeeded, result: result, outputs: outputs) {
                logger.info("job succeeded in \(elapsed)")
            } else {
                try await explainLost(context, what: "result")
            }
        case .cancelled(let partial, let outputs):
            if try await store.finish(lease, status: .cancelled, result: partial, outputs: outputs) {
                logger.info(
                    "job cancelled after \(elapsed)\(outputs.isEmpty ? "" : ", \(outputs.count) partial outputs kept")")
            } else {
                try await explainLost(context, what: "cancellation")
            }
        case .failed(let failure):
            let delay = retryPolicy.delay(afterAttempt: lease.attempt)
            guard
                let record = try await store.fail(
                    lease, message: failure.message, retryable: failure.retryable, retryDelaySeconds: delay)
            else {
                try await explainLost(context, what: "failure")
                return
            }
            let attempts = "attempt \(lease.attempt) of \(context.job.maxAttempts)"
            switch record.status {
            case .queued:
                let retryIn = formatSeconds(record.retryInSeconds ?? delay)
                logger.warning("job failed (\(attempts)), retry in \(retryIn): \(failure.message)")
            case .cancelled:
                logger.warning("job failed (\(attempts)) after a cancel was requested; cancelled: \(failure.message)")
            default:
                let why = failure.retryable ? "no attempts left" : "not retryable"
                logger.error("job failed (\(attempts), \(why)): \(failure.message)")
            }
        case .released(let checkpoint, let reason):
            guard let status = try await store.release(lease, checkpoint: checkpoint, reason: reason) else {
                try await explainLost(context, what: "release")
                return
            }
            let saved = checkpoint == nil ? "" : " with a checkpoint"
            logger.notice("job released\(saved) (\(reason)); now \(status.rawValue), attempt not counted")
        }
    }

    private func explainLost(_ context: JobContext, what: String) async throws {
        let state = try await store.state(of: context.job.id)
        let now =
            state.map { "it is now \($0.status.rawValue) (worker \($0.workerID ?? "-"), attempt \($0.attempt))" }
            ?? "it no longer exists"
        context.logger.warning("\(what) discarded: the job was taken away from this worker; \(now)")
    }
}
