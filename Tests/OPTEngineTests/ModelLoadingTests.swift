// config.json of every published OPT size, and the errors a broken checkpoint directory gives at the
// model level: wrong model_type, bad config values, a missing tensor, a tensor of the wrong shape.
import Foundation
import XCTest
@testable import OPTEngine

final class ModelLoadingTests: XCTestCase {
    func testEveryPublishedConfigParses() throws {
        let dir = ReferenceFixtures.root.appendingPathComponent("configs")
        let expected = try XCTUnwrap(
            try ReferenceFixtures.json(dir.appendingPathComponent("expected.json").path)
                as? [String: [String: Any]])
        XCTAssertEqual(expected.count, 8)
        for (name, facts) in expected {
            let tmp = try temporaryDirectory()
            try FileManager.default.copyItem(
                atPath: dir.appendingPathComponent("\(name).json").path,
                toPath: tmp + "/config.json")
            let cfg = try OPTConfig.load(directory: tmp)
            XCTAssertEqual(cfg.parameterCount, facts["parameters"] as? Int, name)
            XCTAssertEqual(cfg.headDim, facts["head_dim"] as? Int, name)
            XCTAssertEqual(cfg.hasFinalLayerNorm, facts["has_final_layer_norm"] as? Bool, name)
            XCTAssertEqual(cfg.hasProjections, facts["has_projections"] as? Bool, name)
            XCTAssertEqual(cfg.dropout, 0.1, name)  // every published OPT trains with dropout 0.1
        }
    }

    /// A config of absurd sizes counts Int.max parameters instead of trapping on overflow (found by fuzzing:
    /// fuzz/regressions/config/parameter-count-overflow.json).
    func testParameterCountSaturates() {
        let huge = 1 << 40
        let cfg = OPTConfig(
            hiddenSize: huge, ffnDim: huge, numHiddenLayers: 2, numAttentionHeads: 1, wordEmbedProjDim: huge)
        XCTAssertEqual(cfg.parameterCount, Int.max)
        XCTAssertEqual(
            OPTConfig(hiddenSize: 16, ffnDim: 64, numHiddenLayers: 2, numAttentionHeads: 4).parameterCount,
            50272 * 16 + 2050 * 16 + 2 * 16 + 2 * (4 * (16 * 16 + 16) + (16 * 64 + 64) + (64 * 16 + 16) + 2 * 32))
    }

    func testConfigErrorsNameTheProblem() throws {
        func check(_ json: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let tmp = try temporaryDirectory()
            try json.write(toFile: tmp + "/config.json", atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try OPTConfig.load(directory: tmp), file: file, line: line) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(fragment) && text.contains("config.json"), text, file: file, line: line)
            }
        }
        let base = #""hidden_size": 16, "ffn_dim": 32, "num_hidden_layers": 1, "num_attention_heads": 4"#
        try check(#"{"model_type": "gpt2", \#(base)}"#, "model_type is 'gpt2'")
        try check(#"{"dropout": 1.5, \#(base)}"#, "dropout is 1.5")
        try check(
            #"{"model_type": "opt", "ffn_dim": 32, "num_hidden_layers": 1, "num_attention_heads": 4}"#, "hidden_size")
        try check(
            #"{"hidden_size": 18, "ffn_dim": 32, "num_hidden_layers": 1, "num_attention_heads": 4}"#, "not divisible")
        try check(#"{\#(base), "activation_function": "swish"}"#, "swish")
        try check(
            #"{"hidden_size": 16, "ffn_dim": 32, "num_hidden_layers": -2, "num_attention_heads": 4}"#,
            "num_hidden_layers")
        try check(#"{"hidden_size": "big"}"#, "hidden_size")
        try check("not json", "not valid JSON")
        XCTAssertThrowsError(try OPTConfig.load(directory: "/nonexistent/model")) { e in
            XCTAssertEqual(e as? EngineError, .missingDirectory(path: "/nonexistent/model"))
        }
    }

    /// A checkpoint missing one tensor, or holding one of the wrong shape, names the tensor and file.
    func testMissingAndMisshapenTensorsAreNamed() throws {
        let source = ReferenceFixtures.model("pre-ln-f32")
        let checkpoint = try SafetensorsFile(path: source + "/model.safetensors")
        let victim = "model.decoder.layers.1.fc1.weight"
        XCTAssertNotNil(checkpoint.tensors[victim])

        func directory(with tensors: [(name: String, tensor: Tensor)]) throws -> String {
            let tmp = try temporaryDirectory()
            try FileManager.default.copyItem(atPath: source + "/config.json", toPath: tmp + "/config.json")
            try SafetensorsFile.write(path: tmp + "/model.safetensors", tensors: tensors)
            return tmp
        }
        let others = checkpoint.tensors.filter { $0.key != victim }.map { (name: $0.key, tensor: $0.value) }
        let missing = try directory(with: others)
        XCTAssertThrowsError(try OPTModel.load(directory: missing)) { e in
            XCTAssertEqual(e as? EngineError, .missingTensor(name: victim, file: missing))
            XCTAssertTrue("\(e)".contains(victim))
        }
        let wrong = Tensor.zeros([3, 5])
        let misshapen = try directory(with: others + [(name: victim, tensor: wrong)])
        XCTAssertThrowsError(try OPTModel.load(directory: misshapen)) { e in
            XCTAssertEqual(
                e as? EngineError,
                .shapeMismatch(
                    name: victim, file: misshapen + "/model.safetensors", expected: [64, 16], found: [3, 5]))
        }
        let empty = try temporaryDirectory()
        try FileManager.default.copyItem(atPath: source + "/config.json", toPath: empty + "/config.json")
        XCTAssertThrowsError(try OPTModel.load(directory: empty)) { e in
            XCTAssertTrue("\(e)".contains("model.safetensors"), "\(e)")
        }
    }

    private func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }
}
