// Export (muwad export): a model with an adapter merged in, written as a transformers checkpoint and loaded
// back from disk, gives peft's logits for that adapter (≤ 1e-4, the bound the merged model in memory meets);
// keys are transformers', the tied lm_head is left out as save_pretrained does, and F16/BF16 exports are the
// F32 export rounded.
import Foundation
import XCTest
@testable import LoRAOps
@testable import OPTEngine

final class ExportTests: XCTestCase {
    func testAnExportedMergedCheckpointGivesPeftsLogits() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-export-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        for name in ["pre-ln-qv", "post-ln-all"] {
            let meta = try LoRAFixtures.json(LoRAFixtures.lora("expected/\(name).json"))
            let modelName = try XCTUnwrap(meta["model"] as? String)
            let model = try LoRAFixtures.loadModel(modelName)
            let adapter = try LoRAAdapter.load(directory: LoRAFixtures.lora("adapters/\(name)"), model: model.config)
            let source = try XCTUnwrap(model.directory)
            let out = scratch + "/\(name)"
            try CheckpointExport.write(
                try adapter.merge(into: model).merged, sourceDirectory: source, to: out, dtype: .f32)

            let exported = try OPTModel.load(directory: out)
            let ids = try XCTUnwrap(meta["input_ids"] as? [[Int]]),
                mask = try XCTUnwrap(meta["attention_mask"] as? [[Int]])
            let step = try XCTUnwrap(meta["column_step"] as? Int)
            let expected = try LoRAFixtures.tensorFloats(LoRAFixtures.lora("expected/\(name).safetensors"), "logits")
            let got = try LoRAFixtures.logits(exported, ids: ids, mask: mask, delta: nil, step: step)
            XCTAssertLessThanOrEqual(LoRAFixtures.maxAbsDiff(got, expected), 1e-4, "\(name): exported logits vs peft")

            let file = try SafetensorsFile(path: out + "/model.safetensors")
            XCTAssertNotNil(file.tensors["model.decoder.layers.0.self_attn.q_proj.weight"])
            XCTAssertNil(file.tensors["lm_head.weight"], "a tied lm_head is not written")
            let config = try XCTUnwrap(
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json"))) as? [String: Any])
            XCTAssertEqual(config["torch_dtype"] as? String, "float32")
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/vocab.json"))
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/merges.txt"))
            XCTAssertThrowsError(
                try CheckpointExport.write(exported, sourceDirectory: out, to: out, dtype: .f32),
                "an existing checkpoint is not overwritten")

            // BF16: every tensor is the F32 export rounded to BF16.
            try CheckpointExport.write(exported, sourceDirectory: out, to: out + "-bf16", dtype: .bf16)
            let narrow = try SafetensorsFile(path: out + "-bf16/model.safetensors")
            for (key, tensor) in file.tensors {
                let small = try XCTUnwrap(narrow.tensors[key], key)
                XCTAssertEqual(small.dtype, .bf16)
                XCTAssertEqual(small.toFloatArray(), tensor.toFloatArray().map { bf16ToFloat(floatToBF16($0)) }, key)
            }
        }
    }
}
