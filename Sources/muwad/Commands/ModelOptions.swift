// Options shared by the engine subcommands (generate, score, tokenize, bench).
import ArgumentParser
import Foundation
import OPTEngine

struct ModelOptions: ParsableArguments {
    @Option(
        name: .long,
        help:
            "A Hugging Face OPT checkpoint directory (config.json, tokenizer files, weights), or a hub id (facebook/opt-125m[@revision]) in the local Hugging Face cache."
    )
    var model: String

    @Option(name: .long, help: "Threads for the engine's kernels and OpenBLAS (default: all cores).")
    var threads: Int?

    @Option(name: .customLong("memory-limit"), help: MemoryLimitSetting.help)
    var memoryLimit: String?

    @Option(help: ArgumentHelp(stringLiteral: computeHelp))
    var compute: String?

    @Option(help: "Weights in memory: stored (as the checkpoint has them; the default) or int8 (quantized at load).")
    var weights: String?

    @Option(
        name: .customLong("int8-threshold"),
        help: "With --weights int8: LLM.int8's outlier threshold on activations (default 6.0; 0 = plain int8).")
    var int8Threshold: Double?

    /// The engine options the flags ask for (MUWA_COMPUTE supplies the default compute).
    func engineOptions() throws -> EngineOptions {
        let env = ProcessInfo.processInfo.environment["MUWA_COMPUTE"].flatMap { $0.isEmpty ? nil : $0 }
        let base = try EngineOptions.parse(compute: env, weights: nil, int8Threshold: nil)
        return try EngineOptions.parse(compute: compute, weights: weights, int8Threshold: int8Threshold, base: base)
    }

    /// The checkpoint directory: `model` itself, or its snapshot in the Hugging Face cache.
    func directory() throws -> String {
        try HubCache.resolveDirectory(model)
    }

    func loadTokenizer() throws -> BPETokenizer {
        try BPETokenizer.load(directory: try directory())
    }

    /// The model, loaded for the flags' engine options, or for `options` when given (export: `.exact`, so the
    /// weights it writes are never narrowed by bf16 compute).
    func loadModel(options: EngineOptions? = nil) throws -> OPTModel {
        if let threads { EngineThreads.configure(threads) }
        let memory = try MemoryLimitSetting.resolve(
            flag: memoryLimit, setting: ProcessInfo.processInfo.environment["MUWA_MEMORY_LIMIT"])
        return try OPTModel.load(
            directory: try directory(), memoryBudget: memory.budget,
            options: try options ?? engineOptions())
    }
}

/// One JSON object on one line (keys sorted, so output is stable).
func printJSONLine(_ object: [String: Any]) {
    guard
        let data = try? JSONSerialization.data(
            withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]),
        let line = String(data: data, encoding: .utf8)
    else { return }
    print(line)
}

/// A warning on stderr, as `muwad: warning: …`.
func warn(_ message: String) {
    FileHandle.standardError.write(Data("muwad: warning: \(message)\n".utf8))
}

/// Turns engine errors into a clean CLI failure (message, exit code 1) instead of a stack trace.
func withCleanErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as EngineError {
        FileHandle.standardError.write(Data("muwad: \(error.description)\n".utf8))
        throw ExitCode.failure
    }
}

/// `--compute`'s help.
private let computeHelp =
    "Matmul precision: f32 (exact), bf16, or auto (the default: bf16 where the CPU has avx512_bf16, else f32 with"
    + " an int8 base's training gradients in int16 where AVX2 runs them)."
