// Causal self-attention over packed variable-length sequences (training): the real tokens of B sequences
// lie back to back in R rows, sequence s in rows offsets[s] ..< offsets[s + 1], and each attends causally to
// its own tokens only — no padding row is ever formed, no score against padding is computed.
//   q, k, v, out, dout, dq, dk, dv: (R, C), the NH heads of hs interleaved (C = NH·hs)
//   att: Σ_s NH·n_s² floats: sequence s, head h is an (n_s, n_s) block at NH·Σ_{s'<s} n_{s'}² + h·n_s²
//   scratch (backward): `attentionScratchFloats(maxLength:hs:)` floats per part
// Work items are (sequence, head) pairs, spread over EngineThreads; each item writes only its own rows ×
// head columns of out/dq/dk/dv and its own att block, so the result does not depend on the thread count.
// Each item runs kernels_attention_train.c's small unpacked products where the AVX-512 kernels run, else
// the sgemm loops below (the reference the tests hold the kernels to).
// Within an item queries go in blocks of `causalBlockRows` rows: block [t0, t1) needs keys 0 ..< t1 only
// (the causal half above is skipped), and the block's products stay small enough that OpenBLAS runs them
// on the calling thread (its threaded path serialises concurrent callers).
// The results equal the padded functions' on every real row (tests: PackedTrainingTests).
import CKernels

/// Where each sequence's rows lie in a packed batch: offsets[s] ..< offsets[s + 1], offsets[0] = 0.
public struct PackedSequences {
    public let offsets: UnsafePointer<Int>
    public let count: Int

    public init(offsets: UnsafePointer<Int>, count: Int) {
        self.offsets = offsets
        self.count = count
    }

    @inline(__always) public func start(_ s: Int) -> Int { offsets[s] }
    @inline(__always) public func length(_ s: Int) -> Int { offsets[s + 1] - offsets[s] }
    public var rows: Int { offsets[count] }

    /// Float offset of sequence s's probabilities in `att` (NH blocks of n_s²).
    func attBase(_ s: Int, NH: Int) -> Int {
        var base = 0
        for i in 0..<s { base += NH * length(i) * length(i) }
        return base
    }

    /// Floats `att` needs for these sequences.
    public func attFloats(NH: Int) -> Int { attBase(count, NH: NH) }
}

/// Query rows per block for keys 0 ..< width: the largest of 4…64 whose products have
/// rows·width·hs ≤ 2¹⁸ (OpenBLAS's single-thread threshold for sgemm).
@inline(__always)
func causalBlockRows(width: Int, hs: Int) -> Int {
    min(64, max(4, (1 << 18) / max(1, width * hs)))
}

/// Scratch floats one part of ``packedCausalAttentionBackward`` needs for sequences up to `maxLength`.
public func attentionScratchFloats(maxLength: Int, hs: Int) -> Int {
    64 * max(maxLength, 1)
}

/// out = softmax(causal(q·kᵀ)) · v for every sequence and head; att receives the probabilities
/// (entries above the diagonal are 0). `bf16` (compute bf16): the products on bf16 operands with f32 sums
/// (kernels_attention_train_bf16.c) where the CPU has avx512_bf16, else in f32.
public func packedCausalAttentionForward(
    out: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>,
    k: UnsafePointer<Float>, v: UnsafePointer<Float>, sequences seq: PackedSequences, NH: Int, hs: Int,
    bf16: Bool = false
) {
    let C = NH * hs
    var bases = [Int](repeating: 0, count: seq.count)
    for s in 0..<seq.count { bases[s] = seq.attBase(s, NH: NH) }
    bases.withUnsafeBufferPointer { bases in
        EngineThreads.forEachItem(seq.count * NH, parts: EngineThreads.count) { item, _ in
            let s = item / NH, h = item % NH, n = seq.length(s)
            guard n > 0 else { return }
            let off = seq.start(s) * C + h * hs
            let p = att + bases[s] + h * n * n
            if bf16, muwa_causal_attention_forward_bf16(out + off, p, q + off, k + off, v + off, C, n, hs) == 0 {
                return
            }
            if muwa_causal_attention_forward(out + off, p, q + off, k + off, v + off, C, n, hs) == 0 { return }
            var t0 = 0
            while t0 < n {
                let mb = min(causalBlockRows(width: min(n, t0 + 64), hs: hs), n - t0), t1 = t0 + mb
                // scores (mb, t1) = Q[t0..<t1] · K[0..<t1]ᵀ, rows of stride n
                BLAS.gemm(
                    M: mb, N: t1, K: hs, a: q + off + t0 * C, lda: C, b: k + off, ldb: C, bTransposed: true,
                    c: p + t0 * n, ldc: n)
                for t in t0..<t1 {
                    let row = p + t * n
                    muwa_softmax(row, t + 1, t + 1, nil)
                    if t + 1 < n { (row + t + 1).update(repeating: 0, count: n - t - 1) }
                }
                // out[t0..<t1] (mb, hs) = P (mb, t1) · V[0..<t1]
                BLAS.gemm(
                    M: mb, N: hs, K: t1, a: p + t0 * n, lda: n, b: v + off, ldb: C, bTransposed: false,
                    c: out + off + t0 * C, ldc: C)
                t0 = t1
            }
        }
    }
}

/// Accumulates dq, dk, dv from dout with the forward pass's probabilities `att`:
///   dV += Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ⊙ (dP − rowsum(P ⊙ dP)),  dQ += dS·K,  dK += dSᵀ·Q.
/// `bf16` as in the forward pass. `scratch` holds `parts` regions of attentionScratchFloats(maxLength:hs:) floats,
/// `parts` ≥ 1. `accumulate: false`: dq, dk, dv are the gradients, whatever they held (each (sequence, head)
/// item clears its own slices just before adding into them; rows outside the sequences are not touched).
public func packedCausalAttentionBackward(
    dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
    scratch: UnsafeMutablePointer<Float>, parts: Int, maxLength: Int, dout: UnsafePointer<Float>,
    att: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
    sequences seq: PackedSequences, NH: Int, hs: Int, bf16: Bool = false, accumulate: Bool = true
) {
    let C = NH * hs, region = attentionScratchFloats(maxLength: maxLength, hs: hs)
    var bases = [Int](repeating: 0, count: seq.count)
    for s in 0..<seq.count { bases[s] = seq.attBase(s, NH: NH) }
    bases.withUnsafeBufferPointer { bases in
        EngineThreads.forEachItem(seq.count * NH, parts: min(parts, EngineThreads.count)) { item, part in
            let s = item / NH, h = item % NH, n = seq.length(s)
            guard n > 0 else { return }
            precondition(n <= maxLength, "sequence of \(n) tokens exceeds the scratch's \(maxLength)")
            let off = seq.start(s) * C + h * hs
            let p = att + bases[s] + h * n * n
            if !accumulate {  // this item's (n, hs) slices of dq, dk, dv: cleared by the part that fills them
                muwa_zero_rows(dq + off, n, hs, C)
                muwa_zero_rows(dk + off, n, hs, C)
                muwa_zero_rows(dv + off, n, hs, C)
            }
            if bf16,
                muwa_causal_attention_backward_bf16(
                    dq + off, dk + off, dv + off, dout + off, p, q + off, k + off, v + off, C, n, hs) == 0
            {
                return
            }
            if muwa_causal_attention_backward(
                dq + off, dk + off, dv + off, dout + off, p, q + off, k + off, v + off, C, n, hs) == 0
            {
                return
            }
            let d = scratch + part * region
            var t0 = 0
            while t0 < n {
                let mb = min(causalBlockRows(width: min(n, t0 + 64), hs: hs), n - t0), t1 = t0 + mb
                let pb = p + t0 * n, dob = dout + off + t0 * C
                // dV[0..<t1] (t1, hs) += Pᵀ (t1, mb) · dO[t0..<t1] (mb, hs)
                BLAS.gemm(
                    aTransposed: true, bTransposed: false, M: t1, N: hs, K: mb, a: pb, lda: n, b: dob, ldb: C,
                    beta: 1, c: dv + off, ldc: C)
                // dP (mb, t1) = dO[t0..<t1] · V[0..<t1]ᵀ
                BLAS.gemm(M: mb, N: t1, K: hs, a: dob, lda: C, b: v + off, ldb: C, bTransposed: true, c: d, ldc: t1)
                for i in 0..<mb {
                    let dr = d + i * t1, pr = pb + i * n, visible = t0 + i + 1
                    var dot: Float = 0
                    for j in 0..<visible { dot += pr[j] * dr[j] }
                    for j in 0..<visible { dr[j] = pr[j] * (dr[j] - dot) }
                    if visible < t1 { (dr + visible).update(repeating: 0, count: t1 - visible) }
                }
                // dQ[t0..<t1] += dS (mb, t1) · K[0..<t1];  dK[0..<t1] += dSᵀ · Q[t0..<t1]
                BLAS.gemm(
                    M: mb, N: hs, K: t1, a: d, lda: t1, b: k + off, ldb: C, bTransposed: false, beta: 1,
                    c: dq + off + t0 * C, ldc: C)
                BLAS.gemm(
                    aTransposed: true, bTransposed: false, M: t1, N: hs, K: mb, a: d, lda: t1,
                    b: q + off + t0 * C, ldb: C, beta: 1, c: dk + off, ldc: C)
                t0 = t1
            }
        }
    }
}
