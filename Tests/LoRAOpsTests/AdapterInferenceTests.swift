// Adapters in peft's format against peft itself: each fixture adapter (q/v only, all six modules, a
// regex target with rslora, rank/alpha patterns, layers_to_transform, bias lora_only and all, a .bin
// with adapter-name keys) gives peft's logits (≤ 1e-4) unmerged and merged; merged equals unmerged;
// unmerging is the original model; a batch mixing adapters equals each sequence run alone; adding and
// dropping adapters leaves the base weights where they were.
import Foundation
import XCTest
@testable import LoRAOps
import OPTEngine

final class AdapterInferenceTests: XCTestCase {
    static let names = ["pre-ln-qv", "pre-ln-all-bin", "post-ln-qv", "post-ln-all", "pre-ln-bias-all"]

    struct Case {
        let model: OPTModel, adapter: LoRAAdapter, ids: [[Int]], mask: [[Int]], expected: [Float], step: Int
    }

    func load(_ name: String) throws -> Case {
        let meta = try LoRAFixtures.json(LoRAFixtures.lora("expected/\(name).json"))
        let model = try LoRAFixtures.loadModel(try XCTUnwrap(meta["model"] as? String))
        let adapter = try LoRAAdapter.load(directory: LoRAFixtures.lora("adapters/\(name)"), model: model.config)
        return Case(
            model: model, adapter: adapter, ids: try XCTUnwrap(meta["input_ids"] as? [[Int]]),
            mask: try XCTUnwrap(meta["attention_mask"] as? [[Int]]),
            expected: try LoRAFixtures.tensorFloats(LoRAFixtures.lora("expected/\(name).safetensors"), "logits"),
            step: try XCTUnwrap(meta["column_step"] as? Int))
    }

    func testUnmergedLogitsMatchPeft() throws {
        for name in Self.names where name != "pre-ln-bias-all" {
            let c = try load(name)
            let delta = try AdapterBatch(adapter: c.adapter, model: c.model)
            let got = try LoRAFixtures.logits(c.model, ids: c.ids, mask: c.mask, delta: delta, step: c.step)
            let diff = LoRAFixtures.maxAbsDiff(got, c.expected)
            XCTAssertLessThanOrEqual(diff, 1e-4, "\(name): unmerged logits differ from peft's by \(diff)")
        }
    }

    func testMergedLogitsMatchPeftAndUnmerged() throws {
        for name in Self.names {
            let c = try load(name)
            let merged = try c.adapter.merge(into: c.model)
            let got = try LoRAFixtures.logits(merged.merged, ids: c.ids, mask: c.mask, delta: nil, step: c.step)
            let diff = LoRAFixtures.maxAbsDiff(got, c.expected)
            XCTAssertLessThanOrEqual(diff, 1e-4, "\(name): merged logits differ from peft's by \(diff)")
            if name != "pre-ln-bias-all" {
                let unmerged = try LoRAFixtures.logits(
                    c.model, ids: c.ids, mask: c.mask,
                    delta: try AdapterBatch(adapter: c.adapter, model: c.model),
                    step: c.step)
                // These random models' logits reach ±20, where fp32 holds ~2e-6: the bound is 1e-5 relative to the
                // largest logit (measured: ≤ 2.9e-5 absolute, 1.5e-6 relative; peft's own merge: 2.6e-5 absolute).
                let scale = max(1, unmerged.map(abs).max() ?? 1)
                let mu = LoRAFixtures.maxAbsDiff(got, unmerged)
                XCTAssertLessThanOrEqual(mu / scale, 1e-5, "\(name): merged vs unmerged \(mu) (logits up to \(scale))")
            }
            // unmerging is exact: the base model is untouched and is what `unmerged` returns
            XCTAssertTrue(merged.unmerged === c.model)
            let base = try LoRAFixtures.logits(c.model, ids: c.ids, mask: c.mask, delta: nil, step: c.step)
            let again = try LoRAFixtures.logits(merged.unmerged, ids: c.ids, mask: c.mask, delta: nil, step: c.step)
            XCTAssertEqual(base, again, "\(name): unmerged model is not the base model")
            XCTAssertGreaterThan(LoRAFixtures.maxAbsDiff(base, got), 1, "\(name): the adapter should change the logits")
        }
    }

    func testMergeCopiesOnlyAdaptedMatrices() throws {
        let c = try load("pre-ln-qv")
        let merged = try c.adapter.merge(into: c.model).merged
        for l in 0..<c.model.config.numHiddenLayers {
            let a = c.model.weights.layers[l], b = merged.weights.layers[l]
            XCTAssertFalse(a.qProj.weight.region === b.qProj.weight.region)
            XCTAssertFalse(a.vProj.weight.region === b.vProj.weight.region)
            XCTAssertTrue(a.kProj.weight.region === b.kProj.weight.region)
            XCTAssertTrue(a.fc1.weight.region === b.fc1.weight.region)
        }
        XCTAssertTrue(c.model.weights.embedTokens.region === merged.weights.embedTokens.region)
    }

    func testBiasAllIsRefusedUnmergedByName() throws {
        let c = try load("pre-ln-bias-all")
        XCTAssertFalse(c.adapter.biases.layerNorms.isEmpty)
        XCTAssertThrowsError(try AdapterSet(model: c.model).add(c.adapter, name: "x")) { e in
            XCTAssertTrue("\(e)".contains("'bias'") && "\(e)".contains("--merge"), "\(e)")
        }
    }

    /// Sequences with different adapters (and none) in one batch give what each gives alone.
    func testMixedAdapterBatchEqualsEachSequenceAlone() throws {
        let model = try LoRAFixtures.loadModel("pre-ln-f32")
        let set = AdapterSet(model: model)
        try set.load(directory: LoRAFixtures.lora("adapters/pre-ln-qv"), name: "qv")
        try set.load(directory: LoRAFixtures.lora("adapters/pre-ln-all-bin"), name: "all")
        XCTAssertEqual(set.names, ["all", "qv"])
        let rows = [[2, 133, 2119, 6219, 21, 5], [2, 14, 88], [2, 700, 3201, 99], [2, 5, 6, 7, 8], [2, 11, 4]]
        let names: [String?] = ["qv", nil, "all", "all", "qv"]
        let T = rows.map(\.count).max() ?? 0
        let ids = rows.map { $0 + [Int](repeating: 1, count: T - $0.count) }
        let mask = rows.map { [Int](repeating: 1, count: $0.count) + [Int](repeating: 0, count: T - $0.count) }
        let batched = try LoRAFixtures.logits(model, ids: ids, mask: mask, delta: try set.batch(names), step: 1)
        let V = model.config.vocabSize
        for (b, row) in rows.enumerated() {
            let alone = try LoRAFixtures.logits(
                model, ids: [row], mask: [row.map { _ in 1 }],
                delta: try set.batch([names[b]]), step: 1)
            let mine = Array(batched[(b * T * V)..<((b * T + row.count) * V)])
            XCTAssertLessThanOrEqual(
                LoRAFixtures.maxAbsDiff(mine, alone), 1e-4, "sequence \(b) (\(names[b] ?? "none"))")
        }
        // generation through the same seam: a mixed batch continues each prompt as it would alone
        let tokenizer = try BPETokenizer.load(directory: LoRAFixtures.model("pre-ln-f32"))
        let generator = Generator(model: model, tokenizer: tokenizer)
        let options = GenerationOptions(maxNewTokens: 6)
        let together = try generator.generate(
            promptIds: rows, options: rows.map { _ in options },
            deltas: try set.sequenceDeltas(names))
        for (b, row) in rows.enumerated() {
            let alone = try generator.generate(
                promptIds: [row], options: [options], deltas: try set.sequenceDeltas([names[b]]))
            XCTAssertEqual(together[b].tokenIds, alone[0].tokenIds, "generation of sequence \(b)")
        }
    }

    func testAddingAndDroppingAdaptersLeavesTheBaseAlone() throws {
        let model = try LoRAFixtures.loadModel("post-ln-f32")
        let before = model.weights.layers.map { $0.qProj.weight.raw }
        let set = AdapterSet(model: model)
        for i in 0..<3 { try set.load(directory: LoRAFixtures.lora("adapters/post-ln-qv"), name: "a\(i)") }
        try set.load(directory: LoRAFixtures.lora("adapters/post-ln-all"), name: "all")
        XCTAssertTrue(set.remove(name: "a1"))
        XCTAssertFalse(set.remove(name: "a1"))
        XCTAssertEqual(set.names, ["a0", "a2", "all"])
        XCTAssertEqual(model.weights.layers.map { $0.qProj.weight.raw }, before)
        XCTAssertThrowsError(try set.batch(["a1"])) { e in XCTAssertTrue("\(e)".contains("a1")) }
    }
}
