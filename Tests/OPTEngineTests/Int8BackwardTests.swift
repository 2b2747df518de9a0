// The int8 base's input gradient on integer products (kernels_int8_backward.c, Int8Backward.swift), with the
// gradient in int16 and in int8: the VNNI and AVX2 kernels against the plain-loop references on the same packed
// operands (bit for bit: the sums are exact integers and both end with the same fma), the packed gradient
// against its definition (per row and per 512 reduction elements, round to nearest even; int8's block sums),
// and the whole product against Double sums of dout · dequant(W) within the rounding each width allows.
import CKernels
import Foundation
import XCTest
@testable import OPTEngine

final class Int8BackwardTests: XCTestCase {
    /// dout with a wide range across blocks (block b of 512 columns, or of 512 positions in a weight's order,
    /// scaled by 10^(b mod 3 - 1)) and rows.
    func gradient(M: Int, N: Int, seed: UInt64, positions: [Int]? = nil) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<(M * N)).map { i in
            let m = i / N, n = i % N
            let scale = Float([0.1, 1, 10][((positions?[n] ?? n) / 512) % 3]) * Float(1 + m % 4)
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

    func pack(
        _ dout: [Float], M: Int, N: Int, absmax: UnsafePointer<Float>, order: UnsafePointer<Int32>?, bits: Int32
    ) -> Packed {
        let tiles = (M + muwa_i8_backward_row_block() - 1) / muwa_i8_backward_row_block()
        let blocks = muwa_i8_backward_scale_count(M, N)
        var p = Packed(
            bits: bits, a: [UInt8](repeating: 0, count: muwa_i8_backward_packed_a_bytes(M, N, bits)),
            scales: [Float](repeating: 0, count: blocks), sums: [Int32](repeating: 0, count: blocks))
        muwa_i8_backward_pack_a(dout, N, M, N, absmax, order, bits, &p.a, &p.scales, &p.sums, 0, tiles)
        return p
    }

    let shapes = [(1, 1, 1), (5, 33, 70), (13, 511, 45), (12, 1024, 64), (29, 1300, 97), (40, 2049, 33)]

    /// The reduction index's position in `order` (nil: itself): which block channel n falls in.
    func positions(_ order: UnsafePointer<Int32>?, N: Int) -> [Int] {
        guard let order else { return Array(0..<N) }
        var at = [Int](repeating: -1, count: N)
        for j in 0..<N { at[Int(order[j])] = j }
        return at
    }

    /// A weight's order lists its rows by absmax, ties by index: a permutation.
    func testWeightOrderListsTheRowsByAbsmax() throws {
        for (N, K) in [(1, 3), (7, 5), (1300, 16)] {
            let t = try int8Weight(N: N, K: K, seed: UInt64(N))
            let rows = try XCTUnwrap(t.int8Rows)
            let order = (0..<N).map { Int(rows.order[$0]) }
            XCTAssertEqual(order.sorted(), Array(0..<N), "N \(N): a permutation")
            for (a, b) in zip(order, order.dropFirst()) {
                XCTAssertTrue(rows.absmax[a] < rows.absmax[b] || rows.absmax[a] == rows.absmax[b] && a < b, "N \(N)")
            }
        }
    }

    /// The widths the integer kernels of the selected table run (VNNI: 16 and 8; AVX2: 16; none: []).
    func fastWidths() -> [Int32] {
        defer { muwa_i8_backward_select(-1) }
        return muwa_i8_backward_fast() == 0 ? [] : [16, 8].filter { muwa_i8_backward_select($0) == 1 }
    }

    /// Every table's integer kernels (AVX-512 VNNI at both widths; AVX2 vpmaddwd at 16, also where the CPU has
    /// VNNI, under the avx2 table) give the reference's bits.
    func testIntegerKernelsAreTheReferenceBitForBit() throws {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        var ran = 0
        for isa in KernelISA.supported {
            KernelISA.select(isa)
            for bits in fastWidths() {
                ran += 1
                for (M, N, K) in shapes { try checkKernel(bits: bits, M: M, N: N, K: K) }
            }
        }
        if ran == 0 { throw XCTSkip("no AVX2 or avx512_vnni on this CPU") }
    }

    func checkKernel(bits: Int32, M: Int, N: Int, K: Int) throws {
        do {
            let t = try int8Weight(N: N, K: K, seed: UInt64(N))
            let scales = try XCTUnwrap(t.int8Rows)
            let q = t.raw.assumingMemoryBound(to: Int8.self)
            for order in [scales.order, nil] {
                let p = pack(
                    gradient(M: M, N: N, seed: UInt64(M)), M: M, N: N, absmax: scales.absmax, order: order, bits: bits)
                // adding into a gradient, and storing over NaNs (the first reduction block does not read C)
                for accumulate: Int32 in [1, 0] {
                    let start = accumulate == 1 ? gradient(M: M, N: K, seed: 7) : [Float](repeating: .nan, count: M * K)
                    var fast = start, reference = start
                    // two column ranges, as two threads split them: whole panels, then the rest
                    let split = min(K, muwa_i8_backward_column_block())
                    for (p0, p1) in [(0, split), (split, K)] {
                        muwa_i8_backward(bits, p.a, p.scales, p.sums, M, q, order, N, K, &fast, K, p0, p1, accumulate)
                        muwa_i8_backward_reference(
                            bits, p.a, p.scales, p.sums, M, q, order, N, K, &reference, K, p0, p1, accumulate)
                    }
                    XCTAssertEqual(
                        fast.map(\.bitPattern), reference.map(\.bitPattern),
                        "bits \(bits) M \(M) N \(N) K \(K) ordered \(order != nil) accumulate \(accumulate)")
                    if accumulate == 0 { XCTAssertFalse(fast.contains { $0.isNaN }, "stored over every element") }
                }
            }
        }
    }

    /// Each (row, block of 512 reduction positions, channels taken in the weight's order or in index order) is
    /// scaled by its own largest |dout · absmax/127|: values round to nearest even of v · limit / max (limit
    /// 32767 for int16, 127 for int8), the largest to ±limit, the pad past N to 0, and int8 blocks carry the sum
    /// of their values.
    func testPackedGradientHasOneScalePerRowAndBlock() throws {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        for isa in KernelISA.supported {  // the AVX-512, AVX2 and scalar packings
            XCTAssertTrue(KernelISA.select(isa))
            for bits: Int32 in [16, 8] {
                for ordered in [true, false] { try checkPackedGradient(isa: isa, bits: bits, ordered: ordered) }
            }
        }
    }

    func checkPackedGradient(isa: String, bits: Int32, ordered: Bool) throws {
        let M = 13, N = 1101, K = 8, limit: Float = bits == 8 ? 127 : 32767
        let t = try int8Weight(N: N, K: K, seed: 3)
        let rows = try XCTUnwrap(t.int8Rows), absmax = rows.absmax, order = ordered ? rows.order : nil
        let channel = { (j: Int) in order.map { Int($0[j]) } ?? j }  // the channel at reduction position j
        var dout = gradient(M: M, N: N, seed: 4)
        dout[5 * N + 600] = .nan  // row 5's block holding channel 600: its scale is NaN, its values 0
        let nanBlock = positions(order, N: N)[600] / 512
        let p = pack(dout, M: M, N: N, absmax: absmax, order: order, bits: bits)
        let R = muwa_i8_backward_row_block(), blocks = (N + 511) / 512, G = bits == 8 ? 4 : 2
        let context = "\(isa), bits \(bits), ordered \(ordered)"
        for m in 0..<M {
            for b in 0..<blocks {
                let range = (b * 512)..<min(N, b * 512 + 512)
                let v = range.map { dout[m * N + channel($0)] * (absmax[channel($0)] * 7.874015718698502e-3) }
                let top = v.map(abs).max() ?? 0
                let at = ((m / R) * blocks + b) * R + m % R
                let scale = p.scales[at]
                if m == 5 && b == nanBlock {
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
            for (M, N, K) in shapes {
                for ordered in [true, false] { try checkProduct(bits: bits, M: M, N: N, K: K, ordered: ordered) }
            }
        }
    }

    func checkProduct(bits: Int32, M: Int, N: Int, K: Int, ordered: Bool) throws {
        do {
            let t = try int8Weight(N: N, K: K, seed: UInt64(K))
            let rows = try XCTUnwrap(t.int8Rows), order = ordered ? rows.order : nil, at = positions(order, N: N)
            let dout = gradient(M: M, N: N, seed: UInt64(N), positions: at)
            let p = pack(dout, M: M, N: N, absmax: rows.absmax, order: order, bits: bits)
            var w = [Float](repeating: 0, count: N * K)
            rows.dequantize(t.raw.assumingMemoryBound(to: Int8.self), firstRow: 0, rowCount: N, K: K, into: &w)
            var got = [Float](repeating: 0, count: M * K)
            muwa_i8_backward(
                bits, p.a, p.scales, p.sums, M, t.raw.assumingMemoryBound(to: Int8.self), order, N, K, &got, K, 0, K, 1)
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
                        allowed += 0.5 * Double(p.scales[((m / R) * blocks + at[n] / 512) * R + m % R]) * abs(q)
                    }
                    let gap = abs(Double(got[m * K + k]) - exact)
                    XCTAssertLessThanOrEqual(
                        gap, allowed + 1e-6 * magnitude,
                        "bits \(bits) M \(M) N \(N) K \(K) ordered \(ordered) at \(m), \(k)")
                    worst = max(worst, gap / max(magnitude, 1e-30))
                }
            }
            // and the rounding is small against the sums: for int16 a per-row scale over all of N would not be
            // this close where blocks differ 100-fold (the gradient above); int8's steps are 258 times coarser
            XCTAssertLessThan(worst, bits == 8 ? 8e-3 : 2e-4, "bits \(bits) M \(M) N \(N) K \(K) ordered \(ordered)")
        }
    }

    /// bitsandbytes' own int8 training layer (SwitchBackLinear, nn/triton_based_modules.py) computes this product
    /// from the gradient quantized to int8 with one scale per row and the weight to int8 with one scale for the
    /// whole matrix. The int8 width here (one scale per row and 512-block of the weight's channels by absmax,
    /// the weight's per-channel scale moved onto the gradient) is closer to Double sums than that on an even
    /// gradient and several times closer where one channel is far larger than the rest (one block pays for it,
    /// not the row); it stays within a fifth of a row-wise int8 gradient times the exact weight (which no integer
    /// product computes), and the weight's order is what brings it there (in index order, a block's step is set
    /// by its largest channels: this weight's absmax spans 5×).
    func testInt8GradientIsNoCoarserThanSwitchBacks() throws {
        let M = 24, N = 2048, K = 64
        let t = try int8Weight(N: N, K: K, seed: 21)
        let rows = try XCTUnwrap(t.int8Rows), q = t.raw.assumingMemoryBound(to: Int8.self)
        var w = [Float](repeating: 0, count: N * K)
        rows.dequantize(q, firstRow: 0, rowCount: N, K: K, into: &w)
        let step = Double(w.map { abs($0) }.max() ?? 0) / 127
        let wGlobal = w.map { (Double($0) / step).rounded(.toNearestOrEven) * step }  // SwitchBack's weight
        var rng = SeededRNG(seed: 22)
        let even = (0..<(M * N)).map { _ in Float(rng.nextUnit() * 2 - 1) }
        let outlier = even.enumerated().map { i, x in i % N == 700 ? x * 200 : x }
        for (name, dout) in [("even", even), ("one outlier channel", outlier)] {
            let exact = exactProduct(dout, w, M: M, N: N, K: K)
            func squaredError(order: UnsafePointer<Int32>?) -> Double {
                let p = pack(dout, M: M, N: N, absmax: rows.absmax, order: order, bits: 8)
                var got = [Float](repeating: 0, count: M * K)
                muwa_i8_backward(8, p.a, p.scales, p.sums, M, q, order, N, K, &got, K, 0, K, 1)
                return zip(got, exact).reduce(0.0) { $0 + (Double($1.0) - $1.1) * (Double($1.0) - $1.1) }
            }
            let ours = squaredError(order: rows.order), unordered = squaredError(order: nil)
            var switchBack = 0.0, rowWise = 0.0
            for m in 0..<M {
                let row = dout[(m * N)..<((m + 1) * N)]
                let s = Double(row.map { abs($0) }.max() ?? 0) / 127
                let g = row.map { s > 0 ? (Double($0) / s).rounded(.toNearestOrEven) * s : 0 }
                for k in 0..<K {
                    var sb = 0.0, rw = 0.0
                    for n in 0..<N {
                        sb += g[n] * wGlobal[n * K + k]
                        rw += g[n] * Double(w[n * K + k])
                    }
                    switchBack += (sb - exact[m * K + k]) * (sb - exact[m * K + k])
                    rowWise += (rw - exact[m * K + k]) * (rw - exact[m * K + k])
                }
            }
            let context =
                "\(name): squared errors ours \(ours), in index order \(unordered), SwitchBack \(switchBack), "
                + "row-wise gradient × exact weight \(rowWise) (squared sums)"
            XCTAssertLessThan(ours, switchBack * (name == "even" ? 0.8 * 0.8 : 0.25 * 0.25), context)
            XCTAssertLessThan(ours, rowWise * (name == "even" ? 1.2 * 1.2 : 0.25 * 0.25), context)
            if name == "even" { XCTAssertLessThan(ours, unordered * 0.9 * 0.9, context) }
        }
    }

    /// Σ_n dout[m, n] · w[n, k] in Double, [M, K].
    func exactProduct(_ dout: [Float], _ w: [Float], M: Int, N: Int, K: Int) -> [Double] {
        var out = [Double](repeating: 0, count: M * K)
        for m in 0..<M {
            for n in 0..<N {
                let d = Double(dout[m * N + n])
                for k in 0..<K { out[m * K + k] += d * Double(w[n * K + k]) }
            }
        }
        return out
    }

    /// Training's entry point takes this path for an int8 weight under bf16 compute at the width selected, and
    /// gives the kernel's result.
    func testLinearBackwardInputUsesTheIntegerProductWhenOn() throws {
        let widths = fastWidths()
        guard !widths.isEmpty else { throw XCTSkip("no AVX2 or avx512_vnni on this CPU") }
        defer { muwa_i8_backward_select(-1) }
        for bits in widths {
            XCTAssertEqual(muwa_i8_backward_select(bits), 1)
            let M = 37, N = 600, K = 70
            let t = try int8Weight(N: N, K: K, seed: 9).preparedForBF16()
            XCTAssertEqual(int8BackwardBits(for: t), bits)
            let rows = try XCTUnwrap(t.int8Rows)
            let dout = gradient(M: M, N: N, seed: 10), start = gradient(M: M, N: K, seed: 11)
            var direct = start
            let p = pack(dout, M: M, N: N, absmax: rows.absmax, order: rows.order, bits: bits)
            muwa_i8_backward(
                bits, p.a, p.scales, p.sums, M, t.raw.assumingMemoryBound(to: Int8.self), rows.order, N, K, &direct, K,
                0, K, 1)
            for capacity in [4 * K, 1 << 20] {  // a scratch smaller than one packed tile, and one holding them all
                var viaEntry = start
                let scratch = KernelScratch(maxInputDim: K, capacityFloats: capacity)
                linearBackwardInput(dinp: &viaEntry, dout: dout, weight: t, M: M, K: K, N: N, scratch: scratch)
                XCTAssertEqual(
                    viaEntry.map(\.bitPattern), direct.map(\.bitPattern), "bits \(bits), scratch of \(capacity) floats")
            }
        }
    }

    /// The default width: int8 wherever the VNNI kernels run (Intel and AMD alike), int16 on AVX2 where no bf16
    /// GEMM runs, none on the reference; MUWA_I8_BACKWARD, when set, decides instead.
    func testDefaultGradientWidthFollowsTheKernels() throws {
        try XCTSkipIf(ProcessInfo.processInfo.environment["MUWA_I8_BACKWARD"] != nil, "MUWA_I8_BACKWARD is set")
        muwa_i8_backward_select(-1)
        let kernel = String(cString: muwa_i8_backward_kernel())
        let expected: Int32 = kernel == "VNNI" ? 8 : kernel == "AVX2" && muwa_gemm_bf16_fast() == 0 ? 16 : 0
        XCTAssertEqual(muwa_i8_backward_bits(), expected, kernel)
    }

    /// Which loads send an int8 base's input gradients to the integer product: bf16 compute (where the product
    /// runs), and `auto` on a CPU without avx512_bf16 where it runs (AVX2: int16); f32 compute never (the exact
    /// product on the dequantized rows), nor stored weights.
    func testIntegerGradientsFollowTheComputeSetting() throws {
        let integerRuns = muwa_i8_backward_bits() != 0
        let directory = ReferenceFixtures.model("pre-ln-f32")
        for (options, expected) in [
            (EngineOptions(compute: .f32, weights: .int8), false),
            (EngineOptions(compute: .bf16, weights: .int8), true),
            (EngineOptions(compute: .auto, weights: .int8), true),
            (EngineOptions(compute: .auto, weights: .stored), false),
        ] {
            let model = try OPTModel.load(directory: directory, options: options)
            let fc1 = model.weights.layers[0].fc1.weight
            XCTAssertEqual(fc1.integerInputGradients, expected, "\(options)")
            if options.weights == .int8 {
                XCTAssertEqual(fc1.dtype, .i8)
                // whether the product then runs: the weight allows it and this CPU has a kernel for it
                XCTAssertEqual(
                    fc1.integerInputGradients && int8BackwardBits(for: fc1) != nil, expected && integerRuns,
                    "\(options)")
            }
        }
    }
}
