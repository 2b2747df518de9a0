// Samplers and logits processors: greedy argmax, seeded sampling repeatability, top-k/top-p support,
// and transformers' repetition-penalty rule.
import Foundation
import XCTest
@testable import OPTEngine

final class SamplerTests: XCTestCase {
    func testGreedyTakesFirstMaximum() {
        var logits: [Float] = [0.1, 3, -1, 3]
        var s = GreedySampler()
        XCTAssertEqual(s.sample(logits: &logits, count: 4), 1)
    }

    func testSameSeedSameDraws() {
        let base: [Float] = (0..<50).map { Float($0 % 7) * 0.3 }
        func draws(seed: UInt64) -> [Int] {
            var s = CategoricalSampler(temperature: 0.8, topK: 0, topP: 1, seed: seed, vocabularySize: 50)
            return (0..<40).map { _ in
                var l = base; return s.sample(logits: &l, count: 50)
            }
        }
        XCTAssertEqual(draws(seed: 7), draws(seed: 7))
        XCTAssertNotEqual(draws(seed: 7), draws(seed: 8))
    }

    func testTopKKeepsOnlyTheKBest() {
        let base: [Float] = [5, 4, 3, 2, 1, 0]
        var s = CategoricalSampler(temperature: 1, topK: 2, topP: 1, seed: 1, vocabularySize: 6)
        let seen = Set(
            (0..<300).map { _ in
                var l = base; return s.sample(logits: &l, count: 6)
            })
        XCTAssertEqual(seen, [0, 1])
    }

    func testTopPKeepsSmallestSetReachingP() {
        // probabilities ≈ [0.6, 0.3, 0.1]: top_p 0.8 keeps {0, 1}; 0.5 keeps {0}
        let base: [Float] = [log(0.6), log(0.3), log(0.1)]
        var s = CategoricalSampler(temperature: 1, topK: 0, topP: 0.8, seed: 3, vocabularySize: 3)
        XCTAssertEqual(
            Set(
                (0..<300).map { _ in
                    var l = base; return s.sample(logits: &l, count: 3)
                }), [0, 1])
        var t = CategoricalSampler(temperature: 1, topK: 0, topP: 0.5, seed: 3, vocabularySize: 3)
        XCTAssertEqual(
            Set(
                (0..<100).map { _ in
                    var l = base; return t.sample(logits: &l, count: 3)
                }), [0])
    }

    func testSamplingFollowsTheDistribution() {
        let base: [Float] = [log(0.7), log(0.2), log(0.1)]
        var s = CategoricalSampler(temperature: 1, topK: 0, topP: 1, seed: 11, vocabularySize: 3)
        var counts = [0, 0, 0]
        for _ in 0..<20000 { var l = base; counts[s.sample(logits: &l, count: 3)] += 1 }
        XCTAssertEqual(Double(counts[0]) / 20000, 0.7, accuracy: 0.02)
        XCTAssertEqual(Double(counts[2]) / 20000, 0.1, accuracy: 0.02)
    }

    func testRepetitionPenaltyDividesPositiveAndMultipliesNegative() {
        var p = RepetitionPenalty(penalty: 2, vocabularySize: 4)
        p.observe(0); p.observe(1); p.observe(1)
        var logits: [Float] = [4, -3, 1, 1]
        logits.withUnsafeMutableBufferPointer { p.apply($0.baseAddress!) }
        XCTAssertEqual(logits, [2, -6, 1, 1])
    }

    func testOptionsValidationNamesTheSetting() {
        XCTAssertThrowsError(try GenerationOptions(temperature: 0).validate()) { e in
            XCTAssertTrue("\(e)".contains("temperature"))
        }
        XCTAssertThrowsError(try GenerationOptions(topP: 1.5).validate()) { e in XCTAssertTrue("\(e)".contains("top_p"))
        }
        XCTAssertThrowsError(try GenerationOptions(maxNewTokens: -1).validate())
    }
}
