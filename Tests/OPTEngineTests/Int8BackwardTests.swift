// The int8 base's input gradient on VNNI's int16 products (kernels_int8_backward.c, Int8Backward.swift): the
// VNNI kernel against the plain-loop reference on the same packed operands (bit for bit: the sums are exact
// integers and both end with the same fma), the packed gradient against its definition (per row and per 512
// reduction elements, round to nearest even), and the whole product against Double sums of dout · dequant(W)
// within the rounding the int16 gradient allows.
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
        var a: [Int16]
        var scales: [Float]
    }

    func pack(_ dout: [Float], M: Int, N: Int, absmax: UnsafePointer<Float>) -> Packed {
        let tiles = (M + muwa_i8_backward_row_block() - 1) / muwa_i8_backward_row_block()
        var p = Packed(
            a: [Int16](repeating: 0, count: muwa_i8_backward_packed_a_count(M, N)),
            scales: [Float](repeating: 0, count: muwa_i8_backward_scale_count(M, N)))
        muwa_i8_backward_pack_a(dout, N, M, N, absmax, &p.a, &p.scales, 0, tiles)
        return p
    }

    let shapes = [(1, 1, 1), (5, 33, 70), (13, 511, 45), (12, 1024, 64), (29, 1300, 97), (40, 2049, 33)]

    func testVNNIKernelIsTheReferenceBitForBit() throws {
        guard muwa_i8_backward_fast() != 0 else { throw XCTSkip("no avx512_vnni on this CPU") }
        for (M, N, K) in shapes {
            let t = try int8Weight(N: N, K: K, seed: UInt64(N))
            let scales = try XCTUnwrap(t.int8Rows)
            let p = pack(gradient(M: M, N: N, seed: UInt64(M)), M: M, N: N, absmax: scales.absmax)
            let q = t.raw.assumingMemoryBound(to: Int8.self)
            let start = gradient(M: M, N: K, seed: 7)
            var fast = start, reference = start
            // two column ranges, as two threads split them: whole panels, then the rest
            let split = min(K, muwa_i8_backward_column_block())
            for (p0, p1) in [(0, split), (split, K)] {
                muwa_i8_backward(p.a, p.scales, M, q, N, K, &fast, K, p0, p1)
                muwa_i8_backward_reference(p.a, p.scales, M, q, N, K, &reference, K, p0, p1)
            }
            XCTAssertEqual(fast.map(\.bitPattern), reference.map(\.bitPattern), "M \(M) N \(N) K \(K)")
        }
    }

    /// Each (row, block of 512) is scaled by its own largest |dout · absmax/127|: values round to nearest even
    /// of v · 32767 / max, the largest to ±32767, and the pad of an odd N to 0.
    func testPackedGradientHasOneScalePerRowAndBlock() throws {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        for isa in KernelISA.supported {  // the AVX-512 packing and the scalar one
            XCTAssertTrue(KernelISA.select(isa))
            try checkPackedGradient(isa: isa)
        }
    }

    func checkPackedGradient(isa: String) throws {
        let M = 13, N = 1101, K = 8
        let t = try int8Weight(N: N, K: K, seed: 3)
        let absmax = try XCTUnwrap(t.int8Rows).absmax
        var dout = gradient(M: M, N: N, seed: 4)
        dout[5 * N + 600] = .nan  // row 5's second block: its scale is NaN, its values 0
        let p = pack(dout, M: M, N: N, absmax: absmax)
        let R = muwa_i8_backward_row_block(), pairs = (N + 1) / 2, blocks = (N + 511) / 512
        for m in 0..<M {
            for b in 0..<blocks {
                let range = (b * 512)..<min(N, b * 512 + 512)
                let v = range.map { dout[m * N + $0] * (absmax[$0] * 7.874015718698502e-3) }
                let top = v.map(abs).max() ?? 0
                let scale = p.scales[((m / R) * blocks + b) * R + m % R]
                if m == 5 && b == 1 {
                    XCTAssertTrue(scale.isNaN, "\(isa): a NaN in the block")
                    XCTAssertTrue(
                        range.allSatisfy { n in p.a[((m / R) * pairs + n / 2) * R * 2 + (m % R) * 2 + n % 2] == 0 })
                    continue
                }
                XCTAssertEqual(scale, top / 32767, "\(isa) row \(m) block \(b)")
                for (n, value) in zip(range, v) {
                    let stored = p.a[((m / R) * pairs + n / 2) * R * 2 + (m % R) * 2 + n % 2]
                    XCTAssertEqual(
                        Float(stored), (value * (32767 / top)).rounded(.toNearestOrEven), "\(isa) row \(m) n \(n)")
                }
            }
            XCTAssertEqual(p.a[((m / R) * pairs + N / 2) * R * 2 + (m % R) * 2 + 1], 0, "\(isa): the pad of odd N")
        }
    }

    /// The whole product against Double sums of dout · dequant(W): off by no more than what rounding each int16
    /// allows (half a step of its block's scale, times |W|), plus f32 rounding.
    func testProductIsWithinTheInt16RoundingOfTheTrueProduct() throws {
        for (M, N, K) in shapes {
            let t = try int8Weight(N: N, K: K, seed: UInt64(K))
            let rows = try XCTUnwrap(t.int8Rows)
            let dout = gradient(M: M, N: N, seed: UInt64(N))
            let p = pack(dout, M: M, N: N, absmax: rows.absmax)
            var w = [Float](repeating: 0, count: N * K)
            rows.dequantize(t.raw.assumingMemoryBound(to: Int8.self), firstRow: 0, rowCount: N, K: K, into: &w)
            var got = [Float](repeating: 0, count: M * K)
            muwa_i8_backward(p.a, p.scales, M, t.raw.assumingMemoryBound(to: Int8.self), N, K, &got, K, 0, K)
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
                    XCTAssertLessThanOrEqual(gap, allowed + 1e-6 * magnitude, "M \(M) N \(N) K \(K) at \(m), \(k)")
                    worst = max(worst, gap / max(magnitude, 1e-30))
                }
            }
            // and the rounding is small against the sums: a per-row scale over all of N would not be this close
            // where blocks differ 100-fold (the gradient above)
            XCTAssertLessThan(worst, 2e-4, "M \(M) N \(N) K \(K)")
        }
    }

    /// Training's entry point takes this path for an int8 weight under bf16 compute when it is on, and gives
    /// the kernel's result.
    func testLinearBackwardInputUsesTheInt16ProductWhenOn() throws {
        guard muwa_i8_backward_fast() != 0 else { throw XCTSkip("no avx512_vnni on this CPU") }
        XCTAssertEqual(muwa_i8_backward_select(1), 1)
        defer { muwa_i8_backward_select(-1) }
        let M = 37, N = 600, K = 70
        let t = try int8Weight(N: N, K: K, seed: 9).preparedForBF16()
        XCTAssertTrue(int8BackwardRuns(for: t))
        let rows = try XCTUnwrap(t.int8Rows)
        let dout = gradient(M: M, N: N, seed: 10), start = gradient(M: M, N: K, seed: 11)
        var direct = start
        let p = pack(dout, M: M, N: N, absmax: rows.absmax)
        muwa_i8_backward(p.a, p.scales, M, t.raw.assumingMemoryBound(to: Int8.self), N, K, &direct, K, 0, K)
        for capacity in [4 * K, 1 << 20] {  // a scratch smaller than one packed tile, and one holding them all
            var viaEntry = start
            let scratch = KernelScratch(maxInputDim: K, capacityFloats: capacity)
            linearBackwardInput(dinp: &viaEntry, dout: dout, weight: t, M: M, K: K, N: N, scratch: scratch)
            XCTAssertEqual(viaEntry.map(\.bitPattern), direct.map(\.bitPattern), "scratch of \(capacity) floats")
        }
    }
}
