// bf16 compute for the many-row products (prefill, scoring, the frozen base in training): activations are
// rounded to bf16 (nearest even, as PyTorch's autocast does), multiplied with the BF16 weight by the
// AVX-512 BF16 GEMM of CKernels (kernels_bf16_gemm.c) with f32 accumulation, ranges of output columns
// claimed by `EngineThreads`' threads. The weight is the plain [N, K] bf16 matrix the decode kernels read
// too: one copy serves decode, the forward product (W read as [N, K]) and the backward product (W read as
// [K-out, N]).
//
// On a CPU without avx512_bf16 (or with MUWA_KERNEL_ISA forcing another table) `bf16GemmRuns` is false and
// bf16 weights take the widening path of `matmul`: bf16 weights, f32 products (activations unrounded).
import CKernels
import Dispatch

/// True when `weight` can go through the bf16 GEMM on this CPU: a BF16 matrix and the AVX-512 BF16 kernel.
@inline(__always)
func bf16GemmRuns(for weight: Tensor) -> Bool {
    weight.dtype == .bf16 && weight.shape.count == 2 && muwa_gemm_bf16_fast() != 0
}

/// out[M, N] (+)= bf16(inp[M, K]) · weight[N, K]ᵀ, f32 accumulation; `weight` BF16.
func matmulBF16(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: Tensor, M: Int, K: Int, N: Int,
    scratch: KernelScratch, accumulate: Bool
) {
    gemmBF16(
        layout: MUWA_GEMM_B_NK, c: out, a: inp, w: weight, M: M, R: K, P: N, scratch: scratch,
        accumulate: accumulate)
}

/// dinp[M, K] (+)= bf16(dout[M, N]) · weight[N, K], f32 accumulation; `weight` BF16.
func linearBackwardInputBF16(
    dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, weight: Tensor, M: Int,
    K: Int, N: Int, scratch: KernelScratch, accumulate: Bool = true
) {
    gemmBF16(
        layout: MUWA_GEMM_B_KN, c: dinp, a: dout, w: weight, M: M, R: N, P: K, scratch: scratch,
        accumulate: accumulate)
}

/// dinp[M, K] (+)= bf16(dout[M, N]) · bf16(dequant(W[N, K])) for int8 weights under bf16 compute (the product
/// bitsandbytes' backward makes with the weights dequantized to the model's half precision): rows of W are
/// dequantized to bf16 a block at a time (scratch.bf16Block; the threads split each block's rows), each block
/// one bf16 GEMM that accumulates into dinp (the first stores, when not `accumulate`).
func linearBackwardInputInt8BF16(
    dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, weight: Tensor, scales: Int8RowScales, M: Int,
    K: Int, N: Int, scratch: KernelScratch, accumulate: Bool = true
) {
    let region = scratch.bf16Block
    guard let block = region.mutableBase?.bindMemory(to: UInt16.self, capacity: region.count / 2) else { return }
    let q = weight.raw.assumingMemoryBound(to: Int8.self)
    let blockRows = max(1, region.count / 2 / max(K, 1))
    var n0 = 0
    while n0 < N {
        let nb = min(blockRows, N - n0), parts = max(1, min(EngineThreads.count, nb))
        EngineThreads.run(parts: parts) { part in
            let r0 = nb * part / parts, r1 = nb * (part + 1) / parts
            scales.dequantizeBF16(q, firstRow: n0 + r0, rowCount: r1 - r0, K: K, into: block + r0 * K)
        }
        gemmBF16(
            layout: MUWA_GEMM_B_KN, c: dinp, a: dout + n0, lda: N,
            w: Tensor(dtype: .bf16, shape: [nb, K], region: region),
            M: M, R: nb, P: K, scratch: scratch, accumulate: accumulate || n0 > 0)
        n0 += nb
    }
}

/// C[M, P] (+)= bf16(A[M, R]) · B[R, P] with B read from `w` as `layout` says. A is rounded and packed into
/// the scratch buffer (muwa_gemm_bf16_pack_a: tiles of `muwa_gemm_bf16_row_block()` rows) as many rows at a
/// time as fit, the tiles split across the threads; then the threads claim ranges of output columns of each chunk
/// of rows (whole micro-kernel panels, PackedGemmChunks.swift), each packing its own panels of B.
func gemmBF16(
    layout: muwa_gemm_b_layout, c: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, lda: Int? = nil, w: Tensor,
    M: Int, R: Int, P: Int, scratch: KernelScratch, accumulate: Bool
) {
    let lda = lda ?? R  // A's row stride
    guard M > 0, P > 0, R > 0 else { return }
    let tileRows = muwa_gemm_bf16_row_block()
    let perTile = muwa_gemm_bf16_packed_a_count(tileRows, R)
    // The scratch buffer (16 MiB by default) holds many tiles; a scratch made for a smaller width than R gets a
    // buffer of one tile for this call.
    let own: UnsafeMutablePointer<UInt16>? = scratch.capacity * 2 < perTile ? .allocate(capacity: perTile) : nil
    defer { own?.deallocate() }
    let halvesCapacity = own == nil ? scratch.capacity * 2 : perTile
    let packed = own ?? UnsafeMutableRawPointer(scratch.buffer).bindMemory(to: UInt16.self, capacity: halvesCapacity)
    let weights = w.raw.assumingMemoryBound(to: UInt16.self)
    let acc: Int32 = accumulate ? 1 : 0
    forEachPackedChunk(
        M: M, tileRows: tileRows, perTile: perTile, capacity: halvesCapacity, columns: P,
        columnBlock: muwa_gemm_bf16_column_block(), claimColumns: Int(muwa_gemm_bf16_column_chunk()),
        rangesPerThread: 2,  // the FMA kernel widens each A tile once per range: not too narrow
        pack: { m0, rows, t0, t1 in muwa_gemm_bf16_pack_a(a + m0 * lda, rows, R, lda, packed, t0, t1) },
        multiply: { m0, rows, p0, p1 in
            muwa_gemm_bf16(layout, packed, rows, weights, R, P, c + m0 * P, P, p0, p1, acc)
        })
}

/// Reference for the tests: the same product with plain loops and Double accumulation, the activations
/// rounded to bf16 as the fast path rounds them.
func matmulBF16Naive(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: Tensor,
    bias: UnsafePointer<Float>?, M: Int, K: Int, N: Int
) {
    for m in 0..<M {
        for n in 0..<N {
            var acc = Double(bias?[n] ?? 0)
            for k in 0..<K {
                acc += Double(bf16ToFloat(floatToBF16(inp[m * K + k]))) * Double(weight.element(n * K + k))
            }
            out[m * N + n] = Float(acc)
        }
    }
}
