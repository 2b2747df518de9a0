// Causal self-attention over whole sequences, for training: no KV cache, every position of a batch
// at once. The forward pass keeps the softmax probabilities (llm.c's `att`) for the backward pass.
// q is already scaled by hs^-0.5 (OPT scales after q_proj), so there is no scale here.
// Two layouts:
//  - padded (the reference the tests hold the packed path to): B rows of T tokens, a key mask;
//      q, k, v, out, dout, dq, dk, dv: (B, T, C) with the NH heads of hs interleaved (C = NH·hs)
//      att: (B, NH, T, T)   keyMask: (B, T) 1 = real token, 0 = padding   dscores: (T, T) scratch
//    Key j is visible to query t when j ≤ t and keyMask[b, j] = 1. A query row that sees no key (padding
//    before any real token) attends uniformly to all T keys, as transformers' additive-min mask gives.
//  - packed (training's path, PackedAttention.swift): the real tokens of every sequence back to back,
//    no padding at all; see ``PackedSequences``.
import CKernels
import Foundation

/// out = softmax(mask(q·kᵀ)) · v per batch row and head; att receives the probabilities.
func causalAttentionForward(
    out: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>,
    k: UnsafePointer<Float>, v: UnsafePointer<Float>, keyMask: UnsafePointer<UInt8>, B: Int, T: Int, NH: Int, hs: Int
) {
    let C = NH * hs
    for b in 0..<B {
        let mask = keyMask + b * T
        for h in 0..<NH {
            let off = b * T * C + h * hs
            let p = att + (b * NH + h) * T * T
            // scores (T, T) = Q (T, hs; row stride C) · Kᵀ
            BLAS.gemm(M: T, N: T, K: hs, a: q + off, lda: C, b: k + off, ldb: C, bTransposed: true, c: p, ldc: T)
            for t in 0..<T {
                muwa_softmax(p + t * T, T, t + 1, mask)
            }
            // out (T, hs; row stride C) = P (T, T) · V (T, hs; row stride C)
            BLAS.gemm(M: T, N: hs, K: T, a: p, lda: T, b: v + off, ldb: C, bTransposed: false, c: out + off, ldc: C)
        }
    }
}

/// Accumulates dq, dk, dv from dout, using the probabilities `att` of the forward pass:
///   dV += Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ⊙ (dP − rowsum(P ⊙ dP)),  dQ += dS·K,  dK += dSᵀ·Q.
/// A row that sees no key is uniform whatever its scores, so its dS is 0.
func causalAttentionBackward(
    dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
    dscores: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, att: UnsafePointer<Float>,
    q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, keyMask: UnsafePointer<UInt8>,
    B: Int, T: Int, NH: Int, hs: Int
) {
    let C = NH * hs
    for b in 0..<B {
        // rows t < firstReal see no key
        var firstReal = T
        for j in 0..<T where keyMask[b * T + j] != 0 { firstReal = j; break }
        for h in 0..<NH {
            let off = b * T * C + h * hs
            let p = att + (b * NH + h) * T * T
            // dV (T, hs) += Pᵀ (T, T) · dO (T, hs)
            BLAS.gemm(
                aTransposed: true, bTransposed: false, M: T, N: hs, K: T, a: p, lda: T, b: dout + off, ldb: C,
                beta: 1, c: dv + off, ldc: C)
            // dP (T, T) = dO (T, hs) · Vᵀ
            BLAS.gemm(
                M: T, N: T, K: hs, a: dout + off, lda: C, b: v + off, ldb: C, bTransposed: true,
                c: dscores, ldc: T)
            softmaxBackwardRows(dscores, probs: p, rows: T, n: T)
            if firstReal > 0 { dscores.update(repeating: 0, count: min(firstReal, T) * T) }
            // dQ (T, hs) += dS (T, T) · K (T, hs);  dK (T, hs) += dSᵀ · Q
            BLAS.gemm(
                M: T, N: hs, K: T, a: dscores, lda: T, b: k + off, ldb: C, bTransposed: false, beta: 1,
                c: dq + off, ldc: C)
            BLAS.gemm(
                aTransposed: true, bTransposed: false, M: T, N: hs, K: T, a: dscores, lda: T, b: q + off,
                ldb: C, beta: 1, c: dk + off, ldc: C)
        }
    }
}

/// In place over `rows` rows of n: d ← P ⊙ (d − Σⱼ Pⱼ dⱼ), the gradient of the scores of a softmax
/// whose probabilities are P, given d = the gradient of P. Masked entries (P = 0) get 0.
func softmaxBackwardRows(_ d: UnsafeMutablePointer<Float>, probs: UnsafePointer<Float>, rows: Int, n: Int) {
    for r in 0..<rows {
        let dr = d + r * n, pr = probs + r * n
        var dot: Float = 0
        for j in 0..<n { dot += pr[j] * dr[j] }
        for j in 0..<n { dr[j] = pr[j] * (dr[j] - dot) }
    }
}

/// Reference for the backward pass: plain loops in Double, recomputing the probabilities from q and k.
func causalAttentionBackwardNaive(
    dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
    dout: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
    keyMask: UnsafePointer<UInt8>, B: Int, T: Int, NH: Int, hs: Int
) {
    let C = NH * hs
    var p = [Double](repeating: 0, count: T), dp = [Double](repeating: 0, count: T)
    for b in 0..<B {
        for h in 0..<NH {
            func at(_ x: UnsafePointer<Float>, _ t: Int, _ d: Int) -> Double { Double(x[(b * T + t) * C + h * hs + d]) }
            for t in 0..<T {
                let visible = { (j: Int) in j <= t && keyMask[b * T + j] != 0 }
                let any = (0..<T).contains(where: visible)
                var maxv = -Double.infinity
                for j in 0..<T {
                    var s = 0.0
                    for d in 0..<hs { s += at(q, t, d) * at(k, j, d) }
                    p[j] = s
                    if !any || visible(j) { maxv = max(maxv, s) }
                }
                var sum = 0.0
                for j in 0..<T {
                    p[j] = any ? (visible(j) ? Foundation.exp(p[j] - maxv) : 0) : 1
                    sum += p[j]
                }
                for j in 0..<T { p[j] /= sum }
                var dot = 0.0
                for j in 0..<T {
                    var s = 0.0
                    for d in 0..<hs { s += at(dout, t, d) * at(v, j, d) }
                    dp[j] = s
                    dot += p[j] * s
                }
                for j in 0..<T {
                    let ds = any ? p[j] * (dp[j] - dot) : 0
                    for d in 0..<hs {
                        dv[(b * T + j) * C + h * hs + d] += Float(p[j] * at(dout, t, d))
                        dq[(b * T + t) * C + h * hs + d] += Float(ds * at(k, j, d))
                        dk[(b * T + j) * C + h * hs + d] += Float(ds * at(q, t, d))
                    }
                }
            }
        }
    }
}
