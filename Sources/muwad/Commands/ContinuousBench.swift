// muwad bench --continuous: throughput of continuous batching (BatchDecoder, what generate jobs share in the
// daemon). --batch sequences of --prompt-tokens seeded random tokens each generate --new-tokens greedily (no
// EOS stop) in one batch; with --stagger N, sequence i joins only after i·N decode steps, so sequences join
// a running batch and leave it at different times. Prompt processing (each sequence's prefill) and decode
// steps are timed apart; the best of --repeats runs is reported.
import Foundation
import OPTEngine

extension BenchCommand {
    func runContinuous(batch: Int) throws {
        let loadStart = Date()
        let model = try modelOptions.loadModel()
        let tokenizer = try modelOptions.loadTokenizer()
        let loadSeconds = Date().timeIntervalSince(loadStart)
        let cfg = model.config
        guard promptTokens >= 1, newTokens >= 1, promptTokens + newTokens <= cfg.maxPositionEmbeddings, batch >= 1,
            stagger >= 0
        else {
            throw EngineError.invalidRequest(
                "prompt-tokens + new-tokens must fit in \(cfg.maxPositionEmbeddings) positions; batch ≥ 1, stagger ≥ 0")
        }
        var rng = SeededRNG(seed: 1234)
        let upper = UInt64(min(cfg.vocabSize, 50260) - 4)
        let prompts = (0..<batch).map { _ in
            [cfg.bosTokenId] + (1..<promptTokens).map { _ in 4 + Int(rng.next() % upper) }
        }
        let options = GenerationOptions(maxNewTokens: newTokens, stopAtEOS: false)

        var bestPrefill = Double.infinity, bestDecode = Double.infinity, bestTotal = Double.infinity
        var steps = 0, maxRows = 0
        let decoder = BatchDecoder(model: model, tokenizer: tokenizer, maxRows: batch)
        for _ in 0..<max(1, repeats) {
            var prefill = 0.0, decode = 0.0, next = 0, step = 0, generated = 0
            let start = Date()
            while next < batch || decoder.hasWork {
                while next < batch && next * stagger <= step {
                    let t0 = Date()
                    _ = try decoder.add(DecodeRequest(promptIds: prompts[next], options: options))
                    prefill += Date().timeIntervalSince(t0)
                    next += 1
                }
                let t0 = Date()
                generated += try decoder.step().reduce(0) { $0 + ($1.token == nil ? 0 : 1) }
                decode += Date().timeIntervalSince(t0)
                step += 1
            }
            guard generated == batch * newTokens else {
                throw EngineError.invalidRequest("generated \(generated) tokens, expected \(batch * newTokens)")
            }
            bestPrefill = min(bestPrefill, prefill)
            bestDecode = min(bestDecode, decode)
            bestTotal = min(bestTotal, Date().timeIntervalSince(start))
            steps = step
        }
        maxRows = decoder.maxRowsInStep
        let result: [String: Any] = [
            "engine": "muwa", "mode": "continuous",
            "model": modelOptions.model,
            "weights_dtype": model.weights.layers.first?.qProj.weight.dtypeDescription ?? "?",
            "batch": batch, "stagger": stagger, "prompt_tokens": promptTokens, "new_tokens": newTokens,
            "threads": EngineThreads.count,
            "load_s": loadSeconds,
            "steps": steps, "max_rows_in_step": maxRows,
            "prompt_tokens_per_s": Double(batch * promptTokens) / bestPrefill,
            // every step samples one token per row; the pass after a row's last token is skipped
            "decode_tokens_per_s": Double(batch * newTokens) / bestDecode,
            "decode_ms_per_step": 1000 * bestDecode / Double(max(steps, 1)),
            "total_tokens_per_s": Double(batch * newTokens) / bestTotal,
            "total_s": bestTotal,
            "peak_rss_mib": peakRSSMiB(),
        ]
        if json { printJSONLine(result); return }
        func f(_ k: String) -> String { (result[k] as? Double).map { String(format: "%.1f", $0) } ?? "?" }
        print(
            "muwa continuous batching  \(batch) sequences (stagger \(stagger) steps)  prompt \(promptTokens)  "
                + "new \(newTokens)  threads \(EngineThreads.count)  max rows/step \(maxRows)")
        print("  prompt processing: \(f("prompt_tokens_per_s")) tokens/s")
        print(
            "  decode:            \(f("decode_tokens_per_s")) tokens/s (\(f("decode_ms_per_step")) ms/step, \(steps) steps)"
        )
        print(
            "  end to end:        \(f("total_tokens_per_s")) generated tokens/s (\(String(format: "%.2f", bestTotal)) s)"
        )
        print("  peak memory:       \(f("peak_rss_mib")) MiB")
    }
}
