// The bf16 GEMM (kernels_bf16_gemm.c, Ops/MatmulBF16.swift) against its references: the AVX-512 BF16
// micro-kernel against the portable one (same packing, plain loops) on shapes that are not multiples of any
// block (MR 12, NR 32, KC 512, NC 256; with AMX 32-row tiles and 32-element reduction blocks), both weight
// layouts, overwrite and accumulate, on every GEMM path the CPU has (vdpbf16ps, f32 FMAs on the same operands,
// and AMX where present); `matmul` and
// `linearBackwardInput` on weights prepared for bf16 against Double-accumulated references.
//
// Tolerances. Fast vs reference: both sum the same exact bf16 products (8-bit × 8-bit significands fit in
// f32) in the same order, so they differ only where a CPU's vdpbf16ps rounds differently inside a pair (AMD
// and Intel are allowed to); bound 1e-5 · Σ|a·b|. The FMA kernel adds the same exact products in the same
// order with one rounding each, as the reference's plain loops do: equal to the bit. Against the Double reference on the same bf16-rounded
// inputs: f32 accumulation over K terms, bound 1e-5 · Σ|a·b| for these K. Against exact f32 math: each input
// and weight is rounded to bf16 (relative error ≤ 2⁻⁹ each), so each product is off by ≤ 2⁻⁸ relative; bound
// 2⁻⁸ · Σ|a·b| (the errors are random and the observed maximum is far below).
import CKernels
import XCTest
@testable import OPTEngine

/// Runs `body` once per bf16 GEMM path this CPU has: "amx" where AMX runs, and without it "dpbf16"
/// (vdpbf16ps) and "fma" (f32 FMAs on the same packed operands); restores the process's choice after.
func forEachBF16GemmPath(_ body: (String) throws -> Void) rethrows {
    let original = muwa_bf16_gemm_fma_enabled()
    defer { muwa_bf16_gemm_fma_select(original) }
    try forEachGemmPath { amx in
        if amx != 0 { return try body("amx") }
        for fma: Int32 in [0, 1] where muwa_bf16_gemm_fma_select(fma) != 0 { try body(fma != 0 ? "fma" : "dpbf16") }
    }
}

final class BF16GemmTests: XCTestCase {
    func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) }
    }

    func bf16Bits(_ values: [Float]) -> [UInt16] { values.map(floatToBF16) }

    /// A weight as the bf16 preparation leaves it: BF16 [N, K], computesInBF16.
    func preparedWeight(_ values: [Float], N: Int, K: Int) throws -> Tensor {
        try Tensor.f32(values, shape: [N, K]).preparedForBF16()
    }

    /// Σ_r |A[m, r] · B[r, p]| for every output: the scale rounding errors are measured against.
    func magnitudes(a: [Float], b: (Int, Int) -> Float, M: Int, R: Int, P: Int) -> [Float] {
        var out = [Float](repeating: 0, count: M * P)
        for m in 0..<M { for p in 0..<P { for r in 0..<R { out[m * P + p] += abs(a[m * R + r] * b(r, p)) } } }
        return out
    }

    func testFastKernelMatchesReferenceOnOddShapes() throws {
        try XCTSkipUnless(EngineOptions.cpuHasBF16, "no avx512_bf16 on this CPU: only the reference runs")
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        XCTAssertTrue(KernelISA.select("avx512"))
        XCTAssertEqual(muwa_gemm_bf16_fast(), 1)
        try forEachBF16GemmPath { path in
            for (M, R, P) in [
                (1, 1, 1), (13, 3, 33), (37, 515, 83), (25, 1100, 70), (12, 64, 32), (30, 40, 300), (70, 33, 65),
            ] {
                for layout in [MUWA_GEMM_B_NK, MUWA_GEMM_B_KN] {
                    for accumulate: Int32 in [0, 1] {
                        let x = randomFloats(M * R, seed: UInt64(M * R)), w = randomFloats(R * P, seed: 7)
                        var a = [UInt16](repeating: 1, count: muwa_gemm_bf16_packed_a_count(M, R))
                        let tiles = (M + muwa_gemm_bf16_row_block() - 1) / muwa_gemm_bf16_row_block()
                        muwa_gemm_bf16_pack_a(x, M, R, R, &a, 0, tiles / 2)  // in two parts, as two threads would
                        muwa_gemm_bf16_pack_a(x, M, R, R, &a, tiles / 2, tiles)
                        let wb = bf16Bits(w)
                        let start = randomFloats(M * P, seed: 9)
                        var fast = start, ref = start
                        // Two column ranges at a panel boundary, as two threads would split them.
                        let split = min(P, 32)
                        for (p0, p1) in [(0, split), (split, P)] {
                            muwa_gemm_bf16(layout, a, M, wb, R, P, &fast, P, p0, p1, accumulate)
                            muwa_gemm_bf16_reference(layout, a, M, wb, R, P, &ref, P, p0, p1, accumulate)
                        }
                        let wAt: (Int, Int) -> Float =
                            layout == MUWA_GEMM_B_NK
                            ? { r, p in bf16ToFloat(wb[p * R + r]) } : { r, p in bf16ToFloat(wb[r * P + p]) }
                        let ax = x.map { bf16ToFloat(floatToBF16($0)) }
                        let scale = magnitudes(a: ax, b: wAt, M: M, R: R, P: P)
                        for i in 0..<(M * P) {
                            if path == "fma" {
                                XCTAssertEqual(
                                    fast[i].bitPattern, ref[i].bitPattern, "fma M \(M) R \(R) P \(P) at \(i)")
                            }
                            XCTAssertLessThanOrEqual(
                                abs(fast[i] - ref[i]), 1e-5 * scale[i] + 1e-6,
                                "M \(M) R \(R) P \(P) layout \(layout.rawValue) acc \(accumulate) \(path) at \(i)")
                            // and the reference against Double math on the same bf16 values
                            let m = i / P, p = i % P
                            var exact = accumulate != 0 ? Double(start[i]) : 0
                            for r in 0..<R { exact += Double(ax[m * R + r]) * Double(wAt(r, p)) }
                            XCTAssertLessThanOrEqual(abs(Double(ref[i]) - exact), 1e-5 * Double(scale[i]) + 1e-6)
                        }
                    }
                }
            }
        }
    }

    /// muwa_gemm_bf16_pack_a's layout, element by element, with the AVX-512 rounding and the scalar one: tile t,
    /// pair q, row i holds (bf16(x[m, 2q]), bf16(x[m, 2q + 1])) for m = t·MR + i, zero past M and past R (AMX
    /// packs its own layout: skipped there).
    func testPackedATilesHoldTheRoundedPairs() throws {
        try XCTSkipIf(muwa_amx_enabled() != 0, "AMX packs A in its own layout")
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        for isa in ["avx512", "scalar"] where KernelISA.select(isa) {
            let MR = muwa_gemm_bf16_row_block()
            for (M, R) in [(1, 1), (13, 31), (12, 32), (25, 515), (30, 64)] {
                let x = randomFloats(M * R, seed: UInt64(M + R)), Kp = (R + 1) / 2, tiles = (M + MR - 1) / MR
                var a = [UInt16](repeating: 0xFFFF, count: muwa_gemm_bf16_packed_a_count(M, R))
                muwa_gemm_bf16_pack_a(x, M, R, R, &a, 0, tiles)
                for t in 0..<tiles {
                    for q in 0..<Kp {
                        for i in 0..<MR {
                            for h in 0..<2 {
                                let m = t * MR + i, k = 2 * q + h
                                let want: UInt16 = m < M && k < R ? floatToBF16(x[m * R + k]) : 0
                                XCTAssertEqual(
                                    a[((t * Kp + q) * MR + i) * 2 + h], want,
                                    "\(isa) M \(M) R \(R) t \(t) q \(q) i \(i)")
                            }
                        }
                    }
                }
            }
        }
    }

    func testRoundingMatchesPyTorchsNearestEven() {
        let values: [Float] =
            [
                1, -1, 1.00390625, 1.01171875, 3.14159265, -2.7182817, 1e-40, -0.0, .infinity,
                Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), .nan,
            ]
            + randomFloats(61, seed: 3).map { $0 * 1e3 }
        var out = [UInt16](repeating: 7, count: values.count + 1)
        muwa_f32_to_bf16_rows(values, 1, values.count, values.count, &out, values.count + 1)
        for (i, v) in values.enumerated() {
            XCTAssertEqual(out[i], floatToBF16(v), "\(v)")
        }
        XCTAssertEqual(out[values.count], 0, "the padding column is zeroed")
    }

    func testMatmulOnBF16WeightsIsWithinBF16ToleranceOfF32() throws {
        try forEachBF16GemmPath { path in
            for (M, K, N) in [(17, 37, 300), (40, 515, 70), (70, 64, 33)] {
                let x = randomFloats(M * K, seed: 1), w = randomFloats(N * K, seed: 2), bias = randomFloats(N, seed: 3)
                let weight = try preparedWeight(w, N: N, K: K)
                XCTAssertEqual(weight.dtype, .bf16)
                XCTAssertTrue(weight.computesInBF16)
                var fast = [Float](repeating: 0, count: M * N), roundedRef = fast, f32Ref = fast
                let scratch = KernelScratch(maxInputDim: K, capacityFloats: 12 * K)  // forces chunks of 24 rows
                matmul(out: &fast, inp: x, weight: weight, bias: bias, M: M, K: K, N: N, scratch: scratch)
                matmulBF16Naive(out: &roundedRef, inp: x, weight: weight, bias: bias, M: M, K: K, N: N)
                matmulNaive(out: &f32Ref, inp: x, weight: Tensor.f32(w, shape: [N, K]), bias: bias, M: M, K: K, N: N)
                let scale = magnitudes(a: x, b: { k, n in w[n * K + k] }, M: M, R: K, P: N)
                var worst: Float = 0
                for i in 0..<(M * N) {
                    XCTAssertLessThanOrEqual(abs(fast[i] - f32Ref[i]), scale[i] / 256, "M \(M) K \(K) at \(i)")
                    worst = max(worst, abs(fast[i] - f32Ref[i]) / scale[i])
                    if EngineOptions.cpuHasBF16 {  // the bf16 GEMM ran: it equals bf16-rounded math
                        XCTAssertLessThanOrEqual(abs(fast[i] - roundedRef[i]), 1e-5 * scale[i] + 1e-6)
                    }
                }
                XCTAssertGreaterThan(worst, 0, "bf16 rounding must be visible: the bf16 path ran (\(path))")
            }
        }
    }

    func testBackwardInputOnBF16WeightsMatchesRoundedReference() throws {
        let M = 33, K = 70, N = 515
        let dout = randomFloats(M * N, seed: 4), w = randomFloats(N * K, seed: 5), start = randomFloats(M * K, seed: 6)
        try forEachBF16GemmPath { path in
            let weight = try preparedWeight(w, N: N, K: K)
            var fast = start, ref = start
            let scratch = KernelScratch(maxInputDim: K, capacityFloats: K)  // smaller than one tile of dout: own buffer
            linearBackwardInput(dinp: &fast, dout: dout, weight: weight, M: M, K: K, N: N, scratch: scratch)
            let rounded = dout.map { bf16ToFloat(floatToBF16($0)) }
            linearBackwardNaive(
                dinp: &ref, dweight: nil, dbias: nil, dout: rounded, inp: nil,
                weight: weight, M: M, K: K, N: N)
            let scale = magnitudes(a: dout, b: { n, k in w[n * K + k] }, M: M, R: N, P: K)
            for i in 0..<(M * K) {
                // with the bf16 GEMM: equal to the rounded reference; else (widening) within bf16 rounding of it
                let bound = EngineOptions.cpuHasBF16 ? 1e-5 * scale[i] + 1e-5 : scale[i] / 256
                XCTAssertLessThanOrEqual(abs(fast[i] - ref[i]), bound, "\(path) at \(i)")
            }
        }
    }

    /// Without the AVX-512 BF16 kernel (another table selected, or a CPU without avx512_bf16) bf16 weights
    /// still work: widened to f32 and multiplied by OpenBLAS, unrounded activations.
    func testBF16WeightsWithoutTheBF16KernelTakeTheWideningPath() throws {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        XCTAssertTrue(KernelISA.select("scalar"))
        XCTAssertEqual(muwa_gemm_bf16_fast(), 0)
        let M = 20, K = 37, N = 50
        let x = randomFloats(M * K, seed: 1), w = randomFloats(N * K, seed: 2)
        let weight = try preparedWeight(w, N: N, K: K)
        var out = [Float](repeating: 0, count: M * N), ref = out
        matmul(out: &out, inp: x, weight: weight, bias: nil, M: M, K: K, N: N, scratch: KernelScratch(maxInputDim: K))
        matmulNaive(out: &ref, inp: x, weight: weight, bias: nil, M: M, K: K, N: N)  // bf16 weights, f32 inputs
        for i in 0..<(M * N) { XCTAssertEqual(out[i], ref[i], accuracy: 1e-4) }
    }
}
