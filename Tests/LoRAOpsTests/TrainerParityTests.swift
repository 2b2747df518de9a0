// LoRA training against peft + torch.optim.AdamW + transformers' schedules, step for step: the fixture
// runs (right-padded batches with prompt tokens and padding at -100, warmup, clipping that bites,
// gradient accumulation in both loss normalisations, weight decay, q/v only and all six modules,
// pre-LN and post-LN with project_in/out) give the same loss per step (≤ 1e-4 relative), the same
// learning rates, and final LoRA weights within 1e-4 of peft's.
import Foundation
import XCTest
@testable import LoRAOps
import OPTEngine

final class TrainerParityTests: XCTestCase {
    struct Run {
        let model: OPTModel, config: TrainingConfig, examples: [TrainingExample], initial: LoRAAdapter
        let final: LoRAAdapter, steps: [[String: Any]]
    }

    static func load(_ name: String) throws -> Run {
        let dir = "training/\(name)"
        let doc = try LoRAFixtures.json(LoRAFixtures.lora("\(dir)/run.json"))
        let model = try LoRAFixtures.loadModel(try XCTUnwrap(doc["model"] as? String))
        let configData = try JSONSerialization.data(withJSONObject: try XCTUnwrap(doc["training_config"]))
        let config = try JSONDecoder().decode(TrainingConfig.self, from: configData)
        let examplesData = try JSONSerialization.data(withJSONObject: try XCTUnwrap(doc["examples"]))
        let examples = try JSONDecoder().decode([TrainingExample].self, from: examplesData)
        return Run(
            model: model, config: config, examples: examples,
            initial: try LoRAAdapter.load(directory: LoRAFixtures.lora("\(dir)/initial"), model: model.config),
            final: try LoRAAdapter.load(directory: LoRAFixtures.lora("\(dir)/final"), model: model.config),
            steps: try XCTUnwrap(doc["steps"] as? [[String: Any]]))
    }

    func check(_ name: String, checkpointing: Bool = false) throws {
        let run = try Self.load(name)
        var config = run.config
        config.gradientCheckpointing = checkpointing
        let trainer = try LoRATrainer(
            model: run.model, config: config, examples: run.examples, initialAdapter: run.initial)
        XCTAssertEqual(run.steps.count, config.maxSteps)
        for expected in run.steps {
            let report = try trainer.trainStep()
            let loss = try XCTUnwrap(expected["loss"] as? Double)
            let norm = try XCTUnwrap(expected["grad_norm"] as? Double)
            XCTAssertEqual(report.loss, loss, accuracy: 1e-4 * abs(loss), "\(name) step \(report.step) loss")
            XCTAssertEqual(report.gradNorm, norm, accuracy: 1e-4 * abs(norm), "\(name) step \(report.step) grad norm")
            XCTAssertEqual(
                report.learningRate, try XCTUnwrap(expected["learning_rate"] as? Double),
                accuracy: 1e-12, "\(name) step \(report.step) learning rate")
            XCTAssertEqual(report.targetTokens, expected["target_tokens"] as? Int, "\(name) step \(report.step)")
        }
        XCTAssertEqual(trainer.layout, run.final.layout)
        let got = trainer.params.toArray(), want = run.final.weights.toArray()
        let start = run.initial.weights.toArray()
        XCTAssertLessThanOrEqual(LoRAFixtures.maxAbsDiff(got, want), 1e-4, "\(name): final LoRA weights")
        XCTAssertGreaterThan(LoRAFixtures.maxAbsDiff(want, start), 1e-3, "\(name): training should move the weights")
    }

    func testPreLNQueryValueRunMatchesPeft() throws { try check("pre-ln-qv") }
    func testPostLNAllModulesWithAccumulationMatchesPeft() throws { try check("post-ln-all") }
    func testPreLNMicroBatchMeanRunMatchesPeft() throws { try check("pre-ln-mean") }
    func testGradientCheckpointingGivesTheSameRun() throws { try check("post-ln-all", checkpointing: true) }

    func testSchedulesMatchTransformers() throws {
        // transformers' lambdas at a few steps (warmup 3, 10 steps), LambdaLR semantics: step k uses λ(k).
        let linear = LRSchedule(kind: .linear, baseLR: 1, warmupSteps: 3, totalSteps: 10)
        let expected: [Double] = [0, 1.0 / 3, 2.0 / 3, 1, 6.0 / 7, 5.0 / 7, 4.0 / 7, 3.0 / 7, 2.0 / 7, 1.0 / 7, 0]
        XCTAssertEqual((0..<11).map { linear.factor(step: $0) }, expected)
        let cosine = LRSchedule(kind: .cosine, baseLR: 1, warmupSteps: 2, totalSteps: 6)
        XCTAssertEqual(cosine.factor(step: 4), 0.5, accuracy: 1e-15)
        XCTAssertEqual(cosine.factor(step: 6), 0, accuracy: 1e-15)
        let constant = LRSchedule(kind: .constantWithWarmup, baseLR: 1, warmupSteps: 4, totalSteps: 6)
        XCTAssertEqual((0..<6).map { constant.factor(step: $0) }, [0, 0.25, 0.5, 0.75, 1, 1])
        XCTAssertEqual(LRSchedule(kind: .constant, baseLR: 2, warmupSteps: 4, totalSteps: 6).learningRate(step: 0), 2)
    }

    func testClipGradNormAsTorch() {
        let g = FloatArena(count: 4)
        for (i, v) in [3, 0, 4, 0].enumerated() { g.base[i] = Float(v) }
        XCTAssertEqual(clipGradNorm(g, maxNorm: 1), 5, accuracy: 1e-6)
        XCTAssertEqual(g.base[0], 3 * Float(1) / (5 + 1e-6), accuracy: 1e-7)
        XCTAssertEqual(clipGradNorm(g, maxNorm: 10), 1, accuracy: 1e-5)  // below max: unchanged
        XCTAssertEqual(g.base[2], 0.8, accuracy: 1e-6)
    }
}
