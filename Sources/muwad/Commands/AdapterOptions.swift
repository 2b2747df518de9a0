// Options shared by generate and score for running with a LoRA adapter: `--adapter DIR` (peft's
// adapter_config.json + adapter_model.safetensors/.bin) applied unmerged through the engine's
// ProjectionDelta seam, or folded into a copy of the adapted weights first with `--merge`.
import ArgumentParser
import Foundation
import LoRAOps
import OPTEngine

struct AdapterOptions: ParsableArguments {
    @Option(
        name: .customLong("adapter"),
        help:
            "A peft LoRA adapter directory to apply, or a hub id (theSLWayne/Muwa-1.3b) in the local Hugging Face cache."
    )
    var adapter: String?

    @Flag(
        name: .customLong("merge"),
        help: "Fold the adapter into the weights first (W + scale·B·A) instead of applying it per token.")
    var merge = false

    func validate() throws {
        if merge && adapter == nil { throw ValidationError("--merge needs --adapter DIR") }
    }

    /// The model to run and the delta to pass: (base, nil) without an adapter, (base, adapter) unmerged,
    /// (merged copy, nil) with --merge.
    func apply(to model: OPTModel) throws -> (OPTModel, ProjectionDelta?) {
        guard let adapter else { return (model, nil) }
        let loaded = try LoRAAdapter.load(
            directory: try HubCache.resolveDirectory(adapter), model: model.config, memoryBudget: model.memoryBudget)
        if merge { return (try loaded.merge(into: model).merged, nil) }
        return (model, try AdapterBatch(adapter: loaded, model: model))
    }
}

/// Like withCleanErrors, for adapter errors too: message on stderr, exit code 1.
func withCleanAdapterErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try withCleanErrors(body)
    } catch let error as LoRAError {
        FileHandle.standardError.write(Data("muwad: \(error.description)\n".utf8))
        throw ExitCode.failure
    }
}
