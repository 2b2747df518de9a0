// Causal multi-head self-attention over a KV cache (inference). OPT scales q by hs^-0.5 after q_proj
// (bias included); softmax is in fp32 with additive masks. Shapes (NH heads of hs, C = NH·hs):
//   q, k, v, out: (B, T, C) for the T new tokens      cache K/V: (B, NH, S, hs), S = capacity
//   keyMask: (B, S) 1 = real token, 0 = padding       past: tokens already in the cache
// attentionForwardRows is the same for sequences of different lengths, each with a cache of its own.
// A query row whose every visible key is padding attends uniformly to all keys of the row — what
// transformers' additive-min mask yields — so padded positions match the reference too.
import Foundation

public struct AttentionShape {
    public var B: Int, T: Int, NH: Int, hs: Int, past: Int, capacity: Int
    public var C: Int { NH * hs }
    public var L: Int { past + T }
}

/// Softmax of row[0..<n] in place, with entries whose `valid` is false excluded (set to 0).
@inline(__always)
func maskedSoftmax(_ row: UnsafeMutablePointer<Float>, n: Int, valid: (Int) -> Bool) {
    var maxv = -Float.infinity
    for j in 0..<n where valid(j) { maxv = max(maxv, row[j]) }
    if maxv == -Float.infinity {
        let u = 1 / Float(n)
        for j in 0..<n { row[j] = u }
        return
    }
    var sum: Float = 0
    for j in 0..<n {
        if valid(j) { let e = expf(row[j] - maxv); row[j] = e; sum += e } else { row[j] = 0 }
    }
    let inv = 1 / sum
    for j in 0..<n { row[j] *= inv }
}

/// Writes the new k/v rows into the cache, then attends. `scores` needs T·L floats.
public func attentionForward(
    out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
    cacheK: UnsafeMutablePointer<Float>, cacheV: UnsafeMutablePointer<Float>, keyMask: UnsafePointer<UInt8>,
    scores: UnsafeMutablePointer<Float>, shape s: AttentionShape
) {
    let C = s.C, hs = s.hs, L = s.L, S = s.capacity
    for b in 0..<s.B {
        for h in 0..<s.NH {
            let kc = cacheK + (b * s.NH + h) * S * hs
            let vc = cacheV + (b * s.NH + h) * S * hs
            for t in 0..<s.T {
                let src = (b * s.T + t) * C + h * hs
                (kc + (s.past + t) * hs).update(from: k + src, count: hs)
                (vc + (s.past + t) * hs).update(from: v + src, count: hs)
            }
            let qbh = q + b * s.T * C + h * hs
            let obh = out + b * s.T * C + h * hs
            let mask = keyMask + b * S
            if s.T == 1 {
                BLAS.gemv(rows: L, cols: hs, a: kc, lda: hs, x: qbh, y: scores)
                maskedSoftmax(scores, n: L) { j in mask[j] != 0 }
                BLAS.gemv(rows: L, cols: hs, a: vc, lda: hs, transposed: true, x: scores, y: obh)
            } else {
                // scores (T, L) = Q (T, hs; row stride C) · Kᵀ
                BLAS.gemm(M: s.T, N: L, K: hs, a: qbh, lda: C, b: kc, ldb: hs, bTransposed: true, c: scores, ldc: L)
                for t in 0..<s.T {
                    let limit = s.past + t
                    maskedSoftmax(scores + t * L, n: L) { j in j <= limit && mask[j] != 0 }
                }
                // out (T, hs; row stride C) = P (T, L) · V (L, hs)
                BLAS.gemm(M: s.T, N: hs, K: L, a: scores, lda: L, b: vc, ldb: hs, bTransposed: false, c: obh, ldc: C)
            }
        }
    }
}

/// One sequence of a pass over sequences of different lengths (continuous batching): where its keys and
/// values live for the layer being run, (NH, capacity, hs) each, and how many tokens it already holds.
public struct AttentionRow {
    public var cacheK: UnsafeMutablePointer<Float>, cacheV: UnsafeMutablePointer<Float>
    public var capacity: Int, past: Int

    public init(cacheK: UnsafeMutablePointer<Float>, cacheV: UnsafeMutablePointer<Float>, capacity: Int, past: Int) {
        self.cacheK = cacheK; self.cacheV = cacheV; self.capacity = capacity; self.past = past
    }
}

/// Attention for B sequences of different lengths, T new tokens each: sequence b writes its new k/v rows at
/// rows[b].past… of its own cache and attends causally to its own tokens only (no padding). For each
/// sequence this makes exactly the calls `attentionForward` makes for a batch of one with every key real,
/// so a sequence gets the same bits whatever else is in the pass. `scores` needs T·L floats, L the longest.
public func attentionForwardRows(
    out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
    rows: UnsafePointer<AttentionRow>, scores: UnsafeMutablePointer<Float>, B: Int, T: Int, NH: Int, hs: Int
) {
    let C = NH * hs
    for b in 0..<B {
        let row = rows[b], S = row.capacity, past = row.past, L = past + T
        precondition(L <= S, "attention row \(b): \(L) tokens exceed its capacity of \(S)")
        for h in 0..<NH {
            let kc = row.cacheK + h * S * hs
            let vc = row.cacheV + h * S * hs
            for t in 0..<T {
                let src = (b * T + t) * C + h * hs
                (kc + (past + t) * hs).update(from: k + src, count: hs)
                (vc + (past + t) * hs).update(from: v + src, count: hs)
            }
            let qbh = q + b * T * C + h * hs
            let obh = out + b * T * C + h * hs
            if T == 1 {
                BLAS.gemv(rows: L, cols: hs, a: kc, lda: hs, x: qbh, y: scores)
                maskedSoftmax(scores, n: L) { _ in true }
                BLAS.gemv(rows: L, cols: hs, a: vc, lda: hs, transposed: true, x: scores, y: obh)
            } else {
                BLAS.gemm(M: T, N: L, K: hs, a: qbh, lda: C, b: kc, ldb: hs, bTransposed: true, c: scores, ldc: L)
                for t in 0..<T {
                    let limit = past + t
                    maskedSoftmax(scores + t * L, n: L) { j in j <= limit }
                }
                BLAS.gemm(M: T, N: hs, K: L, a: scores, lda: L, b: vc, ldb: hs, bTransposed: false, c: obh, ldc: C)
            }
        }
    }
}

/// Reference: the same attention over full (B, L, C) keys/values with plain loops, no cache.
public func attentionNaive(
    out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
    keyMask: UnsafePointer<UInt8>, B: Int, T: Int, NH: Int, hs: Int
) {
    let C = NH * hs
    var row = [Float](repeating: 0, count: T)
    for b in 0..<B {
        for h in 0..<NH {
            for t in 0..<T {
                let qt = q + (b * T + t) * C + h * hs
                for j in 0..<T {
                    let kj = k + (b * T + j) * C + h * hs
                    var dot: Float = 0
                    for d in 0..<hs { dot += qt[d] * kj[d] }
                    row[j] = dot
                }
                row.withUnsafeMutableBufferPointer { r in
                    maskedSoftmax(r.baseAddress!, n: T) { j in j <= t && keyMask[b * T + j] != 0 }
                }
                let ot = out + (b * T + t) * C + h * hs
                for d in 0..<hs {
                    var acc: Float = 0
                    for j in 0..<T { acc += row[j] * v[(b * T + j) * C + h * hs + d] }
                    ot[d] = acc
                }
            }
        }
    }
}
