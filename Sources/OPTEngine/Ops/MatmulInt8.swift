// The int8 case of `matmul` (LLM.int8, bitsandbytes' Linear8bitLt decomposition):
//   out[M, N] = int8(inp) · int8(W)ᵀ dequantized  +  inp[:, outliers] · dequant(W[:, outliers])ᵀ  (+ bias)
// The input rows are quantized once per call into the session's scratch (once for all the weights of a call
// that share them: q, k and v), then the rows of W are split across the cores; the GEMM adds the bias in its
// finish. Up to `rowInvariantMaxRows` rows each row's outlier features are its own (a row's
// result never depends on the other rows: decode gives the same bits alone or in a batch; for one row this is
// exactly bitsandbytes); with more rows (prefill, scoring, training) a feature that is an outlier in any row
// is computed in f32 for every row, as bitsandbytes does for a batch.
import CKernels
import Dispatch

/// One product of an input several int8 weights share: out[M, N] (+)= inp · weightᵀ (+ bias).
struct Int8Product {
    var out: UnsafeMutablePointer<Float>
    var weight: Tensor
    var scales: Int8RowScales
    var bias: UnsafePointer<Float>?
    var N: Int
}

/// out[M, N] (+)= inp[M, K] · weightᵀ + bias for an int8 weight (see the file comment).
func matmulInt8(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: Tensor, rows scales: Int8RowScales,
    bias: UnsafePointer<Float>?, M: Int, K: Int, N: Int, scratch: KernelScratch, accumulate: Bool
) {
    matmulInt8(
        [Int8Product(out: out, weight: weight, scales: scales, bias: bias, N: N)], inp: inp, M: M, K: K,
        scratch: scratch, accumulate: accumulate)
}

/// Several int8 products of one input (q, k and v of a layer): the input rows are quantized (and, for the GEMM,
/// packed) once for all of them — each output gets the bits it would alone, since the quantization depends on
/// the input and the outlier threshold only. Products with different thresholds run one at a time.
func matmulInt8(
    _ products: [Int8Product], inp: UnsafePointer<Float>, M: Int, K: Int, scratch: KernelScratch, accumulate: Bool
) {
    guard let threshold = products.first?.scales.threshold else { return }
    if products.contains(where: { $0.scales.threshold != threshold }) {
        for p in products { matmulInt8([p], inp: inp, M: M, K: K, scratch: scratch, accumulate: accumulate) }
        return
    }
    let perRow = M <= rowInvariantMaxRows
    let gemm = !perRow && muwa_gemm_i8_fast() != 0  // many rows on a VNNI or AVX2 CPU: the packed GEMM
    let tileRows = muwa_gemm_i8_row_block(), packedRowBytes = muwa_gemm_i8_packed_a_bytes(tileRows, K) / tileRows
    // Scratch layout for a chunk of R rows: q [R·K] i8 | absmax, start, count [R] each | cols [R·K or K] i32
    // | the GEMM's packed rows [⌈R / tileRows⌉ · tileRows · packedRowBytes] u8.
    let fixed = (perRow ? 0 : 4 * K) + (gemm ? tileRows * packedRowBytes : 0)
    let perRowBytes = K + 12 + (perRow ? 4 * K : 0) + (gemm ? packedRowBytes : 0), slack = 512
    let capacityBytes = scratch.capacity * MemoryLayout<Float>.size
    var chunkRows = max(1, min(M, (capacityBytes - fixed - slack) / perRowBytes))
    if gemm, chunkRows < M { chunkRows = max(tileRows, chunkRows / tileRows * tileRows) }  // whole tiles
    let neededBytes = fixed + slack + chunkRows * perRowBytes
    let temporary: UnsafeMutableRawPointer? =
        neededBytes > capacityBytes  // only for a tiny scratch (K huge)
        ? .allocate(byteCount: neededBytes, alignment: 64) : nil
    defer { temporary?.deallocate() }
    let base = temporary ?? UnsafeMutableRawPointer(scratch.buffer)
    let q = base.assumingMemoryBound(to: Int8.self)
    let after = (chunkRows * K + 63) & ~63
    let absmax = (base + after).assumingMemoryBound(to: Float.self)
    let start = (base + after + 4 * chunkRows).assumingMemoryBound(to: Int32.self)
    let count = (base + after + 8 * chunkRows).assumingMemoryBound(to: Int32.self)
    let cols = (base + after + 12 * chunkRows).assumingMemoryBound(to: Int32.self)
    let colsBytes = 4 * (perRow ? chunkRows * K : K)
    let packed = (base + ((after + 12 * chunkRows + colsBytes + 63) & ~63)).assumingMemoryBound(to: UInt8.self)
    let acc: Int32 = accumulate ? 1 : 0
    // many rows: the outlier features of all of them, whatever the chunks (bitsandbytes' batch-wide decomposition)
    let features = perRow ? 0 : outlierFeatures(inp, M: M, K: K, threshold: threshold, into: cols)
    var m0 = 0
    while m0 < M {
        let rows = min(chunkRows, M - m0), x = inp + m0 * K
        var input = muwa_i8_input(
            q: q, absmax: absmax, x: x, outlier_cols: cols, outlier_start: start, outlier_count: count)
        if gemm {
            gemmInt8(
                products, input: &input, rows: rows, firstRow: m0, K: K, packed: packed, acc: acc,
                quantize: { r0, r1 in
                    muwa_quantize_rows_shared(x, r0, r1, K, threshold, cols, features, q, absmax, start, count)
                })
            m0 += rows
            continue
        }
        if perRow {
            muwa_quantize_rows(x, rows, K, threshold, 1, q, absmax, cols, start, count)
        } else {
            muwa_quantize_rows_shared(x, 0, rows, K, threshold, cols, features, q, absmax, start, count)
        }
        for product in products {
            let N = product.N, y = product.out + m0 * N, parts = N >= 256 ? EngineThreads.count : 1
            var w = product.scales.kernelWeight(product.weight.raw.assumingMemoryBound(to: Int8.self))
            withUnsafePointer(to: &w) { wp in
                withUnsafePointer(to: &input) { xp in
                    if parts == 1 {
                        muwa_gemv_i8(wp, xp, rows, y, N, 0, N, K, acc)
                    } else {
                        // chunks of weight rows claimed by whichever thread is free: each row's result is
                        // its own, and the threads' shares of the memory bandwidth are not equal
                        EngineThreads.forEachClaimedChunk(N, grain: rowChunk(K: K)) { r in
                            muwa_gemv_i8(wp, xp, rows, y, N, r.lowerBound, r.upperBound, K, acc)
                        }
                    }
                }
            }
            addBias(y, product.bias, M: rows, N: N)
        }
        m0 += rows
    }
}

/// muwa_i8_outlier_features (the features that are an outlier in any row, ascending, into `cols`) with the rows
/// split across the threads: each part flags its rows' features (part 0 in `cols`, the others in K flags of
/// their own), then the flags are merged and listed. The list does not depend on the split.
func outlierFeatures(
    _ x: UnsafePointer<Float>, M: Int, K: Int, threshold: Float, into cols: UnsafeMutablePointer<Int32>
)
    -> Int
{
    guard threshold > 0, M > 0, K > 0 else { return 0 }
    let parts = max(1, min(EngineThreads.count, M, M * K / (1 << 16)))  // ~64 Ki elements a part at least
    if parts == 1 { return muwa_i8_outlier_features(x, M, K, threshold, cols) }
    return withUnsafeTemporaryAllocation(of: Int32.self, capacity: (parts - 1) * K) { buffer in
        guard let extra = buffer.baseAddress else { return muwa_i8_outlier_features(x, M, K, threshold, cols) }
        EngineThreads.run(parts: parts) { part in
            muwa_i8_outlier_flags(
                x, M * part / parts, M * (part + 1) / parts, K, threshold, part == 0 ? cols : extra + (part - 1) * K)
        }
        return muwa_i8_outlier_merge(cols, extra, parts, K)
    }
}

/// The GEMM case of matmulInt8 for one chunk of rows (input rows firstRow ..< firstRow + rows): each thread
/// quantizes (`quantize(r0, r1)`: rows [r0, r1) of the chunk) and packs its share of the row tiles, then for each
/// product the threads claim ranges of output columns (whole panels); the bias is added in the GEMM's finish.
private func gemmInt8(
    _ products: [Int8Product], input: inout muwa_i8_input, rows: Int, firstRow: Int, K: Int,
    packed: UnsafeMutablePointer<UInt8>, acc: Int32, quantize: (Int, Int) -> Void
) {
    let tileRows = muwa_gemm_i8_row_block(), tiles = (rows + tileRows - 1) / tileRows
    let tileParts = max(1, min(EngineThreads.count, tiles))
    withUnsafePointer(to: &input) { xp in
        EngineThreads.run(parts: tileParts) { part in
            let t0 = tiles * part / tileParts, t1 = tiles * (part + 1) / tileParts
            quantize(t0 * tileRows, min(rows, t1 * tileRows))
            muwa_gemm_i8_pack_a(xp, rows, K, packed, t0, t1)
        }
        for product in products {
            let N = product.N, y = product.out + firstRow * N, bias = product.bias
            var w = product.scales.kernelWeight(product.weight.raw.assumingMemoryBound(to: Int8.self))
            withUnsafePointer(to: &w) { wp in
                // ranges of the kernel's column blocks, claimed by whichever thread is free (PackedGemmChunks.swift)
                let grain = claimGrain(
                    columns: N, block: muwa_gemm_i8_column_block(), natural: muwa_gemm_i8_column_chunk(K))
                EngineThreads.forEachClaimedChunk(N, grain: grain) { r in
                    muwa_gemm_i8(wp, xp, packed, rows, y, N, r.lowerBound, r.upperBound, K, acc, bias)
                }
            }
        }
    }
}
