// EvaluateJobExecutor: the `evaluate` kind. Validates the payload (EvaluateRequest), resolves the model and
// adapter by name or path (Locations), loads the model once (ModelCache) and runs the Evaluation library's
// Evaluator on a thread of its own: the base model, the adapter, or both on the same examples
// (compare_base: base first). Progress is reported per example (and per generated token); a stop lands
// between examples or generated tokens.
//
// Shutdown: the samples done are saved in the job's work directory (EvaluateCheckpoint) and the job is
// released with a checkpoint naming them; the next attempt evaluates only the rest, and the metrics are
// computed over all samples in order, so they equal an uninterrupted run's. The samples are also saved
// every `checkpointSeconds` (the evaluator is paused between examples, the file written, and the run
// continued), and an attempt without a checkpoint in the job row (after kill -9 or a lost lease) resumes
// from that file when it was made for the same request. A cancel keeps the samples done as outputs and the
// partial metrics in the result.
//
// Outputs, one per row of muwa.eval_results / muwa.eval_samples (migrations/0005):
//   {"type": "eval_result", "model", "adapter", "task", "method", "metric", "value", "n"}
//   {"type": "eval_sample", "model", "adapter", "task", "method", "index", "example_id", "input",
//    "expected", "output", "score", "details"}
// "model" and "adapter" are the payload's values (adapter null for the base model).
import Evaluation
import Foundation
import JobQueue
import LoRAOps
import OPTEngine
import Storage

public struct EvaluateJobExecutor: JobExecutor {
    public let kind = "evaluate"
    private let environment: ExecutorEnvironment

    /// How often the samples done are saved while the evaluation runs.
    private let checkpointSeconds: Double

    public init(environment: ExecutorEnvironment, checkpointSeconds: Double = 60) {
        self.environment = environment
        self.checkpointSeconds = max(0.001, checkpointSeconds)
    }

    public var checkpointsOnShutdown: Bool { true }

    /// One evaluation: the evaluator (over the base model, or a merged copy) and the adapter's delta.
    private struct Run: @unchecked Sendable {
        let adapter: String?
        let evaluator: Evaluator
        let delta: ProjectionDelta?
    }

    public func execute(_ job: ClaimedJob, context: JobContext) async throws -> JobOutcome {
        var request = try EvaluateRequest(payload: job.payload)
        request.dataset = try request.dataset.enumerated().map { index, path in
            try environment.locations.dataPath(path, field: index == 0 ? "dataset.path" : "dataset.labels", kind: kind)
        }
        let model = try environment.locations.model(request.model, field: "model", kind: kind)
        var adapterLocation: AdapterLocation?
        if let name = request.adapter {
            adapterLocation = try await environment.locations.adapter(name, field: "adapter", kind: kind)
        }
        let generator: Generator
        do {
            generator = try await environment.models.generator(
                for: model.directory, options: try request.engine.resolve(defaults: environment.engineDefaults))
        } catch let error as EngineError {
            throw JobFailure.permanent("cannot load the model \(request.model): \(error)")
        }

        var runs: [Run] = []
        if adapterLocation == nil || request.compareBase {
            let evaluator = Evaluator(model: generator.model, tokenizer: generator.tokenizer)
            runs.append(Run(adapter: nil, evaluator: evaluator, delta: nil))
        }
        if let adapterLocation {
            runs.append(try adapterRun(adapterLocation, generator: generator, request: request))
        }

        let identity = request.identity(modelDirectory: model.directory, adapterDirectory: adapterLocation?.directory)
        var states = runs.map { EvaluationRunState(adapter: $0.adapter) }
        var resumed = 0
        // The job row's checkpoint (a release), else a periodic save in the work directory (a crash).
        let periodic = context.workDirectory + "/" + EvaluateCheckpoint.fileName
        let saved: JSONValue? =
            job.checkpoint
            ?? (FileManager.default.fileExists(atPath: periodic) ? ["samples_file": .string(periodic)] : nil)
        if let checkpoint = saved {
            do {
                states = try EvaluateCheckpoint.load(
                    checkpoint, identity: identity, fresh: states, allowedDirectory: context.workDirectory)
                resumed = states.reduce(0) { $0 + $1.samples.count }
                context.logger.info("resuming the evaluation after \(resumed) evaluated examples")
            } catch {
                context.logger.warning("cannot resume from the checkpoint (\(error)); evaluating from the start")
            }
        }

        var interval = checkpointSeconds
        for (part, run) in runs.enumerated() where !states[part].completed {
            while true {
                let report = try await evaluate(
                    run, request, skip: states[part].samples.count, part: part, of: runs.count, context: context,
                    pauseAfter: interval)
                states[part].samples += report.samples
                states[part].settings = report.settings
                states[part].completed = report.completed
                if report.completed { break }
                if context.shouldStop {
                    return stopped(states, request: request, identity: identity, resumed: resumed, context: context)
                }
                // Paused for a periodic save. An example longer than the interval widens it, so each pause
                // follows at least one finished example.
                if report.samples.isEmpty { interval *= 2 }
                do {
                    _ = try EvaluateCheckpoint.save(states, identity: identity, directory: context.workDirectory)
                } catch {
                    context.logger.warning("cannot save the evaluated examples so far (\(error))")
                }
            }
        }
        EvaluateCheckpoint.remove(directory: context.workDirectory)
        let rows = states.flatMap { resultRows($0, request) } + states.flatMap { sampleRows($0, request) }
        return .succeeded(result: summary(states, request, resumed: resumed, completed: true), outputs: rows)
    }

    /// The adapter's run: applied beside the shared base weights, or folded into a copy of the adapted
    /// weights when it replaces layer-norm biases (peft's bias "all"), which only a merged model carries.
    private func adapterRun(_ location: AdapterLocation, generator: Generator, request: EvaluateRequest) throws
        -> Run
    {
        let adapter = try Locations.loadAdapter(location, for: generator.model, modelName: request.model, kind: kind)
        do {
            if !adapter.biases.layerNorms.isEmpty {
                let merged = try adapter.merge(into: generator.model).merged
                return Run(
                    adapter: location.name, evaluator: Evaluator(model: merged, tokenizer: generator.tokenizer),
                    delta: nil)
            }
            return Run(
                adapter: location.name, evaluator: Evaluator(model: generator.model, tokenizer: generator.tokenizer),
                delta: try AdapterBatch(adapter: adapter, model: generator.model))
        } catch let error as LoRAError {
            throw JobFailure.permanent(
                "invalid evaluate payload: adapter \"\(location.name)\" cannot be applied to \(request.model): \(error)"
            )
        }
    }

    /// Runs the Evaluator after the first `skip` examples until it ends, a stop is requested, or
    /// `pauseAfter` seconds have passed (then the report is incomplete and the caller continues it);
    /// progress spans part/parts … (part+1)/parts.
    private func evaluate(
        _ run: Run, _ request: EvaluateRequest, skip: Int, part: Int, of parts: Int, context: JobContext,
        pauseAfter: Double
    ) async throws -> EvalReport {
        let pauseAt = ContinuousClock.now + .milliseconds(Int64(pauseAfter * 1000))
        var settings = request.options
        settings.skip = skip
        let options = settings
        let detail: JSONValue? = parts > 1 ? ["phase": .string(run.adapter == nil ? "base" : "adapter")] : nil
        // Tokens of this attempt: the evaluator's tally counts across its pauses.
        let tally = run.evaluator.tally
        do {
            return try await BlockingWork.run(label: "muwa-evaluate") {
                try run.evaluator.evaluate(
                    task: request.task, method: request.method, dataset: request.dataset, options: options,
                    delta: run.delta,
                    progress: {
                        context.reportProgress(
                            (Double(part) + $0) / Double(parts), detail: detail, tokens: tally.count)
                    },
                    shouldCancel: { context.shouldStop || ContinuousClock.now >= pauseAt })
            }
        } catch let error as EvaluationError {
            throw JobFailure.permanent("\(error)")
        } catch let error as EngineError {
            if case .invalidRequest = error { throw JobFailure.permanent("\(error)") }
            throw JobFailure.retryable("evaluation failed: \(error)")
        }
    }

    private func stopped(
        _ states: [EvaluationRunState], request: EvaluateRequest, identity: JSONValue, resumed: Int, context: JobContext
    ) -> JobOutcome {
        let partial = summary(states, request, resumed: resumed, completed: false)
        guard context.stopReason == .shuttingDown else {
            // Cancelled (or out of time): the examples done stay visible in muwa.eval_samples.
            if context.stopReason != .leaseLost { EvaluateCheckpoint.remove(directory: context.workDirectory) }
            return .stopped(partial: partial, outputs: states.flatMap { sampleRows($0, request) }, checkpoint: nil)
        }
        do {
            let checkpoint = try EvaluateCheckpoint.save(states, identity: identity, directory: context.workDirectory)
            return .stopped(partial: partial, outputs: [], checkpoint: checkpoint)
        } catch {
            context.logger.warning("cannot save the evaluated examples (\(error)); the next attempt starts over")
            return .stopped(partial: partial, outputs: [], checkpoint: nil)
        }
    }

    // MARK: - Outputs

    private func identityFields(_ state: EvaluationRunState, _ request: EvaluateRequest) -> [String: JSONValue] {
        [
            "model": .string(request.model), "adapter": state.adapter.map { .string($0) } ?? .null,
            "task": .string(request.task.rawValue), "method": .string(request.method.rawValue),
        ]
    }

    private func resultRows(_ state: EvaluationRunState, _ request: EvaluateRequest) -> [JSONValue] {
        let (metrics, n) = state.metrics(task: request.task, method: request.method)
        return metrics.map { metric in
            var row = identityFields(state, request)
            row["type"] = "eval_result"
            row["metric"] = .string(metric.name)
            row["value"] = .number(metric.value)
            row["n"] = .number(Double(n))
            return .object(row)
        }
    }

    private func sampleRows(_ state: EvaluationRunState, _ request: EvaluateRequest) -> [JSONValue] {
        state.samples.map { sample in
            var row = identityFields(state, request)
            row["type"] = "eval_sample"
            row["index"] = .number(Double(sample.index))
            row["example_id"] = sample.id.map { .string($0) } ?? .null
            row["input"] = .string(sample.input)
            row["expected"] = .string(sample.expected)
            row["output"] = .string(sample.output)
            row["score"] = .number(sample.score)
            row["details"] = .object(sample.details.mapValues { .string($0) })
            return .object(row)
        }
    }

    /// The job's result: task, method, model, adapter, n, metrics ({metric: value}, or {"base": …,
    /// "adapter": …} with compare_base) and the evaluator's settings.
    private func summary(
        _ states: [EvaluationRunState], _ request: EvaluateRequest, resumed: Int, completed: Bool
    ) -> JSONValue {
        func metricObject(_ state: EvaluationRunState) -> JSONValue {
            var object: [String: JSONValue] = [:]
            for metric in state.metrics(task: request.task, method: request.method).metrics {
                object[metric.name] = .number(metric.value)
            }
            return .object(object)
        }
        let last = states.last(where: { !$0.samples.isEmpty || $0.completed }) ?? states[0]
        var result: [String: JSONValue] = [
            "task": .string(request.task.rawValue), "method": .string(request.method.rawValue),
            "model": .string(request.model), "adapter": request.adapter.map { .string($0) } ?? .null,
            "n": .number(Double(last.metrics(task: request.task, method: request.method).n)),
            "samples": .number(Double(last.samples.count)),
            "settings": .object(last.settings.mapValues { .string($0) }),
        ]
        if states.count > 1 {
            result["metrics"] = [
                "base": metricObject(states[0]), "adapter": metricObject(states[states.count - 1]),
            ]
        } else {
            result["metrics"] = metricObject(states[0])
        }
        if resumed > 0 { result["resumed_after"] = .number(Double(resumed)) }
        if !completed {
            result["completed"] = false
            result["done"] = .number(Double(states.reduce(0) { $0 + $1.samples.count }))
        }
        return .object(result)
    }
}
