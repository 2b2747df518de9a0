// Prefill attention split over EngineThreads (issue 10.4): (sequence, head) pairs in parallel, queries in
// causal blocks. Held to the naive reference — several blocks per head, a left-padded row whose first
// queries see no real key — and to the same bits for any thread count.
import XCTest
@testable import OPTEngine

final class ParallelAttentionTests: XCTestCase {
    override func tearDown() {
        EngineThreads.configure(EngineThreads.available)
        super.tearDown()
    }

    func randomFloats(_ n: Int, seed: UInt64, scale: Float = 0.3) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<n).map { _ in (Float(rng.next() % 2001) / 1000 - 1) * scale }
    }

    /// One prefill of B × T tokens (every row starting at past 0) under `threads`.
    func prefill(threads: Int, q: [Float], k: [Float], v: [Float], mask: [UInt8], B: Int, T: Int, NH: Int, hs: Int)
        -> [Float]
    {
        EngineThreads.configure(threads)
        var cacheK = [Float](repeating: 0, count: B * NH * T * hs), cacheV = cacheK
        var out = [Float](repeating: .nan, count: B * T * NH * hs), scores = [Float](repeating: 0, count: T * T)
        attentionForward(
            out: &out, q: q, k: k, v: v, cacheK: &cacheK, cacheV: &cacheV, keyMask: mask, scores: &scores,
            shape: AttentionShape(B: B, T: T, NH: NH, hs: hs, past: 0, capacity: T))
        return out
    }

    func testPrefillMatchesNaiveAndIsTheSameForAnyThreadCount() {
        let B = 3, T = 150, NH = 4, hs = 64, C = NH * hs
        let q = randomFloats(B * T * C, seed: 1), k = randomFloats(B * T * C, seed: 2)
        let v = randomFloats(B * T * C, seed: 3, scale: 1)
        var mask = [UInt8](repeating: 1, count: B * T)
        for t in 0..<70 { mask[T + t] = 0 }  // row 1: 70 left pads, its first 70 queries see no key
        for t in 140..<T { mask[2 * T + t] = 0 }  // row 2: right padding
        var ref = [Float](repeating: 0, count: B * T * C)
        attentionNaive(out: &ref, q: q, k: k, v: v, keyMask: mask, B: B, T: T, NH: NH, hs: hs)
        let runs = [1, 2, 5].map { prefill(threads: $0, q: q, k: k, v: v, mask: mask, B: B, T: T, NH: NH, hs: hs) }
        let diff = zip(runs[0], ref).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
        XCTAssertLessThan(diff, 1e-5)
        XCTAssertEqual(runs[1], runs[0])
        XCTAssertEqual(runs[2], runs[0])
    }
}
