// adapter_config.json and adapter weight files as peft writes them, and as they go wrong: target
// selection (list with suffix match and layers_to_transform, regex, "all-linear", exclude_modules,
// rank/alpha patterns, rslora scale), unsupported options refused by their peft name, tensor names with
// and without the adapter-name segment, and shape / missing-tensor errors naming the file and tensor.
import Foundation
import XCTest
@testable import LoRAOps
import OPTEngine

final class AdapterConfigTests: XCTestCase {
    let pre = OPTConfig(vocabSize: 64, hiddenSize: 8, ffnDim: 16, numHiddenLayers: 3, numAttentionHeads: 2)
    let post = OPTConfig(
        vocabSize: 64, hiddenSize: 8, ffnDim: 16, numHiddenLayers: 2, numAttentionHeads: 2,
        wordEmbedProjDim: 4, doLayerNormBefore: false)

    func config(_ json: String) throws -> AdapterConfig {
        try AdapterConfig.parse(Data(json.utf8), path: "adapter_config.json")
    }

    func sites(_ c: AdapterConfig, _ model: OPTConfig) throws -> [String] {
        try c.targets(for: model).map { "\($0.layer).\($0.module.rawValue)" }
    }

    func testTargetSelectionAsPeft() throws {
        XCTAssertEqual(
            try sites(config(#"{"r": 4, "target_modules": ["q_proj", "v_proj"]}"#), pre),
            ["0.q_proj", "0.v_proj", "1.q_proj", "1.v_proj", "2.q_proj", "2.v_proj"])
        XCTAssertEqual(
            try sites(config(#"{"r": 4, "target_modules": ["self_attn.k_proj"], "layers_to_transform": 1}"#), pre),
            ["1.k_proj"])
        XCTAssertEqual(
            try sites(
                config(
                    #"{"r": 4, "target_modules": ["fc1"], "layers_to_transform": [0, 2], "layers_pattern": "layers"}"#),
                pre),
            ["0.fc1", "2.fc1"])
        XCTAssertEqual(
            try sites(config(#"{"r": 4, "target_modules": ".*layers\\.2\\..*(q_proj|fc2)"}"#), pre),
            ["2.q_proj", "2.fc2"])
        XCTAssertEqual(
            try sites(config(#"{"r": 4, "target_modules": "all-linear", "exclude_modules": ["fc1", "fc2"]}"#), pre)
                .count, 12)
        XCTAssertEqual(
            try sites(
                config(#"{"r": 4, "target_modules": ["out_proj"], "exclude_modules": ".*layers\\.0\\..*"}"#), pre),
            ["1.out_proj", "2.out_proj"])
        // a regex must match the whole name, as re.fullmatch does
        XCTAssertThrowsError(try sites(config(#"{"r": 4, "target_modules": "q_proj"}"#), pre)) { e in
            XCTAssertTrue("\(e)".contains("selects no projection"), "\(e)")
        }
    }

    func testRanksAlphasAndScales() throws {
        let c = try config(
            #"{"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "fc1"], "rank_pattern": {"fc1": 2}, "alpha_pattern": {"layers.1.self_attn.q_proj": 4}}"#
        )
        let t = try c.targets(for: pre)
        XCTAssertEqual(t.first { $0.layer == 0 && $0.module == .qProj }?.scale, 2)
        XCTAssertEqual(t.first { $0.layer == 1 && $0.module == .qProj }?.scale, 0.5)
        XCTAssertEqual(
            t.first { $0.layer == 0 && $0.module == .fc1 }.map { ($0.r, $0.scale) }.map { [Float($0.0), $0.1] },
            [2, 8])
        let rs = try config(#"{"r": 16, "lora_alpha": 8, "use_rslora": true, "target_modules": ["v_proj"]}"#)
        XCTAssertEqual(try rs.targets(for: pre)[0].scale, 2)
        let layout = LoRALayout(targets: t, model: pre)
        XCTAssertEqual(layout.count, 3 * (8 * 8 + 8 * 8) + 3 * (2 * 8 + 16 * 2))
    }

    func testUnsupportedOptionsAreRefusedByName() throws {
        for (key, value) in [
            ("use_dora", "true"), ("modules_to_save", #"["lm_head"]"#), ("lora_bias", "true"),
            ("target_parameters", #"["w"]"#), ("trainable_token_indices", "[1, 2]"),
            ("layer_replication", "[[0, 2]]"),
        ] {
            XCTAssertThrowsError(try config(#"{"r": 4, "target_modules": ["q_proj"], "\#(key)": \#(value)}"#)) { e in
                XCTAssertTrue("\(e)".contains("'\(key)'"), "\(key): \(e)")
            }
        }
        XCTAssertThrowsError(try config(#"{"peft_type": "IA3", "r": 4, "target_modules": ["q_proj"]}"#)) { e in
            XCTAssertTrue("\(e)".contains("peft_type"), "\(e)")
        }
        XCTAssertThrowsError(try sites(config(#"{"r": 4, "target_modules": ["q_proj", "lm_head"]}"#), pre)) { e in
            XCTAssertTrue("\(e)".contains("lm_head"), "\(e)")
        }
        XCTAssertThrowsError(try sites(config(#"{"r": 4, "target_modules": "all-linear"}"#), post)) { e in
            XCTAssertTrue("\(e)".contains("project_in"), "\(e)")
        }
        XCTAssertThrowsError(try config(#"{"r": 0, "target_modules": ["q_proj"]}"#)) { e in
            XCTAssertTrue("\(e)".contains("'r'"), "\(e)")
        }
        XCTAssertThrowsError(try config(#"{"r": 4}"#)) { e in XCTAssertTrue("\(e)".contains("target_modules"), "\(e)") }
        // accepted and inert for OPT's nn.Linear projections, as peft does
        XCTAssertTrue(
            try config(
                #"{"r": 4, "target_modules": ["q_proj"], "fan_in_fan_out": true, "use_dora": false, "modules_to_save": null}"#
            ).fanInFanOut)
    }

    func directory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-adapter-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func write(_ dir: String, config: String, tensors: [(String, [Int])]) throws {
        try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/adapter_config.json"))
        try SafetensorsFile.write(
            path: dir + "/adapter_model.safetensors",
            tensors: tensors.map { name, shape in
                (name, Tensor.f32((0..<shape.reduce(1, *)).map { Float($0) * 0.01 }, shape: shape))
            })
    }

    func testWeightFileNamesAndErrors() throws {
        let cfg = #"{"r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "layers_to_transform": [1]}"#
        let a = "model.decoder.layers.1.self_attn.q_proj.lora_A", b = "model.decoder.layers.1.self_attn.q_proj.lora_B"
        for (prefix, infix) in [("base_model.model.", ""), ("base_model.model.", ".default"), ("", ".my_adapter")] {
            let dir = try directory()
            try write(
                dir, config: cfg,
                tensors: [(prefix + a + infix + ".weight", [2, 8]), (prefix + b + infix + ".weight", [8, 2])])
            let adapter = try LoRAAdapter.load(directory: dir, model: pre)
            XCTAssertEqual(adapter.layout.slots.count, 1)
            XCTAssertEqual(adapter.weights.b(adapter.layout.slots[0])[3], 0.03)
        }
        var dir = try directory()
        try write(dir, config: cfg, tensors: [("base_model.model." + a + ".weight", [2, 8])])
        XCTAssertThrowsError(try LoRAAdapter.load(directory: dir, model: pre)) { e in
            XCTAssertTrue("\(e)".contains("lora_B") && "\(e)".contains("adapter_model.safetensors"), "\(e)")
        }
        dir = try directory()
        try write(
            dir, config: cfg,
            tensors: [("base_model.model." + a + ".weight", [3, 8]), ("base_model.model." + b + ".weight", [8, 2])])
        XCTAssertThrowsError(try LoRAAdapter.load(directory: dir, model: pre)) { e in
            XCTAssertTrue("\(e)".contains("[3, 8]") && "\(e)".contains("[2, 8]"), "\(e)")
        }
        dir = try directory()
        try write(
            dir, config: cfg,
            tensors: [
                ("base_model.model." + a + ".weight", [2, 8]), ("base_model.model." + b + ".weight", [8, 2]),
                ("base_model.model.model.decoder.layers.0.fc1.lora_A.weight", [2, 8]),
            ])
        XCTAssertThrowsError(try LoRAAdapter.load(directory: dir, model: pre)) { e in
            XCTAssertTrue("\(e)".contains("layers.0.fc1") && "\(e)".contains("does not select"), "\(e)")
        }
        dir = try directory()
        try Data(cfg.utf8).write(to: URL(fileURLWithPath: dir + "/adapter_config.json"))
        XCTAssertThrowsError(try LoRAAdapter.load(directory: dir, model: pre)) { e in
            XCTAssertTrue("\(e)".contains("adapter_model.safetensors or"), "\(e)")
        }
        XCTAssertThrowsError(try LoRAAdapter.load(directory: dir + "/nowhere", model: pre)) { e in
            XCTAssertEqual(e as? EngineError, .missingDirectory(path: dir + "/nowhere"))
        }
        XCTAssertThrowsError(try LoRAAdapter.load(directory: dir + "/adapter_config.json", model: pre)) { e in
            XCTAssertEqual("\(e)", "\(dir)/adapter_config.json is a file, expected a directory")
        }
        let empty = dir + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try LoRAAdapter.load(directory: empty, model: pre)) { e in
            XCTAssertEqual(e as? LoRAError, .missingFile(path: empty + "/adapter_config.json"))
        }
    }

    /// muwa's own save reads back to the same adapter (peft loading it is PeftRoundTripTests').
    func testSaveLoadRoundTrip() throws {
        let model = try LoRAFixtures.loadModel("post-ln-f32")
        let original = try LoRAAdapter.load(directory: LoRAFixtures.lora("adapters/post-ln-all"), model: model.config)
        let dir = try directory()
        try original.save(directory: dir)
        let again = try LoRAAdapter.load(directory: dir, model: model.config)
        XCTAssertEqual(again.layout, original.layout)
        XCTAssertEqual(again.weights.toArray(), original.weights.toArray())
        XCTAssertEqual(again.biases, original.biases)
        XCTAssertEqual(again.config.rankPattern, original.config.rankPattern)
        XCTAssertEqual(again.config.bias, .loraOnly)
    }
}
