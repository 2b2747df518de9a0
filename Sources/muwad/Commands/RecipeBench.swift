// muwad bench --recipe: how long the Muwa recipe — a LoRA fine-tune of the model on databricks-dolly-15k,
// 2 epochs of 15,011 records — would take on this machine. It trains `--recipe-steps` optimizer steps of the
// notebook's settings (TrainingConfig.muwaNotebook: r 8, alpha 32, dropout 0.05 on q_proj/v_proj, batch 4 ×
// accumulation 4, gradient checkpointing — which recomputes only the layers its keep arena cannot hold, so the
// line "checkpointing" says how many were) on synthetic records shaped like dolly-15k's, measures throughput on
// real (non-pad) tokens, and projects the full run from it.
//
// Record lengths (tokens, alpaca template, loss on the response) come from `DollyShape`: a log-normal model of
// dolly-15k's fields (instruction, an optional context, response) plus the template's own tokens, clipped to
// max_length 1024. Its parameters are stated below; it is a model of the dataset, not the dataset (which is not
// on this machine), so the projection is an estimate: run a real fine-tune for the real figure.
import Foundation
import LoRAOps
import OPTEngine

/// Token counts of dolly-15k-shaped records under the alpaca template.
struct DollyShape {
    /// Records in databricks-dolly-15k (the count the recipe trains on) and the recipe's epochs.
    static let records = 15_011, epochs = 2
    /// Alpaca template tokens around the fields: with and without an input section.
    static let templateWithInput = 38, templateWithoutInput = 28
    /// Share of records with a context (dolly's closed QA, information extraction and summarization).
    static let contextShare = 0.3
    /// Log-normal (median tokens, sigma) per field.
    static let instruction = (median: 14.0, sigma: 0.6)
    static let context = (median: 150.0, sigma: 0.8)
    static let response = (median: 60.0, sigma: 1.0)

    var rng: SeededRNG

    /// One record: (prompt tokens including the template, response tokens), total clipped to `maxLength`.
    mutating func record(maxLength: Int) -> (prompt: Int, response: Int) {
        let hasContext = uniform() < Self.contextShare
        var prompt =
            (hasContext ? Self.templateWithInput : Self.templateWithoutInput)
            + logNormal(Self.instruction) + (hasContext ? logNormal(Self.context) : 0)
        prompt = min(prompt, maxLength - 1)
        let response = min(logNormal(Self.response), maxLength - prompt)
        return (prompt, max(response, 1))
    }

    private mutating func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }

    private mutating func logNormal(_ p: (median: Double, sigma: Double)) -> Int {
        // Box–Muller
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        let z = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        return max(1, Int((p.median * exp(p.sigma * z)).rounded()))
    }
}

extension BenchCommand {
    func runRecipe() throws {
        let loadStart = Date()
        let model = try modelOptions.loadModel()
        let loadSeconds = Date().timeIntervalSince(loadStart)
        let cfg = model.config
        var config = TrainingConfig.muwaNotebook
        config.maxLength = min(1024, cfg.maxPositionEmbeddings)
        config.shuffle = true
        let steps = max(1, recipeSteps)
        config.maxSteps = steps + 1  // the first step warms up and is not timed
        let perStep = config.batchSize * config.gradientAccumulationSteps

        // enough records for the timed steps, drawn like dolly-15k's, with seeded random ordinary tokens
        var shape = DollyShape(rng: SeededRNG(seed: 42))
        var rng = SeededRNG(seed: 1234)
        let upper = UInt64(min(cfg.vocabSize, 50260) - 4)
        func tokens(_ n: Int) -> [Int] { (0..<n).map { _ in 4 + Int(rng.next() % upper) } }
        let examples = (0..<(perStep * config.maxSteps)).map { _ -> TrainingExample in
            let (p, r) = shape.record(maxLength: config.maxLength)
            return TrainingExample(prompt: [cfg.bosTokenId] + tokens(p - 1), completion: tokens(r))
        }
        // the dataset's mean length, from a larger sample of the same model
        var sampler = DollyShape(rng: SeededRNG(seed: 7))
        let sample = (0..<20_000).map { _ in sampler.record(maxLength: config.maxLength) }
        let meanTokens = Double(sample.reduce(0) { $0 + $1.prompt + $1.response }) / Double(sample.count)

        let trainer = try LoRATrainer(model: model, config: config, examples: examples)
        var seconds = 0.0, realTokens = 0, recomputed = 0
        for i in 0..<config.maxSteps {
            let step = try trainer.trainStep()
            guard i > 0 else { continue }
            seconds += step.seconds
            realTokens += step.tokens
            recomputed += trainer.lastStepRecomputedLayers
        }
        let rate = Double(realTokens) / seconds
        let totalTokens = meanTokens * Double(DollyShape.records * DollyShape.epochs)
        var result: [String: Any] = ["engine": "muwa", "mode": "recipe", "model": modelOptions.model]
        result["compute"] = model.options.precision.rawValue
        result["weights_dtype"] = model.weights.layers.first?.qProj.weight.dtype.rawValue ?? "?"
        result["threads"] = EngineThreads.count
        result["kernels"] = "\(KernelISA.summary), OpenBLAS \(BLAS.core)"
        result["load_s"] = loadSeconds
        result["timed_steps"] = steps
        result["records_per_step"] = perStep
        result["real_tokens_per_s"] = rate
        result["mean_record_tokens"] = meanTokens
        result["recipe_tokens"] = totalTokens
        result["projected_hours"] = totalTokens / rate / 3600
        result["peak_rss_mib"] = peakRSSMiB()
        // gradient checkpointing: layers recomputed per micro-batch (of the L − 1 it could recompute)
        result["recomputed_layers_per_micro_batch"] =
            Double(recomputed) / Double(steps * config.gradientAccumulationSteps)
        result["keep_arena_mib"] = Double(trainer.keepArenaBytes) / Double(1 << 20)
        if json { printJSONLine(result); return }
        func f(_ k: String, _ digits: Int = 1) -> String {
            (result[k] as? Double).map { String(format: "%.\(digits)f", $0) } ?? "?"
        }
        print("muwa recipe  \(modelOptions.model)  compute \(result["compute"] ?? "?")  threads \(EngineThreads.count)")
        print("  kernels:           \(result["kernels"] ?? "?")")
        print("  \(steps) optimizer steps of \(perStep) dolly-shaped records (mean \(f("mean_record_tokens")) tokens)")
        print("  training:          \(f("real_tokens_per_s")) real tokens/s")
        print(
            "  full recipe:       \(DollyShape.epochs) epochs × \(DollyShape.records) records = "
                + "\(String(format: "%.2f", totalTokens / 1e6))M tokens → \(f("projected_hours")) hours")
        print("  peak memory:       \(f("peak_rss_mib")) MiB")
        print(
            "  checkpointing:     \(f("recomputed_layers_per_micro_batch")) of \(cfg.numHiddenLayers - 1) layers "
                + "recomputed per micro-batch (keep arena \(f("keep_arena_mib", 0)) MiB)")
    }
}
