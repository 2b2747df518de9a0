// Training attention of one (sequence, head) under compute bf16: kernels_attention_train.c's blocks and
// products with bf16 operands and f32 sums (vdpbf16ps), as autocast runs attention's bmm calls in bf16.
// Softmax, the probabilities kept for the backward pass (p), dS = P ⊙ (dP − rowsum(P ⊙ dP)) and every
// output stay f32. Shapes as there (row stride ld = C for the interleaved heads):
//   q, k, v, out, dout, dq, dk, dv: (n, hs)     p: (n, n), row t holds P[t, 0 ... t], zeros after
// An operand is 32-bit words, each a pair of bf16 values adjacent along its product's reduction
// (muwa_gemm_bf16_words_avx512), built per call or per query block [t0, t1) (≤ TRAIN_BLOCK rows):
//   reduction over the head (hs):    A rows of Q or dO: plain words;  B = Kᵀ or Vᵀ words (hs/2, n)
//   reduction over keys (t1):        A rows of P or dS: plain words;  B = V or K with rows 2i, 2i + 1 paired
//   reduction over the block's rows: A = Pᵀ or dSᵀ, read transposed from P or dS with rows paired;
//                                    B = dO or Q of the block with rows paired
// A missing partner (an odd count) is a 0 half, so it adds nothing.
//   forward   S = Q·Kᵀ → softmax → O = P·V
//   backward  dV += Pᵀ·dO   dP = dO·Vᵀ   dS (f32)   dQ += dS·K   dK += dSᵀ·Q
// The reference the tests hold these to is plain loops on the bf16-rounded operands (PackedTrainingTests).
#include "kernels_internal.h"

enum { TRAIN_BLOCK = 32 };

#if defined(__x86_64__)
#include <immintrin.h>
#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

static BF16 int forward_bf16(float *out, float *p, const float *q, const float *k, const float *v, long ld, long n,
                             long hs) {
    long hp = (hs + 1) / 2, np = (n + 1) / 2, wide = hp > np ? hp : np;
    // Kᵀ words (hp × n) | V row pairs (np × hs) | a block's Q rows, then its P rows (TRAIN_BLOCK × wide) | tmp
    uint32_t *kt = muwa_thread_buffer((size_t)(hp * n + np * hs + TRAIN_BLOCK * wide + 16 * hp) * 4);
    if (!kt) return -1;
    uint32_t *vw = kt + hp * n, *rows_w = vw + np * hs, *tmp = rows_w + TRAIN_BLOCK * wide;
    muwa_bf16_transposed_words_avx512(k, ld, n, hs, tmp, kt);
    muwa_bf16_row_pairs_avx512(v, ld, n, hs, vw, hs);
    for (long t0 = 0; t0 < n; t0 += TRAIN_BLOCK) {
        long t1 = t0 + TRAIN_BLOCK < n ? t0 + TRAIN_BLOCK : n, rows = t1 - t0, wp = (t1 + 1) / 2;
        // scores (rows, t1) = Q[t0 ..< t1] · K[0 ..< t1]ᵀ, in P's rows
        for (long r = 0; r < rows; r++) muwa_to_bf16_words_avx512(q + (t0 + r) * ld, hs, rows_w + r * hp);
        muwa_gemm_bf16_words_avx512(0, 0, rows, t1, hp, rows_w, hp, kt, n, p + t0 * n, n);
        for (long t = t0; t < t1; t++) {
            float *row = p + t * n;
            muwa_softmax(row, t + 1, t + 1, 0);
            if (t + 1 < n) memset(row + t + 1, 0, (size_t)(n - t - 1) * sizeof(float));
        }
        // out[t0 ..< t1] (rows, hs) = P (rows, t1) · V[0 ..< t1] (V's pair past t1 meets P's 0 half)
        for (long r = 0; r < rows; r++) muwa_to_bf16_words_avx512(p + (t0 + r) * n, t1, rows_w + r * wp);
        muwa_gemm_bf16_words_avx512(0, 0, rows, hs, wp, rows_w, wp, vw, hs, out + t0 * ld, ld);
    }
    return 0;
}

static BF16 int backward_bf16(float *dq, float *dk, float *dv, const float *dout, const float *p, const float *q,
                              const float *k, const float *v, long ld, long n, long hs) {
    long hp = (hs + 1) / 2, np = (n + 1) / 2, bp = TRAIN_BLOCK / 2;
    // Vᵀ words (hp × n) | K row pairs (np × hs) | dP, then dS, f32 (TRAIN_BLOCK × n) | dO rows (TRAIN_BLOCK × hp)
    // | dS rows (TRAIN_BLOCK × np) | paired rows of P, then of dS (bp × n) | of dO, of Q (bp × hs each) | tmp
    size_t words = (size_t)(hp * n + np * hs + TRAIN_BLOCK * n + TRAIN_BLOCK * hp + TRAIN_BLOCK * np + bp * n +
                            2 * bp * hs + 16 * hp);
    uint32_t *vt = muwa_thread_buffer(words * 4);
    if (!vt) return -1;
    uint32_t *kw = vt + hp * n;
    float *d = (float *)(kw + np * hs);
    uint32_t *dow = (uint32_t *)(d + TRAIN_BLOCK * n), *dsw = dow + TRAIN_BLOCK * hp, *pairs = dsw + TRAIN_BLOCK * np;
    uint32_t *dop = pairs + bp * n, *qp = dop + bp * hs, *tmp = qp + bp * hs;
    muwa_bf16_transposed_words_avx512(v, ld, n, hs, tmp, vt);
    muwa_bf16_row_pairs_avx512(k, ld, n, hs, kw, hs);
    for (long t0 = 0; t0 < n; t0 += TRAIN_BLOCK) {
        long t1 = t0 + TRAIN_BLOCK < n ? t0 + TRAIN_BLOCK : n, rows = t1 - t0, rp = (rows + 1) / 2, wp = (t1 + 1) / 2;
        const float *pb = p + t0 * n, *dob = dout + t0 * ld;
        // dV[0 ..< t1] (t1, hs) += Pᵀ (t1, rows) · dO[t0 ..< t1] (rows, hs), over the block's row pairs
        muwa_bf16_row_pairs_avx512(pb, n, rows, t1, pairs, t1);
        muwa_bf16_row_pairs_avx512(dob, ld, rows, hs, dop, hs);
        muwa_gemm_bf16_words_avx512(1, 1, t1, hs, rp, pairs, t1, dop, hs, dv, ld);
        // dP (rows, t1) = dO[t0 ..< t1] · V[0 ..< t1]ᵀ
        for (long r = 0; r < rows; r++) muwa_to_bf16_words_avx512(dob + r * ld, hs, dow + r * hp);
        muwa_gemm_bf16_words_avx512(0, 0, rows, t1, hp, dow, hp, vt, n, d, t1);
        muwa_softmax_backward_block(d, pb, n, t0, t1);
        // dQ[t0 ..< t1] (rows, hs) += dS (rows, t1) · K[0 ..< t1]
        for (long r = 0; r < rows; r++) muwa_to_bf16_words_avx512(d + r * t1, t1, dsw + r * wp);
        muwa_gemm_bf16_words_avx512(0, 1, rows, hs, wp, dsw, wp, kw, hs, dq + t0 * ld, ld);
        // dK[0 ..< t1] (t1, hs) += dSᵀ (t1, rows) · Q[t0 ..< t1] (rows, hs), over the block's row pairs
        muwa_bf16_row_pairs_avx512(d, t1, rows, t1, pairs, t1);
        muwa_bf16_row_pairs_avx512(q + t0 * ld, ld, rows, hs, qp, hs);
        muwa_gemm_bf16_words_avx512(1, 1, t1, hs, rp, pairs, t1, qp, hs, dk, ld);
    }
    return 0;
}
#endif

int muwa_causal_attention_forward_bf16(float *out, float *p, const float *q, const float *k, const float *v, long ld,
                                       long n, long hs) {
    if (n <= 0 || hs <= 0) return 0;
#if defined(__x86_64__)
    if (muwa_attention_bf16_fast()) return forward_bf16(out, p, q, k, v, ld, n, hs);
#endif
    (void)out, (void)p, (void)q, (void)k, (void)v, (void)ld;
    return -1;
}

int muwa_causal_attention_backward_bf16(float *dq, float *dk, float *dv, const float *dout, const float *p,
                                        const float *q, const float *k, const float *v, long ld, long n, long hs) {
    if (n <= 0 || hs <= 0) return 0;
#if defined(__x86_64__)
    if (muwa_attention_bf16_fast()) return backward_bf16(dq, dk, dv, dout, p, q, k, v, ld, n, hs);
#endif
    (void)dq, (void)dk, (void)dv, (void)dout, (void)p, (void)q, (void)k, (void)v, (void)ld;
    return -1;
}
