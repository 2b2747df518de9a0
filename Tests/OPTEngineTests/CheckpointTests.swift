// CheckpointTests: the checkpoint readers against real Hugging Face fixtures written by PyTorch
// (Tests/Fixtures/models/*), and against hand-built broken files: every defect must surface as an
// EngineError that names the file (and tensor), never as a crash.
import Foundation
import XCTest

@testable import OPTEngine

final class CheckpointTests: XCTestCase {
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models")
    static let variants = [
        "pre-ln-f32", "pre-ln-f16", "pre-ln-bf16", "pre-ln-bin", "pre-ln-sharded", "post-ln-f32", "post-ln-f16",
        "post-ln-bin",
    ]

    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-checkpoint-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    func model(_ variant: String) throws -> CheckpointTensors {
        let dir = Self.models.appendingPathComponent(variant).path
        guard FileManager.default.fileExists(atPath: dir) else {
            XCTFail("fixture \(dir) is missing")
            throw EngineError.missingFile(path: dir)
        }
        return try CheckpointReader.load(directory: dir)
    }

    /// Names without the `model.` prefix transformers adds, so OPTModel and OPTForCausalLM saves compare.
    func bare(_ name: String) -> String { name.hasPrefix("model.") ? String(name.dropFirst(6)) : name }

    func path(_ name: String) -> String { scratch.appendingPathComponent(name).path }

    // MARK: - real checkpoints

    func testEveryVariantLoads() throws {
        let reference = try model("pre-ln-f32")
        for variant in Self.variants {
            let checkpoint = try model(variant)
            XCTAssertFalse(checkpoint.tensors.isEmpty, variant)
            XCTAssertEqual(Set(checkpoint.tensors.keys), Set(checkpoint.files.keys), variant)
            let expected: DType = variant.hasSuffix("bf16") ? .bf16 : variant.hasSuffix("f16") ? .f16 : .f32
            for (name, tensor) in checkpoint.tensors {
                XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint.files[name]!), name)
                XCTAssertEqual(tensor.dtype, expected, "\(variant) \(name)")
            }
            if variant.hasPrefix("pre-ln") {
                for (name, tensor) in reference.tensors {
                    let same = checkpoint.tensors.first { bare($0.key) == bare(name) }?.value
                    XCTAssertEqual(same?.shape, tensor.shape, "\(variant) \(name)")
                }
            }
        }
    }

    func testBinAndShardedHoldTheF32Values() throws {
        for (variant, reference) in [
            ("pre-ln-bin", "pre-ln-f32"), ("post-ln-bin", "post-ln-f32"), ("pre-ln-sharded", "pre-ln-f32"),
        ] {
            let expected = Dictionary(
                uniqueKeysWithValues: try model(reference).tensors.map { (bare($0.key), $0.value) })
            let found = Dictionary(uniqueKeysWithValues: try model(variant).tensors.map { (bare($0.key), $0.value) })
            for (name, want) in expected {
                let tensor = try XCTUnwrap(found[name], "\(variant) lacks \(name)")
                XCTAssertEqual(tensor.dtype, want.dtype, "\(variant) \(name)")
                XCTAssertEqual(tensor.shape, want.shape, "\(variant) \(name)")
                XCTAssertTrue(bytes(tensor) == bytes(want), "\(variant) \(name): values differ")
            }
            // A torch.save of the whole state dict also holds the tied lm_head: the embedding again.
            for name in Set(found.keys).subtracting(expected.keys) {
                XCTAssertEqual(name, "lm_head.weight", "\(variant) has an unexpected tensor")
                let embedding = try XCTUnwrap(expected["decoder.embed_tokens.weight"])
                XCTAssertTrue(bytes(found[name]!) == bytes(embedding), "\(variant) \(name) is not the embedding")
            }
        }
        let sharded = try model("pre-ln-sharded")
        XCTAssertGreaterThan(Set(sharded.files.values).count, 1, "the sharded fixture should span several files")
    }

    func testNarrowVariantsAreTheF32ValuesRounded() throws {
        for (variant, reference) in [
            ("pre-ln-f16", "pre-ln-f32"), ("post-ln-f16", "post-ln-f32"), ("pre-ln-bf16", "pre-ln-f32"),
        ] {
            let expected = try model(reference).tensors
            for (name, tensor) in try model(variant).tensors {
                let exact = try XCTUnwrap(expected[name], "\(variant) \(name)").toFloatArray()
                let narrow = tensor.toFloatArray()
                XCTAssertEqual(narrow.count, exact.count)
                for (n, x) in zip(narrow, exact) {
                    // Half an ulp of the narrow type at the stored value.
                    let ulp = tensor.dtype == .f16 ? Float(Float16(n).ulp) : n.ulp * 65_536
                    guard abs(n - x) <= ulp / 2 else {
                        XCTFail("\(variant) \(name): \(n) is not \(x) rounded to \(tensor.dtype)")
                        break
                    }
                }
            }
        }
    }

    func testMappedTensorsAreNotCopied() throws {
        for variant in ["pre-ln-f32", "pre-ln-bin", "pre-ln-sharded"] {
            for (name, tensor) in try model(variant).tensors {
                XCTAssertNil(tensor.region.mutableBase, "\(variant) \(name) was copied to the heap")
                XCTAssertTrue(tensor.byteOffset >= 0 && tensor.byteOffset + tensor.byteCount <= tensor.region.count)
                XCTAssertEqual(UInt(bitPattern: tensor.raw) % 4, 0, "\(variant) \(name)")
            }
        }
    }

    // MARK: - writing safetensors

    func testWriterRoundTripsAPyTorchFile() throws {
        for variant in ["pre-ln-f32", "pre-ln-f16", "pre-ln-bf16"] {
            let source = Self.models.appendingPathComponent("\(variant)/model.safetensors").path
            let original = try SafetensorsFile(path: source)
            let copy = path("\(variant).safetensors")
            try SafetensorsFile.write(
                path: copy, tensors: original.tensors.map { ($0.key, $0.value) }, metadata: original.metadata)
            let reread = try SafetensorsFile(path: copy)
            XCTAssertEqual(reread.metadata, original.metadata)
            XCTAssertEqual(Set(reread.tensors.keys), Set(original.tensors.keys))
            for (name, tensor) in original.tensors {
                let back = try XCTUnwrap(reread.tensors[name])
                XCTAssertEqual(back.dtype, tensor.dtype, name)
                XCTAssertEqual(back.shape, tensor.shape, name)
                XCTAssertTrue(bytes(back) == bytes(tensor), name)
                XCTAssertNil(back.region.mutableBase, "\(name): written data should be aligned and mapped")
            }
            let headerLength = reread.region.base.loadUnaligned(as: UInt64.self)
            XCTAssertEqual(headerLength % 8, 0)
        }
    }

    func testWriterHandlesOddNamesEmptyTensorsAndEveryDType() throws {
        let i64 = ByteRegion(allocating: 16)
        i64.mutableBase!.storeBytes(of: Int64(-5), toByteOffset: 0, as: Int64.self)
        i64.mutableBase!.storeBytes(of: Int64(1 << 40), toByteOffset: 8, as: Int64.self)
        func half1() -> Tensor {
            let half = ByteRegion(allocating: 2)
            half.mutableBase!.storeBytes(of: floatToF16(1.5), as: UInt16.self)
            return Tensor(dtype: .f16, shape: [1, 1], region: half)
        }
        let tensors: [(name: String, tensor: Tensor)] = [
            ("a-half", half1()),  // 2 bytes: sorted by name alone, it would misalign what follows
            ("quote\"back\\slash\nnewline é", Tensor.f32([1, 2, 3], shape: [3])),
            ("empty", Tensor.zeros([0, 4])),
            ("ids", Tensor(dtype: .i64, shape: [2], region: i64)),
            ("scalar", Tensor.f32([7], shape: [])),
        ]
        let file = path("odd.safetensors")
        try SafetensorsFile.write(path: file, tensors: tensors, metadata: ["format": "pt", "note": "a \"b\""])
        let reread = try SafetensorsFile(path: file)
        XCTAssertEqual(reread.metadata, ["format": "pt", "note": "a \"b\""])
        for (name, tensor) in tensors {
            let back = try XCTUnwrap(reread.tensors[name], name)
            XCTAssertEqual(back.shape, tensor.shape, name)
            XCTAssertTrue(bytes(back) == bytes(tensor), name)
        }
        XCTAssertEqual(reread.tensors["ids"]!.element(1), Float(1 << 40))
        for (name, tensor) in reread.tensors {  // laid out by element size: nothing misaligned, nothing copied
            XCTAssertNil(tensor.region.mutableBase, name)
        }
        let duplicate: [(name: String, tensor: Tensor)] = [("a", .zeros([1])), ("b", .zeros([1])), ("a", half1())]
        assertEngineError(try SafetensorsFile.write(path: file, tensors: duplicate, metadata: nil), mentions: ["'a'"])
        XCTAssertEqual(try SafetensorsFile(path: file).tensors.count, tensors.count, "a failed write leaves the file")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter {
            $0.contains(".tmp-")
        }
        XCTAssertEqual(leftovers, [])
    }

    func testMisalignedSafetensorsDataIsCopied() throws {
        // Pad the header to 1 mod 4 bytes: the data then start at an odd file offset.
        var header = Array(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.utf8)
        while header.count % 4 != 1 { header.append(0x20) }
        let file = path("misaligned.safetensors")
        try write(lengthPrefixed(header + floatBytes([1.5, -2]), headerLength: header.count), to: file)
        let w = try XCTUnwrap(try SafetensorsFile(path: file).tensors["w"])
        XCTAssertNotNil(w.region.mutableBase)
        XCTAssertEqual(w.toFloatArray(), [1.5, -2])
    }

    // MARK: - broken safetensors

    func testBrokenSafetensorsThrowNamingFileAndTensor() throws {
        let good = #"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#
        let cases: [(name: String, header: String, tensor: String?)] = [
            ("invalid-json", #"{"w": {"dtype": "F32", "shape": [2,2], "data_offsets": [0,16]"#, nil),
            ("not-object", #"["w"]"#, nil),
            ("out-of-range", #"{"w":{"dtype":"F32","shape":[10,10],"data_offsets":[0,400]}}"#, "w"),
            ("into-header", #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[-8,8]}}"#, "w"),
            ("reversed", #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[16,0]}}"#, "w"),
            ("unknown-dtype", #"{"w":{"dtype":"XYZ","shape":[2,2],"data_offsets":[0,16]}}"#, "w"),
            ("f64", #"{"w":{"dtype":"F64","shape":[2,1],"data_offsets":[0,16]}}"#, "w"),
            ("size-mismatch", #"{"w":{"dtype":"F32","shape":[3,3],"data_offsets":[0,16]}}"#, "w"),
            ("negative-dim", #"{"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}}"#, "w"),
            ("huge-dims", #"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}}"#, "w"),
            ("string-dim", #"{"w":{"dtype":"F32","shape":["2",2],"data_offsets":[0,16]}}"#, "w"),
            ("no-offsets", #"{"w":{"dtype":"F32","shape":[2,2]}}"#, "w"),
            (
                "overlap",
                #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
                    + #""v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                "v"
            ),
            ("bad-metadata", #"{"__metadata__":{"n":1},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#, nil),
        ]
        for (name, header, tensor) in cases {
            let file = path("\(name).safetensors")
            try write(
                lengthPrefixed(Array(header.utf8) + floatBytes([1, 2, 3, 4]), headerLength: header.utf8.count), to: file
            )
            assertEngineError(
                try SafetensorsFile(path: file), mentions: [file] + (tensor.map { ["'\($0)'"] } ?? []), name)
        }

        // The good header parses; then break it at the byte level.
        let goodBytes = lengthPrefixed(Array(good.utf8) + floatBytes([1, 2, 3, 4]), headerLength: good.utf8.count)
        try write(goodBytes, to: path("good.safetensors"))
        XCTAssertEqual(try SafetensorsFile(path: path("good.safetensors")).tensors["w"]?.toFloatArray(), [1, 2, 3, 4])
        var beyond = goodBytes
        withUnsafeBytes(of: UInt64(goodBytes.count).littleEndian) { beyond.replaceSubrange(0..<8, with: $0) }
        var huge = goodBytes
        withUnsafeBytes(of: UInt64.max.littleEndian) { huge.replaceSubrange(0..<8, with: $0) }
        let broken: [(String, [UInt8], String?)] = [
            ("truncated", Array(goodBytes.dropLast(5)), "w"), ("header-beyond-eof", beyond, nil),
            ("header-length-max", huge, nil), ("tiny", [1, 0, 0], nil), ("empty", [], nil),
        ]
        for (name, content, tensor) in broken {
            let file = path("\(name).safetensors")
            try write(content, to: file)
            assertEngineError(
                try SafetensorsFile(path: file), mentions: [file] + (tensor.map { ["'\($0)'"] } ?? []), name)
        }
    }

    func testTruncatedRealSafetensorsThrows() throws {
        let source = Self.models.appendingPathComponent("pre-ln-f32/model.safetensors")
        let content = [UInt8](try Data(contentsOf: source))
        let file = path("truncated-model.safetensors")
        try write(Array(content.prefix(content.count * 2 / 3)), to: file)
        assertEngineError(try SafetensorsFile(path: file), mentions: [file, "tensor '"])
        assertEngineError(try SafetensorsFile(path: path("nowhere.safetensors")), mentions: ["nowhere.safetensors"])
    }

    // MARK: - torch zip archives

    func testHandBuiltArchivesLoad() throws {
        // 2×3 floats in storage "0"; a transposed view of it; f16/bf16/i64 storages; a parameter wrapper.
        let values: [Float] = [0, 1, 2, 3, 4, 5]
        let pickle = PickleWriter.stateDict([
            .init(name: "w", storage: "FloatStorage", key: "0", numel: 6, offset: 0, size: [2, 3], stride: [3, 1]),
            .init(name: "wT", storage: "FloatStorage", key: "0", numel: 6, offset: 0, size: [3, 2], stride: [1, 3]),
            .init(name: "row1", storage: "FloatStorage", key: "0", numel: 6, offset: 3, size: [3], stride: [1]),
            .init(name: "h", storage: "HalfStorage", key: "1", numel: 2, offset: 0, size: [2], stride: [1]),
            .init(
                name: "b", storage: "BFloat16Storage", key: "2", numel: 2, offset: 0, size: [2], stride: [1],
                parameter: true),
            .init(name: "ids", storage: "LongStorage", key: "3", numel: 2, offset: 0, size: [2], stride: [1]),
            .init(name: "scalar", storage: "FloatStorage", key: "0", numel: 6, offset: 5, size: [], stride: []),
            .init(
                name: "empty", storage: "FloatStorage", key: "4", numel: 0, offset: 0, size: [0, 3], stride: [3, 1]),
        ])
        let half = [floatToF16(0.5), floatToF16(-1)].flatMap { le($0) }
        let brain = [floatToBF16(2), floatToBF16(-3)].flatMap { le($0) }
        let ids = [Int64(7), Int64(-1)].flatMap { le(UInt64(bitPattern: $0)) }
        for zip64 in [false, true] {
            for misaligned in [false, true] {  // misaligned: every data entry starts at an odd offset
                let file = path("ok-\(zip64)-\(misaligned).bin")
                try write(
                    ZipBuilder.build(
                        [
                            .init("archive/data.pkl", pickle), .init("archive/byteorder", Array("little".utf8)),
                            .init("archive/data/0", floatBytes(values), misaligned: misaligned),
                            .init("archive/data/1", half, misaligned: misaligned),
                            .init("archive/data/2", brain, misaligned: misaligned),
                            .init("archive/data/3", ids, misaligned: misaligned),
                            .init("archive/data/4", [], misaligned: misaligned),
                            .init("archive/version", Array("3\n".utf8)),
                        ], zip64: zip64), to: file)
                let tensors = try TorchZipFile(path: file).tensors
                XCTAssertEqual(tensors["w"]?.shape, [2, 3])
                XCTAssertEqual(tensors["w"]?.toFloatArray(), values)
                XCTAssertEqual(tensors["wT"]?.toFloatArray(), [0, 3, 1, 4, 2, 5])
                XCTAssertNotNil(tensors["wT"]?.region.mutableBase, "a transposed view must be copied")
                XCTAssertEqual(tensors["row1"]?.toFloatArray(), [3, 4, 5])
                XCTAssertEqual(tensors["h"]?.toFloatArray(), [0.5, -1])
                XCTAssertEqual(tensors["b"]?.toFloatArray(), [2, -3])
                XCTAssertEqual(tensors["ids"]?.toFloatArray(), [7, -1])
                XCTAssertEqual(tensors["scalar"]?.shape, [])
                XCTAssertEqual(tensors["scalar"]?.toFloatArray(), [5])
                XCTAssertEqual(tensors["empty"]?.shape, [0, 3])
                XCTAssertEqual(tensors["w"]?.region.mutableBase == nil, !misaligned, "only misaligned data is copied")
            }
        }
    }

    func testBrokenArchivesThrowNamingFileAndTensor() throws {
        let good = PickleWriter.stateDict([
            .init(name: "w", storage: "FloatStorage", key: "0", numel: 4, offset: 0, size: [2, 2], stride: [2, 1])
        ])
        let data = floatBytes([1, 2, 3, 4])
        func archive(_ pickle: [UInt8], _ entries: [ZipBuilder.Entry]? = nil) -> [UInt8] {
            ZipBuilder.build(
                entries ?? [.init("archive/data.pkl", pickle), .init("archive/data/0", data)], zip64: false)
        }
        func spec(
            _ storage: String = "FloatStorage", numel: Int = 4, offset: Int = 0, size: [Int] = [2, 2],
            stride: [Int] = [2, 1]
        ) -> [UInt8] {
            PickleWriter.stateDict([
                .init(name: "w", storage: storage, key: "0", numel: numel, offset: offset, size: size, stride: stride)
            ])
        }
        var osSystem = PickleWriter()
        osSystem.global("os", "system")
        osSystem.string("echo owned")
        osSystem.bytes += [0x85, 0x52, 0x2E]  // TUPLE1 REDUCE STOP
        var stackGlobal = PickleWriter(protocol: 4)
        stackGlobal.string("builtins")
        stackGlobal.string("eval")
        stackGlobal.bytes += [0x93, 0x2E]  // STACK_GLOBAL STOP
        // 200,000 nested tuples (refused) and lists (released without recursion): errors, not stack overflows.
        let deepTuples: [UInt8] =
            [0x80, 2] + Array(repeating: 0x28, count: 200_000) + Array(repeating: 0x74, count: 200_000) + [0x2E]
        let deepLists: [UInt8] =
            [0x80, 2] + Array(repeating: 0x28, count: 200_000) + Array(repeating: 0x6C, count: 200_000) + [0x2E]
        var callsStorage = PickleWriter()
        callsStorage.global("torch", "FloatStorage")
        callsStorage.bytes += [0x29, 0x52, 0x2E]  // EMPTY_TUPLE REDUCE STOP

        let cases: [(name: String, bytes: [UInt8], mentions: [String])] = [
            ("forbidden-global", archive(osSystem.bytes), ["os.system", "not allowed"]),
            ("forbidden-stack-global", archive(stackGlobal.bytes), ["builtins.eval", "not allowed"]),
            ("calls-storage-class", archive(callsStorage.bytes), ["FloatStorage"]),
            ("missing-data-entry", archive(good, [.init("archive/data.pkl", good)]), ["'w'", "archive/data/0"]),
            (
                "compressed-entry",
                archive(good, [.init("archive/data.pkl", good), .init("archive/data/0", data, method: 8)]),
                ["'w'", "compressed"]
            ),
            (
                "compressed-pickle",
                archive(good, [.init("archive/data.pkl", good, method: 8), .init("archive/data/0", data)]),
                ["compressed"]
            ),
            ("unsupported-storage", archive(spec("DoubleStorage")), ["'w'", "DoubleStorage"]),
            ("size-mismatch", archive(spec(size: [3, 3], stride: [3, 1])), ["'w'"]),
            ("offset-past-storage", archive(spec(offset: 2)), ["'w'"]),
            ("storage-larger-than-entry", archive(spec(numel: 8, size: [2, 4], stride: [4, 1])), ["'w'"]),
            ("negative-stride", archive(spec(stride: [-2, 1])), ["'w'"]),
            ("rank-mismatch", archive(spec(stride: [1])), ["'w'"]),
            ("bad-opcode", archive([0x80, 2, 0xFF, 0x2E]), ["opcode"]),
            ("deep-tuples", archive(deepTuples), ["nest"]),
            ("deep-lists", archive(deepLists), ["dict"]),
            ("no-stop", archive(Array(good.dropLast())), ["data.pkl"]),
            ("not-a-dict", archive([0x80, 2, 0x4B, 7, 0x2E]), ["dict"]),
            ("no-pickle", archive(good, [.init("archive/data/0", data)]), ["data.pkl"]),
            ("not-a-zip", Array(repeating: 0x41, count: 100), ["zip"]),
            ("empty", [], []),
        ]
        for (name, content, mentions) in cases {
            let file = path("\(name).bin")
            try write(content, to: file)
            assertEngineError(try TorchZipFile(path: file), mentions: [file] + mentions, name)
        }
    }

    func testTruncatedRealArchiveThrows() throws {
        for variant in ["pre-ln-bin", "post-ln-bin"] {
            let source = Self.models.appendingPathComponent("\(variant)/pytorch_model.bin")
            let content = [UInt8](try Data(contentsOf: source))
            for keep in [content.count / 2, content.count - 10] {
                let file = path("\(variant)-\(keep).bin")
                try write(Array(content.prefix(keep)), to: file)
                assertEngineError(try TorchZipFile(path: file), mentions: [file], variant)
            }
        }
    }

    // MARK: - directories

    func testDirectoryWithoutWeightsOrWithAMissingShard() throws {
        assertEngineError(
            try CheckpointReader.load(directory: scratch.path), mentions: ["model.safetensors", "pytorch_model.bin"])

        let sharded = Self.models.appendingPathComponent("pre-ln-sharded")
        let copy = scratch.appendingPathComponent("sharded")
        try FileManager.default.copyItem(at: sharded, to: copy)
        let shards = try FileManager.default.contentsOfDirectory(atPath: copy.path)
            .filter { $0.hasSuffix(".safetensors") || $0.hasSuffix(".bin") }.sorted()
        let victim = try XCTUnwrap(shards.last)
        try FileManager.default.removeItem(at: copy.appendingPathComponent(victim))
        XCTAssertThrowsError(try CheckpointReader.load(directory: copy.path)) { error in
            XCTAssertEqual(error as? EngineError, .missingFile(path: copy.appendingPathComponent(victim).path))
        }
    }

    // MARK: - helpers

    func assertEngineError<T>(
        _ body: @autoclosure () throws -> T, mentions: [String], _ label: String = "",
        file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            _ = try body()
            XCTFail("\(label): no error thrown", file: file, line: line)
        } catch let error as EngineError {
            for word in mentions where !error.description.contains(word) {
                XCTFail("\(label): \"\(error.description)\" does not mention \(word)", file: file, line: line)
            }
        } catch {
            XCTFail("\(label): \(error) is not an EngineError", file: file, line: line)
        }
    }

    func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func bytes(_ tensor: Tensor) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: tensor.raw, count: tensor.byteCount))
    }

    func floatBytes(_ values: [Float]) -> [UInt8] { values.flatMap { le($0.bitPattern) } }

    /// An 8-byte little-endian header length, then `body` (header and data).
    func lengthPrefixed(_ body: [UInt8], headerLength: Int) -> [UInt8] { le(UInt64(headerLength)) + body }
}

func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

/// Emits the pickle opcodes torch.save uses, for hand-built archives.
struct PickleWriter {
    var bytes: [UInt8]

    init(protocol version: UInt8 = 2) { bytes = [0x80, version] }

    mutating func global(_ module: String, _ name: String) { bytes += [0x63] + Array("\(module)\n\(name)\n".utf8) }
    mutating func string(_ s: String) { bytes += [0x58] + le(UInt32(s.utf8.count)) + Array(s.utf8) }
    mutating func int(_ i: Int) {
        // BININT / LONG1
        if let small = Int32(exactly: i) { bytes += [0x4A] + le(small) } else { bytes += [0x8A, 8] + le(Int64(i)) }
    }
    mutating func ints(_ values: [Int]) {
        bytes.append(0x28)  // MARK
        for v in values { int(v) }
        bytes.append(0x74)  // TUPLE
    }
    mutating func emptyOrderedDict() {
        global("collections", "OrderedDict")
        bytes += [0x29, 0x52]  // EMPTY_TUPLE REDUCE
    }

    struct TensorSpec {
        var name, storage, key: String
        var numel, offset: Int
        var size, stride: [Int]
        var parameter = false
    }

    /// `OrderedDict({name: _rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict())})`.
    static func stateDict(_ tensors: [TensorSpec]) -> [UInt8] {
        var w = PickleWriter()
        w.emptyOrderedDict()
        w.bytes.append(0x28)  // MARK
        for t in tensors {
            w.string(t.name)
            if t.parameter { w.global("torch._utils", "_rebuild_parameter") }
            w.global("torch._utils", "_rebuild_tensor_v2")
            w.bytes.append(0x28)  // MARK (arguments)
            w.bytes.append(0x28)  // MARK (persistent id)
            w.string("storage")
            w.global("torch", t.storage)
            w.string(t.key)
            w.string("cpu")
            w.int(t.numel)
            w.bytes += [0x74, 0x51]  // TUPLE BINPERSID
            w.int(t.offset)
            w.ints(t.size)
            w.ints(t.stride)
            w.bytes.append(0x89)  // NEWFALSE
            w.emptyOrderedDict()
            w.bytes += [0x74, 0x52]  // TUPLE REDUCE
            if t.parameter {
                w.bytes.append(0x88)  // NEWTRUE
                w.emptyOrderedDict()
                w.bytes += [0x87, 0x52]  // TUPLE3 REDUCE
            }
        }
        w.bytes += [0x75, 0x2E]  // SETITEMS STOP
        return w.bytes
    }
}

/// Writes a zip archive of STORED entries (or entries that claim another method), optionally with
/// ZIP64 records. Python's zipfile and torch.load read what it writes.
enum ZipBuilder {
    struct Entry {
        var name: String
        var data: [UInt8]
        var method: UInt16 = 0
        var misaligned = false
        init(_ name: String, _ data: [UInt8], method: UInt16 = 0, misaligned: Bool = false) {
            (self.name, self.data, self.method, self.misaligned) = (name, data, method, misaligned)
        }
    }

    /// Data start on a 64-byte boundary, as torch.save writes them (one byte later when `misaligned`).
    static func build(_ entries: [Entry], zip64: Bool) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for e in entries {
            let offset = out.count
            let name = Array(e.name.utf8)
            let crc = crc32(e.data)
            let size32 = zip64 ? UInt32.max : UInt32(e.data.count)
            var localExtra: [UInt8] = []
            if zip64 {
                localExtra += le(UInt16(1)) + le(UInt16(16)) + le(UInt64(e.data.count)) + le(UInt64(e.data.count))
            }
            let unpadded = offset + 30 + name.count + localExtra.count + 4
            let padding = (64 - unpadded % 64) % 64 + (e.misaligned ? 1 : 0)
            localExtra += le(UInt16(0x4246)) + le(UInt16(padding)) + Array(repeating: 0x5A, count: padding)
            out += le(UInt32(0x0403_4B50)) + le(UInt16(zip64 ? 45 : 20)) + le(UInt16(0)) + le(e.method)
            out +=
                le(UInt32(0)) + le(crc) + le(size32) + le(size32) + le(UInt16(name.count))
                + le(UInt16(localExtra.count))
            out += name + localExtra + e.data
            let centralExtra =
                zip64
                ? le(UInt16(1)) + le(UInt16(24)) + le(UInt64(e.data.count)) + le(UInt64(e.data.count))
                    + le(UInt64(offset)) : []
            central +=
                le(UInt32(0x0201_4B50)) + le(UInt16(45)) + le(UInt16(zip64 ? 45 : 20)) + le(UInt16(0)) + le(e.method)
            central +=
                le(UInt32(0)) + le(crc) + le(size32) + le(size32) + le(UInt16(name.count))
                + le(UInt16(centralExtra.count))
            central +=
                le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt32(0)) + le(zip64 ? UInt32.max : UInt32(offset))
            central += name + centralExtra
        }
        let directoryOffset = out.count
        out += central
        if zip64 {
            let record = out.count
            out +=
                le(UInt32(0x0606_4B50)) + le(UInt64(44)) + le(UInt16(45)) + le(UInt16(45)) + le(UInt32(0))
                + le(UInt32(0))
            out +=
                le(UInt64(entries.count)) + le(UInt64(entries.count)) + le(UInt64(central.count))
                + le(UInt64(directoryOffset))
            out += le(UInt32(0x0706_4B50)) + le(UInt32(0)) + le(UInt64(record)) + le(UInt32(1))
        }
        let count16 = zip64 ? UInt16.max : UInt16(entries.count)
        out += le(UInt32(0x0605_4B50)) + le(UInt16(0)) + le(UInt16(0)) + le(count16) + le(count16)
        out +=
            le(zip64 ? UInt32.max : UInt32(central.count)) + le(zip64 ? UInt32.max : UInt32(directoryOffset))
            + le(UInt16(0))
        return out
    }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
}
