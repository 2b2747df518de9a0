// The input gradient through a frozen int8 base weight under bf16 compute, on CPUs with VNNI (and int16 on AVX2
// under auto compute): integer products (kernels_int8_backward.c). dout · absmax/127 is
// quantized per row and per 512 reduction elements to int8 (the default: vpdpbusd; 2^-8 of the block's largest
// element, finer than bitsandbytes' SwitchBackLinear, which takes one int8 scale per row for this product) or,
// with MUWA_I8_BACKWARD=int16, to int16 (vpdpwssd, about half int8's speed; 2^-16 of the block's largest; the
// bf16 GEMM on dequantized rows, MUWA_I8_BACKWARD=bf16, rounds both operands to bf16),
// multiplied with the int8 values exactly in int32, and each block's sums are scaled into dinp in f32. The
// blocks take the reduction index in the weight's order of absmax (Int8RowScales.order): the scale of v is
// the block's largest |dout · absmax|, so a block of channels with like absmax gives each of them a step in
// proportion to its own scale (in index order, a channel with a small absmax shares a block's step with
// channels up to 5 times larger and carries that much more error in int8).
//   dout: (M, N)   weight q: (N, K) int8, absmax (N)   dinp: (M, K)
import CKernels

/// The gradient's width (16 or 8) when the int8 weight's input gradient goes through the VNNI product on this
/// CPU, else nil.
func int8BackwardBits(for weight: Tensor) -> Int32? {
    guard weight.dtype == .i8, weight.int8Rows != nil, weight.shape.count == 2 else { return nil }
    let bits = muwa_i8_backward_bits()
    return bits == 0 ? nil : bits
}

/// dinp[M, K] (+)= dout[M, N] · dequant(W)[N, K] with the gradient in `bits` bits (see above). Rows go in chunks
/// whose packed form fits the scratch buffer; each chunk is packed by the threads (tiles), then multiplied by
/// them (ranges of whole column panels).
func linearBackwardInputInt8VNNI(
    dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, weight: Tensor, scales: Int8RowScales, bits: Int32,
    M: Int, K: Int, N: Int, scratch: KernelScratch, accumulate: Bool = true
) {
    guard M > 0, N > 0, K > 0 else { return }
    let tileRows = muwa_i8_backward_row_block()
    let perTile = muwa_i8_backward_packed_a_bytes(tileRows, N, bits)
    let bytes = scratch.capacity * MemoryLayout<Float>.size
    let own: UnsafeMutableRawPointer? =
        bytes < perTile ? .allocate(byteCount: perTile, alignment: 64) : nil
    defer { own?.deallocate() }
    let capacity = own == nil ? bytes : perTile
    let packed = own ?? UnsafeMutableRawPointer(scratch.buffer)
    let chunkRows = packedChunkRows(tileRows: tileRows, perTile: perTile, capacity: capacity)
    let blocks = muwa_i8_backward_scale_count(min(chunkRows, M), N)
    let blockScales = UnsafeMutablePointer<Float>.allocate(capacity: blocks)
    let blockSums = UnsafeMutablePointer<Int32>.allocate(capacity: blocks)
    defer {
        blockScales.deallocate()
        blockSums.deallocate()
    }
    let q = weight.raw.assumingMemoryBound(to: Int8.self), absmax = scales.absmax, order = scales.order
    forEachPackedChunk(
        M: M, tileRows: tileRows, perTile: perTile, capacity: capacity, columns: K,
        columnBlock: muwa_i8_backward_column_block(), claimColumns: Int(muwa_i8_backward_column_chunk()),
        pack: { m0, rows, t0, t1 in
            muwa_i8_backward_pack_a(
                dout + m0 * N, N, rows, N, absmax, order, bits, packed, blockScales, blockSums, t0, t1)
        },
        multiply: { m0, rows, p0, p1 in  // not accumulating: the first reduction block stores, not adds
            muwa_i8_backward(
                bits, packed, blockScales, blockSums, rows, q, order, N, K, dinp + m0 * K, K, p0, p1, accumulate ? 1 : 0
            )
        })
}
