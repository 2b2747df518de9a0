// muwad bench: prompt-processing and decode throughput and peak memory of the engine on a checkpoint,
// (--continuous) of continuous batching (ContinuousBench.swift), or (--train) the throughput of one LoRA
// training step, optionally beside PyTorch + transformers (+ peft) on the same machine in the same run
// (--pytorch).
import ArgumentParser
import Foundation
import LoRAOps
import OPTEngine

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure prompt and decode (or LoRA training) tokens/s and peak memory.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .customLong("prompt-tokens")) var promptTokens = 128
    @Option(name: .customLong("new-tokens")) var newTokens = 64
    @Option(help: "Sequences per batch (default 1; 4 with --train).") var batch: Int?
    @Option(help: "Timed repetitions (the best is reported).") var repeats = 3
    @Flag(help: "Also run the PyTorch benchmark (tools/bench/) with the same settings and print both.") var pytorch =
        false
    @Option(
        name: .customLong("pytorch-compute"),
        help: "With --pytorch: its compute modes, comma-separated (f32, bf16; default: --compute's).")
    var pytorchCompute: String?
    @Flag var json = false
    @Flag(help: "Measure one LoRA training step (forward, backward, clipping, AdamW) instead of inference.")
    var train = false
    @Option(name: .customLong("train-tokens"), help: "Tokens per sequence with --train.") var trainTokens = 256
    @Option(
        name: .customLong("train-lengths"),
        help:
            "With --train: MIN:MAX, sequence lengths drawn (seeded) from MIN…MAX instead of --train-tokens, and the gain of packing over padding to the longest."
    )
    var trainLengths: String?
    @Option(name: .customLong("lora-r")) var loraR = 8
    @Option(name: .customLong("lora-targets"), help: "Comma-separated projections with --train.")
    var loraTargets = "q_proj,v_proj"
    @Flag(name: .customLong("gradient-checkpointing"), help: "Recompute each layer in the backward pass (--train).")
    var gradientCheckpointing = false
    @Flag(help: "Decode through the continuous batcher (what generate jobs share): --batch sequences in one batch.")
    var continuous = false
    @Option(help: "With --continuous: sequence i joins after i × N decode steps.") var stagger = 0
    @Flag(help: "Project the Muwa recipe (2 epochs of dolly-15k, notebook settings) from a few timed steps.")
    var recipe = false
    @Option(name: .customLong("recipe-steps"), help: "Timed optimizer steps with --recipe.") var recipeSteps = 2
    @Flag(help: "Also run CTranslate2 (tools/bench/ctranslate2_bench.py) with the same settings and print it.")
    var ctranslate2 = false
    @Option(
        name: .customLong("ctranslate2-compute"),
        help: "CTranslate2 compute types to run, comma-separated (default: float32 and int8).")
    var ctranslate2Compute = "float32,int8"

    func validate() throws {
        _ = try pytorchComputes(.f32)  // a bad --pytorch-compute fails before anything runs
    }

    func run() throws {
        if train { return try withCleanAdapterErrors { try runTraining() } }
        if recipe { return try withCleanAdapterErrors { try runRecipe() } }
        let batch = self.batch ?? 1
        if continuous { return try withCleanErrors { try runContinuous(batch: batch) } }
        try withCleanErrors {
            let loadStart = Date()
            let model = try modelOptions.loadModel()
            let loadSeconds = Date().timeIntervalSince(loadStart)
            let cfg = model.config
            guard promptTokens >= 1, newTokens >= 1, promptTokens + newTokens <= cfg.maxPositionEmbeddings else {
                throw EngineError.invalidRequest(
                    "prompt-tokens + new-tokens must fit in \(cfg.maxPositionEmbeddings) positions")
            }
            // deterministic prompt: BOS then seeded random ordinary tokens
            var rng = SeededRNG(seed: 1234)
            let upper = UInt64(min(cfg.vocabSize, 50260) - 4)
            let prompt = [cfg.bosTokenId] + (1..<promptTokens).map { _ in 4 + Int(rng.next() % upper) }
            let rows = [[Int]](repeating: prompt, count: batch)

            var bestPrefill = Double.infinity, bestDecode = Double.infinity
            let session = BatchSession(model: model, batch: batch, capacity: promptTokens + newTokens)
            for _ in 0..<max(1, repeats) {
                session.reset()
                let t0 = Date()
                try session.append(tokens: rows, logits: .last)
                let t1 = Date()
                var greedy = GreedySampler()
                for _ in 0..<newTokens - 1 {
                    for b in 0..<batch {
                        session.stepTokens[b] = Int32(
                            greedy.sample(
                                logits: session.lastLogits + b * cfg.vocabSize,
                                count: cfg.vocabSize))
                    }
                    try session.step()
                }
                let t2 = Date()
                bestPrefill = min(bestPrefill, t1.timeIntervalSince(t0))
                bestDecode = min(bestDecode, t2.timeIntervalSince(t1))
            }
            let decodeSteps = max(newTokens - 1, 1)
            let result: [String: Any] = [
                "engine": "muwa",
                "model": modelOptions.model,
                "weights_dtype": model.weights.layers.first?.qProj.weight.dtypeDescription ?? "?",
                "compute": model.options.precision.rawValue,
                "weights": model.options.weights.rawValue,
                "kernels": "\(KernelISA.summary), OpenBLAS \(BLAS.core)",
                "batch": batch, "prompt_tokens": promptTokens, "new_tokens": newTokens,
                "threads": EngineThreads.count,
                "load_s": loadSeconds,
                "prompt_tokens_per_s": Double(batch * promptTokens) / bestPrefill,
                "decode_tokens_per_s": Double(batch * decodeSteps) / bestDecode,
                "decode_ms_per_step": 1000 * bestDecode / Double(decodeSteps),
                "peak_rss_mib": peakRSSMiB(),
            ]
            report(result)
            let common = ["--prompt-tokens", "\(promptTokens)", "--new-tokens", "\(newTokens)", "--batch", "\(batch)"]
            if pytorch {
                for compute in try pytorchComputes(model.options.precision) {
                    runPeer(script: "pytorch_bench.py", arguments: common + ["--compute", compute])
                }
            }
            if ctranslate2 {
                for compute in ctranslate2Compute.split(separator: ",") {
                    runPeer(script: "ctranslate2_bench.py", arguments: common + ["--compute", String(compute)])
                }
            }
        }
    }

    private func report(_ r: [String: Any]) {
        if json { printJSONLine(r); return }
        func f(_ k: String) -> String { (r[k] as? Double).map { String(format: "%.1f", $0) } ?? "?" }
        if r["mode"] as? String == "train" {
            print(
                "\(r["engine"] ?? "?") LoRA training  batch \(r["batch"] ?? "?") × \(r["seq_len"] ?? "?") tokens  "
                    + "r \(r["lora_r"] ?? "?") on \(r["lora_targets"] ?? "?")  threads \(r["threads"] ?? "?")  "
                    + "compute \(r["compute"] ?? "?")")
            if let kernels = r["kernels"] { print("  kernels:           \(kernels)") }
            print(
                "  step:              \(f("step_s")) s  (\(f("train_tokens_per_s")) tokens/s, "
                    + "\(f("real_tokens_per_s")) real tokens/s)")
            if let lengths = r["lengths"] as? [Int] {
                print(
                    "  lengths:           \(lengths.map(String.init).joined(separator: ","))  (\(r["real_tokens"] ?? "?") real "
                        + "of \(r["padded_tokens"] ?? "?") padded)")
            }
            if r["padded_step_s"] != nil {
                print(
                    "  padded to longest: \(f("padded_step_s")) s  (packing gains \(String(format: "%.2f", r["packing_gain"] as? Double ?? .nan))×)"
                )
            }
            print("  peak memory:       \(f("peak_rss_mib")) MiB")
            return
        }
        let compute = r["compute"].map { "  compute \($0)" } ?? ""
        let weights = r["weights"].map { "  weights \($0)" } ?? ""
        print(
            "\(r["engine"] ?? "?")\(compute)\(weights)  batch \(r["batch"] ?? "?")  prompt \(promptTokens)  new \(newTokens)  threads \(r["threads"] ?? "?")"
        )
        if let kernels = r["kernels"] { print("  kernels:           \(kernels)") }
        print("  prompt processing: \(f("prompt_tokens_per_s")) tokens/s")
        print("  decode:            \(f("decode_tokens_per_s")) tokens/s (\(f("decode_ms_per_step")) ms/step)")
        print("  peak memory:       \(f("peak_rss_mib")) MiB")
    }

    private func runPeer(
        script name: String, arguments: [String],
        amend: ([String: Any]) -> [String: Any] = { $0 }
    ) {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("tools/bench/\(name)").path
        let candidates = [script, "tools/bench/\(name)"]
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            print("\(name): tools/bench/\(name) not found"); return
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments =
            [
                "python3", path, "--model", (try? modelOptions.directory()) ?? modelOptions.model, "--threads",
                "\(EngineThreads.count)",
                "--repeats", "\(repeats)",
            ] + arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        do { try p.run() } catch { print("\(name): could not start python3: \(error)"); return }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0,
            let line = String(data: data, encoding: .utf8)?.split(separator: "\n").last,
            let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else {
            let needs =
                name.hasPrefix("ctranslate2") ? "pip install ctranslate2" : "see tools/fixtures/requirements.txt"
            print("\(name): benchmark failed (is it installed? \(needs))"); return
        }
        report(amend(obj))
    }

    // MARK: - LoRA training step

    /// Sequence lengths of the training bench: `batch` × trainTokens, or drawn from --train-lengths MIN:MAX.
    private func trainingLengths(batch B: Int, maxPositions: Int) throws -> [Int] {
        guard let spec = trainLengths else { return [Int](repeating: trainTokens, count: B) }
        let parts = spec.split(separator: ":").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let lo = parts[0], let hi = parts[1], lo >= 2, lo <= hi, hi <= maxPositions else {
            throw EngineError.invalidRequest("--train-lengths must be MIN:MAX with 2 ≤ MIN ≤ MAX ≤ \(maxPositions)")
        }
        var rng = SeededRNG(seed: 77)
        // the longest record of the batch is MAX, so padding would compute B × MAX rows
        return (0..<B).map { b in b == 0 ? hi : lo + Int(rng.next() % UInt64(hi - lo + 1)) }
    }

    /// One optimizer step of LoRA training on `batch` seeded random sequences of `trainTokens` tokens (or
    /// of --train-lengths), loss on every next token, lora_dropout 0.05, AdamW, clipping 1.0: the best of
    /// `repeats` after one warm-up step. Tokens/s count real tokens (a packed batch computes no padding);
    /// with mixed lengths the same step on B sequences of the longest length — the rows the padded
    /// layout computed — is timed too, and the ratio reported as the gain of packing.
    private func runTraining() throws {
        let loadStart = Date()
        let model = try modelOptions.loadModel()
        let loadSeconds = Date().timeIntervalSince(loadStart)
        let cfg = model.config, B = batch ?? 4
        guard B >= 1, trainTokens >= 2, trainTokens <= cfg.maxPositionEmbeddings else {
            throw EngineError.invalidRequest("--train-tokens must be 2…\(cfg.maxPositionEmbeddings) and --batch ≥ 1")
        }
        let lengths = try trainingLengths(batch: B, maxPositions: cfg.maxPositionEmbeddings)
        let T = lengths.max() ?? trainTokens, realTokens = lengths.reduce(0, +), mixed = Set(lengths).count > 1
        var config = TrainingConfig()
        config.r = loraR
        config.loraAlpha = Double(2 * loraR)
        config.loraDropout = 0.05
        config.targetModules = loraTargets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        config.maxSteps = max(1, repeats) + 1
        config.batchSize = B
        config.maxLength = T
        config.shuffle = false
        config.gradientCheckpointing = gradientCheckpointing
        /// The best step time on sequences of `lengths` (seeded random tokens), its trainable parameters and
        /// activation bytes; the trainer is gone when this returns.
        func bestStep(_ lengths: [Int]) throws -> (seconds: Double, parameters: Int, activationBytes: Int) {
            var rng = SeededRNG(seed: 1234)
            let upper = UInt64(min(cfg.vocabSize, 50260) - 4)
            let examples = lengths.map { n in
                TrainingExample(inputIds: [cfg.bosTokenId] + (1..<n).map { _ in 4 + Int(rng.next() % upper) })
            }
            let trainer = try LoRATrainer(model: model, config: config, examples: examples)
            var best = Double.infinity
            for i in 0..<config.maxSteps {
                let step = try trainer.trainStep()
                if i > 0 { best = min(best, step.seconds) }
            }
            return (best, trainer.layout.count, trainer.activationBytes)
        }
        let (best, parameters, activationBytes) = try bestStep(lengths)
        let targets = config.targetModules.joined(separator: ",")
        let weightsDType = model.weights.layers.first?.qProj.weight.dtypeDescription ?? "?"
        var result: [String: Any] = ["engine": "muwa", "mode": "train", "model": modelOptions.model]
        result["weights_dtype"] = weightsDType
        result["compute"] = model.options.precision.rawValue
        result["batch"] = B
        result["seq_len"] = T
        result["lora_r"] = loraR
        result["lora_targets"] = targets
        result["trainable_params"] = parameters
        result["gradient_checkpointing"] = gradientCheckpointing
        result["threads"] = EngineThreads.count
        result["kernels"] = "\(KernelISA.summary), OpenBLAS \(BLAS.core)"
        result["load_s"] = loadSeconds
        result["step_s"] = best
        result["train_tokens_per_s"] = Double(realTokens) / best
        result["real_tokens_per_s"] = Double(realTokens) / best
        result["real_tokens"] = realTokens
        result["padded_tokens"] = B * T
        result["activation_mib"] = Double(activationBytes) / Double(1 << 20)
        if mixed {
            result["lengths"] = lengths
            let padded = try bestStep([Int](repeating: T, count: B)).seconds
            result["padded_step_s"] = padded
            result["packing_gain"] = padded / best
        }
        result["peak_rss_mib"] = peakRSSMiB()
        report(result)
        if pytorch {
            // transformers' collator pads a batch to its longest record: PyTorch computes B × T rows
            for compute in try pytorchComputes(model.options.precision) {
                runPeer(
                    script: "pytorch_train_bench.py",
                    arguments: [
                        "--batch", "\(B)", "--seq-len", "\(T)", "--lora-r", "\(loraR)",
                        "--lora-targets", config.targetModules.joined(separator: ","), "--compute", compute,
                    ]
                        + (gradientCheckpointing ? ["--gradient-checkpointing"] : [])
                ) { obj in
                    var obj = obj
                    if let step = obj["step_s"] as? Double { obj["real_tokens_per_s"] = Double(realTokens) / step }
                    return obj
                }
            }
        }
    }

    /// PyTorch's compute modes for --pytorch: --pytorch-compute's list, else muwa's own mode.
    private func pytorchComputes(_ own: ComputePrecision) throws -> [String] {
        guard let list = pytorchCompute else { return [own.rawValue] }
        let modes = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !modes.isEmpty, modes.allSatisfy({ $0 == "f32" || $0 == "bf16" }) else {
            throw ValidationError("--pytorch-compute takes f32 and/or bf16, comma-separated; got \"\(list)\"")
        }
        return modes
    }
}

/// Peak resident memory of this process (VmHWM), in MiB.
func peakRSSMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return .nan }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? .nan
        return kb / 1024
    }
    return .nan
}
