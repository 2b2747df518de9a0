// MemoryBudgetTests: parsing MUWA_MEMORY_LIMIT, detecting the default from cgroup and /proc/meminfo
// texts, and the refusals (issue 9, defect 2): a small checkpoint whose config asks for millions of
// positions (a 4 GiB scores buffer) is refused at load with an error naming the estimate and the
// limit, and a generation session over the budget is refused before it allocates.
import Foundation
import XCTest

@testable import OPTEngine

final class MemoryBudgetTests: XCTestCase {
    func testParsingSizes() throws {
        XCTAssertEqual(try MemoryBudget.parse("8GiB").bytes, 8 << 30)
        XCTAssertEqual(try MemoryBudget.parse("512MiB").bytes, 512 << 20)
        XCTAssertEqual(try MemoryBudget.parse("512M").bytes, 512 << 20)
        XCTAssertEqual(try MemoryBudget.parse(" 1073741824 ").bytes, 1 << 30)
        XCTAssertEqual(try MemoryBudget.parse("1.5G").bytes, 3 << 29)
        XCTAssertEqual(try MemoryBudget.parse("2 TiB").bytes, 2 << 40)
        XCTAssertEqual(try MemoryBudget.parse("max"), .unlimited)
        for bad in ["", "eight", "8 parsecs", "-1G", "99999999999999999999999", "1e9", "9000000000T"] {
            XCTAssertThrowsError(try MemoryBudget.parse(bad), bad) { error in
                XCTAssertTrue("\(error)".contains("MUWA_MEMORY_LIMIT"), "\(error)")
            }
        }
    }

    func testDetection() throws {
        let meminfo = "MemTotal:       25165824 kB\nMemFree:         1000 kB\n"
        XCTAssertEqual(MemoryBudget.parseMemTotal(meminfo), 24 << 30)
        // The setting wins over everything.
        var detected = try MemoryBudget.detect(setting: "1GiB", cgroupLimits: ["2147483648"], meminfo: meminfo)
        XCTAssertEqual(detected.budget.bytes, 1 << 30)
        XCTAssertEqual(detected.source, .setting)
        // The cgroup's memory.max (MemoryMax=) when below physical memory; the smallest on the path.
        detected = try MemoryBudget.detect(
            setting: nil, cgroupLimits: ["max\n", "4294967296\n", "8589934592"], meminfo: meminfo)
        XCTAssertEqual(detected.budget.bytes, 4 << 30)
        XCTAssertEqual(detected.source, .cgroup)
        // "max" everywhere (and v1's "no limit" value): physical memory.
        detected = try MemoryBudget.detect(setting: "", cgroupLimits: ["max", "9223372036854771712"], meminfo: meminfo)
        XCTAssertEqual(detected.budget.bytes, 24 << 30)
        XCTAssertEqual(detected.source, .physicalMemory)
        XCTAssertEqual(try MemoryBudget.detect(setting: nil, cgroupLimits: [], meminfo: nil).budget, .unlimited)
        XCTAssertThrowsError(try MemoryBudget.detect(setting: "lots", cgroupLimits: [], meminfo: meminfo))

        XCTAssertEqual(
            MemoryBudget.cgroupLimitPaths(procSelfCgroup: "0::/system.slice/muwad.service\n", cgroupRoot: "/cg"),
            ["/cg/system.slice/muwad.service/memory.max", "/cg/system.slice/memory.max", "/cg/memory.max"])
        XCTAssertEqual(
            MemoryBudget.cgroupLimitPaths(procSelfCgroup: "12:cpu:/x\n4:memory:/user/1\n", cgroupRoot: "/cg"),
            [
                "/cg/memory/user/1/memory.limit_in_bytes", "/cg/memory/user/memory.limit_in_bytes",
                "/cg/memory/memory.limit_in_bytes",
            ])
        XCTAssertEqual(MemoryBudget.cgroupLimitPaths(procSelfCgroup: "0::/../../etc\n"), [])
        // This process: whatever it finds, MUWA_MEMORY_LIMIT overrides it.
        XCTAssertEqual(
            try MemoryBudget.detectFromSystem(environment: ["MUWA_MEMORY_LIMIT": "3GiB"]).budget.bytes, 3 << 30)
        XCTAssertGreaterThan(try MemoryBudget.detectFromSystem(environment: [:]).budget.bytes, 1 << 20)
        #if os(Linux)
            // /proc files say size 0 in stat: read to their end, or physical memory would never be found
            let physical = try XCTUnwrap(MemoryBudget.physicalMemory(), "MemTotal of /proc/meminfo")
            XCTAssertGreaterThan(physical, 64 << 20)
            let system = try MemoryBudget.detectFromSystem(environment: [:])
            XCTAssertNotEqual(system.source, .none)
            XCTAssertLessThanOrEqual(system.budget.bytes, physical, "a cgroup limit or physical memory")
        #endif
    }

    /// A 32 MiB checkpoint whose config has max_position_embeddings 4,194,302: generating would
    /// allocate a 4 GiB scores buffer. Loading under a 1 GiB budget refuses it, naming the setting.
    func testHugePositionsAreRefusedAtLoad() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-budget-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let positions = 4_194_302, C = 4
        let config =
            #"{"model_type": "opt", "vocab_size": 8, "hidden_size": 4, "ffn_dim": 4, "num_hidden_layers": 1, "#
            + #""num_attention_heads": 1, "max_position_embeddings": \#(positions)}"#
        try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        func f16(_ shape: [Int]) -> Tensor {
            Tensor(dtype: .f16, shape: shape, region: ByteRegion(allocating: shape.reduce(1, *) * 2))
        }
        var tensors: [(name: String, tensor: Tensor)] = [
            ("model.decoder.embed_tokens.weight", f16([8, C])),
            ("model.decoder.embed_positions.weight", f16([positions + 2, C])),
            ("model.decoder.final_layer_norm.weight", f16([C])), ("model.decoder.final_layer_norm.bias", f16([C])),
        ]
        let p = "model.decoder.layers.0."
        for name in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "fc1", "fc2"] {
            tensors += [(p + name + ".weight", f16([C, C])), (p + name + ".bias", f16([C]))]
        }
        for name in ["self_attn_layer_norm", "final_layer_norm"] {
            tensors += [(p + name + ".weight", f16([C])), (p + name + ".bias", f16([C]))]
        }
        try SafetensorsFile.write(path: dir + "/model.safetensors", tensors: tensors)

        XCTAssertThrowsError(try OPTModel.load(directory: dir, memoryBudget: MemoryBudget(bytes: 1 << 30))) { error in
            guard case .overMemoryBudget(let what, let estimate, let limit)? = error as? EngineError else {
                return XCTFail("\(error)")
            }
            XCTAssertGreaterThanOrEqual(estimate, 4 << 30)
            XCTAssertEqual(limit, 1 << 30)
            let text = "\(error)"
            for word in [dir, "max_position_embeddings 4194302", "1.0 GiB", "MUWA_MEMORY_LIMIT"] {
                XCTAssertTrue(text.contains(word), "\(text) lacks \(word)")
            }
            XCTAssertTrue(what.contains("weights"), what)
        }
        // Without a budget it loads (nothing large is allocated at load).
        XCTAssertEqual(try OPTModel.load(directory: dir).config.maxPositionEmbeddings, positions)
    }

    func testSessionsOverTheBudgetAreRefused() throws {
        let directory = ReferenceFixtures.model("pre-ln-f32")
        let loaded = try OPTModel.load(directory: directory)
        let tight = try OPTModel(
            config: loaded.config, weights: loaded.weights, directory: directory,
            memoryBudget: MemoryBudget(bytes: loaded.weightBytes + 4096))
        let generator = Generator(model: tight, tokenizer: try BPETokenizer.load(directory: directory))
        XCTAssertThrowsError(
            try generator.generate(promptIds: [[2, 10, 11]], options: [GenerationOptions(maxNewTokens: 4)])
        ) {
            XCTAssertTrue("\($0)".contains("buffers"), "\($0)")
        }
        XCTAssertThrowsError(
            try Scorer(model: tight, tokenizer: generator.tokenizer).tokenLogprobs(sequences: [[2, 10, 11]]))
        // The estimate saturates instead of wrapping for absurd shapes.
        XCTAssertEqual(BatchSession.estimatedBytes(config: loaded.config, batch: 1 << 40, capacity: 1 << 40), .max)
        // And a roomy budget runs.
        let roomy = try OPTModel(
            config: loaded.config, weights: loaded.weights, memoryBudget: MemoryBudget(bytes: 1 << 30))
        XCTAssertEqual(
            try Generator(model: roomy, tokenizer: generator.tokenizer)
                .generate(promptIds: [[2, 10, 11]], options: [GenerationOptions(maxNewTokens: 2)]).count, 1)
    }
}
