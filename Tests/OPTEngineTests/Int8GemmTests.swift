// The int8 GEMM (many rows with int8 weights: prefill, scoring) and the AVX-512 input quantization in front of
// it. Both must give the bits of the scalar code: the GEMM's dots are exact integers finished by the same
// scalar operations, and the vector quantization repeats the scalar rounding 16 lanes at a time. Shapes cover
// partial row tiles (12 rows; 32 with AMX; 6 on AVX2), partial panels (32 columns; 16 on AVX2), K not a multiple
// of 2, 4 or 64, outliers, and accumulation into existing values, on every GEMM path the CPU has (AVX-512 VNNI,
// AMX where present, the AVX2 int16 GEMM under the avx2 table: their sums are the same exact integers).
import CKernels
import XCTest
@testable import OPTEngine

/// The GEMM paths this CPU runs: the AVX-512 kernels (0), and the AMX ones (1) where the CPU has AMX. Each call
/// to `body` runs with that path selected (and its own packing of A); the original choice is restored.
func forEachGemmPath(_ body: (Int32) throws -> Void) rethrows {
    let original = muwa_amx_enabled()
    defer { muwa_amx_select(original) }
    for amx: Int32 in muwa_amx_supported() != 0 ? [0, 1] : [0] {
        muwa_amx_select(amx)
        try body(amx)
    }
}

final class Int8GemmTests: XCTestCase {
    func randomFloats(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) * scale }
    }

    /// x [M, K] with outlier features (|x| ≥ 6) in some rows only, quantized batch-wide (per_row 0), and its
    /// packed tiles; `body` gets the kernel's view of both.
    func withQuantized(
        _ x: [Float], M: Int, K: Int, threshold: Float,
        _ body: (UnsafePointer<muwa_i8_input>, UnsafePointer<UInt8>) -> Void
    ) {
        var q = [Int8](repeating: 0, count: M * K), absmax = [Float](repeating: 0, count: M)
        var cols = [Int32](repeating: 0, count: K), start = [Int32](repeating: 0, count: M), count = start
        _ = muwa_quantize_rows(x, M, K, threshold, 0, &q, &absmax, &cols, &start, &count)
        var packed = [UInt8](repeating: 0xee, count: muwa_gemm_i8_packed_a_bytes(M, K))
        q.withUnsafeBufferPointer { qp in
            absmax.withUnsafeBufferPointer { ap in
                x.withUnsafeBufferPointer { xp in
                    cols.withUnsafeBufferPointer { cp in
                        start.withUnsafeBufferPointer { sp in
                            count.withUnsafeBufferPointer { np in
                                var input = muwa_i8_input(
                                    q: qp.baseAddress, absmax: ap.baseAddress, x: xp.baseAddress,
                                    outlier_cols: cp.baseAddress, outlier_start: sp.baseAddress,
                                    outlier_count: np.baseAddress)
                                let tiles = (M + muwa_gemm_i8_row_block() - 1) / muwa_gemm_i8_row_block()
                                muwa_gemm_i8_pack_a(&input, M, K, &packed, 0, tiles)
                                packed.withUnsafeBufferPointer { body(&input, $0.baseAddress!) }
                            }
                        }
                    }
                }
            }
        }
    }

    func testGemmAndItsReferenceGiveTheScalarProductsBits() throws {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        try forEachGemmPath { amx in
            for (M, K, N) in [
                (1, 4, 1), (13, 77, 33), (30, 256, 70), (25, 131, 64), (12, 64, 32), (70, 200, 96), (16, 128, 16),
                (33, 196, 47),
            ] {
                for threshold: Float in [0, 6] {
                    let w = try Tensor.f32(randomFloats(N * K, seed: UInt64(N + K)), shape: [N, K])
                        .quantizedInt8(threshold: threshold)
                    var x = randomFloats(M * K, seed: UInt64(M * K), scale: 2)
                    for m in stride(from: 0, to: M, by: 3) { x[m * K + K / 2] = Float(7 + m) }  // an outlier feature
                    var weight = try XCTUnwrap(w.int8Rows).kernelWeight(w.raw.assumingMemoryBound(to: Int8.self))
                    let initial = randomFloats(M * N, seed: 99), bias = randomFloats(N, seed: 5, scale: 3)
                    for accumulate: Int32 in [0, 1] {
                        var expected = initial
                        KernelISA.select("scalar")
                        withQuantized(x, M: M, K: K, threshold: threshold) { input, _ in
                            muwa_gemv_i8(&weight, input, M, &expected, N, 0, N, K, accumulate)
                        }
                        // the bias after the product, as a separate pass would add it
                        for m in 0..<M { for n in 0..<N { expected[m * N + n] += bias[n] } }
                        // each table packs A its own way (VNNI tiles, AVX2 int16 pairs) and runs its GEMM on it
                        for isa in KernelISA.supported {
                            KernelISA.select(isa)
                            withQuantized(x, M: M, K: K, threshold: threshold) { input, packed in
                                var reference = initial, fast = initial
                                muwa_gemm_i8_reference(
                                    &weight, input, packed, M, &reference, N, 0, N, K, accumulate, bias)
                                XCTAssertEqual(
                                    zip(reference, expected).filter { $0.bitPattern != $1.bitPattern }.count, 0,
                                    "reference \(isa) M \(M) K \(K) N \(N) T \(threshold) amx \(amx)")
                                // two column ranges, as two threads would split them (whole panels)
                                let split = min(N, muwa_gemm_i8_column_block())
                                muwa_gemm_i8(&weight, input, packed, M, &fast, N, 0, split, K, accumulate, bias)
                                muwa_gemm_i8(&weight, input, packed, M, &fast, N, split, N, K, accumulate, bias)
                                XCTAssertEqual(
                                    zip(fast, expected).filter { $0.bitPattern != $1.bitPattern }.count, 0,
                                    "\(isa) M \(M) K \(K) N \(N) T \(threshold) acc \(accumulate) amx \(amx)")
                            }
                        }
                    }
                }
            }
        }
    }

    func testMatmulThroughTheGemmMatchesTheScalarTableInChunks() throws {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        let M = 61, K = 96, N = 300
        let t = try Tensor.f32(randomFloats(N * K, seed: 7), shape: [N, K]).quantizedInt8(threshold: 6)
        var x = randomFloats(M * K, seed: 8, scale: 2)
        x[5 * K + 3] = -9
        try forEachGemmPath { amx in
            for capacity in [8 * K, 1 << 20] {  // several chunks of rows (whole tiles), then one
                let scratch = KernelScratch(maxInputDim: K, capacityFloats: capacity)
                var results: [String: [Float]] = [:]
                for isa in KernelISA.supported {
                    KernelISA.select(isa)
                    var out = [Float](repeating: 0, count: M * N)
                    matmul(out: &out, inp: x, weight: t, bias: nil, M: M, K: K, N: N, scratch: scratch)
                    results[isa] = out
                }
                let scalar = try XCTUnwrap(results["scalar"])
                for (isa, out) in results {
                    let differing = zip(out, scalar).filter { $0.bitPattern != $1.bitPattern }.count
                    XCTAssertEqual(
                        differing, 0,
                        "\(isa), amx \(amx), scratch of \(capacity) floats: outputs that differ from scalar")
                }
            }
        }
    }

    /// q, k and v sharing one quantized, packed input give each output the bits of its own `matmul` (bias
    /// included); a weight with another outlier threshold, or a non-int8 weight, sends all of them one by one.
    func testProjectionsSharingAnInputGiveTheBitsOfSeparateProducts() throws {
        let M = 45, K = 80
        var x = randomFloats(M * K, seed: 21, scale: 2)
        x[7 * K + 11] = 8  // an outlier feature
        let scratch = KernelScratch(maxInputDim: K)
        for thresholds: [Float] in [[6, 6, 6], [6, 0, 6]] {
            let widths = [48, 33, 64]
            let weights = try zip(widths, thresholds).enumerated().map { i, wt in
                try Tensor.f32(randomFloats(wt.0 * K, seed: UInt64(30 + i)), shape: [wt.0, K])
                    .quantizedInt8(threshold: wt.1)
            }
            let biases = widths.enumerated().map { i, n in randomFloats(n, seed: UInt64(40 + i)) }
            // buffers the projections point into (allocated, so the pointers stay valid for the whole call)
            let outs = widths.map { UnsafeMutablePointer<Float>.allocate(capacity: M * $0) }
            let biasPointers = biases.map { b in
                let p = UnsafeMutablePointer<Float>.allocate(capacity: b.count)
                p.initialize(from: b, count: b.count)
                return p
            }
            defer { (outs + biasPointers).forEach { $0.deallocate() } }
            try forEachGemmPath { amx in
                let projections = (0..<3).map { i in
                    SharedInputProjection(out: outs[i], weight: weights[i], bias: biasPointers[i], N: widths[i])
                }
                matmulSharingInput(projections, inp: x, M: M, K: K, scratch: scratch)
                for i in 0..<3 {
                    var separate = [Float](repeating: .nan, count: M * widths[i])
                    matmul(
                        out: &separate, inp: x, weight: weights[i], bias: biases[i], M: M, K: K, N: widths[i],
                        scratch: scratch)
                    let shared = Array(UnsafeBufferPointer(start: outs[i], count: M * widths[i]))
                    XCTAssertEqual(
                        zip(shared, separate).filter { $0.bitPattern != $1.bitPattern }.count, 0,
                        "projection \(i), thresholds \(thresholds), amx \(amx)")
                }
            }
        }
    }

    func testVectorInputQuantizationIsTheScalarOnesToTheBit() {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        let M = 3, K = 83
        var x = randomFloats(M * K, seed: 3, scale: 4)
        // float16 edge cases: subnormals, ties, values that round past 65504, a value at the threshold
        let specials: [Float] = [
            1e-7, -3e-6, 6.1e-5, 2.9802322e-08, 0.5 * 0.0009765625 + 1, 65519, -65521, 70000, 6, -6, 5.999,
            Float(Float16(6)).nextDown, 0, -0.0, 1e-40,
            // ties at float16's subnormal steps and its largest finite value (round half to even)
            0x1p-25, 0x3p-25, -0x5p-25, 0x1.002p0, 0x1.006p0, 65504, -65519.996,
        ]
        var withNaN = x  // a NaN quantizes to 0 and never becomes the absmax; an inf row's values all go to 0
        withNaN[K + 9] = .nan
        withNaN[2 * K + 40] = -.infinity
        for (i, v) in specials.enumerated() { x[(i * 7) % (M * K)] = v }
        // batch-wide outlier features (per_row 0) and each row's own (per_row 1: decode's path)
        for (input, threshold, perRow) in [(x, 0, 0), (x, 6, 0), (x, 6, 1), (withNaN, 0, 0), (withNaN, 6, 1)]
            as [([Float], Float, Int32)]
        {
            var results: [String: ([Int8], [Float], [Int32])] = [:]
            for isa in KernelISA.supported {
                KernelISA.select(isa)
                var q = [Int8](repeating: 0, count: M * K), absmax = [Float](repeating: 0, count: M)
                var cols = [Int32](repeating: 0, count: M * K), start = [Int32](repeating: 0, count: M)
                var count = start
                let n = muwa_quantize_rows(input, M, K, threshold, perRow, &q, &absmax, &cols, &start, &count)
                results[isa] = (q, absmax, Array(cols[0..<n]) + start + count)
            }
            guard let scalar = results["scalar"] else { return XCTFail("no scalar table") }
            let context = "threshold \(threshold), per row \(perRow), NaN \(input != x)"
            for (isa, r) in results {
                XCTAssertEqual(r.0, scalar.0, "\(isa) q, \(context)")
                XCTAssertEqual(r.1.map(\.bitPattern), scalar.1.map(\.bitPattern), "\(isa) absmax, \(context)")
                XCTAssertEqual(r.2, scalar.2, "\(isa) outlier features, \(context)")
            }
            if threshold > 0 { XCTAssertGreaterThan(scalar.2.count, 2 * M, "the inputs have outliers") }
        }
    }
}
