// compute bf16 against PyTorch's bf16 autocast on the committed tiny checkpoints (Tests/Fixtures/bf16, written by
// tools/fixtures/make_bf16_fixtures.py): the logits of the left-padded 3 × 6 batch (18 rows, so the projections
// take the bf16 GEMM, not the decode kernels) under torch.autocast("cpu", dtype=torch.bfloat16).
//
// Tolerance. "Within bf16 tolerance" is measured, not guessed: the fixture records how far PyTorch's own f32
// logits are from its autocast logits on the real positions (`max_abs_diff_f32_vs_autocast`, ≈ 1 % of the
// largest logit: bf16 keeps 8 significant bits). muwa's bf16 rounds a subset of what autocast rounds (the
// inputs and weights of every projection, and attention's operands — q, k, v and the probabilities — as
// autocast's bf16 attention does; autocast also rounds the projections' outputs), so its logits lie between the
// two. The distance to autocast, the claim, is bounded by that measured gap with 25 % margin because rounding
// errors do not add up exactly. The distance to f32 is a sanity bound with 50 % margin: since attention runs in
// bf16 it is of the gap's own size (post-ln: 0.44 against a gap of 0.35, while the distance to autocast fell
// from 0.30 to 0.20). The test also requires the bf16 logits to differ from the f32 ones by more than f32
// rounding (1e-4), so it fails if the bf16 path did not run.
import XCTest
@testable import OPTEngine

final class BF16ParityTests: XCTestCase {
    static let bf16Root = ReferenceFixtures.root.appendingPathComponent("bf16")

    func testBF16LogitsAreWithinBF16ToleranceOfPyTorchAutocast() throws {
        for variant in ["pre-ln-f32", "post-ln-f32"] {
            let model = try OPTModel.load(
                directory: ReferenceFixtures.model(variant),
                options: EngineOptions(compute: .bf16))
            XCTAssertEqual(model.weights.layers[0].fc1.weight.dtype, .bf16)
            XCTAssertTrue(model.weights.lmHead.computesInBF16)
            let dir = Self.bf16Root.appendingPathComponent(variant)
            let meta = try XCTUnwrap(
                try ReferenceFixtures.json(dir.appendingPathComponent("logits.json").path)
                    as? [String: Any])
            let ids = try XCTUnwrap(meta["input_ids"] as? [[Int]])
            let mask = try XCTUnwrap(meta["attention_mask"] as? [[Int]])
            let gap = Float(try XCTUnwrap(meta["max_abs_diff_f32_vs_autocast"] as? Double))
            let autocast = try XCTUnwrap(
                try SafetensorsFile(path: dir.appendingPathComponent("logits.safetensors").path)
                    .tensors["logits"]
            ).toFloatArray()
            let f32 = try XCTUnwrap(
                try SafetensorsFile(path: ReferenceFixtures.expected(variant, "logits.safetensors"))
                    .tensors["logits"]
            ).toFloatArray()
            let V = model.config.vocabSize, T = ids[0].count
            XCTAssertEqual(autocast.count, ids.count * T * V)
            XCTAssertGreaterThan(ids.count * T, rowInvariantMaxRows, "the batch must take the bf16 GEMM")

            var toAutocast: Float = 0, toF32: Float = 0
            let session = BatchSession(model: model, batch: ids.count, capacity: T)
            try session.append(
                tokens: ids, mask: mask,
                logits: .all({ b, t, logits in
                    guard mask[b][t] == 1 else { return }
                    let base = (b * T + t) * V
                    for i in 0..<V {
                        toAutocast = max(toAutocast, abs(logits[i] - autocast[base + i]))
                        toF32 = max(toF32, abs(logits[i] - f32[base + i]))
                    }
                }))
            print(
                "BF16Parity \(variant): |muwa bf16 − autocast| ≤ \(toAutocast), |muwa bf16 − f32| ≤ \(toF32), "
                    + "PyTorch |f32 − autocast| = \(gap)")
            XCTAssertLessThanOrEqual(toAutocast, 1.25 * gap, "\(variant): farther from autocast than f32 is")
            XCTAssertLessThanOrEqual(toF32, 1.5 * gap, "\(variant): much farther from f32 than autocast is")
            XCTAssertGreaterThan(toF32, 1e-4, "\(variant): the logits equal the f32 ones: bf16 did not run")
        }
    }
}
