// muwad bench: prompt-processing and decode throughput and peak memory of the engine on a checkpoint,
// optionally beside PyTorch + transformers on the same machine in the same run (--pytorch).
import ArgumentParser
import Foundation
import OPTEngine

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure prompt and decode tokens/s and peak memory.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .customLong("prompt-tokens")) var promptTokens = 128
    @Option(name: .customLong("new-tokens")) var newTokens = 64
    @Option var batch = 1
    @Option(help: "Timed repetitions (the best is reported).") var repeats = 3
    @Flag(help: "Also run tools/bench/pytorch_bench.py with the same settings and print both.") var pytorch = false
    @Flag var json = false

    func run() throws {
        try withCleanErrors {
            let loadStart = Date()
            let model = try modelOptions.loadModel()
            let loadSeconds = Date().timeIntervalSince(loadStart)
            let cfg = model.config
            guard promptTokens >= 1, newTokens >= 1, promptTokens + newTokens <= cfg.maxPositionEmbeddings else {
                throw EngineError.invalidRequest("prompt-tokens + new-tokens must fit in \(cfg.maxPositionEmbeddings) positions")
            }
            // deterministic prompt: BOS then seeded random ordinary tokens
            var rng = SeededRNG(seed: 1234)
            let upper = UInt64(min(cfg.vocabSize, 50260) - 4)
            let prompt = [cfg.bosTokenId] + (1..<promptTokens).map { _ in 4 + Int(rng.next() % upper) }
            let rows = [[Int]](repeating: prompt, count: batch)

            var bestPrefill = Double.infinity, bestDecode = Double.infinity
            let session = InferenceSession(model: model, batch: batch, capacity: promptTokens + newTokens)
            for _ in 0..<max(1, repeats) {
                session.reset()
                let t0 = Date()
                try session.append(tokens: rows, logits: .last)
                let t1 = Date()
                var greedy = GreedySampler()
                for _ in 0..<newTokens - 1 {
                    for b in 0..<batch {
                        session.stepTokens[b] = Int32(greedy.sample(logits: session.lastLogits + b * cfg.vocabSize,
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
                "weights_dtype": model.weights.layers.first?.qProj.weight.dtype.rawValue ?? "?",
                "batch": batch, "prompt_tokens": promptTokens, "new_tokens": newTokens,
                "threads": BLAS.threads,
                "load_s": loadSeconds,
                "prompt_tokens_per_s": Double(batch * promptTokens) / bestPrefill,
                "decode_tokens_per_s": Double(batch * decodeSteps) / bestDecode,
                "decode_ms_per_step": 1000 * bestDecode / Double(decodeSteps),
                "peak_rss_mib": peakRSSMiB(),
            ]
            report(result)
            if pytorch { runPyTorch() }
        }
    }

    private func report(_ r: [String: Any]) {
        if json { printJSONLine(r); return }
        func f(_ k: String) -> String { (r[k] as? Double).map { String(format: "%.1f", $0) } ?? "?" }
        print("\(r["engine"] ?? "?")  batch \(batch)  prompt \(promptTokens)  new \(newTokens)  threads \(r["threads"] ?? "?")")
        print("  prompt processing: \(f("prompt_tokens_per_s")) tokens/s")
        print("  decode:            \(f("decode_tokens_per_s")) tokens/s (\(f("decode_ms_per_step")) ms/step)")
        print("  peak memory:       \(f("peak_rss_mib")) MiB")
    }

    private func runPyTorch() {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("tools/bench/pytorch_bench.py").path
        let candidates = [script, "tools/bench/pytorch_bench.py"]
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            print("pytorch: tools/bench/pytorch_bench.py not found"); return
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", path, "--model", modelOptions.model, "--prompt-tokens", "\(promptTokens)",
                       "--new-tokens", "\(newTokens)", "--batch", "\(batch)", "--threads", "\(BLAS.threads)",
                       "--repeats", "\(repeats)"]
        let pipe = Pipe()
        p.standardOutput = pipe
        do { try p.run() } catch { print("pytorch: could not start python3: \(error)"); return }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0,
              let line = String(data: data, encoding: .utf8)?.split(separator: "\n").last,
              let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else { print("pytorch: benchmark failed (is torch installed? see tools/fixtures/requirements.txt)"); return }
        report(obj)
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
