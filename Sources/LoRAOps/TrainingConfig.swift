// TrainingConfig: the settings of a LoRA fine-tuning run, named as transformers' TrainingArguments and
// peft's LoraConfig name them (snake_case keys in JSON), with their defaults. Decoding fills absent
// keys with the defaults; `validate()` refuses impossible values, naming the key.
import Foundation
import OPTEngine

/// How micro-batch losses combine under gradient accumulation.
public enum LossNormalization: String, Codable, Sendable {
    /// transformers ≥ 4.46: Σ token losses / all non-ignored tokens of the accumulated step
    /// (`num_items_in_batch`); an accumulation ends with the epoch, as there.
    case tokens
    /// transformers ≤ 4.45 (the original Muwa run): the mean of each micro-batch's mean loss; accumulations
    /// run across epoch boundaries, as there.
    case microBatchMean = "micro_batch_mean"
}

public struct TrainingConfig: Codable, Sendable, Equatable {
    // LoRA (ignored where an initial adapter is given: its config wins, except lora_dropout)
    public var r = 8
    public var loraAlpha = 16.0
    public var loraDropout = 0.05
    public var targetModules = ["q_proj", "v_proj"]
    public var useRslora = false
    public var layersToTransform: [Int]? = nil
    // optimisation
    public var learningRate = 2e-4
    public var adamw = AdamWSettings()
    public var lrScheduler = LRScheduleKind.linear
    public var warmupSteps = 0
    /// Optimizer steps of the run (the schedule's num_training_steps).
    public var maxSteps = 100
    public var batchSize = 4
    public var gradientAccumulationSteps = 1
    /// Global gradient-norm clipping; nil = off.
    public var maxGradNorm: Double? = 1.0
    public var lossNormalization = LossNormalization.tokens
    // data and memory
    public var seed: UInt64 = 42
    public var shuffle = true
    /// Longest example accepted (tokens); buffers are sized for batchSize × maxLength.
    public var maxLength = 1024
    public var gradientCheckpointing = false
    /// OPT's own dropout (config.json `dropout`, 0.1) as train mode applies it; 0 = off (eval-mode base).
    public var residualDropout = 0.0

    /// The library's defaults are peft's and transformers' TrainingArguments' (lora_alpha 16, no warmup, no
    /// accumulation, tokens-normalized loss, no checkpointing); fine-tune jobs start from ``muwaNotebook``.
    public init() {}

    /// The Muwa notebook's settings, the one preset a `finetune` payload starts from: r 8, lora_alpha 32,
    /// lora_dropout 0.05 on q_proj/v_proj; batch 4 × accumulation 4, lr 2e-4 linear after 100 warmup steps,
    /// max_grad_norm 1, seed 42; micro-batch-mean loss as transformers 4.28 (the notebook's release) computed
    /// it; gradient checkpointing on (the memory of a 1.3B model on a small machine).
    public static var muwaNotebook: TrainingConfig {
        var config = TrainingConfig()
        config.loraAlpha = 32
        config.warmupSteps = 100
        config.batchSize = 4
        config.gradientAccumulationSteps = 4
        config.lossNormalization = .microBatchMean
        config.gradientCheckpointing = true
        return config
    }

    enum CodingKeys: String, CodingKey {
        case r, loraAlpha = "lora_alpha", loraDropout = "lora_dropout", targetModules = "target_modules"
        case useRslora = "use_rslora", layersToTransform = "layers_to_transform"
        case learningRate = "learning_rate", adamw, lrScheduler = "lr_scheduler_type", warmupSteps = "warmup_steps"
        case maxSteps = "max_steps", batchSize = "per_device_train_batch_size"
        case gradientAccumulationSteps = "gradient_accumulation_steps", maxGradNorm = "max_grad_norm"
        case lossNormalization = "loss_normalization", seed, shuffle, maxLength = "max_length"
        case gradientCheckpointing = "gradient_checkpointing", residualDropout = "residual_dropout"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainingConfig()
        r = try c.decodeIfPresent(Int.self, forKey: .r) ?? d.r
        loraAlpha = try c.decodeIfPresent(Double.self, forKey: .loraAlpha) ?? d.loraAlpha
        loraDropout = try c.decodeIfPresent(Double.self, forKey: .loraDropout) ?? d.loraDropout
        targetModules = try c.decodeIfPresent([String].self, forKey: .targetModules) ?? d.targetModules
        useRslora = try c.decodeIfPresent(Bool.self, forKey: .useRslora) ?? d.useRslora
        layersToTransform = try c.decodeIfPresent([Int].self, forKey: .layersToTransform)
        learningRate = try c.decodeIfPresent(Double.self, forKey: .learningRate) ?? d.learningRate
        adamw = try c.decodeIfPresent(AdamWSettings.self, forKey: .adamw) ?? d.adamw
        lrScheduler = try c.decodeIfPresent(LRScheduleKind.self, forKey: .lrScheduler) ?? d.lrScheduler
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps) ?? d.warmupSteps
        maxSteps = try c.decodeIfPresent(Int.self, forKey: .maxSteps) ?? d.maxSteps
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        gradientAccumulationSteps =
            try c.decodeIfPresent(Int.self, forKey: .gradientAccumulationSteps)
            ?? d.gradientAccumulationSteps
        maxGradNorm =
            c.contains(.maxGradNorm) ? try c.decodeIfPresent(Double.self, forKey: .maxGradNorm) : d.maxGradNorm
        lossNormalization =
            try c.decodeIfPresent(LossNormalization.self, forKey: .lossNormalization) ?? d.lossNormalization
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        shuffle = try c.decodeIfPresent(Bool.self, forKey: .shuffle) ?? d.shuffle
        maxLength = try c.decodeIfPresent(Int.self, forKey: .maxLength) ?? d.maxLength
        gradientCheckpointing =
            try c.decodeIfPresent(Bool.self, forKey: .gradientCheckpointing) ?? d.gradientCheckpointing
        residualDropout = try c.decodeIfPresent(Double.self, forKey: .residualDropout) ?? d.residualDropout
    }

    /// Throws ``LoRAError/invalidTraining(_:)`` naming the first impossible setting.
    public func validate() throws {
        func bad(_ s: String) -> LoRAError { .invalidTraining(s) }
        guard r >= 1 else { throw bad("r must be ≥ 1") }
        guard loraAlpha > 0 else { throw bad("lora_alpha must be > 0") }
        guard (0..<1).contains(loraDropout) else { throw bad("lora_dropout must be in [0, 1)") }
        guard (0..<1).contains(residualDropout) else { throw bad("residual_dropout must be in [0, 1)") }
        for m in targetModules where ProjectionModule(rawValue: m) == nil {
            throw bad("target_modules: '\(m)' is not one of q_proj, k_proj, v_proj, out_proj, fc1, fc2")
        }
        guard !targetModules.isEmpty else { throw bad("target_modules is empty") }
        guard learningRate >= 0, learningRate.isFinite else { throw bad("learning_rate must be ≥ 0") }
        guard (0..<1).contains(adamw.beta1), (0..<1).contains(adamw.beta2) else {
            throw bad("adam_beta1 and adam_beta2 must be in [0, 1)")
        }
        guard adamw.epsilon > 0, adamw.weightDecay >= 0 else { throw bad("adam_epsilon must be > 0, weight_decay ≥ 0") }
        guard maxSteps >= 1 else { throw bad("max_steps must be ≥ 1") }
        guard warmupSteps >= 0 else { throw bad("warmup_steps must be ≥ 0") }
        guard batchSize >= 1 else { throw bad("per_device_train_batch_size must be ≥ 1") }
        guard gradientAccumulationSteps >= 1 else { throw bad("gradient_accumulation_steps must be ≥ 1") }
        if let m = maxGradNorm { guard m > 0 else { throw bad("max_grad_norm must be > 0 (or null for no clipping)") } }
        guard maxLength >= 2 else { throw bad("max_length must be ≥ 2") }
    }

    /// The peft config of the adapter this run trains from scratch.
    public func adapterConfig(baseModel: String?) -> AdapterConfig {
        var c = AdapterConfig(
            r: r, loraAlpha: loraAlpha, loraDropout: loraDropout, targetModules: .names(targetModules),
            useRslora: useRslora, layersToTransform: layersToTransform,
            baseModelNameOrPath: baseModel)
        c.taskType = "CAUSAL_LM"
        return c
    }
}
