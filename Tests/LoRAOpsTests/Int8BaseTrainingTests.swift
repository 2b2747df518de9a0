// A LoRA fine-tune on an int8 frozen base (weights int8, LLM.int8 threshold 6): the forward products go
// through the int8 kernels and the activation gradients through linearBackwardInput, which dequantizes the
// int8 weight a block of rows at a time into the scratch and multiplies with sgemm. The losses must track
// the f32-base run's (same seed, same data): the base differs only by int8 rounding.
import CKernels
import XCTest
@testable import LoRAOps
import OPTEngine

final class Int8BaseTrainingTests: XCTestCase {
    func losses(_ model: OPTModel, batchSize: Int? = nil) throws -> [Double] {
        var config = TrainerCheckpointTests.config(steps: 12)
        if let batchSize {  // more than rowInvariantMaxRows tokens a micro-batch: the GEMM paths
            config.batchSize = batchSize
            config.gradientAccumulationSteps = 1
        }
        config.loraDropout = 0
        config.residualDropout = 0
        config.targetModules = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
        let trainer = try LoRATrainer(model: model, config: config, examples: TrainerCheckpointTests.examples())
        return try (0..<12).map { _ in try trainer.trainStep().loss }
    }

    func testFineTuneOnAnInt8BaseTracksTheF32Base() throws {
        let directory = LoRAFixtures.model("pre-ln-f32")
        let int8 = try OPTModel.load(directory: directory, options: EngineOptions(compute: .f32, weights: .int8))
        XCTAssertEqual(int8.weights.layers[0].fc2.weight.dtype, .i8)
        let base = try losses(OPTModel.load(directory: directory))
        let quantized = try losses(int8)
        XCTAssertTrue(quantized.allSatisfy { $0.isFinite })
        XCTAssertLessThan(quantized.last!, quantized.first!, "the int8-base run learns")
        for (step, (q, f)) in zip(quantized, base).enumerated() {
            // int8 moves these logits by ≤ 0.8 of ~20 (Tests/Fixtures/int8/expected/int8.json): a few % of loss
            XCTAssertEqual(q, f, accuracy: 0.05 * f, "step \(step + 1)")
        }
        print("losses f32 base \(base)\nlosses int8 base \(quantized)")
    }

    /// Under bf16 compute the int8 base's input gradients go through VNNI's integer products where the CPU has
    /// them (Int8Backward.swift; int16 by default, int8 on request; each forced here, whatever the CPU's default)
    /// or the bf16 GEMM on dequantized rows: every way the losses track the f32 base's as closely as the
    /// f32-compute run does.
    func testFineTuneOnAnInt8BaseUnderBF16ComputeTracksTheF32Base() throws {
        let directory = LoRAFixtures.model("pre-ln-f32")
        let base = try losses(OPTModel.load(directory: directory), batchSize: 5)
        defer { muwa_i8_backward_select(-1) }
        var runs = [[Double]]()
        for bits: Int32 in [0, 16, 8] {
            guard muwa_i8_backward_select(bits) != 0 else { continue }  // no VNNI: the bf16 GEMM only
            let model = try OPTModel.load(directory: directory, options: EngineOptions(compute: .bf16, weights: .int8))
            let quantized = try losses(model, batchSize: 5)
            runs.append(quantized)
            XCTAssertLessThan(quantized.last!, quantized.first!, "the int8-base run learns (gradient bits \(bits))")
            for (step, (q, f)) in zip(quantized, base).enumerated() {
                XCTAssertEqual(q, f, accuracy: 0.05 * f, "step \(step + 1), gradient bits \(bits)")
            }
            let gap = zip(quantized, base).map { abs($0 - $1) / $1 }.max() ?? 0
            print("int8 base, bf16 compute, gradient bits \(bits): largest loss gap to the f32 base \(gap)")
        }
        if runs.count == 3 {  // all three paths ran
            XCTAssertNotEqual(runs[0], runs[1])
            XCTAssertNotEqual(runs[1], runs[2])
        }
    }
}
