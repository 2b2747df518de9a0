// SlotSession under continuous batching: a sequence prefilled into a slot and stepped
// gets the logits of a batch-mode session of its own; a step's rows get the same bits whatever else is in
// the pass (as long as the pass has more than one row, which keeps the projections on sgemm); slots hold
// only the memory of the sequences in them; and bad requests are refused without disturbing the batch.
import Foundation
import XCTest
@testable import OPTEngine

final class ContinuousBatchSessionTests: XCTestCase {
    func testSlotPrefillAndStepsEqualABatchOfOne() throws {
        for dir in ["pre-ln-f32", "post-ln-f32", "pre-ln-bf16"] {
            let model = try ReferenceFixtures.loadModel(dir)
            let V = model.config.vocabSize
            let ids = [2, 468, 2072, 7590, 21835, 18049, 629, 266], fed = [100, 200, 300, 400]
            let alone = BatchSession(model: model, batch: 1, capacity: 12)
            try alone.append(tokens: [ids])
            var expected = [Array(UnsafeBufferPointer(start: alone.lastLogits, count: V))]
            for id in fed {
                alone.stepTokens[0] = Int32(id)
                try alone.step()
                expected.append(Array(UnsafeBufferPointer(start: alone.lastLogits, count: V)))
            }
            // slot 2 of a 4-slot session, prefilled in chunks of 3, while slot 0 holds another sequence
            let slots = SlotSession(model: model, slots: 4, chunk: 3)
            try slots.openSlot(0, capacity: 20)
            try slots.prefill(slot: 0, tokens: [2, 5, 6, 7, 8, 9, 10])
            try slots.openSlot(2, capacity: 12)
            try slots.prefill(slot: 2, tokens: ids)
            var got = [Array(UnsafeBufferPointer(start: slots.lastLogits + 2 * V, count: V))]
            for id in fed {
                slots.stepTokens[2] = Int32(id)
                try slots.step(slots: [2])
                got.append(Array(UnsafeBufferPointer(start: slots.lastLogits + 2 * V, count: V)))
            }
            XCTAssertEqual(slots.length(ofSlot: 2), ids.count + fed.count)
            XCTAssertEqual(slots.length(ofSlot: 0), 7)
            for (g, e) in zip(got, expected) {
                let diff = zip(g, e).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(diff, 1e-4, "\(dir): chunked slot prefill vs one batch")
            }
        }
    }

    func testARowsBitsDoNotDependOnTheOtherRows() throws {
        let model = try ReferenceFixtures.loadModel("pre-ln-f32")
        let V = model.config.vocabSize
        let prompts = [
            [2, 31414, 232], [2, 133, 812, 9, 1470, 16], [2, 11475, 2115, 10, 86], [2, 1437, 7, 8, 9, 10, 11],
        ]
        /// Logits of sequence 0 over 6 steps, run beside prompts[1..<n] joining at different times.
        func logits(beside n: Int) throws -> [[Float]] {
            let s = SlotSession(model: model, slots: 4)
            var active: [Int] = []
            var out: [[Float]] = []
            for step in 0..<6 {
                if step < n {
                    try s.openSlot(step, capacity: 30)
                    try s.prefill(slot: step, tokens: prompts[step])
                    active.append(step)
                }
                for slot in active { s.stepTokens[slot] = Int32(1000 + 37 * step + slot) }
                try s.step(slots: active.reversed())
                out.append(Array(UnsafeBufferPointer(start: s.lastLogits, count: V)))
            }
            return out
        }
        // with two rows or more, sgemm computes each row the same way: identical bits
        let two = try logits(beside: 2), four = try logits(beside: 4)
        for step in 1..<6 { XCTAssertEqual(two[step], four[step], "step \(step)") }
        // alone (one row: sgemv) the sums run in another order: equal to the last bits only
        let one = try logits(beside: 1)
        for step in 0..<6 {
            let diff = zip(one[step], four[step]).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThan(diff, 1e-4, "step \(step)")
        }
    }

    /// The batch is capped where it is built: more rows than the row-invariant kernels take are not given.
    func testTheBatchNeverExceedsTheRowInvariantLimit() throws {
        let model = try ReferenceFixtures.loadModel("pre-ln-f32")
        let tokenizer = try BPETokenizer.load(directory: ReferenceFixtures.model("pre-ln-f32"))
        XCTAssertEqual(BatchDecoder(model: model, tokenizer: tokenizer, maxRows: 64).maxRows, rowInvariantMaxRows)
        XCTAssertEqual(BatchDecoder(model: model, tokenizer: tokenizer, maxRows: 0).maxRows, 1)
    }

    func testSlotsHoldOnlyTheirSequencesMemory() throws {
        let model = try ReferenceFixtures.loadModel("pre-ln-f32")
        let tokenizer = try BPETokenizer.load(directory: ReferenceFixtures.model("pre-ln-f32"))
        let decoder = BatchDecoder(model: model, tokenizer: tokenizer, maxRows: 4)
        XCTAssertEqual(decoder.cacheBytes, 0)
        let request = DecodeRequest(promptIds: [2, 3, 4], options: GenerationOptions(maxNewTokens: 5))
        let perToken = 2 * model.config.numHiddenLayers * model.config.hiddenSize * 4
        XCTAssertEqual(decoder.cacheBytes(for: request), 8 * perToken)
        let slot = try decoder.add(request)
        XCTAssertEqual(decoder.cacheBytes, 8 * perToken)
        _ = try decoder.add(DecodeRequest(promptIds: [2, 3], options: GenerationOptions(maxNewTokens: 200)))
        XCTAssertEqual(decoder.cacheBytes, (8 + model.config.maxPositionEmbeddings) * perToken)  // capped at positions
        XCTAssertNotNil(decoder.remove(slot))
        XCTAssertEqual(decoder.cacheBytes, model.config.maxPositionEmbeddings * perToken)
        while decoder.hasWork { _ = try decoder.step() }
        XCTAssertEqual(decoder.cacheBytes, 0)
        XCTAssertEqual(decoder.activeCount, 0)
    }

    func testBadRequestsAreRefusedAndLeaveTheBatchAlone() throws {
        let model = try ReferenceFixtures.loadModel("pre-ln-f32")
        let tokenizer = try BPETokenizer.load(directory: ReferenceFixtures.model("pre-ln-f32"))
        let decoder = BatchDecoder(model: model, tokenizer: tokenizer, maxRows: 2)
        let positions = model.config.maxPositionEmbeddings
        let good = DecodeRequest(promptIds: [2, 31414, 232], options: GenerationOptions(maxNewTokens: 4))
        _ = try decoder.add(good)
        func refused(_ r: DecodeRequest, _ words: String) {
            XCTAssertThrowsError(try decoder.add(r)) { e in XCTAssertTrue("\(e)".contains(words), "\(e)") }
        }
        refused(DecodeRequest(promptIds: [Int](repeating: 5, count: positions + 1)), "positions")
        refused(DecodeRequest(promptIds: []), "no tokens")
        refused(DecodeRequest(promptIds: [2, 999_999]), "vocabulary")
        refused(DecodeRequest(promptIds: [2], options: GenerationOptions(topP: 0)), "top_p")
        XCTAssertEqual(decoder.activeCount, 1)
        _ = try decoder.add(good)
        refused(good, "busy")
        var outputs: [GenerationOutput] = []
        while decoder.hasWork { outputs += try decoder.step().compactMap(\.output) }
        XCTAssertEqual(outputs.count, 2)
        XCTAssertEqual(outputs[0], outputs[1])
        // a prompt that fills every position still yields one token, as Generator does
        let full = DecodeRequest(
            promptIds: [Int](repeating: 5, count: positions), options: GenerationOptions(maxNewTokens: 9))
        _ = try decoder.add(full)
        let last = try decoder.step()
        XCTAssertEqual(last.first?.output?.tokenIds.count, 1)
        XCTAssertEqual(last.first?.output?.finishReason, .length)
    }
}
