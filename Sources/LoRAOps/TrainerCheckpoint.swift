// Training checkpoints: everything a LoRATrainer needs to continue bit for bit, in one directory.
//   adapter_config.json, adapter_model.safetensors   the adapter so far, in peft's format (peft loads it)
//   optimizer.safetensors                            exp_avg, exp_avg_sq: (count) F32 in LoRALayout order
//   trainer_state.json                               format + version, step, micro-step, data cursor,
//                                                    the TrainingConfig, a digest of the examples, history
// Dropout masks and the data order are pure functions of (seed, micro-step) and (seed, epoch), so
// those few integers are the whole RNG state. Files are written to a temporary sibling and renamed.
import Foundation
import OPTEngine

struct TrainerState: Codable {
    static let format = "muwa-lora-trainer-state"
    static let version = 1

    var format: String
    var version: Int
    var step: Int
    var microStep: UInt64
    var cursor: DataCursor
    var config: TrainingConfig
    var exampleCount: Int
    var examplesDigest: String
    var history: [StepReport]

    enum CodingKeys: String, CodingKey {
        case format, version, step, microStep = "micro_step", cursor, config, exampleCount = "example_count"
        case examplesDigest = "examples_digest", history
    }
}

extension LoRATrainer {
    /// Writes a checkpoint to `directory` (created if needed; files in it are replaced).
    public func saveCheckpoint(directory: String) throws {
        try saveAdapter(directory: directory)
        let n = layout.count
        try SafetensorsFile.write(
            path: (directory as NSString).appendingPathComponent("optimizer.safetensors"),
            tensors: [
                ("exp_avg", Tensor.f32(optimizer.m.toArray(), shape: [n])),
                ("exp_avg_sq", Tensor.f32(optimizer.v.toArray(), shape: [n])),
            ],
            metadata: ["format": TrainerState.format, "step": String(optimizer.step)])
        let state = TrainerState(
            format: TrainerState.format, version: TrainerState.version, step: step,
            microStep: microStep, cursor: cursor, config: config, exampleCount: examples.count,
            examplesDigest: LoRATrainer.digest(examples), history: history)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let path = (directory as NSString).appendingPathComponent("trainer_state.json")
        do { try encoder.encode(state).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw LoRAError.missingFile(path: path)
        }
    }

    /// A trainer continuing the run checkpointed in `directory`, over the same `examples` (checked by digest).
    public static func resume(directory: String, model: OPTModel, examples: [TrainingExample]) throws -> LoRATrainer {
        let statePath = (directory as NSString).appendingPathComponent("trainer_state.json")
        guard let data = FileManager.default.contents(atPath: statePath) else {
            throw LoRAError.missingFile(path: statePath)
        }
        let state: TrainerState
        do { state = try JSONDecoder().decode(TrainerState.self, from: data) } catch {
            throw LoRAError.invalidConfig(path: statePath, reason: "not a trainer state file (\(error))")
        }
        guard state.format == TrainerState.format, state.version == TrainerState.version else {
            throw LoRAError.invalidConfig(
                path: statePath,
                reason: "format '\(state.format)' version \(state.version); "
                    + "expected '\(TrainerState.format)' version \(TrainerState.version)")
        }
        guard state.exampleCount == examples.count, state.examplesDigest == digest(examples) else {
            throw LoRAError.invalidTraining("the examples differ from those of the checkpointed run (\(statePath))")
        }
        let adapter = try LoRAAdapter.load(directory: directory, model: model.config, memoryBudget: model.memoryBudget)
        let trainer = try LoRATrainer(model: model, config: state.config, examples: examples, initialAdapter: adapter)

        let optPath = (directory as NSString).appendingPathComponent("optimizer.safetensors")
        let opt = try SafetensorsFile(path: optPath)
        guard let m = opt.tensors["exp_avg"], let v = opt.tensors["exp_avg_sq"], m.dtype == .f32, v.dtype == .f32,
            m.count == trainer.layout.count, v.count == trainer.layout.count,
            let stepText = opt.metadata["step"], let optStep = Int(stepText)
        else {
            throw LoRAError.tensorMismatch(
                path: optPath,
                reason: "expected F32 exp_avg and exp_avg_sq of "
                    + "\(trainer.layout.count) values and a 'step' in the metadata")
        }
        trainer.optimizer.restore(m: m.toFloatArray(), v: v.toFloatArray(), step: optStep)
        trainer.step = state.step
        trainer.microStep = state.microStep
        trainer.cursor = state.cursor
        trainer.history = state.history
        return trainer
    }

    /// FNV-1a over every id and label: a cheap check that a resumed run sees the same data.
    static func digest(_ examples: [TrainingExample]) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        func eat(_ x: Int) {
            var v = UInt64(bitPattern: Int64(x))
            for _ in 0..<8 {
                h = (h ^ (v & 0xFF)) &* 0x0000_0100_0000_01B3
                v >>= 8
            }
        }
        for ex in examples {
            eat(ex.inputIds.count)
            ex.inputIds.forEach(eat)
            ex.labels.forEach(eat)
        }
        return String(h, radix: 16)
    }
}
