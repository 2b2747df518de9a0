// Attention's row softmax over the keys a query may see:
//   valid(j) = j < limit && (mask == 0 || mask[j] != 0)
//   row[j] = exp(row[j] - max_valid) / Σ_valid exp(… ) for valid j, 0 for the others; a row with no valid key
//   attends uniformly to all n (1/n each), as the engine has always done for a fully masked row.
// The reference is plain C with libm's expf and a sum in key order. The AVX-512 version (used when the avx512
// table is selected) computes exp with a degree-6 polynomial 16 lanes at a time (within 2 ulp of expf) and
// sums in 16 lanes anchored at the first valid key, so a row's result does not depend on where its keys sit:
// a sequence left-padded in a batch gets the bits it gets alone (the padding adds exact zeros). The AVX2 forms
// (kernels_softmax_avx2.c) do the same 8 lanes at a time.
#include "kernels_internal.h"

void muwa_softmax_reference(float *row, long n, long limit, const uint8_t *mask) {
    long end = limit < n ? limit : n;
    float maxv = -INFINITY;
    for (long j = 0; j < end; j++)
        if ((!mask || mask[j]) && row[j] > maxv) maxv = row[j];
    if (maxv == -INFINITY) {
        for (long j = 0; j < n; j++) row[j] = 1.0f / (float)n;
        return;
    }
    float sum = 0;
    for (long j = 0; j < n; j++) {
        if (j < end && (!mask || mask[j])) {
            float e = expf(row[j] - maxv);
            row[j] = e;
            sum += e;
        } else {
            row[j] = 0;
        }
    }
    float inv = 1 / sum;
    for (long j = 0; j < n; j++) row[j] *= inv;
}

double muwa_exp_sum_reference(const float *x, long n, float *out, float *max_out) {
    float maxv = -INFINITY;
    for (long j = 0; j < n; j++)
        if (x[j] > maxv) maxv = x[j];
    double sum = 0;
    for (long j = 0; j < n; j++) {
        float e = expf(x[j] - maxv);
        if (out) out[j] = e;
        sum += (double)e;
    }
    *max_out = maxv;
    return sum;
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

/// e^x for 16 lanes: x = n·ln2 + r with |r| ≤ ln2/2, e^r by Cephes' expf polynomial, scaled by 2^n (vscalefps
/// gives 0 far below and +inf above the float range).
static inline AVX512 __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_set1_ps(MUWA_EXP_HI), x);  // NaN stays NaN (the second operand)
    x = _mm512_max_ps(_mm512_set1_ps(MUWA_EXP_LO), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(MUWA_EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(MUWA_EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(MUWA_EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(muwa_exp_poly[0]);
    for (int i = 1; i < 6; i++) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(muwa_exp_poly[i]));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/// Lanes j0 … j0 + 15 that are valid (and below n).
static inline AVX512 __mmask16 valid16(long j0, long end, const uint8_t *mask) {
    long left = end - j0;
    __mmask16 in = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
    if (!mask) return in;
    return _mm_mask_test_epi8_mask(in, _mm_maskz_loadu_epi8(in, mask + j0), _mm_set1_epi8((char)0xff));
}

static AVX512 void softmax_avx512(float *row, long n, long limit, const uint8_t *mask) {
    long end = limit < n ? limit : n, first = 0;
    if (mask)
        while (first < end && !mask[first]) first++;
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (long j = first; j < end; j += 16) {
        __mmask16 v = valid16(j, end, mask);
        vmax = _mm512_mask_max_ps(vmax, v, vmax, _mm512_maskz_loadu_ps(v, row + j));
    }
    float maxv = _mm512_reduce_max_ps(vmax);
    if (first >= end || maxv == -INFINITY) {
        for (long j = 0; j < n; j++) row[j] = 1.0f / (float)n;
        return;
    }
    const __m512 m = _mm512_set1_ps(maxv);
    for (long j = 0; j < n; j += 16) {
        __mmask16 in = n - j >= 16 ? 0xffff : (__mmask16)((1u << (n - j)) - 1);
        __mmask16 v = valid16(j, end, mask);
        __m512 e = _mm512_maskz_mov_ps(v, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(v, row + j), m)));
        _mm512_mask_storeu_ps(row + j, in, e);
    }
    __m512 vsum = _mm512_setzero_ps();
    for (long j = first; j < end; j += 16) {  // lanes anchored at the first valid key
        __mmask16 in = end - j >= 16 ? 0xffff : (__mmask16)((1u << (end - j)) - 1);
        vsum = _mm512_add_ps(vsum, _mm512_maskz_loadu_ps(in, row + j));
    }
    const __m512 inv = _mm512_set1_ps(1 / _mm512_reduce_add_ps(vsum));
    for (long j = first; j < end; j += 16) {
        __mmask16 in = end - j >= 16 ? 0xffff : (__mmask16)((1u << (end - j)) - 1);
        _mm512_mask_storeu_ps(row + j, in, _mm512_mul_ps(_mm512_maskz_loadu_ps(in, row + j), inv));
    }
}

/// muwa_exp_sum 16 lanes at a time: the max over lanes (NaN never taken, as the reference's x > max skips it),
/// exp16, and the sum in 16 double lanes (two vectors of 8, lanes j mod 16), added lane by lane at the end.
static AVX512 double exp_sum_avx512(const float *x, long n, float *out, float *max_out) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (long j = 0; j < n; j += 16) {
        __mmask16 in = n - j >= 16 ? 0xffff : (__mmask16)((1u << (n - j)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(in, x + j);
        vmax = _mm512_mask_mov_ps(vmax, _mm512_mask_cmp_ps_mask(in, v, vmax, _CMP_GT_OQ), v);
    }
    float lanes[16], maxv = -INFINITY;
    _mm512_storeu_ps(lanes, vmax);
    for (int l = 0; l < 16; l++)
        if (lanes[l] > maxv) maxv = lanes[l];
    const __m512 m = _mm512_set1_ps(maxv);
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    for (long j = 0; j < n; j += 16) {
        __mmask16 in = n - j >= 16 ? 0xffff : (__mmask16)((1u << (n - j)) - 1);
        __m512 e = _mm512_maskz_mov_ps(in, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, x + j), m)));
        if (out) _mm512_mask_storeu_ps(out + j, in, e);
        lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    double sums[16], sum = 0;
    _mm512_storeu_pd(sums, lo);
    _mm512_storeu_pd(sums + 8, hi);
    for (int l = 0; l < 16; l++) sum += sums[l];
    *max_out = maxv;
    return sum;
}
#endif

double muwa_exp_sum(const float *x, long n, float *out, float *max_out) {
#if defined(__x86_64__)
    if (muwa_avx512bw_selected()) return exp_sum_avx512(x, n, out, max_out);
    if (muwa_avx2_selected()) return muwa_exp_sum_avx2(x, n, out, max_out);
#endif
    return muwa_exp_sum_reference(x, n, out, max_out);
}

void muwa_softmax(float *row, long n, long limit, const uint8_t *mask) {
#if defined(__x86_64__)
    if (muwa_avx512bw_selected()) {
        softmax_avx512(row, n, limit, mask);
        return;
    }
    if (muwa_avx2_selected()) {
        muwa_softmax_avx2(row, n, limit, mask);
        return;
    }
#endif
    muwa_softmax_reference(row, n, limit, mask);
}
