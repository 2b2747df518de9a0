// Continuous batching (BatchDecoder) against each sequence run alone and against transformers: sequences
// join and leave a running batch between steps — greedy and seeded sampling, repetition penalty, stop
// strings, custom EOS, different lengths, with and without (mixed) projection deltas — and every one gets
// exactly the tokens it gets alone (Generator with a batch of one), and transformers' greedy tokens.
import Foundation
import XCTest
@testable import OPTEngine

final class ContinuousBatchTests: XCTestCase {
    /// f32 and both narrow dtypes (whose kernels change between one, two and more rows), pre- and post-LN.
    static let models = ["pre-ln-f32", "post-ln-f16", "pre-ln-bf16"]

    /// Runs `requests` through one decoder of `rows` rows: request i joins before step `joins[i]` (or as
    /// soon as a row is free after it); `cancelAt` takes a sequence out before that step. Returns each
    /// request's output, and the most rows a step had.
    static func runStaggered(
        _ model: OPTModel, _ tokenizer: BPETokenizer, _ requests: [DecodeRequest], joins: [Int],
        rows: Int, cancelAt: [Int: Int] = [:]
    ) throws -> (outputs: [GenerationOutput?], maxRows: Int) {
        let decoder = BatchDecoder(model: model, tokenizer: tokenizer, maxRows: rows)
        var outputs = [GenerationOutput?](repeating: nil, count: requests.count)
        var owner = [Int: Int]()  // slot → request
        var next = 0, step = 0
        while next < requests.count || decoder.hasWork {
            for (slot, i) in owner where cancelAt[i] == step {
                outputs[i] = decoder.remove(slot)
                owner[slot] = nil
            }
            while next < requests.count && joins[next] <= step && decoder.freeSlots > 0 {
                owner[try decoder.add(requests[next])] = next
                next += 1
            }
            for event in try decoder.step() where event.output != nil {
                if let i = owner.removeValue(forKey: event.slot) { outputs[i] = event.output }
            }
            step += 1
        }
        return (outputs, decoder.maxRowsInStep)
    }

    /// A mix of settings: greedy, seeded sampling (temperature, top-k, top-p), repetition penalty, a stop
    /// string, no EOS stop, different lengths (and one with max_new_tokens 0).
    static func mixedRequests(_ tokenizer: BPETokenizer, delta: (Int) -> ProjectionDelta? = { _ in nil })
        -> [DecodeRequest]
    {
        let prompts = [
            "Hello world", "The capital of France is", "Once upon a time, there was", "def add(a, b):",
            "Über café – naïve 😀", "a", "Paris is",
            String(repeating: "one two three four five six seven eight nine ten ", count: 5),
        ]
        let options = [
            GenerationOptions(maxNewTokens: 20),
            GenerationOptions(maxNewTokens: 7, doSample: true, temperature: 0.8, seed: 11),
            GenerationOptions(maxNewTokens: 25, doSample: true, topK: 40, topP: 0.9, seed: 12, stopAtEOS: false),
            GenerationOptions(maxNewTokens: 12, repetitionPenalty: 1.3),
            GenerationOptions(maxNewTokens: 15, doSample: true, temperature: 1.3, repetitionPenalty: 1.1, seed: 13),
            GenerationOptions(maxNewTokens: 5, stop: [" pet", "e"]),
            GenerationOptions(maxNewTokens: 0),
            GenerationOptions(maxNewTokens: 30, doSample: true, seed: 14, stopAtEOS: false),  // runs into the positions
        ]
        return zip(prompts, options).enumerated().map { i, po in
            DecodeRequest(promptIds: tokenizer.encode(po.0), options: po.1, delta: delta(i))
        }
    }

    func assertMatchesAlone(
        _ model: OPTModel, _ tokenizer: BPETokenizer, _ requests: [DecodeRequest],
        outputs: [GenerationOutput?], _ label: String
    ) throws {
        let generator = Generator(model: model, tokenizer: tokenizer)
        for (i, request) in requests.enumerated() {
            let alone = try generator.generate(
                promptIds: [request.promptIds], options: [request.options],
                delta: request.delta)[0]
            let got = try XCTUnwrap(outputs[i], "\(label) #\(i) produced nothing")
            XCTAssertEqual(got, alone, "\(label) #\(i)")
        }
    }

    func testJoiningAndLeavingGivesEachSequenceItsTokensAlone() throws {
        for dir in Self.models {
            let model = try ReferenceFixtures.loadModel(dir)
            let tokenizer = try BPETokenizer.load(directory: ReferenceFixtures.model(dir))
            let requests = Self.mixedRequests(tokenizer)
            // 3 rows for 8 sequences: they queue, join as rows free, and run beside ones at other lengths
            let staggered = try Self.runStaggered(
                model, tokenizer, requests, joins: [0, 0, 2, 3, 3, 9, 9, 10], rows: 3)
            XCTAssertEqual(staggered.maxRows, 3, dir)
            XCTAssertEqual(staggered.outputs[6]?.tokenIds, [], dir)
            let long = try XCTUnwrap(staggered.outputs[7])
            XCTAssertEqual(long.promptTokenCount + long.tokenIds.count, model.config.maxPositionEmbeddings, dir)
            XCTAssertEqual(staggered.outputs[5]?.finishReason, .stop, dir)
            try assertMatchesAlone(model, tokenizer, requests, outputs: staggered.outputs, "\(dir) staggered")
            // all at once in a wide batch
            let wide = try Self.runStaggered(model, tokenizer, requests, joins: requests.map { _ in 0 }, rows: 16)
            try assertMatchesAlone(model, tokenizer, requests, outputs: wide.outputs, "\(dir) wide")
        }
    }

    func testACancelledSequenceKeepsItsTokensSoFarAndOthersAreUnchanged() throws {
        let model = try ReferenceFixtures.loadModel("pre-ln-f32")
        let tokenizer = try BPETokenizer.load(directory: ReferenceFixtures.model("pre-ln-f32"))
        let requests = Self.mixedRequests(tokenizer)
        // Cancelled at step 8: the eight prompts were prefilled a chunk per step (sequence 2's in step 2), so it
        // has decoded some tokens but not all.
        let run = try Self.runStaggered(
            model, tokenizer, requests, joins: [0, 0, 0, 0, 0, 0, 0, 0], rows: 8,
            cancelAt: [2: 8])
        let cancelled = try XCTUnwrap(run.outputs[2])
        XCTAssertEqual(cancelled.finishReason, .cancelled)
        let alone = try Generator(model: model, tokenizer: tokenizer)
            .generate(promptIds: [requests[2].promptIds], options: [requests[2].options])[0]
        XCTAssertGreaterThan(cancelled.tokenIds.count, 0)
        XCTAssertLessThan(cancelled.tokenIds.count, alone.tokenIds.count)
        XCTAssertEqual(Array(alone.tokenIds.prefix(cancelled.tokenIds.count)), cancelled.tokenIds)
        var others = requests, outputs = run.outputs
        others.remove(at: 2); outputs.remove(at: 2)
        try assertMatchesAlone(model, tokenizer, others, outputs: outputs, "beside a cancelled sequence")
    }

    /// A long prompt joins a chunk per step: the sequences already decoding get a token every step meanwhile,
    /// and the newcomer's tokens are still those it gets alone.
    func testALongPromptJoinsAChunkPerStepWhileOthersDecode() throws {
        let model = try ReferenceFixtures.loadModel("pre-ln-f32")
        let tokenizer = try BPETokenizer.load(directory: ReferenceFixtures.model("pre-ln-f32"))
        let decoder = BatchDecoder(model: model, tokenizer: tokenizer, maxRows: 4, chunk: 8)
        let first = try decoder.add(
            DecodeRequest(promptIds: [2, 100, 200], options: GenerationOptions(maxNewTokens: 20, stopAtEOS: false)))
        _ = try decoder.step()
        let longPrompt = [2] + (0..<39).map { 300 + 7 * $0 }  // 40 tokens: 5 chunks of 8
        let options = GenerationOptions(maxNewTokens: 3, stopAtEOS: false)
        let second = try decoder.add(DecodeRequest(promptIds: longPrompt, options: options))
        var output: GenerationOutput?
        for step in 1...8 {
            let events = try decoder.step()
            XCTAssertTrue(events.contains { $0.slot == first && $0.token != nil }, "step \(step)")
            XCTAssertEqual(
                events.contains { $0.slot == second && $0.token != nil }, (5...7).contains(step), "step \(step)")
            output = output ?? events.first { $0.slot == second }?.output
        }
        let alone = try Generator(model: model, tokenizer: tokenizer).generate(
            promptIds: [longPrompt], options: [options])[0]
        XCTAssertEqual(output?.tokenIds, alone.tokenIds)
    }

    func testMixedDeltasInOneBatchMatchEachAlone() throws {
        for dir in ["pre-ln-f32", "post-ln-f16"] {
            let model = try ReferenceFixtures.loadModel(dir)
            let tokenizer = try BPETokenizer.load(directory: ReferenceFixtures.model(dir))
            let a = ShiftDelta(scale: 0.5), b = ShiftDelta(scale: -0.8)
            let requests = Self.mixedRequests(tokenizer) { i in [a, nil, b, a, b, nil, a, b][i] }
            let run = try Self.runStaggered(model, tokenizer, requests, joins: [0, 1, 1, 2, 4, 4, 5, 6], rows: 5)
            try assertMatchesAlone(model, tokenizer, requests, outputs: run.outputs, "\(dir) mixed deltas")
            XCTAssertGreaterThan(a.calls, 0)
            // the deltas change the outputs (so routing them wrongly would show)
            let plain = try Generator(model: model, tokenizer: tokenizer)
                .generate(promptIds: [requests[0].promptIds], options: [requests[0].options])[0]
            XCTAssertNotEqual(plain.tokenIds, run.outputs[0]?.tokenIds, dir)
        }
    }

    func testGreedyOutputsEqualTransformersInAContinuousBatch() throws {
        for (dir, variant) in ReferenceModelTests.variants {
            let model = try ReferenceFixtures.loadModel(dir)
            let tokenizer = try BPETokenizer.load(directory: ReferenceFixtures.model(dir))
            let doc = try XCTUnwrap(
                try ReferenceFixtures.json(ReferenceFixtures.expected(variant, "greedy.json")) as? [String: Any])
            var requests: [DecodeRequest] = [],
                expected: [(ids: [Int], text: String?, finish: String?, name: String)] = []
            for p in try XCTUnwrap(doc["prompts"] as? [[String: Any]]) {
                let ids = try XCTUnwrap(p["input_ids"] as? [Int])
                for (name, c) in try XCTUnwrap(p["cases"] as? [String: [String: Any]]).sorted(by: { $0.key < $1.key }) {
                    let options = GenerationOptions(
                        maxNewTokens: try XCTUnwrap(c["max_new_tokens"] as? Int),
                        repetitionPenalty: Float(try XCTUnwrap(c["repetition_penalty"] as? Double)),
                        eosTokenId: c["eos_token_id"] as? Int)
                    requests.append(DecodeRequest(promptIds: ids, options: options))
                    expected.append(
                        (
                            try XCTUnwrap(c["generated_ids"] as? [Int]), c["text"] as? String,
                            c["finish_reason"] as? String, "\(p["prompt"] ?? "") \(name)"
                        ))
                }
            }
            let joins = requests.indices.map { $0 % 7 }
            let run = try Self.runStaggered(model, tokenizer, requests, joins: joins, rows: 6)
            XCTAssertEqual(run.maxRows, 6, dir)
            for (out, e) in zip(run.outputs, expected) {
                let out = try XCTUnwrap(out)
                XCTAssertEqual(out.tokenIds, e.ids, "\(dir) \(e.name)")
                XCTAssertEqual(out.finishReason.rawValue, e.finish, "\(dir) \(e.name)")
                if let text = e.text, !e.name.hasSuffix("batched") {
                    XCTAssertEqual(out.text, text, "\(dir) \(e.name)")
                }
            }
        }
    }
}

/// A stand-in adapter: adds scale · inp[m, n mod K] to out[m, n] — the same for every row, so it does not
/// care how the rows are grouped, but changes the model's outputs.
final class ShiftDelta: ProjectionDelta {
    let scale: Float
    private(set) var calls = 0

    init(scale: Float) { self.scale = scale }

    func addDelta(
        layer: Int, module: ProjectionModule, inp: UnsafePointer<Float>, inDim K: Int,
        out: UnsafeMutablePointer<Float>, outDim N: Int, batch B: Int, rowsPerSequence T: Int
    ) {
        calls += 1
        for m in 0..<(B * T) { for n in 0..<N { out[m * N + n] += scale * inp[m * K + n % K] } }
    }
}
