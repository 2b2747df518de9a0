// Linear layers in training (llm.c's matmul_backward). The forward pass is Matmul.swift's `matmul`;
// this file holds the backward passes, each beside a naive reference with Double accumulation.
//   inp: (M, K)   weight: (N, K) in nn.Linear's layout   bias: (N)   out, dout: (M, N)
// Backward accumulates (+=) into every gradient it is given; a nil gradient is not computed. Base
// weights are frozen during LoRA training, so for them only dinp is needed, and they may be stored
// in any dtype (``linearBackwardInput(dinp:dout:weight:M:K:N:scratch:)``).
import CKernels

/// dinp (M, K) += dout (M, N) · weight (N, K);  dweight (N, K) += doutᵀ · inp;  dbias (N) += Σₘ dout.
/// All F32. Used for the LoRA matrices A and B, whose weights are trained.
func linearBackward(
    dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
    dout: UnsafePointer<Float>, inp: UnsafePointer<Float>?, weight: UnsafePointer<Float>?, M: Int, K: Int, N: Int
) {
    guard M > 0 else { return }
    if let dinp, let weight {
        BLAS.gemm(M: M, N: K, K: N, a: dout, lda: N, b: weight, ldb: K, bTransposed: false, beta: 1, c: dinp, ldc: K)
    }
    if let dweight, let inp {
        BLAS.gemm(
            aTransposed: true, bTransposed: false, M: N, N: K, K: M, a: dout, lda: N, b: inp, ldb: K,
            beta: 1, c: dweight, ldc: K)
    }
    if let dbias {
        for m in 0..<M {
            let row = dout + m * N
            for n in 0..<N { dbias[n] += row[n] }
        }
    }
}

/// dinp (M, K) += dout (M, N) · weight (N, K) for a frozen weight of any dtype (`accumulate: false`: dinp =
/// the product, whatever dinp held, without a separate pass to zero it: each path clears what it writes as
/// it writes it, inside its parallel parts). F32 weights go straight to BLAS; BF16/F16 weights are widened a
/// block of rows at a time into `scratch`, as in `matmul`; weights prepared for bf16 compute go through the
/// bf16 GEMM for more than `rowInvariantMaxRows` rows (int8 ones through the VNNI integer product where that
/// is on: Int8Backward.swift).
public func linearBackwardInput(
    dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, weight: Tensor, M: Int, K: Int, N: Int,
    scratch: KernelScratch, accumulate: Bool = true
) {
    guard M > 0 else { return }
    if N <= 0 {
        if !accumulate { dinp.update(repeating: 0, count: M * K) }
        return
    }
    if M > rowInvariantMaxRows, weight.computesInBF16, bf16GemmRuns(for: weight) {
        linearBackwardInputBF16(
            dinp: dinp, dout: dout, weight: weight, M: M, K: K, N: N, scratch: scratch, accumulate: accumulate)
        return
    }
    if M > rowInvariantMaxRows, weight.integerInputGradients, let bits = int8BackwardBits(for: weight),
        let scales = weight.int8Rows
    {
        linearBackwardInputInt8VNNI(
            dinp: dinp, dout: dout, weight: weight, scales: scales, bits: bits, M: M, K: K, N: N, scratch: scratch,
            accumulate: accumulate)
        return
    }
    if M > rowInvariantMaxRows, weight.dtype == .i8, weight.computesInBF16, muwa_gemm_bf16_fast() != 0,
        let scales = weight.int8Rows
    {
        linearBackwardInputInt8BF16(
            dinp: dinp, dout: dout, weight: weight, scales: scales, M: M, K: K, N: N, scratch: scratch,
            accumulate: accumulate)
        return
    }
    let beta: Float = accumulate ? 1 : 0  // BLAS with β = 0 stores the product without reading C
    if let w = weight.floats {
        BLAS.gemm(M: M, N: K, K: N, a: dout, lda: N, b: w, ldb: K, bTransposed: false, beta: beta, c: dinp, ldc: K)
        return
    }
    let blockRows = scratch.blockRows(K: K)
    var n0 = 0
    while n0 < N {
        let nb = min(blockRows, N - n0)
        weight.convertToFloat(start: n0 * K, count: nb * K, into: scratch.buffer)
        // dinp (+)= dout[:, n0..<n0+nb] · W[n0..<n0+nb, :]; the first block stores when not accumulating
        BLAS.gemm(
            M: M, N: K, K: nb, a: dout + n0, lda: N, b: scratch.buffer, ldb: K, bTransposed: false,
            beta: n0 == 0 ? beta : 1, c: dinp, ldc: K)
        n0 += nb
    }
}

/// Reference for both backward functions: plain loops, Double accumulation, weight of any dtype.
func linearBackwardNaive(
    dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
    dout: UnsafePointer<Float>, inp: UnsafePointer<Float>?, weight: Tensor?, M: Int, K: Int, N: Int
) {
    if let dinp, let weight {
        for m in 0..<M {
            for k in 0..<K {
                var acc = 0.0
                for n in 0..<N { acc += Double(dout[m * N + n]) * Double(weight.element(n * K + k)) }
                dinp[m * K + k] += Float(acc)
            }
        }
    }
    if let dweight, let inp {
        for n in 0..<N {
            for k in 0..<K {
                var acc = 0.0
                for m in 0..<M { acc += Double(dout[m * N + n]) * Double(inp[m * K + k]) }
                dweight[n * K + k] += Float(acc)
            }
        }
    }
    if let dbias {
        for n in 0..<N {
            var acc = 0.0
            for m in 0..<M { acc += Double(dout[m * N + n]) }
            dbias[n] += Float(acc)
        }
    }
}
