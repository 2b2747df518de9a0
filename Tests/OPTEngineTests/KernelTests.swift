// Fast kernels against their naive references: matmul for every weight dtype, attention with and
// without the KV cache.
import CKernels
import XCTest
@testable import OPTEngine

final class KernelTests: XCTestCase {
    func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) }
    }

    func narrowTensor(_ values: [Float], shape: [Int], dtype: DType) -> Tensor {
        let region = ByteRegion(allocating: values.count * dtype.byteSize)
        for (i, v) in values.enumerated() {
            switch dtype {
            case .bf16: region.mutableBase!.storeBytes(of: floatToBF16(v), toByteOffset: i * 2, as: UInt16.self)
            case .f16: region.mutableBase!.storeBytes(of: floatToF16(v), toByteOffset: i * 2, as: UInt16.self)
            default: region.mutableBase!.storeBytes(of: v, toByteOffset: i * 4, as: Float.self)
            }
        }
        return Tensor(dtype: dtype, shape: shape, region: region)
    }

    /// Runs `body` once with every kernel instruction set this CPU has, then restores the process's choice.
    func forEveryISA(_ body: (String) -> Void) {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        XCTAssertTrue(KernelISA.supported.contains("scalar"), "the scalar kernels always build")
        for isa in KernelISA.supported {
            XCTAssertTrue(KernelISA.select(isa))
            XCTAssertEqual(KernelISA.current, isa)
            body(isa)
        }
    }

    func testAnUnsupportedOrUnknownISAIsRefused() {
        let original = KernelISA.current
        XCTAssertFalse(KernelISA.select("sse9"))
        XCTAssertEqual(KernelISA.current, original)
        for isa in KernelISA.all where !KernelISA.supported.contains(isa) {
            XCTAssertFalse(KernelISA.select(isa), isa)
        }
    }

    func testMatmulMatchesNaiveForEveryDType() {
        forEveryISA { isa in
            for dtype in [DType.f32, .bf16, .f16] {
                for M in [1, 3, 17] {
                    let K = 37, N = 300  // blocks of 128 rows: exercises the widening loop's tail
                    let x = randomFloats(M * K, seed: 1), w = randomFloats(N * K, seed: 2),
                        bias = randomFloats(N, seed: 3)
                    let weight = narrowTensor(w, shape: [N, K], dtype: dtype)
                    var fast = [Float](repeating: 0, count: M * N), ref = fast
                    let scratch = KernelScratch(maxInputDim: K, capacityFloats: 128 * K)
                    matmul(out: &fast, inp: x, weight: weight, bias: bias, M: M, K: K, N: N, scratch: scratch)
                    matmulNaive(out: &ref, inp: x, weight: weight, bias: bias, M: M, K: K, N: N)
                    let maxDiff = zip(fast, ref).map { abs($0 - $1) }.max() ?? 0
                    XCTAssertLessThan(maxDiff, 1e-4, "\(isa) dtype \(dtype) M \(M)")
                }
            }
        }
    }

    /// Widening (BF16/F16 → F32) is exact: every table gives the scalar conversion's bits, subnormals,
    /// infinities and NaN payloads included.
    func testWideningIsExactOnEveryISA() {
        let bits: [UInt16] = (0..<70_000).map { UInt16(truncatingIfNeeded: $0 &* 40503) }
        var reference: [[Float]] = []
        forEveryISA { isa in
            var widened: [[Float]] = []
            for dtype in [DType.bf16, .f16] {
                let region = ByteRegion(allocating: bits.count * 2)
                for (i, b) in bits.enumerated() {
                    region.mutableBase!.storeBytes(of: b, toByteOffset: i * 2, as: UInt16.self)
                }
                let tensor = Tensor(dtype: dtype, shape: [bits.count], region: region)
                widened.append(tensor.toFloatArray())
            }
            if reference.isEmpty { reference = widened }
            for (dtype, (a, b)) in zip(["bf16", "f16"], zip(widened, reference)) {
                let first = a.indices.first { a[$0].bitPattern != b[$0].bitPattern }
                XCTAssertNil(
                    first,
                    "\(isa) \(dtype): bits 0x\(String(bits[first ?? 0], radix: 16)) widen to "
                        + "0x\(String(a[first ?? 0].bitPattern, radix: 16)), not 0x\(String(b[first ?? 0].bitPattern, radix: 16))"
                )
            }
        }
    }

    /// Decode batches: a row's product is bit-identical alone and among any other rows, for every dtype and
    /// every batch size up to rowInvariantMaxRows (K not a multiple of the vector width: the tails too).
    func testRowsAreBitIdenticalAloneAndInAnyBatch() {
        let pairsOriginal = muwa_gemv_row_pairs(), prefetchOriginal = muwa_gemv_prefetch()
        defer {
            muwa_gemv_row_pairs_select(pairsOriginal)
            muwa_gemv_prefetch_select(prefetchOriginal)
        }
        var onePairing = [String: [[Float]]]()  // the rows alone with row pairs and prefetch off, per isa and dtype
        // the AVX-512 row kernels read one or two weight rows at a time for one or two inputs, with or without
        // prefetching ahead of them: same bits
        for pairs: Int32 in [0, 1] {
            for distance in [0, 4096] {
                muwa_gemv_row_pairs_select(pairs)
                muwa_gemv_prefetch_select(distance)
                checkRowsAloneAndInBatches(pairs: pairs, prefetch: distance, onePairing: &onePairing)
            }
        }
    }

    func checkRowsAloneAndInBatches(pairs: Int32, prefetch: Int, onePairing: inout [String: [[Float]]]) {
        forEveryISA { isa in
            for dtype in [DType.f32, .bf16, .f16] {
                let K = 803, N = 517
                let weight = narrowTensor(randomFloats(N * K, seed: 4), shape: [N, K], dtype: dtype)
                let scratch = KernelScratch(maxInputDim: K)
                let rows = randomFloats(rowInvariantMaxRows * K, seed: 5)
                var alone = [[Float]]()
                for m in 0..<rowInvariantMaxRows {
                    var y = [Float](repeating: 0, count: N)
                    matmul(
                        out: &y, inp: Array(rows[(m * K)..<((m + 1) * K)]), weight: weight, bias: nil, M: 1, K: K,
                        N: N, scratch: scratch)
                    alone.append(y)
                }
                let key = "\(isa) \(dtype)"
                if pairs == 0 && prefetch == 0 {
                    onePairing[key] = alone
                } else {
                    XCTAssertEqual(
                        onePairing[key], alone, "\(key): row pairs \(pairs), prefetch \(prefetch) changed a result")
                }
                for M in 2...rowInvariantMaxRows {
                    // rows in reverse order: row m of the batch is input row (M - 1 - m)
                    var x = [Float]()
                    for m in 0..<M { x += rows[((M - 1 - m) * K)..<((M - m) * K)] }
                    var y = [Float](repeating: 0, count: M * N)
                    matmul(out: &y, inp: x, weight: weight, bias: nil, M: M, K: K, N: N, scratch: scratch)
                    for m in 0..<M {
                        XCTAssertEqual(
                            Array(y[(m * N)..<((m + 1) * N)]), alone[M - 1 - m],
                            "\(isa) dtype \(dtype) M \(M) row \(m) pairs \(pairs) prefetch \(prefetch)"
                        )
                    }
                }
            }
        }
    }

    func testMatmulAccumulates() {
        let M = 2, K = 5, N = 4
        let x = randomFloats(M * K, seed: 4), w = Tensor.f32(randomFloats(N * K, seed: 5), shape: [N, K])
        var once = [Float](repeating: 0, count: M * N)
        matmulNaive(out: &once, inp: x, weight: w, bias: nil, M: M, K: K, N: N)
        var twice = once
        matmul(
            out: &twice, inp: x, weight: w, bias: nil, M: M, K: K, N: N, scratch: KernelScratch(maxInputDim: K),
            accumulate: true)
        for i in 0..<(M * N) { XCTAssertEqual(twice[i], 2 * once[i], accuracy: 1e-5) }
    }

    /// Attention through the cache — all at once, and as a prefill followed by single-token steps —
    /// equals the naive full attention, including a left-padded row.
    func testAttentionWithCacheMatchesNaive() {
        let B = 2, T = 7, NH = 3, hs = 4, C = NH * hs
        let q = randomFloats(B * T * C, seed: 6), k = randomFloats(B * T * C, seed: 7),
            v = randomFloats(B * T * C, seed: 8)
        var mask = [UInt8](repeating: 1, count: B * T)
        mask[T] = 0; mask[T + 1] = 0  // row 1 has two left pads
        var ref = [Float](repeating: 0, count: B * T * C)
        attentionNaive(out: &ref, q: q, k: k, v: v, keyMask: mask, B: B, T: T, NH: NH, hs: hs)

        let S = T
        for split in [T, 4, 1] {  // prefill `split` tokens, then one at a time
            var cacheK = [Float](repeating: 0, count: B * NH * S * hs), cacheV = cacheK
            var out = [Float](repeating: 0, count: B * T * C)
            var scores = [Float](repeating: 0, count: T * S)
            var done = 0
            while done < T {
                let n = done == 0 ? split : 1
                // gather rows [done, done + n) of each sequence as (B, n, C)
                func slice(_ a: [Float]) -> [Float] {
                    var r: [Float] = []
                    for b in 0..<B {
                        let lo: Int = (b * T + done) * C
                        let hi: Int = lo + n * C
                        r += a[lo..<hi]
                    }
                    return r
                }
                var o = [Float](repeating: 0, count: B * n * C)
                attentionForward(
                    out: &o, q: slice(q), k: slice(k), v: slice(v), cacheK: &cacheK, cacheV: &cacheV,
                    keyMask: mask, scores: &scores,
                    shape: AttentionShape(B: B, T: n, NH: NH, hs: hs, past: done, capacity: S))
                for b in 0..<B { for i in 0..<(n * C) { out[(b * T + done) * C + i] = o[b * n * C + i] } }
                done += n
            }
            // Padding query rows have no visible key; they attend uniformly to every key present, which
            // depends on how many keys a chunk holds. They only match when the whole prompt is one chunk.
            var maxDiff: Float = 0
            for b in 0..<B {
                for t in 0..<T where split == T || mask[b * T + t] != 0 {
                    for c in 0..<C { maxDiff = max(maxDiff, abs(out[(b * T + t) * C + c] - ref[(b * T + t) * C + c])) }
                }
            }
            XCTAssertLessThan(maxDiff, 1e-5, "split \(split)")
        }
    }

    func testLayerNormMatchesDefinition() {
        let C = 10
        let x = randomFloats(2 * C, seed: 9), w = randomFloats(C, seed: 10), b = randomFloats(C, seed: 11)
        var out = [Float](repeating: 0, count: 2 * C)
        layerNormForward(out: &out, mean: nil, rstd: nil, inp: x, weight: w, bias: b, N: 2, C: C)
        for r in 0..<2 {
            let row = Array(x[(r * C)..<((r + 1) * C)]).map(Double.init)
            let m = row.reduce(0, +) / Double(C)
            let varc = row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(C)
            for c in 0..<C {
                let expected = (row[c] - m) / (varc + 1e-5).squareRoot() * Double(w[c]) + Double(b[c])
                XCTAssertEqual(Double(out[r * C + c]), expected, accuracy: 1e-5)
            }
        }
    }

    func testPositionsFromMaskFollowTransformers() {
        XCTAssertEqual(
            positionsFromMask([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]), [[-1, -1, 0, 1, 2], [0, 1, 2, 3, 4]])
    }
}
