// The input gradient through a frozen int8 base weight under bf16 compute, on CPUs where the bf16 GEMM runs on
// f32 FMAs (Intel without AMX): VNNI's int16 products (kernels_int8_backward.c), at twice the FMA rate there.
// dout · absmax/127 is quantized to int16 per row and per 512 reduction elements, multiplied with the int8
// values exactly in int32, and each block's sums are scaled into dinp in f32: one rounding (2^-16 of the
// block's largest element) where the bf16 GEMM on dequantized rows rounds both operands to bf16.
//   dout: (M, N)   weight q: (N, K) int8, absmax (N)   dinp: (M, K)
import CKernels

/// True when the int8 weight's input gradient goes through the int16 VNNI product on this CPU.
func int8BackwardRuns(for weight: Tensor) -> Bool {
    weight.dtype == .i8 && weight.int8Rows != nil && weight.shape.count == 2 && muwa_i8_backward_enabled() != 0
}

/// dinp[M, K] += dout[M, N] · dequant(W)[N, K] with the gradient in int16 (see above). Rows go in chunks whose
/// packed form fits the scratch buffer; each chunk is packed by the threads (tiles), then multiplied by them
/// (ranges of whole column panels).
func linearBackwardInputInt8VNNI(
    dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, weight: Tensor, scales: Int8RowScales, M: Int,
    K: Int, N: Int, scratch: KernelScratch
) {
    guard M > 0, N > 0, K > 0 else { return }
    let tileRows = muwa_i8_backward_row_block()
    let perTile = muwa_i8_backward_packed_a_count(tileRows, N)
    let halves = scratch.capacity * 2
    let own: UnsafeMutablePointer<Int16>? = halves < perTile ? .allocate(capacity: perTile) : nil
    defer { own?.deallocate() }
    let capacity = own == nil ? halves : perTile
    let packed = own ?? UnsafeMutableRawPointer(scratch.buffer).bindMemory(to: Int16.self, capacity: capacity)
    let chunkRows = packedChunkRows(tileRows: tileRows, perTile: perTile, capacity: capacity)
    let blockScales = UnsafeMutablePointer<Float>.allocate(capacity: muwa_i8_backward_scale_count(min(chunkRows, M), N))
    defer { blockScales.deallocate() }
    let q = weight.raw.assumingMemoryBound(to: Int8.self), absmax = scales.absmax
    forEachPackedChunk(
        M: M, tileRows: tileRows, perTile: perTile, capacity: capacity, columns: K,
        columnBlock: muwa_i8_backward_column_block(),
        pack: { m0, rows, t0, t1 in
            muwa_i8_backward_pack_a(dout + m0 * N, N, rows, N, absmax, packed, blockScales, t0, t1)
        },
        multiply: { m0, rows, p0, p1 in
            muwa_i8_backward(packed, blockScales, rows, q, N, K, dinp + m0 * K, K, p0, p1)
        })
}
