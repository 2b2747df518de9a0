// The int8 case of `matmul` (LLM.int8, bitsandbytes' Linear8bitLt decomposition):
//   out[M, N] = int8(inp) · int8(W)ᵀ dequantized  +  inp[:, outliers] · dequant(W[:, outliers])ᵀ  (+ bias)
// The input rows are quantized once per call into the session's scratch (no allocation), then the rows of W
// are split across the cores. Up to `rowInvariantMaxRows` rows each row's outlier features are its own (a row's
// result never depends on the other rows: decode gives the same bits alone or in a batch; for one row this is
// exactly bitsandbytes); with more rows (prefill, scoring, training) a feature that is an outlier in any row
// is computed in f32 for every row, as bitsandbytes does for a batch.
import CKernels
import Dispatch

/// out[M, N] (+)= inp[M, K] · weightᵀ for an int8 weight (see the file comment); bias is added by the caller.
func matmulInt8(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: Tensor, rows scales: Int8RowScales,
    M: Int, K: Int, N: Int, scratch: KernelScratch, accumulate: Bool
) {
    let perRow = M <= rowInvariantMaxRows
    // Scratch layout for a chunk of R rows: q [R·K] i8 | absmax, start, count [R] each | cols [R·K or K] i32.
    let fixed = perRow ? 0 : 4 * K, perRowBytes = K + 12 + (perRow ? 4 * K : 0), slack = 256
    let capacityBytes = scratch.capacity * MemoryLayout<Float>.size
    let chunkRows = max(1, min(M, (capacityBytes - fixed - slack) / perRowBytes))
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
    var w = scales.kernelWeight(weight.raw.assumingMemoryBound(to: Int8.self))
    let parts = N >= 256 ? EngineThreads.count : 1, acc: Int32 = accumulate ? 1 : 0
    var m0 = 0
    while m0 < M {
        let rows = min(chunkRows, M - m0), x = inp + m0 * K
        muwa_quantize_rows(x, rows, K, scales.threshold, perRow ? 1 : 0, q, absmax, cols, start, count)
        var input = muwa_i8_input(
            q: q, absmax: absmax, x: x, outlier_cols: cols, outlier_start: start,
            outlier_count: count)
        let y = out + m0 * N
        withUnsafePointer(to: &w) { wp in
            withUnsafePointer(to: &input) { xp in
                if parts == 1 {
                    muwa_gemv_i8(wp, xp, rows, y, N, 0, N, K, acc)
                } else {
                    DispatchQueue.concurrentPerform(iterations: parts) { p in
                        // boundaries on multiples of 4: the AVX-512 kernel's blocks of weight rows
                        let n0 = p == 0 ? 0 : (N * p / parts) & ~3, n1 = p == parts - 1 ? N : (N * (p + 1) / parts) & ~3
                        muwa_gemv_i8(wp, xp, rows, y, N, n0, n1, K, acc)
                    }
                }
            }
        }
        m0 += rows
    }
}
