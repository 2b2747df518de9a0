// muwad export: a checkpoint with a LoRA adapter merged in (W + scale·B·A), written as a Hugging Face
// directory that transformers loads as it is (model.safetensors, config.json, tokenizer files) — what peft's
// merge_and_unload() followed by save_pretrained() gives.
import ArgumentParser
import Foundation
import LoRAOps
import OPTEngine

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write a model with an adapter merged in as a transformers checkpoint.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(
        name: .customLong("adapter"),
        help: "The peft LoRA adapter to merge in (a directory or a cached hub id); none: a plain copy.")
    var adapter: String?

    @Option(name: .customLong("out"), help: "The directory to write (must not hold a checkpoint yet).")
    var output: String

    @Option(name: .customLong("dtype"), help: "f32, f16 or bf16 (default: the dtype the model is stored in).")
    var dtype: String?

    func run() throws {
        try withCleanAdapterErrors {
            let source = try modelOptions.directory()
            let base = try modelOptions.loadModel(options: .exact)  // the stored weights, never narrowed for compute
            var model = base
            if let adapter {
                let loaded = try LoRAAdapter.load(
                    directory: try HubCache.resolveDirectory(adapter), model: base.config,
                    memoryBudget: base.memoryBudget)
                model = try loaded.merge(into: base).merged
            }
            let target: DType
            switch dtype?.lowercased() {
            case nil: target = base.weights.embedTokens.dtype
            case "f32", "float32": target = .f32
            case "f16", "float16": target = .f16
            case "bf16", "bfloat16": target = .bf16
            case let other?: throw ValidationError("--dtype must be f32, f16 or bf16, got \(other)")
            }
            try CheckpointExport.write(model, sourceDirectory: source, to: output, dtype: target)
            print("exported \(modelOptions.model)\(adapter.map { " + \($0)" } ?? "") to \(output) (\(target.rawValue))")
        }
    }
}
