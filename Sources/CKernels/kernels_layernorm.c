// Layer norm's input gradient for rows whose weight and bias are frozen (LayerNorm.swift's layerNormBackward
// when dweight and dbias are not wanted, as in LoRA training), rows [r0, r1) of (N, C):
//   n = (x − mean)·rstd,  dn = w ⊙ dy (w = 1 without a weight),
//   dinp += (dn − mean(dn) − n · mean(dn ⊙ n)) · rstd
// The reference is the Swift loop's arithmetic in C (sums in column order); the AVX-512 version sums in 16
// lanes, so the two agree to float rounding. Rows are independent: the result does not depend on the split.
#include "kernels_internal.h"

void muwa_layernorm_backward_rows_reference(float *dinp, const float *dout, const float *inp, const float *weight,
                                            const float *mean, const float *rstd, long C, long r0, long r1) {
    for (long i = r0; i < r1; i++) {
        const float *x = inp + i * C, *dy = dout + i * C;
        float m = mean[i], s = rstd[i], dm = 0, dnm = 0;
        for (long c = 0; c < C; c++) {
            float n = (x[c] - m) * s, dn = (weight ? weight[c] : 1) * dy[c];
            dm += dn;
            dnm += dn * n;
        }
        dm /= (float)C;
        dnm /= (float)C;
        for (long c = 0; c < C; c++) {
            float n = (x[c] - m) * s, dn = (weight ? weight[c] : 1) * dy[c];
            dinp[i * C + c] += (dn - dm - n * dnm) * s;
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))

static AVX512 void backward_rows_avx512(float *dinp, const float *dout, const float *inp, const float *weight,
                                        const float *mean, const float *rstd, long C, long r0, long r1) {
    for (long i = r0; i < r1; i++) {
        const float *x = inp + i * C, *dy = dout + i * C;
        float *d = dinp + i * C;
        const __m512 m = _mm512_set1_ps(mean[i]), s = _mm512_set1_ps(rstd[i]), one = _mm512_set1_ps(1);
        __m512 dm = _mm512_setzero_ps(), dnm = _mm512_setzero_ps();
        for (long c = 0; c < C; c += 16) {
            __mmask16 k = C - c >= 16 ? 0xffff : (__mmask16)((1u << (C - c)) - 1);
            __m512 n = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + c), m), s);
            __m512 w = weight ? _mm512_mask_loadu_ps(one, k, weight + c) : one;
            __m512 dn = _mm512_mul_ps(w, _mm512_maskz_loadu_ps(k, dy + c));
            dm = _mm512_add_ps(dm, dn);
            dnm = _mm512_fmadd_ps(dn, n, dnm);
        }
        const __m512 vdm = _mm512_set1_ps(_mm512_reduce_add_ps(dm) / (float)C);
        const __m512 vdnm = _mm512_set1_ps(_mm512_reduce_add_ps(dnm) / (float)C);
        for (long c = 0; c < C; c += 16) {
            __mmask16 k = C - c >= 16 ? 0xffff : (__mmask16)((1u << (C - c)) - 1);
            __m512 n = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + c), m), s);
            __m512 w = weight ? _mm512_mask_loadu_ps(one, k, weight + c) : one;
            __m512 dn = _mm512_mul_ps(w, _mm512_maskz_loadu_ps(k, dy + c));
            __m512 g = _mm512_mul_ps(_mm512_fnmadd_ps(n, vdnm, _mm512_sub_ps(dn, vdm)), s);
            _mm512_mask_storeu_ps(d + c, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, d + c), g));
        }
    }
}
#endif

void muwa_layernorm_backward_rows(float *dinp, const float *dout, const float *inp, const float *weight,
                                  const float *mean, const float *rstd, long C, long r0, long r1) {
#if defined(__x86_64__)
    if (muwa_avx512_selected()) {
        backward_rows_avx512(dinp, dout, inp, weight, mean, rstd, C, r0, r1);
        return;
    }
#endif
    muwa_layernorm_backward_rows_reference(dinp, dout, inp, weight, mean, rstd, C, r0, r1);
}
