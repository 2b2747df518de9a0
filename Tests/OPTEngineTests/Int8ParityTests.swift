// weights int8 against bitsandbytes 0.50.2 on the CPU (transformers' load_in_8bit, Linear8bitLt), on the
// fixture models at thresholds 6.0 and 0 (Tests/Fixtures/int8, made by tools/fixtures/make_int8_fixtures.py):
// a padded batch in one forward (18 rows: batch-wide outlier features, as bitsandbytes) and a prompt decoded
// one token per step (1 row: each row's own outliers, exactly bitsandbytes for one row). The pre-ln-outliers
// model has activations above 6.0, so the f32 outlier path runs (the fixture records how many features).
import XCTest
@testable import OPTEngine

final class Int8ParityTests: XCTestCase {
    struct Case {
        let model: String, expected: String, threshold: Float, vocabSlice: Int
        let outliersSeen: [String: Int], bitsandbytesVsF32: [String: Float]
    }

    func cases() throws -> (doc: [String: Any], cases: [Case]) {
        let doc = try XCTUnwrap(try ReferenceFixtures.json(ReferenceFixtures.root.appendingPathComponent(
            "int8/expected/int8.json").path) as? [String: Any])
        let list = try XCTUnwrap(doc["cases"] as? [[String: Any]])
        return (doc, try list.map { c in
            func stat(_ key: String) throws -> [String: Any] { try XCTUnwrap(c[key] as? [String: Any]) }
            return Case(model: try XCTUnwrap(c["model"] as? String), expected: try XCTUnwrap(c["expected"] as? String),
                        threshold: Float(try XCTUnwrap(c["threshold"] as? Double)),
                        vocabSlice: try XCTUnwrap(c["vocab_slice"] as? Int),
                        outliersSeen: try ["batch", "decode"].reduce(into: [:]) {
                            $0[$1] = try XCTUnwrap(stat($1)["outlier_features_seen"] as? Int) },
                        bitsandbytesVsF32: try ["batch", "decode"].reduce(into: [:]) {
                            $0[$1] = Float(try XCTUnwrap(stat($1)["max_abs_bitsandbytes_vs_f32"] as? Double)) })
        })
    }

    /// Models on which muwa's int8 logits agree with bitsandbytes' to float rounding at every position.
    static let exactModels = ["models/pre-ln-f32", "int8/models/pre-ln-outliers"]

    /// What we hold muwa to. Both run the same integer arithmetic: on pre-ln-f32 and pre-ln-outliers (the
    /// outlier path included, batch-wide and per row) every compared logit agrees to ≤ 5e-6, so there the
    /// bound is 1e-5 — a wrong scale, rounding, float16 cast or outlier set moves nearly every logit by ~the
    /// int8 error (bitsandbytes vs f32: 0.2–0.8). On pre-ln-bf16 and post-ln-f32 muwa is NOT yet equal to
    /// bitsandbytes: median differences 1.5e-3 (bf16) and 0.03 (post-ln, threshold 6), max 0.12 and 0.34,
    /// cause not found (the int8 weights are identical, checked against bitsandbytes' CB/SCB; the f32
    /// summation orders of layer norm, attention and the bf16 lm_head differ from PyTorch's, and a value
    /// that close to a float16/int8 rounding boundary moves one int8 step, but that does not obviously
    /// explain a median of 1.5e-3 at the first position). For them we only require every logit within half
    /// the case's int8 error: closer to bitsandbytes than int8 is to f32.
    func check(_ diffs: [Float], exact: Bool, int8Error: Float, _ what: String) {
        let maxDiff = diffs.max() ?? 0
        XCTAssertLessThanOrEqual(maxDiff, exact ? 1e-5 : 0.5 * int8Error, "\(what): max |muwa − bitsandbytes|")
        print("int8 parity \(what): max \(maxDiff) (int8 error \(int8Error))")
    }

    func testInt8LogitsMatchBitsandbytes() throws {
        let (doc, cases) = try cases()
        let batchIds = try XCTUnwrap(doc["batch_input_ids"] as? [[Int]])
        let batchMask = try XCTUnwrap(doc["batch_attention_mask"] as? [[Int]])
        let decodeIds = try XCTUnwrap(doc["decode_input_ids"] as? [Int])
        XCTAssertEqual(cases.count, 8)
        let outlierCases = cases.filter { c in c.threshold > 0 && c.outliersSeen.values.allSatisfy { $0 > 0 } }
        XCTAssertFalse(outlierCases.isEmpty, "some case exercises the outlier path in both batch and decode")
        for c in cases {
            let model = try OPTModel.load(directory: ReferenceFixtures.root.appendingPathComponent(c.model).path,
                                          options: EngineOptions(compute: .f32, weights: .int8, int8Threshold: c.threshold))
            XCTAssertEqual(model.weights.layers[0].fc1.weight.dtype, .i8)
            XCTAssertEqual(model.weights.lmHead.dtype, model.weights.embedTokens.dtype, "lm_head stays as stored")
            let expected = try SafetensorsFile(path: ReferenceFixtures.root.appendingPathComponent("int8/expected/" + c.expected).path)
            let S = c.vocabSlice

            // batch: one padded forward
            let batchRef = try XCTUnwrap(expected.tensors["batch_bitsandbytes"]).toFloatArray()
            let T = batchIds[0].count
            XCTAssertEqual(batchRef.count, batchIds.count * T * S)
            let session = InferenceSession(model: model, batch: batchIds.count, capacity: T)
            var batchDiffs: [Float] = []
            try session.append(tokens: batchIds, mask: batchMask, logits: .all({ b, t, logits in
                guard batchMask[b][t] == 1 else { return }  // padded positions: no meaningful logits
                for i in 0..<S { batchDiffs.append(abs(logits[i] - batchRef[(b * T + t) * S + i])) }
            }))
            check(batchDiffs, exact: Self.exactModels.contains(c.model), int8Error: try XCTUnwrap(c.bitsandbytesVsF32["batch"]), "\(c.expected) batch")

            // decode: one token per step
            let decodeRef = try XCTUnwrap(expected.tensors["decode_bitsandbytes"]).toFloatArray()
            let single = InferenceSession(model: model, batch: 1, capacity: decodeIds.count)
            var decodeDiffs: [Float] = []
            for (t, token) in decodeIds.enumerated() {
                try single.append(tokens: [[token]], logits: .last)
                for i in 0..<S { decodeDiffs.append(abs(single.lastLogits[i] - decodeRef[t * S + i])) }
            }
            check(decodeDiffs, exact: Self.exactModels.contains(c.model), int8Error: try XCTUnwrap(c.bitsandbytesVsF32["decode"]), "\(c.expected) decode")
        }
    }
}
