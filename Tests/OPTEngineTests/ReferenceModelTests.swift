// The engine against transformers' OPTForCausalLM on the committed tiny checkpoints: logits of a
// left-padded batch at every position (≤ 1e-4), greedy continuations (alone, batched, with
// repetition penalty, with a custom EOS) identical, and scores equal.
import Foundation
import XCTest
@testable import OPTEngine

final class ReferenceModelTests: XCTestCase {
    /// (model directory, expected-output variant): bin and sharded checkpoints hold the f32 weights.
    static let variants: [(String, String)] = [
        ("pre-ln-f32", "pre-ln-f32"), ("pre-ln-bin", "pre-ln-f32"), ("pre-ln-sharded", "pre-ln-f32"),
        ("pre-ln-f16", "pre-ln-f16"), ("pre-ln-bf16", "pre-ln-bf16"),
        ("post-ln-f32", "post-ln-f32"), ("post-ln-bin", "post-ln-f32"), ("post-ln-f16", "post-ln-f16"),
    ]

    func testPaddedBatchLogitsMatchTransformers() throws {
        for (dir, variant) in Self.variants {
            let model = try ReferenceFixtures.loadModel(dir)
            let meta = try XCTUnwrap(
                try ReferenceFixtures.json(ReferenceFixtures.expected(variant, "logits.json")) as? [String: Any])
            let ids = try XCTUnwrap(meta["input_ids"] as? [[Int]])
            let mask = try XCTUnwrap(meta["attention_mask"] as? [[Int]])
            let expected = try SafetensorsFile(path: ReferenceFixtures.expected(variant, "logits.safetensors"))
            let ref = try XCTUnwrap(expected.tensors["logits"]).toFloatArray()
            let V = model.config.vocabSize, T = ids[0].count
            XCTAssertEqual(ref.count, ids.count * T * V)

            let session = BatchSession(model: model, batch: ids.count, capacity: T)
            var maxDiff: Float = 0
            try session.append(
                tokens: ids, mask: mask,
                logits: .all({ b, t, logits in
                    let base = (b * T + t) * V
                    for i in 0..<V { maxDiff = max(maxDiff, abs(logits[i] - ref[base + i])) }
                }))
            XCTAssertLessThanOrEqual(maxDiff, 1e-4, "\(dir): max |logit difference| \(maxDiff)")
        }
    }

    func testGreedyContinuationsMatchTransformers() throws {
        for (dir, variant) in Self.variants {
            let model = try ReferenceFixtures.loadModel(dir)
            let tokenizer = try BPETokenizer.load(directory: ReferenceFixtures.model(dir))
            let generator = Generator(model: model, tokenizer: tokenizer)
            let doc = try XCTUnwrap(
                try ReferenceFixtures.json(ReferenceFixtures.expected(variant, "greedy.json")) as? [String: Any])
            let prompts = try XCTUnwrap(doc["prompts"] as? [[String: Any]])
            var batchedPrompts: [[Int]] = [], batchedExpected: [[Int]] = []
            for p in prompts {
                let ids = try XCTUnwrap(p["input_ids"] as? [Int])
                XCTAssertEqual(tokenizer.encode(try XCTUnwrap(p["prompt"] as? String)), ids)
                let cases = try XCTUnwrap(p["cases"] as? [String: [String: Any]])
                for (name, c) in cases {
                    let expectedIds = try XCTUnwrap(c["generated_ids"] as? [Int])
                    if c["batched"] as? Bool == true {
                        batchedPrompts.append(ids); batchedExpected.append(expectedIds); continue
                    }
                    let options = GenerationOptions(
                        maxNewTokens: try XCTUnwrap(c["max_new_tokens"] as? Int),
                        repetitionPenalty: Float(try XCTUnwrap(c["repetition_penalty"] as? Double)),
                        eosTokenId: c["eos_token_id"] as? Int)
                    let out = try generator.generate(promptIds: [ids], options: [options])[0]
                    XCTAssertEqual(out.tokenIds, expectedIds, "\(dir) \(name) '\(p["prompt"] ?? "")'")
                    XCTAssertEqual(out.finishReason.rawValue, c["finish_reason"] as? String, "\(dir) \(name)")
                    XCTAssertEqual(out.text, c["text"] as? String, "\(dir) \(name)")
                }
            }
            let batched = try generator.generate(
                promptIds: batchedPrompts,
                options: batchedPrompts.map { _ in GenerationOptions(maxNewTokens: 12) })
            for (out, expected) in zip(batched, batchedExpected) {
                XCTAssertEqual(out.tokenIds, expected, "\(dir) batched")
            }
        }
    }

    func testScoresMatchTransformers() throws {
        for (dir, variant) in Self.variants {
            let scorer = Scorer(
                model: try ReferenceFixtures.loadModel(dir),
                tokenizer: try BPETokenizer.load(directory: ReferenceFixtures.model(dir)))
            let doc = try XCTUnwrap(
                try ReferenceFixtures.json(ReferenceFixtures.expected(variant, "score.json")) as? [String: Any])
            let texts = try XCTUnwrap(doc["texts"] as? [[String: Any]])
            let results = try scorer.score(texts: texts.map { $0["text"] as? String ?? "" })
            for (r, t) in zip(results, texts) {
                XCTAssertEqual(r.tokens, t["ids"] as? [Int])
                let expected = try XCTUnwrap(t["logprobs"] as? [Double])
                XCTAssertEqual(r.logprobs.count, expected.count)
                for (a, e) in zip(r.logprobs, expected) {
                    XCTAssertEqual(Double(a), e, accuracy: 1e-4 * max(1, abs(e)))
                }
                XCTAssertEqual(r.sumLogprob, try XCTUnwrap(t["sum_logprob"] as? Double), accuracy: 1e-3)
            }
        }
    }

    /// Cache consistency: a prompt fed in chunks, or as a prefill plus single steps, gives the logits
    /// of one full pass; and left padding does not change a sequence's logits.
    func testChunkedPrefillStepsAndPaddingAgree() throws {
        let model = try ReferenceFixtures.loadModel("post-ln-f32")
        let V = model.config.vocabSize
        let ids = [2, 468, 2072, 7590, 21835, 18049, 629, 266]
        var full = [[Float]](repeating: [], count: ids.count)
        let s1 = BatchSession(model: model, batch: 1, capacity: 8)
        try s1.append(
            tokens: [ids], logits: .all({ _, t, l in full[t] = Array(UnsafeBufferPointer(start: l, count: V)) }))

        let s2 = BatchSession(model: model, batch: 1, capacity: 8, chunk: 3)
        var chunked = [[Float]](repeating: [], count: ids.count)
        try s2.append(
            tokens: [ids], logits: .all({ _, t, l in chunked[t] = Array(UnsafeBufferPointer(start: l, count: V)) }))

        let s3 = BatchSession(model: model, batch: 1, capacity: 8)
        try s3.append(tokens: [Array(ids[0..<5])], logits: .none)
        var stepped: [[Float]] = []
        for id in ids[5...] {
            s3.stepTokens[0] = Int32(id)
            try s3.step()
            stepped.append(Array(UnsafeBufferPointer(start: s3.lastLogits, count: V)))
        }
        let s4 = BatchSession(model: model, batch: 2, capacity: 11)
        var padded = [[Float]](repeating: [], count: ids.count)
        try s4.append(
            tokens: [[1, 1, 1] + ids, ids + [2, 2, 2]],
            mask: [[0, 0, 0] + ids.map { _ in 1 }, ids.map { _ in 1 } + [1, 1, 1]],
            logits: .all({ b, t, l in
                if b == 0 && t >= 3 { padded[t - 3] = Array(UnsafeBufferPointer(start: l, count: V)) }
            }))

        func maxDiff(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }
        for t in 0..<ids.count {
            XCTAssertLessThan(maxDiff(full[t], chunked[t]), 1e-4, "chunked t=\(t)")
            XCTAssertLessThan(maxDiff(full[t], padded[t]), 1e-4, "padded t=\(t)")
        }
        // step k consumed token ids[5+k] and predicts the next: same as full[5+k]
        for (k, l) in stepped.enumerated() { XCTAssertLessThan(maxDiff(full[5 + k], l), 1e-4, "step \(k)") }
    }

    func testSessionRefusesTooManyTokensAndBadIds() throws {
        let model = try ReferenceFixtures.loadModel("pre-ln-f32")
        let s = BatchSession(model: model, batch: 1, capacity: 4)
        XCTAssertThrowsError(try s.append(tokens: [[2, 3, 4, 5, 6]])) { e in XCTAssertTrue("\(e)".contains("capacity"))
        }
        XCTAssertThrowsError(try s.append(tokens: [[2, 999_999]])) { e in XCTAssertTrue("\(e)".contains("vocabulary")) }
        XCTAssertThrowsError(try s.append(tokens: [[2, 3]], mask: [[1]])) { e in XCTAssertTrue("\(e)".contains("mask"))
        }
        XCTAssertEqual(s.past, 0, "a refused append leaves the session as it was")
        try s.append(tokens: [[2, 3]])
        s.stepTokens[0] = -1
        XCTAssertThrowsError(try s.step()) { e in XCTAssertTrue("\(e)".contains("vocabulary")) }
        XCTAssertEqual(s.past, 2)
        let g = Generator(
            model: model, tokenizer: try BPETokenizer.load(directory: ReferenceFixtures.model("pre-ln-f32")))
        let long = [Int](repeating: 5, count: model.config.maxPositionEmbeddings + 1)
        XCTAssertThrowsError(try g.generate(promptIds: [long], options: [GenerationOptions()])) { e in
            XCTAssertTrue("\(e)".contains("positions"))
        }
    }
}
