// Training attention of one (sequence, head) of a packed batch (PackedAttention.swift, whose sgemm loops are
// the fallback and the reference the tests hold these to): the forward pass keeps its probabilities for the
// backward pass, which accumulates dQ, dK, dV. Shapes (row stride ld = C for the interleaved heads):
//   q, k, v, out, dout, dq, dk, dv: (n, hs)     p: (n, n), row t holds P[t, 0 ... t], zeros after
// Queries go in blocks of TRAIN_BLOCK rows; block [t0, t1) needs keys 0 ..< t1 only (the causal half is
// skipped). Every product is the small unpacked kernel of kernels_attention.c with one operand read in place
// and Kᵀ or Vᵀ transposed once per call into the thread's buffer:
//   forward   S = Q·Kᵀ (Kᵀ)  → softmax → O = P·V
//   backward  dV += Pᵀ·dO (P read as a transposed operand)   dP = dO·Vᵀ (Vᵀ)   dS = P ⊙ (dP − rowsum(P ⊙ dP))
//             dQ += dS·K   dK += dSᵀ·Q (dS read as a transposed operand)
// OpenBLAS packs both operands of each of these small products on every call; in a LoRA training step of
// opt-1.3b its sgemm calls were 6 % of the samples.
#include "kernels_internal.h"

enum { TRAIN_BLOCK = 32 };

// no_builtin: the loop stays stores (clang would make each row a memset call, the cost this replaces)
__attribute__((no_builtin("memset"))) void muwa_zero_rows(float *x, long rows, long cols, long ld) {
    for (long r = 0; r < rows; r++)
        for (long c = 0; c < cols; c++) x[r * ld + c] = 0;
}

/// dS = P ⊙ (dP − rowsum(P ⊙ dP)) for the query block [t0, t1): d holds dP (rows t1 apart) and becomes dS, zero
/// past each row's causal limit; p is the block's probabilities (rows n apart). Shared with the bf16 kernels.
void muwa_softmax_backward_block(float *d, const float *p, long n, long t0, long t1) {
    for (long i = 0; i < t1 - t0; i++) {
        float *dr = d + i * t1;
        const float *pr = p + i * n;
        long visible = t0 + i + 1;
        float dot = 0;
        for (long j = 0; j < visible; j++) dot += pr[j] * dr[j];
        for (long j = 0; j < visible; j++) dr[j] = pr[j] * (dr[j] - dot);
        for (long j = visible; j < t1; j++) dr[j] = 0;
    }
}

static int forced = -1;  // muwa_causal_attention_select
static int train_kernels(void) { return muwa_choice(&forced, muwa_attention_fast()); }
int muwa_causal_attention_select(int on) { return muwa_choice_set(&forced, on, muwa_attention_fast()); }

#if defined(__x86_64__)
int muwa_causal_attention_forward(float *out, float *p, const float *q, const float *k, const float *v, long ld,
                                  long n, long hs) {
    if (n <= 0 || hs <= 0) return 0;
    if (!train_kernels()) return -1;
    float *kt = muwa_thread_buffer((size_t)(hs * n) * sizeof(float));  // Kᵀ: (hs, n)
    if (!kt) return -1;
    muwa_transpose_f32_avx512(k, ld, n, hs, kt, n);
    for (long t0 = 0; t0 < n; t0 += TRAIN_BLOCK) {
        long t1 = t0 + TRAIN_BLOCK < n ? t0 + TRAIN_BLOCK : n, rows = t1 - t0;
        // scores (rows, t1) = Q[t0 ..< t1] · K[0 ..< t1]ᵀ, in P's rows
        muwa_sgemm_small_avx512(0, 0, rows, t1, hs, q + t0 * ld, ld, kt, n, p + t0 * n, n);
        for (long t = t0; t < t1; t++) {
            float *row = p + t * n;
            muwa_softmax(row, t + 1, t + 1, 0);
            if (t + 1 < n) memset(row + t + 1, 0, (size_t)(n - t - 1) * sizeof(float));
        }
        // out[t0 ..< t1] (rows, hs) = P (rows, t1) · V[0 ..< t1]
        muwa_sgemm_small_avx512(0, 0, rows, hs, t1, p + t0 * n, n, v, ld, out + t0 * ld, ld);
    }
    return 0;
}

int muwa_causal_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *p,
                                   const float *q, const float *k, const float *v, long ld, long n, long hs) {
    if (n <= 0 || hs <= 0) return 0;
    if (!train_kernels()) return -1;
    float *vt = muwa_thread_buffer((size_t)((hs + TRAIN_BLOCK) * n) * sizeof(float));  // Vᵀ (hs, n), then dS
    if (!vt) return -1;
    float *d = vt + hs * n;  // dP, then dS: (rows, t1)
    muwa_transpose_f32_avx512(v, ld, n, hs, vt, n);
    for (long t0 = 0; t0 < n; t0 += TRAIN_BLOCK) {
        long t1 = t0 + TRAIN_BLOCK < n ? t0 + TRAIN_BLOCK : n, rows = t1 - t0;
        const float *pb = p + t0 * n, *dob = dout + t0 * ld;
        // dV[0 ..< t1] (t1, hs) += Pᵀ (t1, rows) · dO[t0 ..< t1] (rows, hs)
        muwa_sgemm_small_avx512(1, 1, t1, hs, rows, pb, n, dob, ld, dv, ld);
        // dP (rows, t1) = dO[t0 ..< t1] · V[0 ..< t1]ᵀ
        muwa_sgemm_small_avx512(0, 0, rows, t1, hs, dob, ld, vt, n, d, t1);
        muwa_softmax_backward_block(d, pb, n, t0, t1);
        // dQ[t0 ..< t1] += dS (rows, t1) · K[0 ..< t1];  dK[0 ..< t1] += dSᵀ (t1, rows) · Q[t0 ..< t1]
        muwa_sgemm_small_avx512(0, 1, rows, hs, t1, d, t1, k, ld, dq + t0 * ld, ld);
        muwa_sgemm_small_avx512(1, 1, t1, hs, rows, d, t1, q + t0 * ld, ld, dk, ld);
    }
    return 0;
}
#else
int muwa_causal_attention_forward(float *out, float *p, const float *q, const float *k, const float *v, long ld,
                                  long n, long hs) {
    (void)out, (void)p, (void)q, (void)k, (void)v, (void)ld, (void)hs;
    return n <= 0 ? 0 : -1;
}

int muwa_causal_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *p,
                                   const float *q, const float *k, const float *v, long ld, long n, long hs) {
    (void)dq, (void)dk, (void)dv, (void)dout, (void)p, (void)q, (void)k, (void)v, (void)ld, (void)hs;
    return n <= 0 ? 0 : -1;
}
#endif
