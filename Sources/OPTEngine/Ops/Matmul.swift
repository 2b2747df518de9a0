// Matmul: the one kernel interface every projection goes through.
//   out[M, N] = inp[M, K] · Wᵀ + bias      W: [N, K] in PyTorch's nn.Linear layout, any DType.
// F32 weights go straight to OpenBLAS. BF16/F16 weights are widened block by block into a small
// scratch buffer and multiplied there, so narrow checkpoints stay narrow in memory. matmulNaive is
// the reference the tests hold the fast path to.

/// Scratch for kernels that widen narrow weights; allocated once per model session, never per call.
public final class KernelScratch: @unchecked Sendable {
    public static let blockRows = 128
    let buffer: UnsafeMutablePointer<Float>
    let capacity: Int

    public init(maxInputDim K: Int) {
        capacity = KernelScratch.blockRows * max(K, 1)
        buffer = .allocate(capacity: capacity)
    }

    deinit { buffer.deallocate() }
}

@inline(__always)
func addBias(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>?, M: Int, N: Int) {
    guard let bias else { return }
    for m in 0..<M {
        let row = out + m * N
        for n in 0..<N { row[n] += bias[n] }
    }
}

/// out[M, N] = inp[M, K] · weightᵀ (+ bias); `accumulate` adds into `out` instead of overwriting.
public func matmul(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: Tensor, bias: UnsafePointer<Float>?,
    M: Int, K: Int, N: Int, scratch: KernelScratch, accumulate: Bool = false
) {
    let beta: Float = accumulate ? 1 : 0
    switch weight.dtype {
    case .f32:
        let w = weight.raw.assumingMemoryBound(to: Float.self)
        if M == 1 {
            BLAS.gemv(rows: N, cols: K, a: w, lda: K, x: inp, beta: beta, y: out)
        } else {
            BLAS.gemm(M: M, N: N, K: K, a: inp, lda: K, b: w, ldb: K, bTransposed: true, beta: beta, c: out, ldc: N)
        }
    default:
        precondition(scratch.capacity >= KernelScratch.blockRows * K, "kernel scratch too small for K=\(K)")
        var n0 = 0
        while n0 < N {
            let nb = min(KernelScratch.blockRows, N - n0)
            weight.convertToFloat(start: n0 * K, count: nb * K, into: scratch.buffer)
            if M == 1 {
                BLAS.gemv(rows: nb, cols: K, a: scratch.buffer, lda: K, x: inp, beta: beta, y: out + n0)
            } else {
                BLAS.gemm(M: M, N: nb, K: K, a: inp, lda: K, b: scratch.buffer, ldb: K, bTransposed: true,
                          beta: beta, c: out + n0, ldc: N)
            }
            n0 += nb
        }
    }
    addBias(out, bias, M: M, N: N)
}

/// Reference: the same product with plain loops and Double accumulation.
public func matmulNaive(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: Tensor, bias: UnsafePointer<Float>?,
    M: Int, K: Int, N: Int
) {
    for m in 0..<M {
        for n in 0..<N {
            var acc = Double(bias?[n] ?? 0)
            for k in 0..<K { acc += Double(inp[m * K + k]) * Double(weight.element(n * K + k)) }
            out[m * N + n] = Float(acc)
        }
    }
}
