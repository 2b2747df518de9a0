// Causal multi-head self-attention over a KV cache (inference). OPT scales q by hs^-0.5 after q_proj
// (bias included); softmax is in fp32 with additive masks. Shapes (NH heads of hs, C = NH·hs):
//   q, k, v, out: (B, T, C) for the T new tokens      cache K/V: (B, NH, S, hs), S = capacity
//   keyMask: (B, S) 1 = real token, 0 = padding       past: tokens already in the cache
// attentionForwardRows is the same for sequences of different lengths, each with a cache of its own.
// A query row whose every visible key is padding attends uniformly to all keys of the row — what
// transformers' additive-min mask yields — so padded positions match the reference too.
// Prefill splits its (sequence, head) pairs over EngineThreads and takes queries in blocks that score only
// the keys up to the block's causal limit; decode (T = 1) splits its heads too, each part on its own L
// floats of `scores` (as many parts as the buffer has room for), each head one muwa_attend_one call.
import CKernels
import Foundation

struct AttentionShape {
    var B: Int, T: Int, NH: Int, hs: Int, past: Int, capacity: Int
    /// Prefill's products in bf16 (compute bf16) where the CPU has avx512_bf16; softmax stays f32.
    var bf16 = false
    var C: Int { NH * hs }
    var L: Int { past + T }
}

/// Reference (attentionNaive's): softmax of row[0..<n] in place, with entries whose `valid` is false excluded
/// (set to 0). The engine's paths call CKernels' muwa_softmax, which computes the same.
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

/// Query rows per block of a multi-token pass over L keys, and how many parts can share a `scores` buffer of
/// T·Lmax floats when every block of every sequence needs rows·L of it. The blocking of a sequence depends
/// on its own T and L only, so its results do not depend on the other sequences or on the thread count.
@inline(__always)
func prefillBlockRows(T: Int, L: Int, hs: Int) -> Int { min(T, causalBlockRows(width: L, hs: hs)) }

/// Prefill attention of one (sequence, head): queries in blocks of `mb` rows; block [t0, t1) scores keys
/// 0 ..< past + t1 (the causal limit) — or all L when one of its rows sees no real key and so attends
/// uniformly to all of them. `firstReal` is the first key with mask 1 (L when none); `scores` holds mb·L.
@inline(__always)
func attendBlocks(
    out obh: UnsafeMutablePointer<Float>, q qbh: UnsafePointer<Float>, keys kc: UnsafePointer<Float>,
    values vc: UnsafePointer<Float>, scores: UnsafeMutablePointer<Float>, T: Int, past: Int, L: Int,
    C: Int, hs: Int, mb: Int, firstReal: Int, keyMask: UnsafePointer<UInt8>?, bf16: Bool = false
) {
    if bf16,
        muwa_attend_blocks_bf16(
            obh, C, qbh, C, kc, vc, scores, T, past, L, hs, mb, firstReal, keyMask) == 0
    {
        return  // bf16 operands, f32 sums and softmax (kernels_attention.c)
    }
    if muwa_attend_blocks(
        obh, C, qbh, C, kc, vc, scores, T, past, L, hs, mb, firstReal, keyMask) == 0
    {
        return  // the same blocks through kernels_attention.c (no sgemm packing per block)
    }
    var t0 = 0
    while t0 < T {
        let t1 = min(T, t0 + mb), rows = t1 - t0
        let width = firstReal > past + t0 ? L : past + t1
        // scores (rows, width) = Q[t0..<t1] (row stride C) · K[0..<width]ᵀ
        BLAS.gemm(
            M: rows, N: width, K: hs, a: qbh + t0 * C, lda: C, b: kc, ldb: hs, bTransposed: true, c: scores,
            ldc: width)
        for t in t0..<t1 {  // query t sees keys j ≤ past + t whose mask is 1
            muwa_softmax(scores + (t - t0) * width, width, past + t + 1, keyMask)
        }
        // out[t0..<t1] (rows, hs; row stride C) = P (rows, width) · V[0..<width]
        BLAS.gemm(
            M: rows, N: hs, K: width, a: scores, lda: width, b: vc, ldb: hs, bTransposed: false,
            c: obh + t0 * C, ldc: C)
        t0 = t1
    }
}

/// Decode attention of one (sequence, head): kernels_attention_decode.c, or OpenBLAS's two gemvs where that
/// does not run. `scores` needs L floats.
@inline(__always)
func attendOne(
    out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, keys: UnsafePointer<Float>,
    values: UnsafePointer<Float>, scores: UnsafeMutablePointer<Float>, L: Int, hs: Int, mask: UnsafePointer<UInt8>?
) {
    if muwa_attend_one(out, q, keys, values, scores, L, hs, mask) == 0 { return }
    BLAS.gemv(rows: L, cols: hs, a: keys, lda: hs, x: q, y: scores)
    muwa_softmax(scores, L, L, mask)
    BLAS.gemv(rows: L, cols: hs, a: values, lda: hs, transposed: true, x: scores, y: out)
}

/// Parts a decode pass (T = 1) splits its `items` heads into: one per engine thread, as far as a `scores`
/// buffer of `scoreFloats` floats holds L floats for each.
@inline(__always)
func decodeParts(items: Int, L: Int, scoreFloats: Int) -> Int {
    max(1, min(EngineThreads.count, items, scoreFloats / max(L, 1)))
}

/// Writes the new k/v rows into the cache, then attends. `scores` needs T·L floats. A multi-token pass
/// (prefill) runs its (sequence, head) pairs in parallel, each part on its own rows of `scores`; so does
/// decode where `scoreFloats` (the buffer's size; 0: T·L) has room for more than one part.
func attentionForward(
    out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
    cacheK: UnsafeMutablePointer<Float>, cacheV: UnsafeMutablePointer<Float>, keyMask: UnsafePointer<UInt8>,
    scores: UnsafeMutablePointer<Float>, scoreFloats: Int = 0, shape s: AttentionShape
) {
    let C = s.C, hs = s.hs, L = s.L, S = s.capacity, NH = s.NH
    let mb = prefillBlockRows(T: s.T, L: L, hs: hs)
    let parts =
        s.T == 1
        ? decodeParts(items: s.B * NH, L: L, scoreFloats: scoreFloats)
        : max(1, min(EngineThreads.count, s.B * NH, s.T / max(mb, 1)))
    EngineThreads.forEachItem(s.B * NH, parts: parts) { item, part in
        let b = item / NH, h = item % NH
        let kc = cacheK + (b * NH + h) * S * hs
        let vc = cacheV + (b * NH + h) * S * hs
        for t in 0..<s.T {
            let src = (b * s.T + t) * C + h * hs
            (kc + (s.past + t) * hs).update(from: k + src, count: hs)
            (vc + (s.past + t) * hs).update(from: v + src, count: hs)
        }
        let qbh = q + b * s.T * C + h * hs
        let obh = out + b * s.T * C + h * hs
        let mask = keyMask + b * S
        if s.T == 1 {
            attendOne(out: obh, q: qbh, keys: kc, values: vc, scores: scores + part * L, L: L, hs: hs, mask: mask)
        } else {
            var firstReal = L
            for j in 0..<L where mask[j] != 0 { firstReal = j; break }
            attendBlocks(
                out: obh, q: qbh, keys: kc, values: vc, scores: scores + part * mb * L, T: s.T, past: s.past,
                L: L, C: C, hs: hs, mb: mb, firstReal: firstReal, keyMask: mask, bf16: s.bf16)
        }
    }
}

/// One sequence of a pass over sequences of different lengths (continuous batching): where its keys and
/// values live for the layer being run, (NH, capacity, hs) each, and how many tokens it already holds.
struct AttentionRow {
    var cacheK: UnsafeMutablePointer<Float>, cacheV: UnsafeMutablePointer<Float>
    var capacity: Int, past: Int

    init(cacheK: UnsafeMutablePointer<Float>, cacheV: UnsafeMutablePointer<Float>, capacity: Int, past: Int) {
        self.cacheK = cacheK; self.cacheV = cacheV; self.capacity = capacity; self.past = past
    }
}

/// Attention for B sequences of different lengths, T new tokens each: sequence b writes its new k/v rows at
/// rows[b].past… of its own cache and attends causally to its own tokens only (no padding). For each
/// sequence this makes exactly the calls `attentionForward` makes for a batch of one with every key real,
/// so a sequence gets the same bits whatever else is in the pass. `scores` needs T·L floats, L the longest.
func attentionForwardRows(
    out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
    rows: UnsafePointer<AttentionRow>, scores: UnsafeMutablePointer<Float>, scoreFloats: Int = 0, B: Int, T: Int,
    NH: Int, hs: Int, bf16: Bool = false
) {
    let C = NH * hs
    var longest = 0, largestBlock = 1
    for b in 0..<B {
        let L = rows[b].past + T
        precondition(
            L <= rows[b].capacity, "attention row \(b): \(L) tokens exceed its capacity of \(rows[b].capacity)")
        longest = max(longest, L)
        largestBlock = max(largestBlock, prefillBlockRows(T: T, L: L, hs: hs) * L)
    }
    let parts =
        T == 1
        ? decodeParts(items: B * NH, L: longest, scoreFloats: scoreFloats)
        : max(1, min(EngineThreads.count, B * NH, T * longest / largestBlock))
    let region = T == 1 ? longest : T * longest / parts
    EngineThreads.forEachItem(B * NH, parts: parts) { item, part in
        let b = item / NH, h = item % NH
        let row = rows[b], S = row.capacity, past = row.past, L = past + T
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
            attendOne(
                out: obh, q: qbh, keys: kc, values: vc, scores: scores + part * region, L: L, hs: hs, mask: nil)
        } else {
            attendBlocks(
                out: obh, q: qbh, keys: kc, values: vc, scores: scores + part * region, T: T, past: past, L: L,
                C: C, hs: hs, mb: prefillBlockRows(T: T, L: L, hs: hs), firstReal: 0, keyMask: nil, bf16: bf16)
        }
    }
}

/// Reference: the same attention over full (B, L, C) keys/values with plain loops, no cache.
func attentionNaive(
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
