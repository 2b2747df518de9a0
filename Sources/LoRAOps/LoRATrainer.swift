// LoRATrainer: the step loop of a LoRA fine-tuning run. One optimizer step = zero the gradients →
// forward/backward over `gradient_accumulation_steps` micro-batches → clip the global gradient norm →
// AdamW with the schedule's learning rate. Everything a step depends on — the adapter, the moments,
// the step, the data cursor and the dropout stream position — is in the trainer and in a checkpoint
// (see TrainerCheckpoint.swift), so a restored run continues bit for bit. Progress is reported through
// ``TrainingProgress`` after every step; the callback can stop the run between steps.
//
//   let trainer = try LoRATrainer(model: model, config: config, examples: examples)   // or .resume(directory:…)
//   try trainer.train { event in
//       if case .step(let r) = event, r.step % 100 == 0 { try trainer.saveCheckpoint(directory: dir) }
//       return shuttingDown ? .stop : .more
//   }
//   try trainer.saveAdapter(directory: out)                                            // peft's format
//
// The original Muwa run is config r 8, lora_alpha 32, lora_dropout 0.05, q_proj/v_proj, lr 2e-4, linear
// with 100 warmup steps, batch 4 × accumulation 4, max_grad_norm 1, seed 42, max_length 1024,
// loss_normalization micro_batch_mean (transformers 4.28), residual_dropout 0.1 (OPT's dropout in train
// mode), gradient_checkpointing.
import Foundation
import OPTEngine

/// What one optimizer step did.
public struct StepReport: Codable, Sendable, Equatable {
    /// 1-based index of the step just taken.
    public var step: Int
    /// The step's loss (see ``LossNormalization``).
    public var loss: Double
    /// Global gradient norm before clipping.
    public var gradNorm: Double
    public var learningRate: Double
    /// Tokens with a target (that contributed to the loss) and tokens processed, padding excluded.
    public var targetTokens: Int
    public var tokens: Int
    public var epoch: Int
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case step, loss, gradNorm = "grad_norm", learningRate = "learning_rate", targetTokens = "target_tokens"
        case tokens, epoch, seconds
    }
}

public enum TrainingProgress: Sendable {
    case step(StepReport)
    /// max_steps reached.
    case finished(steps: Int)
}

/// The progress callback's answer (mlx-swift-lm's ProgressDisposition).
public enum ProgressDisposition: Sendable {
    case more, stop
}

public final class LoRATrainer: @unchecked Sendable {
    public let model: OPTModel
    public let config: TrainingConfig
    public let examples: [TrainingExample]
    /// The config of the adapter being trained (what `saveAdapter` writes).
    public let adapterConfig: AdapterConfig
    public let layout: LoRALayout
    /// The LoRA weights being trained (A and B of every slot).
    public let params: FloatArena
    let grads: FloatArena
    public let optimizer: AdamW
    public let schedule: LRSchedule
    let graph: LoRATrainingModel
    /// Optimizer steps done.
    public internal(set) var step = 0
    /// Micro-batches done (picks the dropout masks).
    public internal(set) var microStep: UInt64 = 0
    public internal(set) var cursor = DataCursor()
    public internal(set) var history: [StepReport] = []

    /// A run from `initialAdapter` (its config decides r, alpha and targets) or, when nil, from a fresh
    /// peft-style initialisation seeded by `config.seed`.
    public init(
        model: OPTModel, config: TrainingConfig, examples: [TrainingExample],
        initialAdapter: LoRAAdapter? = nil
    ) throws {
        try config.validate()
        guard !examples.isEmpty else { throw LoRAError.invalidTraining("no training examples") }
        for (i, ex) in examples.enumerated() {
            guard !ex.inputIds.isEmpty, ex.inputIds.count <= config.maxLength else {
                throw LoRAError.invalidTraining(
                    "example \(i) has \(ex.inputIds.count) tokens; allowed 1…\(config.maxLength)")
            }
            do {
                _ = try TrainingBatch.collate(
                    [ex], padTokenId: model.config.padTokenId, vocabSize: model.config.vocabSize,
                    maxLength: config.maxLength)
            } catch LoRAError.invalidTraining(let message) {
                throw LoRAError.invalidTraining(message.replacingOccurrences(of: "example 0", with: "example \(i)"))
            }
        }
        let start =
            try initialAdapter
            ?? LoRAAdapter.initialized(
                config: config.adapterConfig(baseModel: model.directory), model: model.config,
                seed: config.seed)
        try start.checkCompatible(with: model.config)
        guard start.biases.isEmpty, start.config.bias == .none else {
            throw LoRAError.unsupported(
                path: start.source ?? "adapter", option: "bias",
                reason: "training adapter biases is not implemented (use bias \"none\")")
        }
        var adapterConfig = start.config
        adapterConfig.loraDropout = config.loraDropout
        adapterConfig.baseModelNameOrPath = adapterConfig.baseModelNameOrPath ?? model.directory
        self.model = model
        self.config = config
        self.examples = examples
        self.adapterConfig = adapterConfig
        self.layout = start.layout
        self.params = start.weights.copy()
        self.grads = FloatArena(count: start.layout.count)
        self.optimizer = AdamW(count: start.layout.count, settings: config.adamw)
        self.schedule = LRSchedule(
            kind: config.lrScheduler, baseLR: config.learningRate, warmupSteps: config.warmupSteps,
            totalSteps: config.maxSteps)
        let longest = examples.map(\.inputIds.count).max() ?? 1
        self.graph = try LoRATrainingModel(
            model: model, layout: start.layout, maxBatch: min(config.batchSize, examples.count),
            maxLength: min(config.maxLength, max(longest, 1)), loraDropout: Float(config.loraDropout),
            residualDropout: Float(config.residualDropout), checkpointing: config.gradientCheckpointing,
            seed: config.seed)
    }

    public var isFinished: Bool { step >= config.maxSteps }

    /// Bytes of activation buffers (beyond the base weights and the small LoRA arenas).
    public var activationBytes: Int { graph.activationBytes }

    /// With gradient checkpointing: the bytes reserved for layers kept from recomputation (from the memory
    /// budget; see TrainingActivations), and the layers the last step's micro-batches recomputed in all.
    public var keepArenaBytes: Int { graph.keepArenaBytes }
    public private(set) var lastStepRecomputedLayers = 0

    /// The adapter as trained so far (a copy).
    public var adapter: LoRAAdapter {
        LoRAAdapter(config: adapterConfig, layout: layout, weights: params.copy(), modelConfig: model.config)
    }

    /// Writes the adapter in peft's format (adapter_config.json + adapter_model.safetensors).
    public func saveAdapter(directory: String) throws { try adapter.save(directory: directory) }

    /// One optimizer step.
    @discardableResult
    public func trainStep() throws -> StepReport {
        guard !isFinished else { throw LoRAError.invalidTraining("max_steps \(config.maxSteps) already reached") }
        let started = Date()
        let cfg = model.config
        let lr = schedule.learningRate(step: step)
        var batches: [TrainingBatch] = []
        for _ in 0..<config.gradientAccumulationSteps {
            // transformers ≥ 4.46 (loss_normalization tokens) ends an accumulation with the epoch: an epoch's
            // last optimizer step takes only the micro-batches left in it (ceil(batches / accumulation) steps
            // per epoch). ≤ 4.45 (micro_batch_mean) counted micro-batches across epochs.
            if !batches.isEmpty, config.lossNormalization == .tokens, cursor.index >= examples.count { break }
            let indices = cursor.next(
                batchSize: config.batchSize, count: examples.count, shuffle: config.shuffle,
                seed: config.seed)
            batches.append(
                try TrainingBatch.collate(
                    indices.map { examples[$0] }, padTokenId: cfg.padTokenId,
                    vocabSize: cfg.vocabSize, maxLength: config.maxLength))
        }
        let totalTargets = batches.reduce(0) { $0 + $1.targetCount }
        grads.zero()
        var loss = 0.0, recomputed = 0
        defer { lastStepRecomputedLayers = recomputed }
        for batch in batches {
            let scale: Float
            switch config.lossNormalization {
            case .tokens: scale = totalTargets > 0 ? 1 / Float(totalTargets) : 0
            case .microBatchMean:
                scale = batch.targetCount > 0 ? 1 / (Float(batch.targetCount) * Float(batches.count)) : 0
            }
            let sum = graph.forwardBackward(batch, params: params, grads: grads, lossScale: scale, microStep: microStep)
            recomputed += graph.lastRecomputedLayers
            microStep += 1
            switch config.lossNormalization {
            case .tokens: loss += sum
            case .microBatchMean:
                loss += batch.targetCount > 0 ? sum / Double(batch.targetCount) / Double(batches.count) : 0
            }
        }
        if config.lossNormalization == .tokens { loss = totalTargets > 0 ? loss / Double(totalTargets) : 0 }
        let norm = clipGradNorm(grads, maxNorm: config.maxGradNorm)
        optimizer.update(params: params, grads: grads, lr: lr)
        step += 1
        let report = StepReport(
            step: step, loss: loss, gradNorm: norm, learningRate: lr, targetTokens: totalTargets,
            tokens: batches.reduce(0) { $0 + $1.keyMask.reduce(0) { $0 + Int($1) } },
            epoch: cursor.epoch, seconds: Date().timeIntervalSince(started))
        history.append(report)
        return report
    }

    /// Runs steps until max_steps, until `progress` answers `.stop`, or until the task is cancelled —
    /// always between steps. Returns the number of steps taken by this call.
    @discardableResult
    public func train(progress: (TrainingProgress) throws -> ProgressDisposition = { _ in .more }) throws -> Int {
        var taken = 0
        while !isFinished {
            if Task.isCancelled { return taken }
            let report = try trainStep()
            taken += 1
            if try progress(.step(report)) == .stop { return taken }
        }
        _ = try progress(.finished(steps: step))
        return taken
    }

    /// The mean token loss of `examples` under the current adapter (no dropout, no gradients).
    public func evaluate(_ examples: [TrainingExample]) throws -> Double {
        // forward only: one shared set of layer activations is all it needs (no backward reads them), and no
        // keep arena
        let eval = try LoRATrainingModel(
            model: model, layout: layout, maxBatch: 1,
            maxLength: max(examples.map(\.inputIds.count).max() ?? 1, 1), checkpointing: true, keepBudget: 0)
        var sum = 0.0, count = 0
        for ex in examples {
            let batch = try TrainingBatch.collate(
                [ex], padTokenId: model.config.padTokenId,
                vocabSize: model.config.vocabSize, maxLength: config.maxLength)
            sum += eval.loss(batch, params: params)
            count += batch.targetCount
        }
        return count > 0 ? sum / Double(count) : .nan
    }
}
