// The int8 base's input gradient on VNNI's integer products (kernels_int8_backward.c, Int8Backward.swift), with
// the gradient in int16 and in int8: the VNNI kernels against the plain-loop references on the same packed
// operands (bit for bit: the sums are exact integers and both end with the same fma), the packed gradient
// against its definition (per row and per 512 reduction elements, round to nearest even; int8's block sums),
// and the whole product against Double sums of dout · dequant(W) within the rounding each width allows.
import CKernels
import XCTest
@testable import OPTEngine

final class Int8BackwardTests: XCTestCase {
    /// dout with a wide range across blocks (block b of 512 columns scaled by 10^(b mod 3 - 1)) and rows.
    func gradient(M: Int, N: Int, seed: UInt64) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<(M * N)).map { i in
            let m = i / N, n = i % N
            let scale = Float([0.1, 1, 10][(n / 512) % 3]) * Float(1 + m % 4)
            return Float(rng.nextUnit() * 2 - 1) * scale
        }
    }

    func int8Weight(N: Int, K: Int, seed: UInt64) throws -> Tensor {
        var rng = SeededRNG(seed: seed)
        let w = (0..<(N * K)).map { i in Float(rng.nextUnit() * 2 - 1) * Float(1 + (i / K) % 5) }
        return try Tensor.f32(w, shape: [N, K]).quantizedInt8(threshold: 6)
    }

    struct Packed {
        var bits: Int32
        var a: [UInt8]
        var scales: [Float]
        var sums: [Int32]

        /// The stored value of row m, reduction index n (groups of 4 bytes: 2 int16 or 4 int8 values).
        func value(m: Int, n: Int, N: Int) -> Int {
            let R = muwa_i8_backward_row_block(), G = bits == 8 ? 4 : 2, groups = (N + G - 1) / G
            let at = ((m / R) * groups + n / G) * R * 4 + (m % R) * 4 + (n % G) * Int(bits / 8)
            return bits == 8
                ? Int(Int8(bitPattern: a[at])) : Int(Int16(bitPattern: UInt16(a[at]) | UInt16(a[at + 1]) << 8))
        }
    }

    func pack(_ dout: [Float], M: Int, N: Int, absmax: UnsafePointer<Float>, bits: Int32) -> Packed {
        let tiles = (M + muwa_i8_backward_row_block() - 1) / muwa_i8_backward_row_block()
        let blocks = muwa_i8_backward_scale_count(M, N)
        var p = Packed(
            bits: bits, a: [UInt8](repeating: 0, count: muwa_i8_backward_packed_a_bytes(M, N, bits)),
            scales: [Float](repeating: 0, count: blocks), sums: [Int32](repeating: 0, count: blocks))
        muwa_i8_backward_pack_a(dout, N, M, N, absmax, bits, &p.a, &p.scales, &p.sums, 0, tiles)
        return p
    }

    let shapes = [(1, 1, 1), (5, 33, 70), (13, 511, 45), (12, 1024, 64), (29, 1300, 97), (40, 2049, 33)]

    func testVNNIKernelsAreTheReferenceBitForBit() throws {
        guard muwa_i8_backward_fast() != 0 else { throw XCTSkip("no avx512_vnni on this CPU") }
        for bits: Int32 in [16, 8] {
            for (M, N, K) in shapes { try checkKernel(bits: bits, M: M, N: N, K: K) }
        }
    }

    func checkKernel(bits: Int32, M: Int, N: Int, K: Int) throws {
        do {
            let t = try int8Weight(N: N, K: K, seed: UInt64(N))
            let scales = try XCTUnwrap(t.int8Rows)
            let p = pack(gradient(M: M, N: N, seed: UInt64(M)), M: M, N: N, absmax: scales.absmax, bits: bits)
            let q = t.raw.assumingMemoryBound(to: Int8.self)
            let start = gradient(M: M, N: K, seed: 7)
            var fast = start, reference = start
            // two column ranges, as two threads split them: whole panels, then the rest
            let split = min(K, muwa_i8_backward_column_block())
            for (p0, p1) in [(0, split), (split, K)] {
                muwa_i8_backward(bits, p.a, p.scales, p.sums, M, q, N, K, &fast, K, p0, p1)
                muwa_i8_backward_reference(bits, p.a, p.scales, p.sums, M, q, N, K, &reference, K, p0, p1)
            }
            XCTAssertEqual(fast.map(\.bitPattern), reference.map(\.bitPattern), "bits \(bits) M \(M) N \(N) K \(K)")
        }
    }

    /// Each (row, block of 512) is scaled by its own largest |dout · absmax/127|: values round to nearest even
    /// of v · limit / max (limit 32767 for int16, 127 for int8), the largest to ±limit, the pad past N to 0, and
    /// int8 blocks carry the sum of their values.
    func testPackedGradientHasOneScalePerRowAndBlock() throws {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        for isa in KernelISA.supported {  // the AVX-512 packing and the scalar one
            XCTAssertTrue(KernelISA.select(isa))
            for bits: Int32 in [16, 8] { try checkPackedGradient(isa: isa, bits: bits) }
        }
    }

    func checkPackedGradient(isa: String, bits: Int32) throws {
        let M = 13, N = 1101, K = 8, limit: Float = bits == 8 ? 127 : 32767
        let t = try int8Weight(N: N, K: K, seed: 3)
        let absmax = try XCTUnwrap(t.int8Rows).absmax
        var dout = gradient(M: M, N: N, seed: 4)
        dout[5 * N + 600] = .nan  // row 5's second block: its scale is NaN, its values 0
        let p = pack(dout, M: M, N: N, absmax: absmax, bits: bits)
        let R = muwa_i8_backward_row_block(), blocks = (N + 511) / 512, G = bits == 8 ? 4 : 2
        let context = "\(isa), bits \(bits)"
        for m in 0..<M {
            for b in 0..<blocks {
                let range = (b * 512)..<min(N, b * 512 + 512)
                let v = range.map { dout[m * N + $0] * (absmax[$0] * 7.874015718698502e-3) }
                let top = v.map(abs).max() ?? 0
                let at = ((m / R) * blocks + b) * R + m % R
                let scale = p.scales[at]
                if m == 5 && b == 1 {
                    XCTAssertTrue(scale.isNaN, "\(context): a NaN in the block")
                    XCTAssertTrue(range.allSatisfy { p.value(m: m, n: $0, N: N) == 0 })
                    if bits == 8 { XCTAssertEqual(p.sums[at], 0, context) }
                    continue
                }
                XCTAssertEqual(scale, top / limit, "\(context) row \(m) block \(b)")
                var sum = 0
                for (n, value) in zip(range, v) {
                    let stored = p.value(m: m, n: n, N: N)
                    sum += stored
                    XCTAssertEqual(
                        Float(stored), (value * (limit / top)).rounded(.toNearestOrEven), "\(context) row \(m) n \(n)")
                }
                if bits == 8 { XCTAssertEqual(Int(p.sums[at]), sum, "\(context) row \(m) block \(b): the sum") }
            }
            for n in N..<((N + G - 1) / G * G) { XCTAssertEqual(p.value(m: m, n: n, N: N), 0, "\(context): the pad") }
        }
    }

    /// The whole product against Double sums of dout · dequant(W): off by no more than what rounding each value
    /// allows (half a step of its block's scale, times |W|), plus f32 rounding.
    func testProductIsWithinTheRoundingOfTheTrueProduct() throws {
        for bits: Int32 in [16, 8] {
            for (M, N, K) in shapes { try checkProduct(bits: bits, M: M, N: N, K: K) }
        }
    }

    func checkProduct(bits: Int32, M: Int, N: Int, K: Int) throws {
        do {
            let t = try int8Weight(N: N, K: K, seed: UInt64(K))
            let rows = try XCTUnwrap(t.int8Rows)
            let dout = gradient(M: M, N: N, seed: UInt64(N))
            let p = pack(dout, M: M, N: N, absmax: rows.absmax, bits: bits)
            var w = [Float](repeating: 0, count: N * K)
            rows.dequantize(t.raw.assumingMemoryBound(to: Int8.self), firstRow: 0, rowCount: N, K: K, into: &w)
            var got = [Float](repeating: 0, count: M * K)
            muwa_i8_backward(
                bits, p.a, p.scales, p.sums, M, t.raw.assumingMemoryBound(to: Int8.self), N, K, &got, K, 0, K)
            let R = muwa_i8_backward_row_block(), blocks = (N + 511) / 512
            var worst = 0.0
            for m in 0..<M {
                for k in 0..<K {
                    var exact = 0.0, allowed = 0.0, magnitude = 0.0
                    for n in 0..<N {
                        let term = Double(dout[m * N + n]) * Double(w[n * K + k])
                        exact += term
                        magnitude += abs(term)
                        let q = Double(t.raw.assumingMemoryBound(to: Int8.self)[n * K + k])
                        allowed += 0.5 * Double(p.scales[((m / R) * blocks + n / 512) * R + m % R]) * abs(q)
                    }
                    let gap = abs(Double(got[m * K + k]) - exact)
                    XCTAssertLessThanOrEqual(
                        gap, allowed + 1e-6 * magnitude, "bits \(bits) M \(M) N \(N) K \(K) at \(m), \(k)")
                    worst = max(worst, gap / max(magnitude, 1e-30))
                }
            }
            // and the rounding is small against the sums: for int16 a per-row scale over all of N would not be
            // this close where blocks differ 100-fold (the gradient above); int8's steps are 258 times coarser
            XCTAssertLessThan(worst, bits == 8 ? 8e-3 : 2e-4, "bits \(bits) M \(M) N \(N) K \(K)")
        }
    }

    /// Training's entry point takes this path for an int8 weight under bf16 compute at the width selected, and
    /// gives the kernel's result.
    func testLinearBackwardInputUsesTheIntegerProductWhenOn() throws {
        guard muwa_i8_backward_fast() != 0 else { throw XCTSkip("no avx512_vnni on this CPU") }
        defer { muwa_i8_backward_select(-1) }
        for bits: Int32 in [16, 8] {
            XCTAssertEqual(muwa_i8_backward_select(bits), 1)
            let M = 37, N = 600, K = 70
            let t = try int8Weight(N: N, K: K, seed: 9).preparedForBF16()
            XCTAssertEqual(int8BackwardBits(for: t), bits)
            let rows = try XCTUnwrap(t.int8Rows)
            let dout = gradient(M: M, N: N, seed: 10), start = gradient(M: M, N: K, seed: 11)
            var direct = start
            let p = pack(dout, M: M, N: N, absmax: rows.absmax, bits: bits)
            muwa_i8_backward(
                bits, p.a, p.scales, p.sums, M, t.raw.assumingMemoryBound(to: Int8.self), N, K, &direct, K, 0, K)
            for capacity in [4 * K, 1 << 20] {  // a scratch smaller than one packed tile, and one holding them all
                var viaEntry = start
                let scratch = KernelScratch(maxInputDim: K, capacityFloats: capacity)
                linearBackwardInput(dinp: &viaEntry, dout: dout, weight: t, M: M, K: K, N: N, scratch: scratch)
                XCTAssertEqual(
                    viaEntry.map(\.bitPattern), direct.map(\.bitPattern), "bits \(bits), scratch of \(capacity) floats")
            }
        }
    }
}
