// The low-rank term of a LoRA projection, forward and backward, as peft computes it:
//   out += scale · B(A x)      i.e. out (M, N) += scale · (x (M, K) · Aᵀ) · Bᵀ
//   A: (r, K) lora_A.weight   B: (N, r) lora_B.weight   u = x·Aᵀ: (M, r), kept for backward
// The base projection (W, bias) is computed separately and is frozen: this file never touches it.
// loraForwardNaive / loraBackwardNaive are the plain-loop references the tests hold these to.
import OPTEngine

/// out (M, N) += scale · (inp · Aᵀ) · Bᵀ; u (M, r) receives inp · Aᵀ.
@inline(__always)
public func loraForward(
    out: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
    a: UnsafePointer<Float>, b: UnsafePointer<Float>, scale: Float, M: Int, K: Int, N: Int, r: Int
) {
    guard M > 0 else { return }
    // u (M, r) = inp (M, K) · Aᵀ
    BLAS.gemm(M: M, N: r, K: K, a: inp, lda: K, b: a, ldb: K, bTransposed: true, c: u, ldc: r)
    // out (M, N) += scale · u (M, r) · Bᵀ
    BLAS.gemm(M: M, N: N, K: r, alpha: scale, a: u, lda: r, b: b, ldb: r, bTransposed: true, beta: 1, c: out, ldc: N)
}

/// Backward of ``loraForward``, accumulating (+=):
///   dB (N, r) += scale · doutᵀ · u        g (M, r) = scale · dout · B   (scratch, overwritten)
///   dA (r, K) += gᵀ · inp                 dinp (M, K) += g · A          (skipped when dinp is nil)
public func loraBackward(
    dinp: UnsafeMutablePointer<Float>?, da: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>,
    g: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, u: UnsafePointer<Float>,
    a: UnsafePointer<Float>, b: UnsafePointer<Float>, scale: Float, M: Int, K: Int, N: Int, r: Int
) {
    guard M > 0 else { return }
    BLAS.gemm(
        aTransposed: true, bTransposed: false, M: N, N: r, K: M, alpha: scale, a: dout, lda: N, b: u, ldb: r,
        beta: 1, c: db, ldc: r)
    BLAS.gemm(M: M, N: r, K: N, alpha: scale, a: dout, lda: N, b: b, ldb: r, bTransposed: false, c: g, ldc: r)
    BLAS.gemm(
        aTransposed: true, bTransposed: false, M: r, N: K, K: M, a: g, lda: r, b: inp, ldb: K,
        beta: 1, c: da, ldc: K)
    if let dinp {
        BLAS.gemm(M: M, N: K, K: r, a: g, lda: r, b: a, ldb: K, bTransposed: false, beta: 1, c: dinp, ldc: K)
    }
}

/// Reference for ``loraForward``: plain loops, Double accumulation.
public func loraForwardNaive(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
    scale: Float, M: Int, K: Int, N: Int, r: Int
) {
    var u = [Double](repeating: 0, count: r)
    for m in 0..<M {
        for i in 0..<r {
            var acc = 0.0
            for k in 0..<K { acc += Double(inp[m * K + k]) * Double(a[i * K + k]) }
            u[i] = acc
        }
        for n in 0..<N {
            var acc = 0.0
            for i in 0..<r { acc += u[i] * Double(b[n * r + i]) }
            out[m * N + n] += Float(Double(scale) * acc)
        }
    }
}

/// Reference for ``loraBackward`` (same accumulation contract; recomputes u itself).
public func loraBackwardNaive(
    dinp: UnsafeMutablePointer<Float>?, da: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>,
    dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
    scale: Float, M: Int, K: Int, N: Int, r: Int
) {
    let s = Double(scale)
    for m in 0..<M {
        var u = [Double](repeating: 0, count: r), g = [Double](repeating: 0, count: r)
        for i in 0..<r {
            for k in 0..<K { u[i] += Double(inp[m * K + k]) * Double(a[i * K + k]) }
            for n in 0..<N { g[i] += s * Double(dout[m * N + n]) * Double(b[n * r + i]) }
        }
        for n in 0..<N { for i in 0..<r { db[n * r + i] += Float(s * Double(dout[m * N + n]) * u[i]) } }
        for i in 0..<r { for k in 0..<K { da[i * K + k] += Float(g[i] * Double(inp[m * K + k])) } }
        if let dinp {
            for k in 0..<K {
                var acc = 0.0
                for i in 0..<r { acc += g[i] * Double(a[i * K + k]) }
                dinp[m * K + k] += Float(acc)
            }
        }
    }
}
