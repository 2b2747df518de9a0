// JobRunner: runs one claimed job (cf. river's jobexecutor): checks the payload could be read, finds the
// executor, runs it next to a LeaseKeeper, and turns whatever happened into one Completion for the
// Completer. The executor's result is interpreted in the light of why it was asked to stop: a cancel
// keeps partial results, a shutdown releases the job with its checkpoint, a time limit fails it, and a
// lost lease writes nothing at all.
import Logging
import Storage

struct JobRunner: Sendable {
    let registry: ExecutorRegistry
    let keeper: LeaseKeeper
    let completer: Completer

    /// Runs the job to its recorded end. Never throws.
    func run(_ context: JobContext) async {
        let job = context.job
        context.logger.info(
            "job claimed (attempt \(job.attempt) of \(job.maxAttempts), queue \(job.queue), priority \(job.priority))")
        if let problem = job.payloadError {
            await completer.record(.failed(.permanent("the payload cannot be read: \(problem)")), for: context)
            return
        }
        guard let executor = registry.executor(for: job.kind) else {
            await completer.record(
                .failed(.retryable("this worker has no executor for kind \"\(job.kind)\"")), for: context)
            return
        }
        if job.cancelRequested { context.requestStop(.cancelRequested) }

        let ended = await execute(executor, context: context)
        guard let completion = completion(for: ended, context: context) else {
            context.logger.warning("outcome discarded: the lease was lost while the job ran")
            return
        }
        await completer.record(completion, for: context)
    }

    // MARK: - Execution

    private enum Ended: Sendable {
        case returned(JobOutcome)
        case threw(String, JobFailure?)
        /// Cancelled or abandoned before the executor returned.
        case interrupted
    }

    private enum Event: Sendable {
        case ended(Ended)
        case abandoned
        case keeperStopped
    }

    private func execute(_ executor: any JobExecutor, context: JobContext) async -> Ended {
        let abandonBell = Doorbell()
        let keeper = self.keeper
        let job = context.job
        return await withTaskGroup(of: Event.self) { group in
            // The executor runs on JobThreads, never on the cooperative pool the lease keeper needs.
            group.addTask(executorPreference: JobThreads.shared) {
                do {
                    return .ended(.returned(try await executor.execute(job, context: context)))
                } catch let failure as JobFailure {
                    return .ended(.threw(failure.message, failure))
                } catch is CancellationError {
                    return .ended(.interrupted)
                } catch {
                    return .ended(.threw("\(error)", nil))
                }
            }
            group.addTask {
                await keeper.keep(context, abandon: { abandonBell.ring() })
                return .keeperStopped
            }
            group.addTask {
                while !Task.isCancelled {
                    if await abandonBell.wait(seconds: 3600) { return .abandoned }
                }
                return .keeperStopped
            }
            var ended: Ended = .interrupted
            while let event = await group.next() {
                switch event {
                case .ended(let value):
                    ended = value
                case .abandoned:
                    ended = .interrupted
                case .keeperStopped:
                    continue
                }
                group.cancelAll()
                break
            }
            return ended
        }
    }

    // MARK: - Interpretation

    private func completion(for ended: Ended, context: JobContext) -> Completion? {
        let reason = context.stopReason
        if reason == .leaseLost { return nil }
        switch ended {
        case .returned(.succeeded(let result, let outputs)):
            return .succeeded(result: result, outputs: outputs)
        case .returned(.failed(let failure)):
            return .failed(failure)
        case .returned(.stopped(let partial, let outputs, let checkpoint)):
            return stopped(
                reason, context: context, partial: partial, outputs: outputs, checkpoint: checkpoint, abandoned: false)
        case .interrupted:
            return stopped(reason, context: context, partial: nil, outputs: [], checkpoint: nil, abandoned: true)
        case .threw(let message, let failure):
            if let failure { return .failed(failure) }
            if let reason, reason != .cancelRequested {
                // An executor that throws while being stopped: the stop explains it better than the error.
                return stopped(reason, context: context, partial: nil, outputs: [], checkpoint: nil, abandoned: false)
            }
            return .failed(.retryable(message))
        }
    }

    private func stopped(
        _ reason: StopReason?, context: JobContext, partial: JSONValue?, outputs: [JSONValue], checkpoint: JSONValue?,
        abandoned: Bool
    ) -> Completion {
        let note = abandoned ? " (the executor did not stop and was abandoned)" : ""
        switch reason {
        case .cancelRequested:
            return .cancelled(partial: partial, outputs: outputs)
        case .shuttingDown:
            return .released(checkpoint: checkpoint, reason: "daemon shutting down\(note)")
        case .timeLimit(let seconds) where context.job.timeLimitSeconds == nil:
            return .failed(
                .permanent(
                    "the job exceeded the worker's default time limit of \(formatSeconds(seconds)) (MUWA_DEFAULT_TIME_LIMIT; "
                        + "enqueue it with a time_limit to give it longer)\(note)"))
        case .timeLimit(let seconds):
            return .failed(.permanent("the job exceeded its time limit of \(formatSeconds(seconds))\(note)"))
        case .leaseLost:
            // Filtered out by the caller; listed for completeness.
            return .released(checkpoint: nil, reason: "lease lost")
        case nil:
            return .failed(.retryable("the job was interrupted before it finished\(note)"))
        }
    }
}
