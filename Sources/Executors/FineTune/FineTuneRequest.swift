// FineTuneRequest: a `finetune` job's payload, validated. Defaults are the Muwa notebook's (peft LoraConfig
// r 8, alpha 32, dropout 0.05 on q_proj/v_proj; Trainer batch 4 × accumulation 4, 2 epochs, lr 2e-4 linear
// after 100 warmup steps, AdamW, max_grad_norm 1, seed 42, max_length 1024, logging every 10 steps), except
// the template: `alpaca` with response-only loss is the default; `muwa` reproduces the notebook's.
//
//   {"base_model": "opt-1.3b", "dataset": {"path": "/data/dolly.jsonl", "eval_fraction": 0.02},
//    "output": "muwa", "template": "alpaca",
//    "lora": {"r": 8, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
//    "train": {"num_train_epochs": 2, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 4,
//              "learning_rate": 2e-4, "warmup_steps": 100, "log_every": 10, "save_every": 50}}
//
// Checks that need the model or the data (max_length against its positions, the record fields) happen in
// FineTuneJobExecutor once they are loaded.
import Evaluation
import Foundation
import JobQueue
import LoRAOps
import Storage

struct FineTuneRequest {
    static let fields: Set<String> = [
        "base_model", "dataset", "output", "if_exists", "template", "train_on_prompt", "lora", "train",
    ]
    static let datasetFields: Set<String> = ["path", "eval_fraction"]
    static let loraFields: Set<String> = [
        "r", "lora_alpha", "lora_dropout", "target_modules", "bias", "use_rslora", "layers_to_transform",
    ]
    static let trainFields: Set<String> = [
        "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
        "learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "adam_beta1", "adam_beta2",
        "adam_epsilon", "max_grad_norm", "seed", "max_length", "log_every", "save_every", "eval_every",
        "loss_normalization", "gradient_checkpointing", "residual_dropout", "shuffle",
    ]
    /// Adapter names: what muwa.adapters accepts (^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$), safe as a directory name.
    static func isAdapterName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        func alnum(_ b: UInt8) -> Bool { (48...57).contains(b) || (65...90).contains(b) || (97...122).contains(b) }
        guard let first = bytes.first, alnum(first), bytes.count <= 128 else { return false }
        return bytes.allSatisfy {
            alnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
        }
    }

    let baseModel: String
    /// compute / weights / int8_threshold for the frozen base model.
    let engine: EnginePayload
    var datasetPath: String
    let evalFraction: Double
    let output: String
    /// What to do when `output` already names an adapter: add a new version (the default; the name then
    /// resolves to it, the earlier ones stay reachable as NAME@N), or fail before training starts.
    let ifExists: IfExists
    let template: FineTuneTemplate
    let trainOnPrompt: Bool
    /// Everything but max_steps (known once the data is counted) and max_length / residual_dropout when
    /// not given (they depend on the model).
    var config: TrainingConfig
    let epochs: Double
    let maxStepsGiven: Int?
    let maxLengthGiven: Int?
    let residualDropoutGiven: Double?
    let logEvery: Int
    let saveEvery: Int
    let evalEvery: Int

    init(payload: JSONValue?) throws {
        let reader = try PayloadReader(kind: "finetune", payload: payload)
        try reader.rejectUnknownKeys(Self.fields.union(EnginePayload.fields))
        engine = try EnginePayload(reader)

        baseModel = try reader.string("base_model")
        guard !baseModel.isEmpty else { throw reader.failure("base_model must name a model, got \"\"") }

        if reader.object["dataset"]?.stringValue != nil {
            datasetPath = try reader.string("dataset")
            evalFraction = 0
        } else if let dataset = try reader.nested("dataset") {
            try dataset.rejectUnknownKeys(Self.datasetFields)
            datasetPath = try dataset.string("path")
            evalFraction = try dataset.optionalDouble("eval_fraction", in: 0...0.5) ?? 0
        } else {
            throw reader.failure("dataset is required: {\"path\": \"/data/train.jsonl\"} (a JSONL file)")
        }
        guard !datasetPath.isEmpty else { throw reader.failure("dataset.path must not be empty") }

        output = try reader.string("output")
        guard Self.isAdapterName(output) else {
            throw reader.failure(
                "output must be an adapter name of letters, digits, '_', '.' and '-' (at most 128, not starting "
                    + "with a punctuation mark), got \"\(output)\"")
        }

        let ifExistsName = try reader.optionalString("if_exists", maxLength: 64) ?? IfExists.newVersion.rawValue
        guard let ifExists = IfExists(rawValue: ifExistsName) else {
            throw reader.failure("if_exists must be \"new_version\" or \"fail\", got \"\(ifExistsName)\"")
        }
        self.ifExists = ifExists

        let templateName = try reader.optionalString("template") ?? FineTuneTemplate.alpaca.rawValue
        guard let template = FineTuneTemplate(rawValue: templateName) else {
            let known = FineTuneTemplate.allCases.map(\.rawValue).joined(separator: ", ")
            throw reader.failure("template must be one of \(known), got \"\(templateName)\"")
        }
        self.template = template
        trainOnPrompt = try reader.optionalBool("train_on_prompt") ?? false
        if trainOnPrompt, template != .alpaca {
            throw reader.failure("train_on_prompt applies to the alpaca template only (template is \(templateName))")
        }

        var config = TrainingConfig.muwaNotebook
        if let lora = try reader.nested("lora") {
            try lora.rejectUnknownKeys(Self.loraFields)
            config.r = try lora.optionalInt("r", in: 1...4096) ?? config.r
            config.loraAlpha = try lora.optionalDouble("lora_alpha", in: 1e-6...1e6) ?? config.loraAlpha
            config.loraDropout = try lora.optionalDouble("lora_dropout", in: 0...0.99) ?? config.loraDropout
            if let targets = try lora.optionalStringList("target_modules", maxCount: 6, maxLength: 16) {
                guard !targets.isEmpty else { throw lora.failure("lora.target_modules must not be empty") }
                config.targetModules = targets
            }
            let bias = try lora.optionalString("bias") ?? "none"
            guard bias == "none" else {
                throw lora.failure(
                    "lora.bias must be \"none\" (training LoRA biases is not supported), got \"\(bias)\"")
            }
            config.useRslora = try lora.optionalBool("use_rslora") ?? false
            if let value = lora.object["layers_to_transform"], value != .null {
                guard let items = value.arrayValue, !items.isEmpty else {
                    throw lora.failure("lora.layers_to_transform must be a non-empty list of layer indices")
                }
                config.layersToTransform = try items.map { item in
                    guard let number = item.doubleValue, number == number.rounded(), number >= 0, number < 1e6 else {
                        throw lora.failure("lora.layers_to_transform must hold whole numbers ≥ 0, got \(item.typeName)")
                    }
                    return Int(number)
                }
            }
        }

        let train = try reader.nested("train")
        try train?.rejectUnknownKeys(Self.trainFields)
        epochs = try train?.optionalDouble("num_train_epochs", in: 1e-3...10_000) ?? 2
        maxStepsGiven = try train?.optionalInt("max_steps", in: 1...10_000_000)
        config.batchSize = try train?.optionalInt("per_device_train_batch_size", in: 1...4096) ?? config.batchSize
        config.gradientAccumulationSteps =
            try train?.optionalInt("gradient_accumulation_steps", in: 1...4096)
            ?? config.gradientAccumulationSteps
        config.learningRate = try train?.optionalDouble("learning_rate", in: 0...10) ?? config.learningRate
        if let name = try train?.optionalString("lr_scheduler_type") {
            guard let kind = LRScheduleKind(rawValue: name) else {
                throw reader.failure("train.lr_scheduler_type must be linear, cosine or constant, got \"\(name)\"")
            }
            config.lrScheduler = kind
        }
        config.warmupSteps = try train?.optionalInt("warmup_steps", in: 0...10_000_000) ?? config.warmupSteps
        config.adamw.weightDecay = try train?.optionalDouble("weight_decay", in: 0...10) ?? config.adamw.weightDecay
        config.adamw.beta1 = try train?.optionalDouble("adam_beta1", in: 0...0.999_999) ?? config.adamw.beta1
        config.adamw.beta2 = try train?.optionalDouble("adam_beta2", in: 0...0.999_999_999) ?? config.adamw.beta2
        config.adamw.epsilon = try train?.optionalDouble("adam_epsilon", in: 1e-30...1) ?? config.adamw.epsilon
        if let train, train.object["max_grad_norm"] == .null {
            config.maxGradNorm = nil  // explicit null: no clipping
        } else if let norm = try train?.optionalDouble("max_grad_norm", in: 1e-9...1e9) {
            config.maxGradNorm = norm
        }
        config.seed = try train?.optionalSeed("seed") ?? 42
        maxLengthGiven = try train?.optionalInt("max_length", in: 2...1_000_000)
        logEvery = try train?.optionalInt("log_every", in: 1...1_000_000) ?? 10
        saveEvery = try train?.optionalInt("save_every", in: 1...1_000_000) ?? 50
        evalEvery = try train?.optionalInt("eval_every", in: 1...1_000_000) ?? saveEvery
        if let name = try train?.optionalString("loss_normalization") {
            guard let value = LossNormalization(rawValue: name) else {
                throw reader.failure("train.loss_normalization must be micro_batch_mean or tokens, got \"\(name)\"")
            }
            config.lossNormalization = value
        }
        config.gradientCheckpointing = try train?.optionalBool("gradient_checkpointing") ?? config.gradientCheckpointing
        residualDropoutGiven = try train?.optionalDouble("residual_dropout", in: 0...0.99)
        config.shuffle = try train?.optionalBool("shuffle") ?? true
        self.config = config
        do {
            var probe = config
            probe.maxSteps = 1
            try probe.validate()
        } catch {
            throw reader.failure("\(error)")
        }
    }

    /// Optimizer steps per epoch, as Trainer counts them: with `micro_batch_mean` (transformers 4.28, the
    /// notebook's) ⌊batches ÷ accumulation⌋, the last partial accumulation dropped; with `tokens` (transformers
    /// ≥ 4.46, whose accumulation ends with the epoch, as LoRATrainer's does then) ⌈batches ÷ accumulation⌉.
    func stepsPerEpoch(examples count: Int) -> Int {
        let batches = (count + config.batchSize - 1) / config.batchSize
        let accumulation = config.gradientAccumulationSteps
        switch config.lossNormalization {
        case .microBatchMean: return max(1, batches / accumulation)
        case .tokens: return max(1, (batches + accumulation - 1) / accumulation)
        }
    }

    /// Optimizer steps for `count` training examples: steps per epoch × epochs, unless max_steps is given.
    func maxSteps(examples count: Int) -> Int {
        if let maxStepsGiven { return maxStepsGiven }
        return max(1, Int((Double(stepsPerEpoch(examples: count)) * epochs).rounded(.up)))
    }

    /// The settings as they were used, for muwa.adapters.training_args.
    func trainingArguments(maxSteps: Int, config: TrainingConfig, examples: Int, evalExamples: Int) -> JSONValue {
        [
            "template": .string(template.rawValue),
            "train_on_prompt": .bool(trainOnPrompt),
            "dataset": .string(datasetPath),
            "examples": .number(Double(examples)),
            "eval_examples": .number(Double(evalExamples)),
            "num_train_epochs": .number(epochs),
            "max_steps": .number(Double(maxSteps)),
            "per_device_train_batch_size": .number(Double(config.batchSize)),
            "gradient_accumulation_steps": .number(Double(config.gradientAccumulationSteps)),
            "learning_rate": .number(config.learningRate),
            "lr_scheduler_type": .string(config.lrScheduler.rawValue),
            "warmup_steps": .number(Double(config.warmupSteps)),
            "weight_decay": .number(config.adamw.weightDecay),
            "max_grad_norm": config.maxGradNorm.map { .number($0) } ?? .null,
            "seed": .exact(Int64(clamping: config.seed)),
            "max_length": .number(Double(config.maxLength)),
            "loss_normalization": .string(config.lossNormalization.rawValue),
            "residual_dropout": .number(config.residualDropout),
            "gradient_checkpointing": .bool(config.gradientCheckpointing),
        ]
    }
}

/// A fine-tune's `if_exists`: what to do when its `output` already names an adapter.
enum IfExists: String {
    /// Add a version: NAME resolves to the new one, NAME@N to each earlier one.
    case newVersion = "new_version"
    /// Refuse, before training starts (a permanent failure).
    case fail
}
