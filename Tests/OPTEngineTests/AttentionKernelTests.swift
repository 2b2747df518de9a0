// kernels_attention.c: the small unpacked product (muwa_sgemm_nn) against its plain-loop reference, and the
// prefill attention blocks it serves against the sgemm path they replace — odd widths (masked columns), row
// counts that leave partial register tiles, strided operands, past tokens, and rows that see no real key.
import CKernels
import XCTest
@testable import OPTEngine

final class AttentionKernelTests: XCTestCase {
    func randomFloats(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) * scale }
    }

    /// One head's operands: q (T, hs; row stride C), keys and values (L, hs), a key mask with `leftPads` padded
    /// keys first, and the first real key.
    func head(T: Int, L: Int, C: Int, hs: Int, leftPads: Int, seed: UInt64)
        -> (q: [Float], keys: [Float], values: [Float], mask: [UInt8], firstReal: Int)
    {
        var mask = [UInt8](repeating: 1, count: L)
        for j in 0..<leftPads { mask[j] = 0 }
        return (
            randomFloats(T * C, seed: seed, scale: 0.5), randomFloats(L * hs, seed: seed + 1, scale: 0.5),
            randomFloats(L * hs, seed: seed + 2), mask, mask.firstIndex(of: 1) ?? L
        )
    }

    func testSmallProductMatchesItsReference() {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        for isa in KernelISA.supported {
            KernelISA.select(isa)
            for (M, N, K) in [(1, 1, 1), (3, 15, 7), (4, 16, 64), (5, 17, 64), (8, 64, 33), (9, 65, 64), (7, 130, 5)] {
                let lda = K + 3, ldb = N + 5, ldc = N + 2
                let a = randomFloats(M * lda, seed: UInt64(M * 100 + K)), b = randomFloats(K * ldb, seed: UInt64(N))
                var fast = [Float](repeating: 7, count: M * ldc), reference = fast
                muwa_sgemm_nn(M, N, K, a, lda, b, ldb, &fast, ldc)
                muwa_sgemm_nn_reference(M, N, K, a, lda, b, ldb, &reference, ldc)
                for r in 0..<M {
                    for c in 0..<ldc {
                        let i = r * ldc + c
                        if c >= N {
                            XCTAssertEqual(fast[i], 7, "\(isa) M \(M) N \(N) K \(K): column \(c) past N was written")
                        } else {
                            XCTAssertEqual(
                                fast[i], reference[i], accuracy: 1e-5 * Float(K), "\(isa) M \(M) N \(N) K \(K)")
                        }
                    }
                }
            }
        }
    }

    /// The kernel path of attendBlocks (avx512 table) against its sgemm path (scalar table), on one head.
    func testAttentionBlocksMatchTheSgemmPath() throws {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        try XCTSkipUnless(KernelISA.supported.contains("avx512"), "no AVX-512: the sgemm path is the only one")
        for (T, past, hs, mb, leftPads) in [
            (37, 0, 64, 8, 0), (20, 11, 24, 6, 0), (45, 0, 64, 8, 13), (5, 3, 16, 8, 0),
        ] {
            let L = past + T, C = 3 * hs
            let (q, keys, values, mask, firstReal) = head(T: T, L: L, C: C, hs: hs, leftPads: leftPads, seed: 1)
            var outputs: [[Float]] = []
            for isa in ["avx512", "scalar"] {
                KernelISA.select(isa)
                XCTAssertEqual(muwa_attention_fast(), isa == "avx512" ? 1 : 0)
                var out = [Float](repeating: .nan, count: T * C), scores = [Float](repeating: 0, count: mb * L)
                attendBlocks(
                    out: &out, q: q, keys: keys, values: values, scores: &scores, T: T, past: past, L: L, C: C, hs: hs,
                    mb: mb, firstReal: firstReal, keyMask: mask)
                outputs.append(out)
            }
            for t in 0..<T {
                for d in 0..<hs {
                    XCTAssertEqual(
                        outputs[0][t * C + d], outputs[1][t * C + d], accuracy: 1e-5, "T \(T) past \(past) t \(t)")
                }
                XCTAssertTrue(outputs[0][t * C + hs].isNaN, "a column past the head was written")
            }
        }
    }

    /// The bf16 blocks against plain loops on bf16-rounded operands (Q, K, V, and the probabilities before P · V):
    /// only the order of the f32 sums differs. Odd widths and head sizes pad a bf16 pair with 0.
    func testBF16AttentionBlocksMatchRoundedOperands() throws {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        try XCTSkipUnless(
            KernelISA.supported.contains("avx512") && muwa_cpu_has_bf16() != 0, "no avx512_bf16: no bf16 blocks")
        KernelISA.select("avx512")
        XCTAssertEqual(muwa_attention_bf16_fast(), 1)
        let amxOriginal = muwa_amx_enabled()
        defer { muwa_amx_select(amxOriginal) }
        // where AMX runs, head sizes that are multiples of 32 take the tile path (16-row blocks of its own):
        // both paths are held to the same loops
        for amx in muwa_amx_supported() != 0 ? [Int32(0), 1] : [0] {
            muwa_amx_select(amx)
            try checkBF16Blocks(amx: amx)
        }
    }

    func checkBF16Blocks(amx: Int32) throws {
        func r(_ x: Float) -> Float { bf16ToFloat(floatToBF16(x)) }
        for (T, past, hs, mb, leftPads) in [
            (37, 0, 64, 8, 0), (21, 10, 22, 6, 0), (45, 0, 64, 8, 13), (5, 2, 17, 8, 0), (70, 5, 32, 8, 0),
            (33, 0, 96, 8, 20), (16, 48, 64, 16, 0),
        ] {
            let L = past + T, C = 2 * hs
            let (q, keys, values, mask, firstReal) = head(T: T, L: L, C: C, hs: hs, leftPads: leftPads, seed: 4)
            var out = [Float](repeating: .nan, count: T * C), scores = [Float](repeating: 0, count: mb * L)
            XCTAssertEqual(
                muwa_attend_blocks_bf16(
                    &out, C, q, C, keys, values, &scores, T, past, L, hs, mb, firstReal, mask), 0)
            for t in 0..<T {
                // the block of t scores keys 0 ..< width, as the kernel does (softmax over the same row)
                let t1 = min(T, (t / mb + 1) * mb), width = firstReal > past + (t / mb) * mb ? L : past + t1
                var row = (0..<width).map { j in
                    (0..<hs).reduce(Float(0)) { $0 + r(q[t * C + $1]) * r(keys[j * hs + $1]) }
                }
                row.withUnsafeMutableBufferPointer { muwa_softmax_reference($0.baseAddress, width, past + t + 1, mask) }
                for d in 0..<hs {
                    let expected = (0..<width).reduce(Float(0)) { $0 + r(row[$1]) * r(values[$1 * hs + d]) }
                    // the tile unit sums the scores in another order, so a probability that lies within a few f32
                    // ulps of a bf16 rounding boundary may round the other way: one bf16 step (2⁻⁷ relative) of
                    // the largest term is allowed there, far below what a wrong tile layout gives
                    let oneStep = amx == 0 ? 0 : (0..<width).map { abs(r(row[$0]) * values[$0 * hs + d]) }.max() ?? 0
                    XCTAssertEqual(
                        out[t * C + d], expected, accuracy: 2e-5 + oneStep / 128,
                        "amx \(amx) T \(T) past \(past) hs \(hs) t \(t) d \(d)")
                }
                XCTAssertTrue(out[t * C + hs].isNaN, "a column past the head was written")
            }
        }
    }
}
