// FuzzTarget: the parsers muwa feeds with bytes it does not control, each as one entry point that takes
// raw fuzz bytes. A target calls the real parser (through files in a scratch directory where the parser
// only reads files), uses what it returns the way the daemon would, and swallows the errors it throws:
// a thrown error is the right answer to a bad file. What a target must never do is trap, touch memory
// out of bounds, allocate without bound, or break an invariant checked here with `precondition`.
//
//   safetensors  model.safetensors, or a sharded checkpoint (index + shards)      → CheckpointReader
//   torch        pytorch_model.bin (zip + restricted unpickler), or sharded .bin   → CheckpointReader
//   config       config.json                                                      → OPTConfig
//   tokenizer    vocab.json + merges.txt or tokenizer.json (+ special-token files) → BPETokenizer, encode/decode
//   adapter      adapter_config.json + adapter_model.safetensors / .bin           → AdapterConfig, LoRAAdapter
//   payload      a job payload (jsonb text)                                       → JSONValue, every request parser
//   dataset      dolly JSONL, SQuAD JSON/JSONL, PIQA + labels, wikitext            → the dataset readers, metrics
//
// Inputs of several files are split by `FuzzInput.separator`; a leading selector byte picks variants
// (see each target's file). Replay: `muwa-fuzz TARGET FILE|DIR…`; fuzz: `scripts/fuzz.sh TARGET SECONDS`.

/// One fuzzed parser; the raw value names its corpus directory (`fuzz/corpus/<rawValue>`).
import Evaluation
import Foundation

public enum FuzzTarget: String, CaseIterable, Sendable {
    case safetensors, torch, config, tokenizer, adapter, payload, dataset

    /// Feeds `data` through the target's parsers. Returns normally for any input the parsers handle
    /// (accepted or refused with an error); a defect traps.
    public static func run(_ target: FuzzTarget, data: [UInt8]) {
        switch target {
        case .safetensors: WeightsFuzz.safetensors(FuzzInput(data))
        case .torch: WeightsFuzz.torch(FuzzInput(data))
        case .config: ConfigFuzz.run(FuzzInput(data))
        case .tokenizer: TokenizerFuzz.run(FuzzInput(data))
        case .adapter: AdapterFuzz.run(FuzzInput(data))
        case .payload: PayloadFuzz.run(data)
        case .dataset: DatasetFuzz.run(FuzzInput(data))
        }
    }

    /// The files a target's input stands for, for the README and `muwa-fuzz --list`.
    public var summary: String {
        switch self {
        case .safetensors:
            return "model.safetensors; with separators: model.safetensors.index.json, then shard files"
        case .torch:
            return "pytorch_model.bin; with separators: pytorch_model.bin.index.json, then shard files"
        case .config: return "config.json"
        case .tokenizer:
            return "selector byte, then vocab.json | merges.txt (or tokenizer.json), optional tokenizer_config.json, "
                + "special_tokens_map.json, then the text to encode"
        case .adapter:
            return "selector byte, then adapter_config.json | adapter_model.safetensors (or .bin)"
        case .payload: return "a job payload (JSON), checked as generate, finetune and evaluate"
        case .dataset:
            return "selector byte (reader), then the dataset file(s): dolly JSONL, SQuAD JSON or JSONL, "
                + "PIQA JSONL | labels, wikitext raw or JSONL"
        }
    }
}

/// Runs one parser call, turning a thrown error into nil (a refusal is a correct answer). With
/// MUWA_FUZZ_VERBOSE set, each refusal is printed, to see how far a seed gets.
func attempt<T>(_ what: String, _ body: () throws -> T) -> T? {
    do {
        return try body()
    } catch {
        if verboseRefusals { print("muwa-fuzz: \(what) refused: \(String(describing: error).prefix(300))") }
        return nil
    }
}

private let verboseRefusals = ProcessInfo.processInfo.environment["MUWA_FUZZ_VERBOSE"].map { !$0.isEmpty } ?? false
