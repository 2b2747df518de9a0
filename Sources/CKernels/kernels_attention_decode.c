// Decode attention of one (sequence, head): one query against the L keys and values of its cache
// (Attention.swift's T = 1 path, one call per head, the heads spread over the engine's threads).
//   q, out: (hs)     keys, values: (L, hs) rows of the cache     scores: (L)
//   scores[j] = q · keys[j]  →  muwa_softmax over the keys with mask[j] != 0 (mask may be null)  →
//   out = Σ_j scores[j] · values[j]
// Two OpenBLAS gemv calls per head did this before: 1,536 calls a token for opt-1.3b, each checking its
// arguments, and all of them on one thread while the other spun. The AVX-512 form reads each key and value
// row once, 16 floats at a time (masked tails, any hs); sums run in a different order from the reference
// below, so the two agree within float rounding, not to the bit. A head's result never depends on which
// thread runs it.
#include "kernels_internal.h"

static int forced = -1;  // muwa_attend_one_select

/// The reference: plain loops in key order.
void muwa_attend_one_reference(float *out, const float *q, const float *keys, const float *values, float *scores,
                               long L, long hs, const uint8_t *mask) {
    for (long j = 0; j < L; j++) {
        float dot = 0;
        for (long d = 0; d < hs; d++) dot += q[d] * keys[j * hs + d];
        scores[j] = dot;
    }
    muwa_softmax_reference(scores, L, L, mask);
    for (long d = 0; d < hs; d++) out[d] = 0;
    for (long j = 0; j < L; j++)
        for (long d = 0; d < hs; d++) out[d] += scores[j] * values[j * hs + d];
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))

static inline AVX512 __attribute__((always_inline)) __mmask16 lanes(long n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

/// scores[j] = q · keys[j]: each key row against q, 16 lanes at a time, two keys per step.
static AVX512 void score_keys(const float *q, const float *keys, long L, long hs, float *scores) {
    long j = 0;
    for (; j + 2 <= L; j += 2) {
        const float *k0 = keys + j * hs, *k1 = k0 + hs;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        for (long d = 0; d < hs; d += 16) {
            __mmask16 m = lanes(hs - d);
            __m512 qv = _mm512_maskz_loadu_ps(m, q + d);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, k0 + d), qv, a0);
            a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, k1 + d), qv, a1);
        }
        scores[j] = _mm512_reduce_add_ps(a0);
        scores[j + 1] = _mm512_reduce_add_ps(a1);
    }
    for (; j < L; j++) {
        const float *k0 = keys + j * hs;
        __m512 a0 = _mm512_setzero_ps();
        for (long d = 0; d < hs; d += 16) {
            __mmask16 m = lanes(hs - d);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, k0 + d), _mm512_maskz_loadu_ps(m, q + d), a0);
        }
        scores[j] = _mm512_reduce_add_ps(a0);
    }
}

/// out[d0 ..< d0 + w] = Σ_j p[j] · values[j][d0 ..< d0 + w], w ≤ 64: four registers, two keys per step into
/// two sets of them (added at the end).
static AVX512 void weigh_values(const float *p, const float *values, long L, long hs, long d0, long w, float *out) {
    __mmask16 m0 = lanes(w), m1 = lanes(w - 16 > 0 ? w - 16 : 0), m2 = lanes(w - 32 > 0 ? w - 32 : 0),
              m3 = lanes(w - 48 > 0 ? w - 48 : 0);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    long j = 0;
    for (; j + 2 <= L; j += 2) {
        const float *v0 = values + j * hs + d0, *v1 = v0 + hs;
        __m512 p0 = _mm512_set1_ps(p[j]), p1 = _mm512_set1_ps(p[j + 1]);
        a0 = _mm512_fmadd_ps(p0, _mm512_maskz_loadu_ps(m0, v0), a0);
        b0 = _mm512_fmadd_ps(p1, _mm512_maskz_loadu_ps(m0, v1), b0);
        if (m1) {
            a1 = _mm512_fmadd_ps(p0, _mm512_maskz_loadu_ps(m1, v0 + 16), a1);
            b1 = _mm512_fmadd_ps(p1, _mm512_maskz_loadu_ps(m1, v1 + 16), b1);
        }
        if (m2) {
            a2 = _mm512_fmadd_ps(p0, _mm512_maskz_loadu_ps(m2, v0 + 32), a2);
            b2 = _mm512_fmadd_ps(p1, _mm512_maskz_loadu_ps(m2, v1 + 32), b2);
        }
        if (m3) {
            a3 = _mm512_fmadd_ps(p0, _mm512_maskz_loadu_ps(m3, v0 + 48), a3);
            b3 = _mm512_fmadd_ps(p1, _mm512_maskz_loadu_ps(m3, v1 + 48), b3);
        }
    }
    if (j < L) {
        const float *v0 = values + j * hs + d0;
        __m512 p0 = _mm512_set1_ps(p[j]);
        a0 = _mm512_fmadd_ps(p0, _mm512_maskz_loadu_ps(m0, v0), a0);
        if (m1) a1 = _mm512_fmadd_ps(p0, _mm512_maskz_loadu_ps(m1, v0 + 16), a1);
        if (m2) a2 = _mm512_fmadd_ps(p0, _mm512_maskz_loadu_ps(m2, v0 + 32), a2);
        if (m3) a3 = _mm512_fmadd_ps(p0, _mm512_maskz_loadu_ps(m3, v0 + 48), a3);
    }
    _mm512_mask_storeu_ps(out + d0, m0, _mm512_add_ps(a0, b0));
    if (m1) _mm512_mask_storeu_ps(out + d0 + 16, m1, _mm512_add_ps(a1, b1));
    if (m2) _mm512_mask_storeu_ps(out + d0 + 32, m2, _mm512_add_ps(a2, b2));
    if (m3) _mm512_mask_storeu_ps(out + d0 + 48, m3, _mm512_add_ps(a3, b3));
}

static int fast_default(void) { return muwa_attention_fast(); }

int muwa_attend_one(float *out, const float *q, const float *keys, const float *values, float *scores, long L,
                    long hs, const uint8_t *mask) {
    if (L <= 0 || hs <= 0) return 0;
    if (!muwa_choice(&forced, fast_default())) return -1;
    score_keys(q, keys, L, hs, scores);
    muwa_softmax(scores, L, L, mask);
    for (long d0 = 0; d0 < hs; d0 += 64) weigh_values(scores, values, L, hs, d0, hs - d0 < 64 ? hs - d0 : 64, out);
    return 0;
}
#else
static int fast_default(void) { return 0; }

int muwa_attend_one(float *out, const float *q, const float *keys, const float *values, float *scores, long L,
                    long hs, const uint8_t *mask) {
    (void)out, (void)q, (void)keys, (void)values, (void)scores, (void)L, (void)hs, (void)mask;
    return -1;
}
#endif

int muwa_attend_one_select(int on) { return muwa_choice_set(&forced, on, fast_default()); }
