// Dropout rows (Dropout.swift's DropoutMask): element i of a stream is kept when the top 24 bits of
// SplitMix64's finaliser of key + i · φ (φ = 0x9E3779B97F4A7C15) are ≥ threshold; kept elements are scaled by
// `scale`. Pure integer hashing, so the AVX-512 path (8 hashes per vector, vpmullq) keeps exactly the
// elements the scalar one does; the mask of element i never depends on which kernel or thread computes it.
#include "kernels_internal.h"

static const uint64_t PHI = 0x9E3779B97F4A7C15ull, MIX1 = 0xBF58476D1CE4E5B9ull, MIX2 = 0x94D049BB133111EBull;

static inline uint64_t mix64(uint64_t z) {
    z += PHI;
    z = (z ^ (z >> 30)) * MIX1;
    z = (z ^ (z >> 27)) * MIX2;
    return z ^ (z >> 31);
}

int muwa_dropout_keeps(uint64_t key, uint64_t threshold, uint64_t i) { return (mix64(key + i * PHI) >> 40) >= threshold; }

static void dropout_row_scalar(float *out, const float *in, long n, uint64_t key, uint64_t first, uint64_t threshold,
                               float scale, int accumulate) {
    for (long c = 0; c < n; c++) {
        int keep = muwa_dropout_keeps(key, threshold, first + (uint64_t)c);
        if (accumulate) {
            if (keep) out[c] += in[c] * scale;
        } else {
            out[c] = keep ? in[c] * scale : 0;
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512DQ __attribute__((target("avx512f,avx512dq")))

static inline AVX512DQ __m512i mix64x8(__m512i z) {
    z = _mm512_add_epi64(z, _mm512_set1_epi64((long long)PHI));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), _mm512_set1_epi64((long long)MIX1));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), _mm512_set1_epi64((long long)MIX2));
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

static AVX512DQ void dropout_row_avx512(float *out, const float *in, long n, uint64_t key, uint64_t first,
                                        uint64_t threshold, float scale, int accumulate) {
    const __m512i step = _mm512_set1_epi64((long long)(16 * PHI)), thr = _mm512_set1_epi64((long long)threshold);
    const __m512i lanes = _mm512_mullo_epi64(_mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7), _mm512_set1_epi64((long long)PHI));
    __m512i lo = _mm512_add_epi64(_mm512_set1_epi64((long long)(key + first * PHI)), lanes);
    __m512i hi = _mm512_add_epi64(lo, _mm512_set1_epi64((long long)(8 * PHI)));
    const __m512 s = _mm512_set1_ps(scale);
    long c = 0;
    for (; c + 16 <= n; c += 16) {
        __mmask8 k0 = _mm512_cmpge_epu64_mask(_mm512_srli_epi64(mix64x8(lo), 40), thr);
        __mmask8 k1 = _mm512_cmpge_epu64_mask(_mm512_srli_epi64(mix64x8(hi), 40), thr);
        __mmask16 keep = (__mmask16)(k0 | ((unsigned)k1 << 8));
        __m512 x = _mm512_mul_ps(_mm512_loadu_ps(in + c), s);
        if (accumulate) {
            __m512 o = _mm512_loadu_ps(out + c);
            _mm512_storeu_ps(out + c, _mm512_mask_add_ps(o, keep, o, x));
        } else {
            _mm512_storeu_ps(out + c, _mm512_maskz_mov_ps(keep, x));
        }
        lo = _mm512_add_epi64(lo, step);
        hi = _mm512_add_epi64(hi, step);
    }
    dropout_row_scalar(out + c, in + c, n - c, key, first + (uint64_t)c, threshold, scale, accumulate);
}

static int can(void) {
    static int dq = -1;  // the CPU's answer, asked once
    if (dq < 0) dq = __builtin_cpu_supports("avx512dq") != 0;
    return dq && muwa_avx512_selected();
}
static int forced = -1;  // muwa_dropout_select
static int fast(void) { return muwa_choice(&forced, can()); }
int muwa_dropout_select(int fast_kernel) { return muwa_choice_set(&forced, fast_kernel, can()); }
#else
int muwa_dropout_select(int fast_kernel) { return fast_kernel > 0 ? 0 : 1; }
#endif

void muwa_dropout_row(float *out, const float *in, long n, uint64_t key, uint64_t first, uint64_t threshold,
                      float scale, int accumulate) {
    if (n <= 0) return;
#if defined(__x86_64__)
    if (fast()) {
        dropout_row_avx512(out, in, n, key, first, threshold, scale, accumulate);
        return;
    }
#endif
    dropout_row_scalar(out, in, n, key, first, threshold, scale, accumulate);
}
