// FineTuneJobExecutor: the `finetune` kind. Reads the payload (FineTuneRequest), loads the base model from
// the shared cache and the dataset (InstructionDataset), and trains a LoRA adapter with LoRATrainer on a
// thread of its own:
//
//   every step         progress (step / max_steps) with the step's loss
//   every log_every    a muwa.train_log row (mean loss of the window, lr, grad norm, tokens/s, elapsed)
//   every eval_every   the held-out loss, when the dataset has an eval_fraction
//   every save_every   a checkpoint in the job's work directory (TrainingCheckpoints)
//   on a stop request  a checkpoint, then the job is released (shutdown) or cancelled
//   at the start       the newest checkpoint, if any: a retried, rescued or released job continues where
//                      it was and ends with the adapter an uninterrupted run would have
//   at the end         the adapter in peft's format in a new version directory <state>/adapters/<output>@N
//                      (never replacing an earlier version), with muwa_adapter.json, and an "adapter" output
//                      row that registers version N in muwa.adapter_versions / muwa.adapters with the job's
//                      success. With "if_exists": "fail" an existing <output> fails the job before training.
import Evaluation
import Foundation
import JobQueue
import LoRAOps
import Logging
import OPTEngine
import Storage

public struct FineTuneJobExecutor: JobExecutor {
    public let kind = "finetune"
    public let checkpointsOnShutdown = true
    private let environment: ExecutorEnvironment

    public init(environment: ExecutorEnvironment) {
        self.environment = environment
    }

    public func execute(_ job: ClaimedJob, context: JobContext) async throws -> JobOutcome {
        var request = try FineTuneRequest(payload: job.payload)
        let locations = environment.locations
        request.datasetPath = try locations.dataPath(request.datasetPath, field: "dataset.path", kind: kind)
        let model = try locations.model(request.baseModel, field: "base_model", kind: kind)
        guard let adaptersDirectory = locations.adaptersDirectory else {
            throw JobFailure.permanent("finetune needs a state directory to write the adapter to")
        }
        let existing: (version: Int, jobID: Int64?)?
        do {
            existing = try await locations.newestAdapterVersion(request.output)
        } catch {
            throw JobFailure.retryable("cannot look up adapter \"\(request.output)\" in muwa.adapters: \(error)")
        }
        if let existing, request.ifExists == .fail {
            throw Self.alreadyExists(request.output, existing)
        }
        let generator: Generator
        do {
            generator = try await environment.models.generator(
                for: model.directory, options: try request.engine.resolve(defaults: environment.engineDefaults))
        } catch let error as EngineError {
            throw JobFailure.permanent("cannot load the base model \(request.baseModel): \(error)")
        }
        let run = FineTuneRun(
            request: request, model: model, engine: generator, adaptersDirectory: adaptersDirectory, context: context,
            nextVersion: (existing?.version ?? 0) + 1)
        return try await BlockingWork.run(label: "muwa-finetune") { try run.run() }
    }

    /// The permanent failure of an `"if_exists": "fail"` fine-tune whose output name is taken.
    static func alreadyExists(_ name: String, _ existing: (version: Int, jobID: Int64?)) -> JobFailure {
        let maker = existing.jobID.map { ", made by job \($0)" } ?? ""
        return JobFailure.permanent(
            "adapter \"\(name)\" already exists (version \(existing.version)\(maker)) and the payload says "
                + "\"if_exists\": \"fail\": nothing was trained. Choose another output name, or leave if_exists out "
                + "to add version \(existing.version + 1) (\(name)@\(existing.version) stays as it is)")
    }
}

/// One attempt of a fine-tune job, on its own thread.
struct FineTuneRun: @unchecked Sendable {
    let request: FineTuneRequest
    let model: ModelLocation
    let engine: Generator
    let adaptersDirectory: String
    let context: JobContext
    /// The version this run's adapter becomes unless a higher one appears meanwhile (the registry's and the
    /// state directory's newest + 1, looked up before training).
    let nextVersion: Int

    private var logger: Logger { context.logger }

    func run() throws -> JobOutcome {
        let opt = engine.model
        let (config, train, held) = try prepare(opt)
        let checkpoints = TrainingCheckpoints(workDirectory: context.workDirectory)
        try checkpoints.claim(for: trainingSettings(config))
        let trainer: LoRATrainer
        var events: [JSONValue] = []
        if let resumed = checkpoints.resume(model: opt, examples: train, logger: logger) {
            logger.notice("resuming from \(resumed.directory) at step \(resumed.trainer.step) of \(config.maxSteps)")
            trainer = resumed.trainer
            // Rows written before a crash may not have reached the database: record them again.
            events = resumed.events
            for event in events { context.record(event: event) }
        } else {
            do {
                trainer = try LoRATrainer(model: opt, config: config, examples: train)
            } catch let error as LoRAError {
                throw JobFailure.permanent("invalid finetune payload: \(error)")
            }
            logger.info("training \(config.maxSteps) steps on \(train.count) examples (\(held.count) held out)")
        }
        let steps = Double(request.stepsPerEpoch(examples: train.count))
        let log = TrainLog(logEvery: request.logEvery, evalEvery: request.evalEvery, maxSteps: config.maxSteps)

        var trainedTokens = 0  // this attempt's, for tokens per second
        do {
            try trainer.train { event in
                guard case .step(let report) = event else { return .more }
                trainedTokens += report.tokens
                context.reportProgress(
                    Double(report.step) / Double(config.maxSteps),
                    detail: [
                        "step": .number(Double(report.step)), "loss": .number(report.loss),
                        "max_steps": .number(Double(config.maxSteps)),
                    ],
                    tokens: trainedTokens)
                if log.isEventStep(report.step) {
                    let evalLoss = log.isEvalStep(report.step) && !held.isEmpty ? try trainer.evaluate(held) : nil
                    let event = log.event(
                        history: trainer.history, step: report.step,
                        epoch: Double(report.step) / steps, evalLoss: evalLoss)
                    events.append(event)
                    context.record(event: event)
                }
                if report.step % request.saveEvery == 0, report.step < config.maxSteps {
                    try checkpoints.save(trainer, events: events)
                }
                return context.shouldStop ? .stop : .more
            }
        } catch let error as LoRAError {
            throw JobFailure.permanent("training failed: \(error)")
        }

        let summary = summary(trainer, config: config, examples: train.count)
        guard trainer.isFinished else {
            // Asked to stop: keep the work for the next attempt (a lost lease writes nothing, not even files).
            guard context.stopReason != .leaseLost else { return .stopped }
            let directory = try checkpoints.save(trainer, events: events)
            logger.notice("stopped at step \(trainer.step) of \(config.maxSteps); checkpoint \(directory)")
            return .stopped(
                partial: .object(summary), outputs: [],
                checkpoint: ["directory": .string(directory), "step": .number(Double(trainer.step))])
        }
        let finalLoss = log.lastLoss(history: trainer.history)
        let evalLoss = held.isEmpty ? nil : try trainer.evaluate(held)
        if request.ifExists == .fail,
            let taken = AdapterVersions.onDisk(request.output, in: adaptersDirectory).last
        {
            // Another job published the name while this one trained.
            throw FineTuneJobExecutor.alreadyExists(
                request.output, (taken.version, AdapterProvenance.read(directory: taken.directory)?.jobID))
        }
        let (version, path) = try saveAdapter(trainer)
        checkpoints.removeAll()
        var result = summary
        result["adapter"] = .string(request.output)
        result["version"] = .number(Double(version))
        result["path"] = .string(path)
        result["final_loss"] = .number(finalLoss)
        result["eval_loss"] = evalLoss.map { .number($0) } ?? .null
        let registration: JSONValue = [
            "type": .string("adapter"),
            "name": .string(request.output),
            "version": .number(Double(version)),
            "base_model": .string(request.baseModel),
            "path": .string(path),
            "lora_config": (try? JSONValue(parsing: String(decoding: trainer.adapterConfig.jsonData(), as: UTF8.self)))
                ?? .null,
            "training_args": request.trainingArguments(
                maxSteps: config.maxSteps, config: config, examples: train.count, evalExamples: held.count),
            "final_loss": .number(finalLoss),
            "eval_loss": evalLoss.map { .number($0) } ?? .null,
            "steps": .number(Double(trainer.step)),
        ]
        logger.info(
            "adapter \(request.output)@\(version) saved to \(path) (final loss \(String(format: "%.4f", finalLoss)))")
        return .succeeded(result: .object(result), outputs: [registration])
    }

    /// The training config with the model-dependent settings, and the tokenized data split into train / held out.
    /// What decides the trained adapter: the resolved base model, the dataset file, how it is read, and every
    /// training setting (LoRA included). Checkpoints are only resumed by a run with the same.
    private func trainingSettings(_ config: TrainingConfig) throws -> JSONValue {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let configText = String(decoding: try encoder.encode(config), as: UTF8.self)
        return [
            "base_model": .string(model.directory), "dataset": FileStamp.of(request.datasetPath),
            "eval_fraction": .number(request.evalFraction), "template": .string(request.template.rawValue),
            "train_on_prompt": .bool(request.trainOnPrompt), "config": try JSONValue(parsing: configText),
        ]
    }

    private func prepare(_ opt: OPTModel) throws -> (TrainingConfig, [TrainingExample], [TrainingExample]) {
        var config = request.config
        let positions = opt.config.maxPositionEmbeddings
        if let given = request.maxLengthGiven, given > positions {
            throw JobFailure.permanent(
                "invalid finetune payload: train.max_length \(given) is beyond the \(positions) positions of \(request.baseModel)"
            )
        }
        config.maxLength = request.maxLengthGiven ?? min(1024, positions)
        // OPT's own dropout is active in train mode (transformers' Trainer): the config's `dropout`, 0.1 by default.
        config.residualDropout = request.residualDropoutGiven ?? opt.config.dropout

        let dataset: InstructionDataset
        do {
            dataset = try InstructionDataset.load(
                path: request.datasetPath, template: request.template, tokenizer: engine.tokenizer,
                maxLength: config.maxLength, trainOnPrompt: request.trainOnPrompt)
        } catch let error as EvaluationError {
            throw JobFailure.permanent("invalid finetune dataset: \(error)")
        }
        if dataset.emptyAfterTruncation > 0 {
            logger.warning("\(dataset.emptyAfterTruncation) records have no token to learn from after truncation")
        }
        let (train, held) = dataset.split(evalFraction: request.evalFraction, seed: config.seed)
        config.maxSteps = request.maxSteps(examples: train.count)
        do {
            try config.validate()
        } catch {
            throw JobFailure.permanent("invalid finetune payload: \(error)")
        }
        if let warning = Self.warmupWarning(config) { logger.warning("\(warning)") }
        return (config, train, held)
    }

    /// Writes the adapter into a hidden partial directory, then publishes it as the next free version
    /// <adapters>/<output>@N (N ≥ nextVersion). Earlier versions are never touched.
    private func saveAdapter(_ trainer: LoRATrainer) throws -> (version: Int, path: String) {
        let fm = FileManager.default
        let partial = adaptersDirectory + "/.\(request.output).partial-\(context.job.id)"
        do {
            try fm.createDirectory(atPath: adaptersDirectory, withIntermediateDirectories: true)
            try? fm.removeItem(atPath: partial)
            try fm.createDirectory(atPath: partial, withIntermediateDirectories: true)
            try trainer.saveAdapter(directory: partial)
            try PortableModelName.write(PortableModelName.of(model), adapterDirectory: partial)
            var provenance = AdapterProvenance(
                name: request.output, baseModel: request.baseModel, baseModelDirectory: model.directory,
                architecture: AdapterProvenance.architecture(of: engine.model.config), jobID: context.job.id)
            let first = max(
                nextVersion, (AdapterVersions.onDisk(request.output, in: adaptersDirectory).last?.version ?? 0) + 1)
            provenance.version = first
            try provenance.write(directory: partial)
            let published = try AdapterVersions.publish(
                partial: partial, name: request.output, atLeast: first, in: adaptersDirectory)
            if published.version != first {
                provenance.version = published.version
                try provenance.write(directory: published.directory)
            }
            return (published.version, published.directory)
        } catch {
            try? fm.removeItem(atPath: partial)
            throw JobFailure.retryable(
                "cannot write adapter \(request.output) to \(adaptersDirectory): \(error.localizedDescription)")
        }
    }

    /// transformers warns too: a warmup that never ends keeps the learning rate below its peak throughout.
    static func warmupWarning(_ config: TrainingConfig) -> String? {
        guard config.warmupSteps > config.maxSteps else { return nil }
        return
            "warmup_steps \(config.warmupSteps) is longer than the run (\(config.maxSteps) steps): the learning rate "
            + "never reaches \(config.learningRate)"
    }

    private func summary(_ trainer: LoRATrainer, config: TrainingConfig, examples: Int) -> [String: JSONValue] {
        var fields: [String: JSONValue] = [
            "base_model": .string(request.baseModel),
            "output": .string(request.output),
            "steps": .number(Double(trainer.step)),
            "max_steps": .number(Double(config.maxSteps)),
            "examples": .number(Double(examples)),
            "loss": trainer.history.last.map { .number($0.loss) } ?? .null,
        ]
        if let warning = Self.warmupWarning(config) { fields["warnings"] = [.string(warning)] }
        return fields
    }
}
