// The heap merge loop (BPEMerges.apply) against its reference (applyReference, the rescan) on the
// fixture tokenizer's real merges, for words far longer than any the golden cases hold; and a hostile
// prompt (one "word" of 256 KiB) that took minutes with the quadratic loop.
import Foundation
import XCTest

@testable import OPTEngine

final class BPEMergeTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tokenizer").path

    func loadMerges() throws -> (BPEMerges, [String: Int]) {
        let vocab = try TokenizerFiles.readVocab(path: Self.directory + "/vocab.json")
        let merges = try TokenizerFiles.readMerges(path: Self.directory + "/merges.txt")
        return (try BPEMerges(merges: merges, vocab: vocab, source: "merges.txt"), vocab)
    }

    /// The byte-level symbol ids of `bytes`, as BPETokenizer starts a word.
    func symbols(_ bytes: [UInt8], vocab: [String: Int]) -> [Int32] {
        bytes.compactMap { vocab[String(Character(ByteEncoder.byteToScalar[Int($0)]))].map { Int32($0) } }
    }

    func testHeapLoopEqualsTheReferenceOnLongAndRandomWords() throws {
        let (merges, vocab) = try loadMerges()
        var generator = SystemRandomNumberGenerator()
        // Alphabets that merge a lot (English letters, repeated runs) and bytes that merge little.
        let alphabets: [[UInt8]] = [
            Array("etaoinshrdlu".utf8), Array("ab".utf8), Array("a".utf8), Array("the quick brown fox".utf8),
            (0...255).map { UInt8($0) },
        ]
        var compared = 0
        for alphabet in alphabets {
            for length in [2, 3, 15, 16, 17, 18, 31, 64, 200, 1_000, 3_000] {
                let bytes = (0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] }
                let start = symbols(bytes, vocab: vocab)
                var fast = start, reference = start
                merges.apply(&fast)
                merges.applyReference(&reference)
                XCTAssertEqual(fast, reference, "word of \(length) bytes from \(alphabet.count) symbols")
                compared += 1
            }
        }
        XCTAssertEqual(compared, alphabets.count * 11)
    }

    func testAWordOfAQuarterMebibyteTokenizes() throws {
        let tokenizer = try BPETokenizer.load(directory: Self.directory)
        // 262,144 bytes without a space: one pre-token. With the rescan loop alone this took minutes.
        let long = String(repeating: "a", count: 1 << 18)
        let ids = tokenizer.encode(long, addBOS: false)
        XCTAssertEqual(tokenizer.decode(ids), long)
        // Fewer tokens than bytes: the merges ran (the fixture vocabulary merges runs of "a").
        XCTAssertLessThan(ids.count, long.utf8.count / 2)
    }
}
