// The AVX2 int8 product: bytes sign-extended to int16 and multiplied pairwise into int32 (vpmaddwd), exact
// like the scalar reference, so every table gives the same bits. One weight row at a time against groups
// of up to 4 input rows; K tails in scalar. A row's output never depends on the other rows. Also the input
// quantization and outlier scan on 8 lanes (F16C for the float16 rounding), the same bits as the scalar code.
#include "kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2")))

static inline AVX2 int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/// Weight row n against input rows m ..< m + G (G ≤ 4, constant at every call).
static inline AVX2 __attribute__((always_inline)) void group(const muwa_i8_weight *w, const muwa_i8_input *x, long n,
                                                             long m, long G, float *y, long ldy, long K, int acc) {
    __m256i a[4];
    for (long r = 0; r < G; r++) a[r] = _mm256_setzero_si256();
    const int8_t *row = w->q + n * K, *xq = x->q + m * K;
    long k = 0;
    for (; k + 16 <= K; k += 16) {
        __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(row + k)));
        for (long r = 0; r < G; r++) {
            __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(xq + r * K + k)));
            a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(wv, xv));
        }
    }
    for (long r = 0; r < G; r++) {
        int32_t dot = hsum_epi32(a[r]);
        for (long kk = k; kk < K; kk++) dot += (int32_t)row[kk] * (int32_t)xq[r * K + kk];
        float s = muwa_i8_finish(w, x, m + r, n, K, dot);
        float *yr = y + (m + r) * ldy + n;
        *yr = acc ? *yr + s : s;
    }
}

AVX2 void muwa_gemv_i8_avx2(const muwa_i8_weight *w, const muwa_i8_input *x, long M, float *y, long ldy, long n0,
                            long n1, long K, int acc) {
    for (long n = n0; n < n1; n++) {
        long m = 0;
        for (; m + 4 <= M; m += 4) group(w, x, n, m, 4, y, ldy, K, acc);
        switch (M - m) {
        case 1: group(w, x, n, m, 1, y, ldy, K, acc); break;
        case 2: group(w, x, n, m, 2, y, ldy, K, acc); break;
        case 3: group(w, x, n, m, 3, y, ldy, K, acc); break;
        default: break;
        }
    }
}

// MARK: - input quantization, 8 at a time (kernels_int8.c's quantize_row and outlier scan, the same bits)

#define AVX2F16 __attribute__((target("avx2,f16c")))

/// muwa_f16r on 8 lanes: vcvtps2ph (round to nearest even) and back, as the AVX-512 form.
static inline AVX2F16 __m256 f16r8(__m256 v) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

static inline AVX2F16 __m256 abs8(__m256 v) {
    return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}

/// 8 values of a row quantized: round(v · inv) clamped to ±127, 0 for NaN and (with outliers) |v| ≥ threshold.
static inline AVX2F16 __m256i quantize8(const float *x, __m256 vinv, __m256 thr, int outliers) {
    __m256 v = f16r8(_mm256_loadu_ps(x));
    __m256i q = muwa_round_clamp8(_mm256_mul_ps(v, vinv), 127.0f);
    return outliers ? _mm256_and_si256(q, _mm256_castps_si256(_mm256_cmp_ps(abs8(v), thr, _CMP_LT_OQ))) : q;
}

AVX2F16 float muwa_i8_quantize_row_avx2(const float *xr, long K, float threshold, int8_t *qr) {
    int outliers = threshold > 0;
    const __m256 thr = _mm256_set1_ps(threshold);
    __m256 vmax = _mm256_setzero_ps();
    long k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 a = abs8(f16r8(_mm256_loadu_ps(xr + k)));
        // a > amax with NaN never taken, as the scalar loop; outliers (a ≥ threshold) left out
        __m256 keep = _mm256_cmp_ps(a, vmax, _CMP_GT_OQ);
        if (outliers) keep = _mm256_and_ps(keep, _mm256_cmp_ps(a, thr, _CMP_LT_OQ));
        vmax = _mm256_blendv_ps(vmax, a, keep);
    }
    float amax = muwa_i8_absmax_tail(xr, k, K, threshold, muwa_hmax8(vmax, 0));
    float inv = amax > 0 ? 127.0f * (1.0f / amax) : 0;  // as PyTorch computes 127.0 / tensor
    const __m256 vinv = _mm256_set1_ps(inv);
    // 16 at a time: two registers of int32 narrowed (exact: |q| ≤ 127) and put back in order
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (k = 0; k + 16 <= K; k += 16) {
        __m256i a = quantize8(xr + k, vinv, thr, outliers), b = quantize8(xr + k + 8, vinv, thr, outliers);
        __m256i w = _mm256_packs_epi32(a, b);                     // a0-3 b0-3 | a4-7 b4-7 (int16)
        __m256i bytes = _mm256_packs_epi16(w, w);                 // dwords: a0-3 b0-3 a0-3 b0-3 | a4-7 b4-7 …
        bytes = _mm256_permutevar8x32_epi32(bytes, order);        // a0-3 a4-7 b0-3 b4-7 …
        _mm_storeu_si128((__m128i *)(void *)(qr + k), _mm256_castsi256_si128(bytes));
    }
    muwa_i8_quantize_tail(xr, k, K, threshold, inv, qr);
    return amax;
}

AVX2F16 long muwa_i8_scan_outliers_avx2(const float *xr, long K, float threshold, int list, int32_t *out) {
    // |f16r(v)| ≥ threshold needs |v| ≥ threshold / (1 + 2^-11) - 2^-25: a cheap filter, then the exact test
    const __m256 near = _mm256_set1_ps(threshold * 0.999f - 0x1p-24f);
    long found = 0, k = 0;
    for (; k + 8 <= K; k += 8) {
        unsigned hit = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(abs8(_mm256_loadu_ps(xr + k)), near, _CMP_GE_OQ));
        for (; hit; hit &= hit - 1) {
            long i = k + __builtin_ctz(hit);
            found = muwa_i8_outlier_at(xr, i, threshold, list, out, found);
        }
    }
    for (; k < K; k++) found = muwa_i8_outlier_at(xr, k, threshold, list, out, found);
    return found;
}
#else
void muwa_gemv_i8_avx2(const muwa_i8_weight *w, const muwa_i8_input *x, long M, float *y, long ldy, long n0,
                       long n1, long K, int acc) {
    muwa_gemv_i8_scalar(w, x, M, y, ldy, n0, n1, K, acc);
}
#endif
