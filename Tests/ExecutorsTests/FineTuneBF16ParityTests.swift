// compute bf16 in a fine-tune, end to end: the 20-step LoRA run of FineTuneParityTests (same records, order,
// initial adapter and settings; Tests/Fixtures/finetune) with the base model loaded for bf16 compute, against
// the f32 losses and those of the same Trainer run with bf16=True (PyTorch's bf16 autocast around each forward),
// both recorded by tools/fixtures/make_bf16_fixtures.py in Tests/Fixtures/bf16/finetune.json.
//
// Tolerance: 1 % relative per step (the goal). bf16 rounds each projection's inputs and weights to 8
// significant bits; the loss (≈ 15–17 here) averages over thousands of token losses, so per-step differences are
// far smaller (PyTorch's autocast run is within 0.07 % of its f32 run). The test also requires the bf16 run to
// differ from muwa's exact f32 path (which matches the f32 losses to 1e-4), so it fails if bf16 did not run.
import Foundation
@testable import OPTEngine
import XCTest

@testable import Executors
@testable import LoRAOps

final class FineTuneBF16ParityTests: XCTestCase {
    func testTwentyBF16StepsAreWithinOnePercentOfF32AndAutocast() throws {
        let run = try FineTuneParityTests.object("run.json")
        let path = FineTuneParityTests.fixtures.appendingPathComponent("bf16/finetune.json").path
        let data = try XCTUnwrap(FileManager.default.contents(atPath: path), path)
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let f32Losses = try XCTUnwrap(doc["f32_losses"] as? [Double])
        let autocastLosses = try XCTUnwrap(doc["autocast_bf16_losses"] as? [Double])

        let modelDir = FineTuneParityTests.modelDirectory(try XCTUnwrap(run["model"] as? String))
        let model = try OPTModel.load(directory: modelDir, options: EngineOptions(compute: .bf16))
        XCTAssertTrue(model.weights.layers[0].qProj.weight.computesInBF16)
        let tokenizer = try BPETokenizer.load(directory: modelDir)
        let configData = try JSONSerialization.data(withJSONObject: try XCTUnwrap(run["training_config"]))
        let config = try JSONDecoder().decode(TrainingConfig.self, from: configData)
        let examples = try FineTuneParityTests.dataset(.alpaca, tokenizer: tokenizer, maxLength: config.maxLength)
            .examples
        let initial = try LoRAAdapter.load(directory: FineTuneParityTests.finetune("initial"), model: model.config)
        let steps = try XCTUnwrap(run["steps"] as? [[String: Any]])
        XCTAssertEqual(steps.count, f32Losses.count)
        XCTAssertEqual(steps.count, autocastLosses.count)

        // one LoRATrainer per Trainer epoch, continuing the previous one (as FineTuneParityTests does)
        var epochs: [[[String: Any]]] = []
        var lastEpoch = -1
        for step in steps {
            let epoch = try XCTUnwrap(step["epoch"] as? Int)
            if epoch == lastEpoch { epochs[epochs.count - 1].append(step) } else { epochs.append([step]) }
            lastEpoch = epoch
        }
        var trainer: LoRATrainer?
        var losses: [Double] = []
        for epochSteps in epochs {
            let order = try epochSteps.flatMap { try XCTUnwrap($0["micro_batches"] as? [[Int]]).flatMap { $0 } }
            let next = try LoRATrainer(
                model: model, config: config, examples: order.map { examples[$0] },
                initialAdapter: trainer?.adapter ?? initial)
            if let previous = trainer {
                next.optimizer.restore(
                    m: previous.optimizer.m.toArray(), v: previous.optimizer.v.toArray(),
                    step: previous.optimizer.step)
                next.step = previous.step
                next.microStep = previous.microStep
            }
            for _ in epochSteps { losses.append(try next.trainStep().loss) }
            trainer = next
        }
        XCTAssertEqual(losses.count, f32Losses.count)
        var toF32 = 0.0, toAutocast = 0.0
        for (i, loss) in losses.enumerated() {
            toF32 = max(toF32, abs(loss - f32Losses[i]) / f32Losses[i])
            toAutocast = max(toAutocast, abs(loss - autocastLosses[i]) / autocastLosses[i])
            XCTAssertEqual(loss, f32Losses[i], accuracy: 0.01 * f32Losses[i], "step \(i + 1) vs f32")
            XCTAssertEqual(loss, autocastLosses[i], accuracy: 0.01 * autocastLosses[i], "step \(i + 1) vs autocast")
        }
        XCTAssertGreaterThan(toF32, 1e-6, "the losses equal the f32 ones: bf16 did not run")
        print("FineTuneBF16Parity: max relative difference of the losses vs f32 \(toF32), vs autocast \(toAutocast)")
    }
}
