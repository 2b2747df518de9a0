// Gradients written without a pass to clear them first, and work claimed by whichever thread is free:
//  - linearBackwardInput(accumulate: false) gives, over a buffer of NaNs, what accumulating into zeros gives, on
//    every path a frozen weight can take (OpenBLAS on f32, widened f16 blocks, the bf16 GEMM on each of its
//    kernels, the int8 base's integer products at both widths and its bf16 GEMM), with scratch buffers that
//    hold a chunk of rows and ones that do not;
//  - packed causal attention's backward does the same for dq, dk, dv, f32 and bf16;
//  - the outlier features found by threads over row ranges are the serial scan's list;
//  - forEachPackedChunk's claimed column ranges cover every column once, in whole blocks.
import CKernels
import XCTest
@testable import OPTEngine

final class OverwritingGradientTests: XCTestCase {
    override func tearDown() {
        EngineThreads.configure(EngineThreads.available)
        super.tearDown()
    }

    func f16(_ t: Tensor) -> Tensor {
        let values = t.toFloatArray(), region = ByteRegion(allocating: values.count * 2)
        for (i, v) in values.enumerated() {
            region.mutableBase?.storeBytes(of: floatToF16(v), toByteOffset: i * 2, as: UInt16.self)
        }
        return Tensor(dtype: .f16, shape: t.shape, region: region)
    }

    /// dinp from accumulate: false over NaNs equals dinp accumulated into zeros (== on Float: a zero's sign may
    /// differ, a NaN left behind fails).
    func assertOverwrites(_ weight: Tensor, M: Int, K: Int, N: Int, _ what: String) {
        let dout = randomFloats(M * N, seed: UInt64(M * 31 + N))
        for capacity in [4 * K, 1 << 20] {  // smaller than one packed tile of dout, and room for all of them
            let scratch = KernelScratch(maxInputDim: max(K, N), capacityFloats: capacity)
            var zeros = [Float](repeating: 0, count: M * K), nans = [Float](repeating: .nan, count: M * K)
            linearBackwardInput(dinp: &zeros, dout: dout, weight: weight, M: M, K: K, N: N, scratch: scratch)
            linearBackwardInput(
                dinp: &nans, dout: dout, weight: weight, M: M, K: K, N: N, scratch: scratch, accumulate: false)
            XCTAssertEqual(nans, zeros, "\(what), scratch of \(capacity) floats")
            XCTAssertTrue(zeros.contains { $0 != 0 }, "\(what): the product ran")
        }
    }

    func testBackwardInputOverwritesOnEveryPath() throws {
        let M = 37, K = 70, N = 600
        let w = randomFloats(N * K, seed: 3)
        let f32 = Tensor.f32(w, shape: [N, K])
        assertOverwrites(f32, M: M, K: K, N: N, "f32 (OpenBLAS)")
        assertOverwrites(f16(f32), M: M, K: K, N: N, "f16 (widened blocks)")
        assertOverwrites(try f32.quantizedInt8(threshold: 6), M: M, K: K, N: N, "int8, f32 compute (widened blocks)")
        try forEachBF16GemmPath { path in
            assertOverwrites(try f32.preparedForBF16(), M: M, K: K, N: N, "bf16 GEMM (\(path))")
            defer { muwa_i8_backward_select(-1) }
            let int8 = try f32.quantizedInt8(threshold: 6).preparedForBF16()
            XCTAssertEqual(muwa_i8_backward_select(0), 1)
            assertOverwrites(int8, M: M, K: K, N: N, "int8 base on the bf16 GEMM (\(path))")
            for bits: Int32 in [16, 8] where muwa_i8_backward_select(bits) == 1 {
                XCTAssertEqual(int8BackwardBits(for: int8), bits)
                assertOverwrites(int8, M: M, K: K, N: N, "int8 base, \(bits)-bit gradient (\(path))")
            }
        }
    }

    func testAttentionBackwardOverwrites() {
        let lengths = [1, 70, 33], NH = 3, hs = 24, C = NH * hs, R = lengths.reduce(0, +), maxLength = 70
        var offsets = [0]
        for n in lengths { offsets.append(offsets[offsets.count - 1] + n) }
        let q = randomFloats(R * C, seed: 1, scale: 0.3), k = randomFloats(R * C, seed: 2, scale: 0.3)
        let v = randomFloats(R * C, seed: 3), dout = randomFloats(R * C, seed: 4)
        for bf16 in [false, true] {
            var out = [Float](repeating: 0, count: R * C)
            var att = [Float](repeating: 0, count: lengths.reduce(0) { $0 + NH * $1 * $1 })
            var scratch = [Float](repeating: 0, count: 2 * attentionScratchFloats(maxLength: maxLength, hs: hs))
            var zeros = [[Float]](repeating: [Float](repeating: 0, count: R * C), count: 3)
            var nans = [[Float]](repeating: [Float](repeating: .nan, count: R * C), count: 3)
            offsets.withUnsafeBufferPointer { o in
                guard let base = o.baseAddress else { return }
                let seq = PackedSequences(offsets: base, count: lengths.count)
                packedCausalAttentionForward(
                    out: &out, att: &att, q: q, k: k, v: v, sequences: seq, NH: NH, hs: hs, bf16: bf16)
                for accumulate in [true, false] {
                    let g = accumulate ? zeros : nans
                    var dq = g[0], dk = g[1], dv = g[2]
                    packedCausalAttentionBackward(
                        dq: &dq, dk: &dk, dv: &dv, scratch: &scratch, parts: 2, maxLength: maxLength,
                        dout: dout, att: att, q: q, k: k, v: v, sequences: seq, NH: NH, hs: hs, bf16: bf16,
                        accumulate: accumulate)
                    if accumulate { zeros = [dq, dk, dv] } else { nans = [dq, dk, dv] }
                }
            }
            for (i, name) in ["dq", "dk", "dv"].enumerated() {
                XCTAssertEqual(nans[i], zeros[i], "\(name), bf16 \(bf16)")
                XCTAssertTrue(zeros[i].contains { $0 != 0 }, "\(name), bf16 \(bf16): the gradient ran")
            }
        }
    }

    /// Features over the threshold in a few rows each (the first, the last, ones past the first thread's rows).
    func testOutlierFeaturesFoundInParallelAreTheSerialList() {
        for (M, K) in [(3, 40), (64, 2048), (257, 1030)] {
            var x = randomFloats(M * K, seed: UInt64(M), scale: 2)
            for (m, k) in [(0, 0), (M - 1, K - 1), (M / 2, 17), (M - 1, 5), (M / 3, K / 2)] { x[m * K + k] = -7.5 }
            var serial = [Int32](repeating: -1, count: K)
            let count = muwa_i8_outlier_features(x, M, K, 6, &serial)
            XCTAssertGreaterThanOrEqual(count, 4)
            for threads in [1, 2, 3] {
                EngineThreads.configure(threads)
                var cols = [Int32](repeating: -1, count: K)
                let found = outlierFeatures(x, M: M, K: K, threshold: 6, into: &cols)
                XCTAssertEqual(found, count, "M \(M), K \(K), threads \(threads)")
                XCTAssertEqual(Array(cols[0..<found]), Array(serial[0..<count]), "M \(M), K \(K), threads \(threads)")
            }
        }
        var none = [Int32](repeating: 0, count: 8)
        XCTAssertEqual(outlierFeatures(randomFloats(64, seed: 9), M: 8, K: 8, threshold: 0, into: &none), 0)
    }

    /// Each thread gets about four ranges where the columns allow: whole blocks, at most the kernel's own.
    func testClaimGrainLeavesEveryThreadRanges() {
        EngineThreads.configure(2)
        XCTAssertEqual(claimGrain(columns: 768, block: 32, natural: 1024), 96)  // opt-125m's width: 8 ranges
        XCTAssertEqual(claimGrain(columns: 2048, block: 32, natural: 256), 256)  // opt-1.3b's: the kernel's block
        XCTAssertEqual(claimGrain(columns: 50272, block: 32, natural: 1024), 1024)  // the lm_head
        XCTAssertEqual(claimGrain(columns: 40, block: 32, natural: 512), 32)  // fewer columns than ranges: a block
        XCTAssertEqual(claimGrain(columns: 4096, block: 64, natural: 100), 128)  // rounded up to whole blocks
        XCTAssertEqual(claimGrain(columns: 768, block: 32, natural: 1024, rangesPerThread: 2), 192)
        XCTAssertEqual(claimGrain(columns: 2048, block: 32, natural: 1024, rangesPerThread: 2), 512)
        EngineThreads.configure(64)
        XCTAssertEqual(claimGrain(columns: 2048, block: 32, natural: 256), 32)
    }

    func testClaimedColumnRangesCoverEveryColumnOnce() {
        for threads in [1, 2, 3] {
            EngineThreads.configure(threads)
            for (columns, block, claim) in [(1000, 32, 100), (70, 32, 256), (4096, 64, 256), (5, 1, 1)] {
                let hits = UnsafeMutablePointer<Int>.allocate(capacity: columns)
                defer { hits.deallocate() }
                hits.initialize(repeating: 0, count: columns)
                forEachPackedChunk(
                    M: 30, tileRows: 12, perTile: 1, capacity: 2, columns: columns, columnBlock: block,
                    claimColumns: claim, pack: { _, _, _, _ in },
                    multiply: { _, _, p0, p1 in
                        XCTAssertEqual(p0 % block, 0)
                        XCTAssertTrue(p1 == columns || p1 % block == 0)
                        for p in p0..<p1 { hits[p] += 1 }  // ranges are disjoint: no two threads share a column
                    })
                // 30 rows in chunks of 24 (2 tiles of 12): each column twice
                XCTAssertEqual(
                    Array(UnsafeBufferPointer(start: hits, count: columns)), Array(repeating: 2, count: columns))
            }
        }
    }
}

/// n values uniform in [-scale, scale), seeded.
private func randomFloats(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = SeededRNG(seed: seed)
    return (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) * scale }
}
