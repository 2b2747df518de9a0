// BPE on long words. The merge loop used to rescan every adjacent pair after each merge — O(n²) in the
// word's length — so one 256 KiB "word" (a prompt of one letter repeated, or base64) held a CPU for
// minutes. Long words now merge through a priority queue; these tests hold it to the same result as the
// rescan and to a time bound the quadratic loop cannot meet.
import Foundation
import XCTest

@testable import OPTEngine

final class BPELongWordTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tokenizer").path

    /// A 200,000-letter word encodes in seconds (about 12 s in a debug build on a loaded machine; the rescan
    /// needed about n²/2 = 2·10¹⁰ pair visits and took more than 5 minutes).
    func testALongWordEncodesInSeconds() throws {
        let tokenizer = try BPETokenizer.load(directory: Self.fixtures)
        let word = String(repeating: "a", count: 200_000)
        let start = Date()
        let ids = tokenizer.encode(word, addBOS: false)
        let seconds = Date().timeIntervalSince(start)
        XCTAssertLessThan(seconds, 60, "encoding a 200,000-letter word took \(seconds) s")
        XCTAssertEqual(tokenizer.decode(ids), word)
    }

    /// The queue and the rescan merge every word to the same symbols, on random words over a small
    /// alphabet with random merges (many ties and chains, ids shared between strings).
    func testQueueAndRescanAgree() throws {
        var rng = SystemRandomNumberGenerator()
        for trial in 0..<200 {
            let letters = ["a", "b", "c", "d"]
            var vocab: [String: Int] = [:]
            for letter in letters { vocab[letter] = vocab.count }
            var merges: [(String, String)] = []
            var tokens = letters
            for _ in 0..<(4 + trial % 20) {
                let left = tokens.randomElement(using: &rng)!, right = tokens.randomElement(using: &rng)!
                merges.append((left, right))
                if vocab[left + right] == nil {
                    // Now and then a merged string shares an id with an existing token.
                    vocab[left + right] = Int.random(in: 0..<5, using: &rng) == 0 ? vocab[left]! : vocab.count
                    tokens.append(left + right)
                }
            }
            let table = try BPEMerges(merges: merges, vocab: vocab, source: "test")
            for _ in 0..<10 {
                let length = Int.random(in: 2..<300, using: &rng)
                let word = (0..<length).map { _ in Int32(vocab[letters.randomElement(using: &rng)!]!) }
                var byRescan = word, byQueue = word
                table.applyByRescan(&byRescan)
                table.applyByQueue(&byQueue)
                XCTAssertEqual(byQueue, byRescan, "trial \(trial): merges \(merges), word length \(length)")
            }
        }
    }
}
