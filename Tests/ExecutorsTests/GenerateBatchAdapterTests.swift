// Continuous batching with real peft adapters (Tests/Fixtures/lora/adapters): sequences with different
// adapters — and none — joining and leaving one BatchDecoder each get exactly the tokens they get alone
// (Generator with the adapter over a batch of one), greedy and seeded sampling. LoRAOps is reachable here,
// not from OPTEngineTests, which hold the same property with a stand-in delta.
import Foundation
import LoRAOps
import OPTEngine
import XCTest

enum GenerateFixtures {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func model(_ name: String) -> String { fixtures.appendingPathComponent("models/\(name)").path }
    static func adapter(_ name: String) -> String { fixtures.appendingPathComponent("lora/adapters/\(name)").path }

    private static var generators: [String: Generator] = [:]
    private static let lock = NSLock()

    /// Model and tokenizer of a fixture checkpoint, loaded once per process.
    static func generator(_ name: String) throws -> Generator {
        lock.lock()
        defer { lock.unlock() }
        if let g = generators[name] { return g }
        let g = Generator(
            model: try OPTModel.load(directory: model(name)), tokenizer: try BPETokenizer.load(directory: model(name)))
        generators[name] = g
        return g
    }

    static func delta(_ adapter: String, _ generator: Generator) throws -> AdapterBatch {
        let a = try LoRAAdapter.load(directory: self.adapter(adapter), model: generator.model.config)
        return try AdapterBatch(adapter: a, model: generator.model)
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-generate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

final class GenerateBatchAdapterTests: XCTestCase {
    func testMixedAdaptersJoiningAndLeavingMatchEachAlone() throws {
        for (modelName, adapters) in [
            ("pre-ln-f32", ["pre-ln-qv", "pre-ln-all-bin"]), ("post-ln-f32", ["post-ln-qv", "post-ln-all"]),
        ] {
            let g = try GenerateFixtures.generator(modelName)
            let deltas: [ProjectionDelta?] = [
                try GenerateFixtures.delta(adapters[0], g), nil,
                try GenerateFixtures.delta(adapters[1], g),
            ]
            let prompts = [
                "Hello world", "The capital of France is", "Once upon a time, there was", "def add(a, b):",
                "Paris", "One two three",
            ]
            let options = [
                GenerationOptions(maxNewTokens: 14),
                GenerationOptions(maxNewTokens: 9, doSample: true, temperature: 0.9, topK: 50, seed: 3),
                GenerationOptions(maxNewTokens: 20, doSample: true, topP: 0.8, seed: 4, stopAtEOS: false),
                GenerationOptions(maxNewTokens: 6, repetitionPenalty: 1.2),
            ]
            var requests: [DecodeRequest] = []
            for (i, prompt) in prompts.enumerated() {
                for (j, delta) in deltas.enumerated() {
                    requests.append(
                        DecodeRequest(
                            promptIds: g.tokenizer.encode(prompt),
                            options: options[(i + j) % options.count], delta: delta))
                }
            }
            // 5 rows for 18 sequences, joining over the first steps
            let decoder = BatchDecoder(model: g.model, tokenizer: g.tokenizer, maxRows: 5)
            var outputs = [GenerationOutput?](repeating: nil, count: requests.count)
            var owner: [Int: Int] = [:], next = 0, step = 0
            while next < requests.count || decoder.hasWork {
                while next < requests.count && next <= 2 * step && decoder.freeSlots > 0 {
                    owner[try decoder.add(requests[next])] = next
                    next += 1
                }
                for event in try decoder.step() where event.output != nil {
                    if let i = owner.removeValue(forKey: event.slot) { outputs[i] = event.output }
                }
                step += 1
            }
            XCTAssertEqual(decoder.maxRowsInStep, 5)
            var differs = 0
            for (i, request) in requests.enumerated() {
                let alone = try g.generate(
                    promptIds: [request.promptIds], options: [request.options], delta: request.delta)[0]
                XCTAssertEqual(outputs[i], alone, "\(modelName) #\(i)")
                if request.delta != nil {
                    let base = try g.generate(promptIds: [request.promptIds], options: [request.options])[0]
                    if base.tokenIds != alone.tokenIds { differs += 1 }
                }
            }
            XCTAssertGreaterThan(differs, 0, "\(modelName): the adapters should change some outputs")
        }
    }
}
