// Adapters saved by muwa load in peft unchanged. Two steps (tools/fixtures/README.md, "LoRA fixtures"):
//   1. MUWA_WRITE_ADAPTER_TO=/tmp/muwa-lora-roundtrip swift test --filter PeftRoundTripTests
//      trains two small adapters here and saves them (plus muwa's logits) to that directory;
//   2. python tools/fixtures/make_lora_fixtures.py --only roundtrip --from /tmp/muwa-lora-roundtrip
//      loads each with PeftModel.from_pretrained, records peft's logits and a verdict in
//      Tests/Fixtures/lora/peft_roundtrip.json and copies the adapters under lora/roundtrip/.
// The committed check: every verdict is "ok", and muwa's logits for each committed adapter equal the
// logits peft computed with it (≤ 1e-4).
import Foundation
import XCTest
@testable import LoRAOps
import OPTEngine

final class PeftRoundTripTests: XCTestCase {
    /// (name, base model, modules)
    static let adapters = [
        ("pre-ln-qv-trained", "pre-ln-f32", ["q_proj", "v_proj"]),
        ("post-ln-all-trained", "post-ln-f32", ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]),
    ]

    func testPeftLoadsMuwaAdaptersWithTheSameLogits() throws {
        let doc = try LoRAFixtures.json(LoRAFixtures.lora("peft_roundtrip.json"))
        let entries = try XCTUnwrap(doc["adapters"] as? [[String: Any]])
        XCTAssertEqual(Set(entries.compactMap { $0["name"] as? String }), Set(Self.adapters.map(\.0)))
        for e in entries {
            let name = try XCTUnwrap(e["name"] as? String)
            XCTAssertEqual(e["verdict"] as? String, "ok", "\(name): peft's verdict")
            XCTAssertEqual((e["missing_in_peft_model"] as? [Any])?.count, 0, name)
            XCTAssertEqual((e["differing_after_load"] as? [Any])?.count, 0, name)
            let model = try LoRAFixtures.loadModel(try XCTUnwrap(e["model"] as? String))
            let adapter = try LoRAAdapter.load(
                directory: LoRAFixtures.lora(try XCTUnwrap(e["adapter"] as? String)),
                model: model.config)
            let got = try LoRAFixtures.logits(
                model, ids: try XCTUnwrap(e["input_ids"] as? [[Int]]),
                mask: try XCTUnwrap(e["attention_mask"] as? [[Int]]),
                delta: try AdapterBatch(adapter: adapter, model: model),
                step: try XCTUnwrap(e["column_step"] as? Int))
            let peft = try LoRAFixtures.tensorFloats(
                LoRAFixtures.lora(try XCTUnwrap(e["peft_logits"] as? String)), "logits")
            let diff = LoRAFixtures.maxAbsDiff(got, peft)
            XCTAssertLessThanOrEqual(diff, 1e-4, "\(name): muwa vs peft logits \(diff)")
        }
    }

    /// Step 1 of the procedure; skipped unless MUWA_WRITE_ADAPTER_TO names a directory.
    func testWriteAdaptersForPeft() throws {
        guard let root = ProcessInfo.processInfo.environment["MUWA_WRITE_ADAPTER_TO"] else {
            throw XCTSkip("set MUWA_WRITE_ADAPTER_TO=DIR to write adapters for the peft round trip")
        }
        let meta = try LoRAFixtures.json(LoRAFixtures.lora("expected/pre-ln-qv.json"))
        let ids = try XCTUnwrap(meta["input_ids"] as? [[Int]]), mask = try XCTUnwrap(meta["attention_mask"] as? [[Int]])
        for (name, base, modules) in Self.adapters {
            let model = try LoRAFixtures.loadModel(base)
            var config = TrainingConfig()
            config.r = 4
            config.loraAlpha = 8
            config.loraDropout = 0.05
            config.targetModules = modules
            config.learningRate = 2e-2
            config.maxSteps = 3
            config.batchSize = 2
            config.maxLength = 16
            config.seed = 99
            let trainer = try LoRATrainer(model: model, config: config, examples: TrainerCheckpointTests.examples())
            try trainer.train()
            let dir = (root as NSString).appendingPathComponent(name)
            var adapterConfig = trainer.adapterConfig
            adapterConfig.baseModelNameOrPath = "Tests/Fixtures/models/\(base)"  // not this machine's path
            let adapter = LoRAAdapter(
                config: adapterConfig, layout: trainer.layout, weights: trainer.params.copy(),
                modelConfig: model.config)
            try adapter.save(directory: dir)
            let logits = try LoRAFixtures.logits(
                model, ids: ids, mask: mask,
                delta: try AdapterBatch(adapter: adapter, model: model))
            let Vs = logits.count / (ids.count * ids[0].count)
            try SafetensorsFile.write(
                path: (dir as NSString).appendingPathComponent("muwa_logits.safetensors"),
                tensors: [("logits", Tensor.f32(logits, shape: [ids.count, ids[0].count, Vs]))])
            let info: [String: Any] = ["model": base, "input_ids": ids, "attention_mask": mask, "column_step": 8]
            try JSONSerialization.data(withJSONObject: info, options: [.sortedKeys])
                .write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent("muwa.json")))
        }
    }
}
