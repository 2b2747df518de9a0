// Int8 quantization (LLM.int8, as bitsandbytes' Linear8bitLt on CPU) and the scalar int8 product, the
// reference the SIMD tables are held to. Quantization is shared by every table (it reads each input once;
// the product reads the weights, which is what costs).
//   weights:  absmax[n] = max_k |W[n, k]|,  q[n, k] = round(W[n, k] · (127 / absmax[n]))
//   inputs:   outliers |x| ≥ threshold are left out of the row's absmax and computed in f32;
//             q[m, k] = round(x[m, k] · (127 / absmax[m])), 0 in outlier features
//   product:  y[m, n] = (Σ_k qx[m, k] · qw[n, k]) · (absmax[m] · absmax[n]) / 127²
//                       + Σ_{outliers k of row m} x[m, k] · qw[n, k] · absmax[n] / 127
//   Like bitsandbytes, which quantizes float16 tensors, every value is rounded to float16 first (f16r):
//   outliers are judged and rows quantized on the rounded values; the f32 outlier product uses x as is.
#include "kernels_internal.h"
#include <math.h>

/// v rounded to the nearest float16 (ties to even) and back: what bitsandbytes' A.to(torch.float16) does.
/// Integer operations only, so it vectorises and needs no F16C.
static inline float f16r(float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) return v;                             // inf, NaN
    if (a >= 0x477ff000u) return v > 0 ? INFINITY : -INFINITY;  // rounds past 65504
    if (a < 0x38800000u) return rintf(v * 0x1p24f) * 0x1p-24f;  // float16 subnormals: steps of 2^-24
    u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;
    memcpy(&v, &u, 4);
    return v;
}

/// round(v · inv) as int8: round half to even like torch.round, clamped (v ≤ absmax, so only rounding).
static inline int8_t quantize1(float v, float inv) {
    float r = rintf(v * inv);
    return (int8_t)(r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r);
}

long muwa_quantize_rows(const float *x, long M, long K, float threshold, int per_row, int8_t *q, float *absmax,
                        int32_t *cols, int32_t *start, int32_t *count) {
    int outliers = threshold > 0;
    long total = 0;
    if (outliers && !per_row) {  // the features that are an outlier in any row, shared by all rows
        for (long k = 0; k < K; k++) {
            for (long m = 0; m < M; m++) {
                if (fabsf(f16r(x[m * K + k])) >= threshold) {
                    cols[total++] = (int32_t)k;
                    break;
                }
            }
        }
    }
    for (long m = 0; m < M; m++) {
        const float *xr = x + m * K;
        int8_t *qr = q + m * K;
        if (outliers && per_row) {
            start[m] = (int32_t)total;
            for (long k = 0; k < K; k++)
                if (fabsf(f16r(xr[k])) >= threshold) cols[total++] = (int32_t)k;
            count[m] = (int32_t)(total - start[m]);
        } else {
            start[m] = 0;
            count[m] = (int32_t)total;
        }
        float amax = 0;
        for (long k = 0; k < K; k++) {
            float a = fabsf(f16r(xr[k]));
            if ((!outliers || a < threshold) && a > amax) amax = a;
        }
        absmax[m] = amax;
        float inv = amax > 0 ? 127.0f * (1.0f / amax) : 0;  // as PyTorch computes 127.0 / tensor
        for (long k = 0; k < K; k++) {
            float v = f16r(xr[k]);
            qr[k] = (outliers && fabsf(v) >= threshold) ? 0 : quantize1(v, inv);
        }
        for (long c = start[m]; c < start[m] + count[m]; c++) qr[cols[c]] = 0;  // whole outlier features
    }
    return total;
}

void muwa_quantize_weight_rows(muwa_dtype dtype, const void *w, long n0, long n1, long K, int8_t *q, float *absmax,
                               int32_t *rowsum) {
    long rowBytes = K * muwa_dtype_size(dtype);
    for (long n = n0; n < n1; n++) {
        const void *row = (const char *)w + n * rowBytes;
        float amax = 0;
        for (long k = 0; k < K; k++) {
            float a = fabsf(f16r(muwa_widen1(dtype, row, k)));
            if (a > amax) amax = a;
        }
        float inv = amax > 0 ? 127.0f * (1.0f / amax) : 0;  // as PyTorch computes 127.0 / tensor
        int32_t sum = 0;
        int8_t *qr = q + n * K;
        for (long k = 0; k < K; k++) {
            qr[k] = quantize1(f16r(muwa_widen1(dtype, row, k)), inv);
            sum += qr[k];
        }
        absmax[n] = amax;
        rowsum[n] = sum;
    }
}

void muwa_dequantize_i8_rows(const muwa_i8_weight *w, long n0, long n1, long K, float *dst) {
    for (long n = n0; n < n1; n++) {
        const int8_t *row = w->q + n * K;
        float scale = w->absmax[n] * MUWA_I8_DEQUANT;
        float *out = dst + (n - n0) * K;
        for (long k = 0; k < K; k++) out[k] = (float)row[k] * scale;
    }
}

void muwa_gemv_i8_scalar(const muwa_i8_weight *w, const muwa_i8_input *x, long M, float *y, long ldy, long n0,
                         long n1, long K, int acc) {
    for (long n = n0; n < n1; n++) {
        const int8_t *row = w->q + n * K;
        for (long m = 0; m < M; m++) {
            const int8_t *xr = x->q + m * K;
            int32_t dot = 0;
            for (long k = 0; k < K; k++) dot += (int32_t)row[k] * (int32_t)xr[k];
            float s = muwa_i8_finish(w, x, m, n, K, dot);
            float *yr = y + m * ldy + n;
            *yr = acc ? *yr + s : s;
        }
    }
}
