// Int8 weights (LLM.int8): quantization against a Swift reference of bitsandbytes' int8_vectorwise_quant,
// the int8 product of every kernel table the host has against the scalar table (bit-identical: the dots are
// exact integers and every table finishes with the same scalar code) and against a Double reference of the
// decomposition, row invariance with outliers, and the frozen-base backward product on int8 weights.
import CKernels
import XCTest
@testable import OPTEngine

final class Int8KernelTests: XCTestCase {
    func randomFloats(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) * scale }
    }

    /// Inputs with a few large features (|x| ≥ 6 in `outlierFeatures`, in some rows only) so LLM.int8's
    /// outlier path runs.
    func inputs(M: Int, K: Int, seed: UInt64, outlierFeatures: [Int]) -> [Float] {
        var x = randomFloats(M * K, seed: seed, scale: 2)
        for (i, k) in outlierFeatures.enumerated() where k < K {
            for m in 0..<M where (m + i) % 2 == 0 { x[m * K + k] = (m % 3 == 0 ? -1 : 1) * Float(6 + i + m) }
        }
        return x
    }

    func weight(_ w: [Float], N: Int, K: Int, threshold: Float = 6) throws -> Tensor {
        try Tensor.f32(w, shape: [N, K]).quantizedInt8(threshold: threshold)
    }

    /// Reference of bitsandbytes' row-wise quantization of float16 values: absmax, round half to even of
    /// v · (127 / absmax).
    func referenceQuantize(_ values: [Float], skip: (Float) -> Bool = { _ in false }) -> (q: [Int8], absmax: Float) {
        let row = values.map { Float(Float16($0)) }
        let absmax = row.filter { !skip($0) }.map(abs).max() ?? 0
        let inv: Float = absmax > 0 ? 127 * (1 / absmax) : 0  // PyTorch's 127.0 / tensor
        return (row.map { skip($0) ? 0 : Int8(($0 * inv).rounded(.toNearestOrEven)) }, absmax)
    }

    func testWeightQuantizationMatchesTheReference() throws {
        let N = 9, K = 45
        var w = randomFloats(N * K, seed: 11)
        w[3 * K + 7] = 0.5 * w[3 * K + 8]  // ties and zeros: a zero row, and a row of one value
        for k in 0..<K { w[5 * K + k] = 0 }
        for k in 0..<K { w[6 * K + k] = -0.25 }
        for dtype in [DType.f32, .bf16, .f16] {
            let source = Tensor.f32(w, shape: [N, K])
            let narrow = dtype == .f32 ? source : narrowed(source, to: dtype)
            let t = try narrow.quantizedInt8(threshold: 6)
            XCTAssertEqual(t.dtype, .i8)
            XCTAssertEqual(t.byteCount, N * K + N * 12, "int8 values + absmax, row sums and order")
            let rows = try XCTUnwrap(t.int8Rows)
            let widened = narrow.toFloatArray()
            for n in 0..<N {
                let ref = referenceQuantize(Array(widened[n * K..<(n + 1) * K]))
                let q = (0..<K).map { t.raw.load(fromByteOffset: n * K + $0, as: Int8.self) }
                XCTAssertEqual(q, ref.q, "\(dtype) row \(n)")
                XCTAssertEqual(rows.absmax[n], ref.absmax, "\(dtype) row \(n)")
                XCTAssertEqual(rows.rowSums[n], q.reduce(0) { $0 + Int32($1) })
                for k in 0..<K {  // dequantized elements: q · absmax / 127 (bitsandbytes' int8_vectorwise_dequant)
                    XCTAssertEqual(t.element(n * K + k), Float(q[k]) * (ref.absmax * int8DequantFactor))
                }
            }
            XCTAssertEqual(t.toFloatArray(), (0..<N * K).map { t.element($0) }, "convertToFloat dequantizes rows")
        }
        XCTAssertThrowsError(try Tensor.f32([1], shape: [1]).quantizedInt8(threshold: 6))
        XCTAssertThrowsError(try Tensor.f32([1], shape: [1, 1]).quantizedInt8(threshold: -1))
    }

    func narrowed(_ t: Tensor, to dtype: DType) -> Tensor {
        let values = t.toFloatArray(), region = ByteRegion(allocating: values.count * 2)
        for (i, v) in values.enumerated() {
            region.mutableBase!.storeBytes(
                of: dtype == .bf16 ? floatToBF16(v) : floatToF16(v), toByteOffset: i * 2,
                as: UInt16.self)
        }
        return Tensor(dtype: dtype, shape: t.shape, region: region)
    }

    func testInputQuantizationMatchesBitsandbytesDecomposition() {
        let M = 4, K = 50, T: Float = 6
        let x = inputs(M: M, K: K, seed: 5, outlierFeatures: [3, 17, 49])
        for perRow in [true, false] {
            var q = [Int8](repeating: 0, count: M * K), absmax = [Float](repeating: 0, count: M)
            var cols = [Int32](repeating: -1, count: M * K), start = [Int32](repeating: 0, count: M), count = start
            let total = muwa_quantize_rows(x, M, K, T, perRow ? 1 : 0, &q, &absmax, &cols, &start, &count)
            let shared = (0..<K).filter { k in (0..<M).contains { abs(Float(Float16(x[$0 * K + k]))) >= T } }
            if !perRow { XCTAssertEqual(Array(cols[0..<total].map(Int.init)), shared) }
            for m in 0..<M {
                let row = Array(x[m * K..<(m + 1) * K])
                let own = (0..<K).filter { abs(Float(Float16(row[$0]))) >= T }
                let mine = Array(cols[Int(start[m])..<Int(start[m] + count[m])].map(Int.init))
                XCTAssertEqual(mine, perRow ? own : shared, "row \(m) perRow \(perRow)")
                // absmax over the non-outlier elements; outlier features are 0 in q
                let ref = referenceQuantize(row) { abs($0) >= T }
                XCTAssertEqual(absmax[m], ref.absmax)
                var expected = ref.q
                for k in mine { expected[k] = 0 }
                XCTAssertEqual(Array(q[m * K..<(m + 1) * K]), expected, "row \(m) perRow \(perRow)")
            }
            XCTAssertFalse(shared.isEmpty, "the inputs have outliers")
        }
        // threshold 0: plain int8, no outliers
        var q = [Int8](repeating: 0, count: M * K), absmax = [Float](repeating: 0, count: M)
        var cols = [Int32](repeating: 0, count: M * K), start = [Int32](repeating: 0, count: M), count = start
        XCTAssertEqual(muwa_quantize_rows(x, M, K, 0, 1, &q, &absmax, &cols, &start, &count), 0)
        XCTAssertEqual(absmax[0], x[0..<K].map(abs).max())
    }

    /// Double reference of out = dequant(int8 · int8) + outliers in f32, from the quantized operands.
    func referenceProduct(_ x: [Float], _ t: Tensor, M: Int, K: Int, N: Int, perRow: Bool) -> [Float] {
        let rows = t.int8Rows!, T = rows.threshold
        var out = [Float](repeating: 0, count: M * N)
        let shared = Set((0..<K).filter { k in (0..<M).contains { T > 0 && abs(Float(Float16(x[$0 * K + k]))) >= T } })
        for m in 0..<M {
            let row = Array(x[m * K..<(m + 1) * K])
            let outliers = perRow ? Set((0..<K).filter { T > 0 && abs(Float(Float16(row[$0]))) >= T }) : shared
            let ref = referenceQuantize(row) { T > 0 && abs($0) >= T }
            for n in 0..<N {
                var dot = 0.0, extra = 0.0
                for k in 0..<K {
                    let wq = Double(t.raw.load(fromByteOffset: n * K + k, as: Int8.self))
                    if outliers.contains(k) {
                        extra += Double(row[k]) * wq * Double(rows.absmax[n]) / 127
                    } else {
                        dot += Double(ref.q[k]) * wq
                    }
                }
                // bitsandbytes' int8_mm_dequant constant 6.200124e-05 (not quite 1/127²), which we match
                out[m * N + n] = Float(dot * Double(ref.absmax) * Double(rows.absmax[n]) * 6.200124e-05 + extra)
            }
        }
        return out
    }

    func testInt8ProductOfEveryTableIsTheScalarOnesBitForBit() throws {
        let original = KernelISA.current, prefetch = muwa_gemv_prefetch()
        defer {
            KernelISA.select(original)
            muwa_gemv_prefetch_select(prefetch)
        }
        for (M, K, N) in [(1, 1, 3), (1, 37, 7), (2, 64, 9), (3, 65, 13), (5, 130, 6), (16, 200, 11), (40, 77, 10)] {
            for threshold: Float in [0, 6] {
                let t = try weight(randomFloats(N * K, seed: UInt64(K)), N: N, K: K, threshold: threshold)
                let x = inputs(M: M, K: K, seed: UInt64(M), outlierFeatures: [0, K / 2, K - 1])
                let scratch = KernelScratch(maxInputDim: K, capacityFloats: 64 * K)
                var results: [String: [Float]] = [:]
                // the VNNI kernel with and without its weight prefetch (muwa_gemv_prefetch): the same bits
                for isa in KernelISA.supported {
                    for distance in [0, 4096] {
                        XCTAssertTrue(KernelISA.select(isa))
                        muwa_gemv_prefetch_select(distance)
                        var out = [Float](repeating: 0, count: M * N)
                        matmul(out: &out, inp: x, weight: t, bias: nil, M: M, K: K, N: N, scratch: scratch)
                        results[distance == 0 ? isa : "\(isa) prefetch \(distance)"] = out
                    }
                }
                let scalar = try XCTUnwrap(results["scalar"])
                for (isa, out) in results { XCTAssertEqual(out, scalar, "\(isa) M \(M) K \(K) N \(N) T \(threshold)") }
                let ref = referenceProduct(x, t, M: M, K: K, N: N, perRow: M <= rowInvariantMaxRows)
                let maxDiff = zip(scalar, ref).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
                XCTAssertLessThan(maxDiff, 1e-5, "M \(M) K \(K) N \(N) T \(threshold)")
            }
        }
    }

    func testInt8MatmulIsCloseToF32AndOutliersMakeItCloser() throws {
        let M = 3, K = 256, N = 300
        let w = randomFloats(N * K, seed: 21), x = inputs(M: M, K: K, seed: 22, outlierFeatures: [5, 100, 200])
        let scratch = KernelScratch(maxInputDim: K)
        var exact = [Float](repeating: 0, count: M * N), llm = exact, plain = exact
        matmul(
            out: &exact, inp: x, weight: Tensor.f32(w, shape: [N, K]), bias: nil, M: M, K: K, N: N, scratch: scratch)
        matmul(
            out: &llm, inp: x, weight: try weight(w, N: N, K: K, threshold: 6), bias: nil, M: M, K: K, N: N,
            scratch: scratch)
        matmul(
            out: &plain, inp: x, weight: try weight(w, N: N, K: K, threshold: 0), bias: nil, M: M, K: K, N: N,
            scratch: scratch)
        func rms(_ a: [Float]) -> Float {
            (zip(a, exact).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / Float(a.count)).squareRoot()
        }
        let scale = (exact.map { $0 * $0 }.reduce(0, +) / Float(exact.count)).squareRoot()
        XCTAssertLessThan(rms(llm) / scale, 0.01, "int8 with outliers in f32 is within 1 % of f32")
        XCTAssertLessThan(rms(llm), rms(plain), "keeping the outliers in f32 is more accurate than plain int8")
    }

    func testInt8RowsAreTheSameAloneAndInABatch() throws {
        let K = 96, N = 260, M = 7
        let t = try weight(randomFloats(N * K, seed: 31), N: N, K: K)
        let x = inputs(M: M, K: K, seed: 32, outlierFeatures: [1, 50])
        let scratch = KernelScratch(maxInputDim: K)
        var batch = [Float](repeating: 0, count: M * N)
        matmul(out: &batch, inp: x, weight: t, bias: nil, M: M, K: K, N: N, scratch: scratch)
        for m in 0..<M {
            var alone = [Float](repeating: 0, count: N)
            Array(x[m * K..<(m + 1) * K]).withUnsafeBufferPointer {
                matmul(out: &alone, inp: $0.baseAddress!, weight: t, bias: nil, M: 1, K: K, N: N, scratch: scratch)
            }
            XCTAssertEqual(alone, Array(batch[m * N..<(m + 1) * N]), "row \(m)")
        }
    }

    func testWidenAndGemvRowsOfRawInt8MatchScalar() {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        let N = 5, K = 53, M = 3
        let q: [Int8] = (0..<N * K).map { Int8(truncatingIfNeeded: $0 * 37 % 255 - 127) }
        let x = randomFloats(M * K, seed: 41)
        var reference: [Float]?
        for isa in KernelISA.supported {
            KernelISA.select(isa)
            var widened = [Float](repeating: 0, count: N * K), y = [Float](repeating: 0, count: M * N)
            muwa_widen(MUWA_DTYPE_I8, q, &widened, N * K)
            XCTAssertEqual(widened, q.map(Float.init), isa)
            muwa_gemv_rows(MUWA_DTYPE_I8, q, x, M, &y, N, 0, N, K, 0)
            if let reference {
                XCTAssertLessThan(zip(y, reference).map { abs($0 - $1) }.max() ?? 0, 1e-3, isa)
            } else {
                reference = y
            }
        }
    }

    func testBackwardInputOnInt8WeightsMatchesTheDequantizedReference() throws {
        let M = 5, K = 70, N = 33
        let t = try weight(randomFloats(N * K, seed: 51), N: N, K: K)
        let dout = randomFloats(M * N, seed: 52)
        var fast = randomFloats(M * K, seed: 53), ref = fast
        let scratch = KernelScratch(maxInputDim: K, capacityFloats: 8 * K)  // several blocks of rows
        linearBackwardInput(dinp: &fast, dout: dout, weight: t, M: M, K: K, N: N, scratch: scratch)
        linearBackwardNaive(dinp: &ref, dweight: nil, dbias: nil, dout: dout, inp: nil, weight: t, M: M, K: K, N: N)
        XCTAssertLessThan(zip(fast, ref).map { abs($0 - $1) }.max() ?? 1, 1e-4)
    }

    /// Under bf16 compute (the int8 tensor flagged `computesInBF16`) the input gradient is the bf16 GEMM on rows
    /// dequantized to bf16, a block at a time: held to Double sums of bf16(dout) · bf16(dequant(W)), and the
    /// bf16 rows to the f32 dequantized values rounded to nearest even.
    func testBackwardInputOnInt8WeightsInBF16UsesRoundedDequantizedRows() throws {
        guard muwa_gemm_bf16_fast() != 0 else { throw XCTSkip("no avx512_bf16 GEMM on this CPU") }
        XCTAssertEqual(muwa_i8_backward_select(0), 1)  // the bf16 GEMM, not the integer products (Int8BackwardTests)
        defer { muwa_i8_backward_select(-1) }
        let M = 37, K = 70, N = 33
        var t = try weight(randomFloats(N * K, seed: 61), N: N, K: K)
        t = try t.preparedForBF16()
        XCTAssertEqual(t.dtype, .i8)
        XCTAssertTrue(t.computesInBF16)
        let scales = try XCTUnwrap(t.int8Rows)
        let q = t.raw.assumingMemoryBound(to: Int8.self)
        var wide = [Float](repeating: 0, count: N * K), narrow = [UInt16](repeating: 0, count: N * K)
        scales.dequantize(q, firstRow: 0, rowCount: N, K: K, into: &wide)
        scales.dequantizeBF16(q, firstRow: 0, rowCount: N, K: K, into: &narrow)
        XCTAssertEqual(narrow, wide.map(floatToBF16), "bf16 rows are the f32 dequantized values rounded")
        let dout = randomFloats(M * N, seed: 62), start = randomFloats(M * K, seed: 63)
        var ref = start
        for m in 0..<M {
            for k in 0..<K {
                var acc = 0.0
                for n in 0..<N {
                    acc += Double(bf16ToFloat(floatToBF16(dout[m * N + n]))) * Double(bf16ToFloat(narrow[n * K + k]))
                }
                ref[m * K + k] += Float(acc)
            }
        }
        for blockHalves in [4 * K, 8 << 20] {  // 4 rows a block (9 blocks, the last short), and one block
            var fast = start
            let scratch = KernelScratch(maxInputDim: K, bf16BlockHalves: blockHalves)
            linearBackwardInput(dinp: &fast, dout: dout, weight: t, M: M, K: K, N: N, scratch: scratch)
            let gap = zip(fast, ref).map { abs($0 - $1) }.max() ?? 1
            XCTAssertLessThan(gap, 1e-4, "block of \(blockHalves) halves")
        }
    }
}
