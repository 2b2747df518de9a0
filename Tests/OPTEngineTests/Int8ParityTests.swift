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
        let doc = try XCTUnwrap(
            try ReferenceFixtures.json(
                ReferenceFixtures.root.appendingPathComponent(
                    "int8/expected/int8.json"
                ).path) as? [String: Any])
        let list = try XCTUnwrap(doc["cases"] as? [[String: Any]])
        return (
            doc,
            try list.map { c in
                func stat(_ key: String) throws -> [String: Any] { try XCTUnwrap(c[key] as? [String: Any]) }
                return Case(
                    model: try XCTUnwrap(c["model"] as? String), expected: try XCTUnwrap(c["expected"] as? String),
                    threshold: Float(try XCTUnwrap(c["threshold"] as? Double)),
                    vocabSlice: try XCTUnwrap(c["vocab_slice"] as? Int),
                    outliersSeen: try ["batch", "decode"].reduce(into: [:]) {
                        $0[$1] = try XCTUnwrap(stat($1)["outlier_features_seen"] as? Int)
                    },
                    bitsandbytesVsF32: try ["batch", "decode"].reduce(into: [:]) {
                        $0[$1] = Float(try XCTUnwrap(stat($1)["max_abs_bitsandbytes_vs_f32"] as? Double))
                    })
            }
        )
    }

    /// What we hold muwa to: |muwa − bitsandbytes| ≤ 1e-5 on every compared logit (seen: ≤ 5e-6). Both run
    /// the same integer arithmetic — float16 rounding before quantizing, PyTorch's 127 · (1/absmax) scale,
    /// round half to even, the same outlier sets — so what is left is the f32 summation order of layer norm,
    /// attention and the f32 outlier sums (~1e-7 relative on logits of magnitude ≤ 35). Any difference in
    /// the decomposition (a scale, a rounding tie, a cast, an outlier set) moves logits by up to the int8
    /// error itself, 0.2–1.1 here (recorded as bitsandbytes vs f32); one int8 tie rounded the other way
    /// moved them by 0.07–0.34 before the scale was computed as PyTorch does.
    func check(_ diffs: [Float], int8Error: Float, _ what: String) {
        let maxDiff = diffs.max() ?? 0
        XCTAssertLessThanOrEqual(maxDiff, 1e-5, "\(what): max |muwa − bitsandbytes|")
        XCTAssertGreaterThan(int8Error, 0.1, "\(what): int8 differs from f32, so the comparison has teeth")
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
            let model = try OPTModel.load(
                directory: ReferenceFixtures.root.appendingPathComponent(c.model).path,
                options: EngineOptions(compute: .f32, weights: .int8, int8Threshold: c.threshold))
            XCTAssertEqual(model.weights.layers[0].fc1.weight.dtype, .i8)
            XCTAssertEqual(model.weights.lmHead.dtype, model.weights.embedTokens.dtype, "lm_head stays as stored")
            let expected = try SafetensorsFile(
                path: ReferenceFixtures.root.appendingPathComponent("int8/expected/" + c.expected).path)
            let S = c.vocabSlice

            // batch: one padded forward
            let batchRef = try XCTUnwrap(expected.tensors["batch_bitsandbytes"]).toFloatArray()
            let T = batchIds[0].count
            XCTAssertEqual(batchRef.count, batchIds.count * T * S)
            let session = BatchSession(model: model, batch: batchIds.count, capacity: T)
            var batchDiffs: [Float] = []
            try session.append(
                tokens: batchIds, mask: batchMask,
                logits: .all({ b, t, logits in
                    guard batchMask[b][t] == 1 else { return }  // padded positions: no meaningful logits
                    for i in 0..<S { batchDiffs.append(abs(logits[i] - batchRef[(b * T + t) * S + i])) }
                }))
            check(batchDiffs, int8Error: try XCTUnwrap(c.bitsandbytesVsF32["batch"]), "\(c.expected) batch")

            // decode: one token per step
            let decodeRef = try XCTUnwrap(expected.tensors["decode_bitsandbytes"]).toFloatArray()
            let single = BatchSession(model: model, batch: 1, capacity: decodeIds.count)
            var decodeDiffs: [Float] = []
            for (t, token) in decodeIds.enumerated() {
                try single.append(tokens: [[token]], logits: .last)
                for i in 0..<S { decodeDiffs.append(abs(single.lastLogits[i] - decodeRef[t * S + i])) }
            }
            check(decodeDiffs, int8Error: try XCTUnwrap(c.bitsandbytesVsF32["decode"]), "\(c.expected) decode")
        }
    }
}

final class Int8MemoryTests: XCTestCase {
    /// The memory estimate counts int8 matrices as 1 byte an element plus 12 bytes a row (absmax, row sum, order);
    /// everything else (embeddings, lm_head, biases, norms) as stored.
    func testWeightBytesCountInt8MatricesAndTheirScales() throws {
        for name in ["pre-ln-f32", "post-ln-f32", "pre-ln-bf16"] {
            let stored = try OPTModel.load(directory: ReferenceFixtures.model(name))
            let int8 = try OPTModel.load(
                directory: ReferenceFixtures.model(name),
                options: EngineOptions(compute: .f32, weights: .int8))
            var matrices: [(Tensor, Tensor)] = []
            for (s, q) in zip(stored.weights.layers, int8.weights.layers) {
                matrices += [
                    (s.qProj.weight, q.qProj.weight), (s.kProj.weight, q.kProj.weight),
                    (s.vProj.weight, q.vProj.weight), (s.outProj.weight, q.outProj.weight),
                    (s.fc1.weight, q.fc1.weight), (s.fc2.weight, q.fc2.weight),
                ]
            }
            if let s = stored.weights.projectIn, let q = int8.weights.projectIn { matrices.append((s, q)) }
            if let s = stored.weights.projectOut, let q = int8.weights.projectOut { matrices.append((s, q)) }
            var expected = stored.weightBytes
            for (s, q) in matrices {
                XCTAssertEqual(q.dtype, .i8, name)
                expected += s.count + 12 * s.shape[0] - s.byteCount
            }
            XCTAssertEqual(int8.weightBytes, expected, name)
            XCTAssertLessThan(int8.weightBytes, stored.weightBytes, name)
            XCTAssertEqual(int8.weights.layers[0].qProj.weight.dtypeDescription, "I8 (threshold 6.0)")
        }
        let plain = try OPTModel.load(
            directory: ReferenceFixtures.model("pre-ln-f32"),
            options: EngineOptions(compute: .f32, weights: .int8, int8Threshold: 0))
        XCTAssertEqual(plain.weights.layers[0].fc2.weight.dtypeDescription, "I8")
    }
}
