// kernels_softmax.c's row softmax and exp-sum on AVX2 + FMA, 8 lanes (CPUs without AVX-512: on Zen 3 libm's expf
// in the plain loops was 3 % of an opt-1.3b prefill and 4 % of an opt-125m training step). The same exp polynomial
// as the AVX-512 form; AVX2 has no vscalefps, so 2^n is applied in two exact halves (each a normal power of two),
// the second product rounding once as vscalefps does. The softmax sums in 8 lanes anchored at the first valid key,
// so a row's result does not depend on where its keys sit (a left-padded row gets the bits it gets alone).
#include "kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))

/// 2^n for integer-valued n in [-126, 127].
static inline AVX2 __m256 pow2(__m256 n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}

/// e^x for 8 lanes: x = n·ln2 + r with |r| ≤ ln2/2, e^r by Cephes' expf polynomial, scaled by 2^⌊n/2⌋ · 2^(n − ⌊n/2⌋)
/// (n in [-150, 128] after the clamps: 0 far below, +inf above the float range). A NaN stays NaN.
static inline AVX2 __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_set1_ps(MUWA_EXP_HI), x);  // NaN stays NaN (the second operand)
    x = _mm256_max_ps(_mm256_set1_ps(MUWA_EXP_LO), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(MUWA_EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(MUWA_EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(MUWA_EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(muwa_exp_poly[0]);
    for (int i = 1; i < 6; i++) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(muwa_exp_poly[i]));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256 half = _mm256_floor_ps(_mm256_mul_ps(n, _mm256_set1_ps(0.5f)));
    __m256 e = _mm256_mul_ps(_mm256_mul_ps(p, pow2(half)), pow2(_mm256_sub_ps(n, half)));
    return _mm256_blendv_ps(e, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/// Lanes [0, n) of 8 as a float mask.
static inline AVX2 __m256 lanes(long n) { return _mm256_castsi256_ps(muwa_lanes8(n)); }

/// Lanes j0 … j0 + 7 that are valid (below end, and mask[j] != 0 when there is a mask).
static inline AVX2 __m256 valid8(long j0, long end, const uint8_t *mask) {
    __m256 in = lanes(end - j0);
    if (!mask) return in;
    uint8_t bytes[16] = {0};
    for (long t = 0; t < 8 && j0 + t < end; t++) bytes[t] = mask[j0 + t];
    __m256i wide = _mm256_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)bytes));
    return _mm256_and_ps(in, _mm256_castsi256_ps(_mm256_cmpgt_epi32(wide, _mm256_setzero_si256())));
}

AVX2 void muwa_softmax_avx2(float *row, long n, long limit, const uint8_t *mask) {
    long end = limit < n ? limit : n, first = 0;
    if (mask)
        while (first < end && !mask[first]) first++;
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 vmax = ninf;
    for (long j = first; j < end; j += 8) {
        __m256 v = valid8(j, end, mask);
        __m256 x = _mm256_blendv_ps(ninf, _mm256_maskload_ps(row + j, _mm256_castps_si256(v)), v);
        vmax = _mm256_max_ps(x, vmax);  // a NaN key is never the max (the second operand is kept)
    }
    float maxv = muwa_hmax8(vmax, -INFINITY);
    if (first >= end || maxv == -INFINITY) {
        for (long j = 0; j < n; j++) row[j] = 1.0f / (float)n;
        return;
    }
    const __m256 m = _mm256_set1_ps(maxv);
    for (long j = 0; j < n; j += 8) {
        __m256 in = lanes(n - j), v = valid8(j, end, mask);
        __m256 e = _mm256_and_ps(v, exp8(_mm256_sub_ps(_mm256_maskload_ps(row + j, _mm256_castps_si256(v)), m)));
        _mm256_maskstore_ps(row + j, _mm256_castps_si256(in), e);
    }
    __m256 vsum = _mm256_setzero_ps();
    for (long j = first; j < end; j += 8)  // lanes anchored at the first valid key
        vsum = _mm256_add_ps(vsum, _mm256_maskload_ps(row + j, _mm256_castps_si256(lanes(end - j))));
    float l[8], sum = 0;
    _mm256_storeu_ps(l, vsum);
    for (int i = 0; i < 8; i++) sum += l[i];
    const __m256 inv = _mm256_set1_ps(1 / sum);
    for (long j = first; j < end; j += 8) {
        __m256i in = _mm256_castps_si256(lanes(end - j));
        _mm256_maskstore_ps(row + j, in, _mm256_mul_ps(_mm256_maskload_ps(row + j, in), inv));
    }
}

/// muwa_exp_sum 8 lanes at a time: the max over lanes (NaN never taken), exp8, the sum in 8 double lanes (two
/// vectors of 4, lanes j mod 8), added lane by lane at the end.
AVX2 double muwa_exp_sum_avx2(const float *x, long n, float *out, float *max_out) {
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (long j = 0; j < n; j += 8) {
        __m256 in = lanes(n - j), v = _mm256_maskload_ps(x + j, _mm256_castps_si256(in));
        vmax = _mm256_blendv_ps(vmax, v, _mm256_and_ps(in, _mm256_cmp_ps(v, vmax, _CMP_GT_OQ)));
    }
    float maxv = muwa_hmax8(vmax, -INFINITY);
    const __m256 m = _mm256_set1_ps(maxv);
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    for (long j = 0; j < n; j += 8) {
        __m256 in = lanes(n - j);
        __m256 e = _mm256_and_ps(in, exp8(_mm256_sub_ps(_mm256_maskload_ps(x + j, _mm256_castps_si256(in)), m)));
        if (out) _mm256_maskstore_ps(out + j, _mm256_castps_si256(in), e);
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double sums[8], sum = 0;
    _mm256_storeu_pd(sums, lo);
    _mm256_storeu_pd(sums + 4, hi);
    for (int l = 0; l < 8; l++) sum += sums[l];
    *max_out = maxv;
    return sum;
}
#endif
