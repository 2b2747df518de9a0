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
    // u (M, r) = inp (M, K) · Aᵀ            A: (r, K)
    LowRank.rowsDot(out: u, ldo: r, x: inp, ldx: K, y: a, yIsLR: false, M: M, L: K, r: r)
    // out (M, N) += scale · u (M, r) · Bᵀ   B: (N, r)
    LowRank.rowsAdd(out: out, ldo: N, u: u, ldu: r, y: b, yIsLR: true, M: M, L: N, r: r, alpha: scale)
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
    LowRank.colsAcc(z: db, zIsLR: true, u: u, ldu: r, x: dout, ldx: N, M: M, L: N, r: r, alpha: scale)
    LowRank.rowsDot(out: g, ldo: r, x: dout, ldx: N, y: b, yIsLR: true, M: M, L: N, r: r, alpha: scale)
    LowRank.colsAcc(z: da, zIsLR: false, u: g, ldu: r, x: inp, ldx: K, M: M, L: K, r: r)
    if let dinp {
        LowRank.rowsAdd(out: dinp, ldo: K, u: g, ldu: r, y: a, yIsLR: false, M: M, L: K, r: r)
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
