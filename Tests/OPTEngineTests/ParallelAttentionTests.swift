// Prefill attention split over EngineThreads (issue 10.4): (sequence, head) pairs in parallel, queries in
// causal blocks. Held to the naive reference — several blocks per head, a left-padded row whose first
// queries see no real key — and to the same bits for any thread count. Decode (T = 1) splits its heads the
// same way: held to the naive reference, the gemv path, and the same bits for any split.
import CKernels
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

    /// The last of T tokens decoded one at a time over a cache of the first T − 1 (prefilled), with `threads`
    /// and a scores buffer of `scoreFloats`; `fast` picks muwa_attend_one or the gemv path.
    func decodeLast(
        threads: Int, scoreFloats: Int, fast: Bool, q: [Float], k: [Float], v: [Float], mask: [UInt8], B: Int,
        T: Int, NH: Int, hs: Int
    ) -> [Float] {
        EngineThreads.configure(threads)
        XCTAssertEqual(
            muwa_attend_one_select(fast ? 1 : 0), 1, "the caller asks for the fast kernel only where it runs")
        defer { _ = muwa_attend_one_select(-1) }
        let C = NH * hs
        var cacheK = [Float](repeating: 0, count: B * NH * T * hs), cacheV = cacheK
        var out = [Float](repeating: .nan, count: B * T * C), scores = [Float](repeating: 0, count: T * T)
        func rows(_ x: [Float], _ t0: Int, _ t1: Int) -> [Float] {
            var picked: [Float] = []
            for b in 0..<B { picked += x[(b * T + t0) * C..<(b * T + t1) * C] }
            return picked
        }
        attentionForward(
            out: &out, q: rows(q, 0, T - 1), k: rows(k, 0, T - 1), v: rows(v, 0, T - 1), cacheK: &cacheK,
            cacheV: &cacheV, keyMask: mask, scores: &scores,
            shape: AttentionShape(B: B, T: T - 1, NH: NH, hs: hs, past: 0, capacity: T))
        var last = [Float](repeating: .nan, count: B * C)
        var decodeScores = [Float](repeating: .nan, count: max(scoreFloats, T))  // 0: room for one part
        attentionForward(
            out: &last, q: rows(q, T - 1, T), k: rows(k, T - 1, T), v: rows(v, T - 1, T), cacheK: &cacheK,
            cacheV: &cacheV, keyMask: mask, scores: &decodeScores, scoreFloats: scoreFloats,
            shape: AttentionShape(B: B, T: 1, NH: NH, hs: hs, past: T - 1, capacity: T))
        return last
    }

    func testDecodeMatchesNaiveAndTheGemvPathForAnySplit() {
        let fastKernelRuns = muwa_attend_one_select(1) == 1
        _ = muwa_attend_one_select(-1)
        XCTAssertEqual(
            fastKernelRuns, KernelISA.current == "avx512", "muwa_attend_one runs exactly where AVX-512 is chosen")
        for (hs, T) in [(64, 37), (80, 8), (13, 5), (130, 21), (16, 1)] {
            let B = 3, NH = 5, C = NH * hs
            let q = randomFloats(B * T * C, seed: 11), k = randomFloats(B * T * C, seed: 12)
            let v = randomFloats(B * T * C, seed: 13, scale: 1)
            var mask = [UInt8](repeating: 1, count: B * T)
            for t in 0..<(T - 1) { mask[T + t] = 0 }  // row 1: only the new token is real
            for t in 0..<T where t % 3 == 1 { mask[2 * T + t] = 0 }  // row 2: holes
            var ref = [Float](repeating: 0, count: B * T * C)
            attentionNaive(out: &ref, q: q, k: k, v: v, keyMask: mask, B: B, T: T, NH: NH, hs: hs)
            var expected: [Float] = []
            for b in 0..<B {
                let last = (b * T + T - 1) * C
                expected += ref[last..<last + C]
            }
            let run = { (threads: Int, floats: Int, fast: Bool) in
                self.decodeLast(
                    threads: threads, scoreFloats: floats, fast: fast, q: q, k: k, v: v, mask: mask, B: B, T: T,
                    NH: NH, hs: hs)
            }
            // Every split of every path this CPU runs: muwa_attend_one (AVX-512 only) and the gemv path.
            for fast in fastKernelRuns ? [true, false] : [false] {
                let path = fast ? "muwa_attend_one" : "gemv path"
                let serial = run(1, T, fast)
                let diff = zip(serial, expected).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
                XCTAssertLessThan(diff, 1e-5, "\(path), hs \(hs) T \(T)")
                XCTAssertEqual(run(2, 8 * T, fast), serial, "\(path), two threads, hs \(hs)")
                XCTAssertEqual(run(5, 3 * T, fast), serial, "\(path), three parts of five threads, hs \(hs)")
                XCTAssertEqual(run(2, 0, fast), serial, "\(path), no room for a second part, hs \(hs)")
            }
        }
    }

    func testAttendOneMatchesItsReference() {
        guard muwa_attend_one_select(1) == 1 else { return }
        defer { _ = muwa_attend_one_select(-1) }
        for (L, hs) in [(1, 64), (2, 64), (7, 13), (33, 80), (100, 128), (5, 200)] {
            let q = randomFloats(hs, seed: 21), keys = randomFloats(L * hs, seed: 22)
            let values = randomFloats(L * hs, seed: 23, scale: 2)
            var mask = [UInt8](repeating: 1, count: L)
            if L > 2 { mask[1] = 0 }
            for masked in [false, true] {
                var out = [Float](repeating: .nan, count: hs + 16), ref = out
                var scores = [Float](repeating: 0, count: L), refScores = scores
                XCTAssertEqual(
                    muwa_attend_one(&out, q, keys, values, &scores, L, hs, masked ? mask : nil), 0)
                muwa_attend_one_reference(&ref, q, keys, values, &refScores, L, hs, masked ? mask : nil)
                for d in 0..<hs { XCTAssertEqual(out[d], ref[d], accuracy: 1e-5, "L \(L) hs \(hs) d \(d)") }
                XCTAssertTrue(out[hs...].allSatisfy { $0.isNaN }, "nothing written past out[hs - 1]")
                if masked && L > 2 { XCTAssertEqual(scores[1], 0, "a masked key has no weight") }
            }
        }
        // every key masked: uniform weights, as the reference
        var out = [Float](repeating: 0, count: 4), ref = out, scores = [Float](repeating: 0, count: 3)
        let values: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], none = [UInt8](repeating: 0, count: 3)
        XCTAssertEqual(muwa_attend_one(&out, [1, 1, 1, 1], values, values, &scores, 3, 4, none), 0)
        muwa_attend_one_reference(&ref, [1, 1, 1, 1], values, values, &scores, 3, 4, none)
        for (d, mean) in [Float(5), 6, 7, 8].enumerated() {  // the mean of the three value rows
            XCTAssertEqual(out[d], mean, accuracy: 1e-5)
            XCTAssertEqual(ref[d], mean, accuracy: 1e-5)
        }
    }
}
