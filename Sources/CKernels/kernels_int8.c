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
#include <stdlib.h>

/// Row m's non-outlier absmax and its int8 values (element outliers 0): the AVX-512 or AVX2 version under those
/// tables (the same operations, 16 or 8 at a time: the same bits).
static float quantize_row(const float *xr, long K, float threshold, int8_t *qr) {
#if defined(__x86_64__)
    if (muwa_i8_quant_avx512_supported()) return muwa_i8_quantize_row_avx512(xr, K, threshold, qr);
    if (muwa_avx2_selected()) return muwa_i8_quantize_row_avx2(xr, K, threshold, qr);
#endif
    float amax = muwa_i8_absmax_tail(xr, 0, K, threshold, 0);
    float inv = amax > 0 ? 127.0f * (1.0f / amax) : 0;  // as PyTorch computes 127.0 / tensor
    muwa_i8_quantize_tail(xr, 0, K, threshold, inv, qr);
    return amax;
}

void muwa_i8_outlier_flags(const float *x, long m0, long m1, long K, float threshold, int32_t *flags) {
    for (long k = 0; k < K; k++) flags[k] = 0;
    for (long m = m0; m < m1; m++) {
#if defined(__x86_64__)
        if (muwa_i8_quant_avx512_supported()) {
            muwa_i8_scan_outliers_avx512(x + m * K, K, threshold, 0, flags);
            continue;
        }
        if (muwa_avx2_selected()) {
            muwa_i8_scan_outliers_avx2(x + m * K, K, threshold, 0, flags);
            continue;
        }
#endif
        for (long k = 0; k < K; k++)
            if (fabsf(muwa_f16r(x[m * K + k])) >= threshold) flags[k] = 1;
    }
}

long muwa_i8_outlier_merge(int32_t *flags, const int32_t *extra, long parts, long K) {
    for (long p = 1; p < parts; p++)
        for (long k = 0; k < K; k++) flags[k] |= extra[(p - 1) * K + k];
    long total = 0;
    for (long k = 0; k < K; k++)  // compacted in place: index ≤ k
        if (flags[k]) flags[total++] = (int32_t)k;
    return total;
}

long muwa_i8_outlier_features(const float *x, long M, long K, float threshold, int32_t *cols) {
    if (!(threshold > 0)) return 0;
    muwa_i8_outlier_flags(x, 0, M, K, threshold, cols);
    return muwa_i8_outlier_merge(cols, 0, 1, K);
}

void muwa_quantize_rows_shared(const float *x, long m0, long m1, long K, float threshold, const int32_t *cols,
                               long ncols, int8_t *q, float *absmax, int32_t *start, int32_t *count) {
    for (long m = m0; m < m1; m++) {
        int8_t *qr = q + m * K;
        absmax[m] = quantize_row(x + m * K, K, threshold, qr);
        start[m] = 0;
        count[m] = (int32_t)ncols;
        for (long c = 0; c < ncols; c++) qr[cols[c]] = 0;  // whole outlier features
    }
}

long muwa_quantize_rows(const float *x, long M, long K, float threshold, int per_row, int8_t *q, float *absmax,
                        int32_t *cols, int32_t *start, int32_t *count) {
    if (!per_row || !(threshold > 0)) {
        long total = muwa_i8_outlier_features(x, M, K, threshold, cols);
        muwa_quantize_rows_shared(x, 0, M, K, threshold, cols, total, q, absmax, start, count);
        return total;
    }
    long total = 0;
    for (long m = 0; m < M; m++) {
        const float *xr = x + m * K;
        int8_t *qr = q + m * K;
        start[m] = (int32_t)total;
#if defined(__x86_64__)
        if (muwa_i8_quant_avx512_supported()) total += muwa_i8_scan_outliers_avx512(xr, K, threshold, 1, cols + total);
        else if (muwa_avx2_selected()) total += muwa_i8_scan_outliers_avx2(xr, K, threshold, 1, cols + total);
        else
#endif
            for (long k = 0; k < K; k++)
                if (fabsf(muwa_f16r(xr[k])) >= threshold) cols[total++] = (int32_t)k;
        count[m] = (int32_t)(total - start[m]);
        absmax[m] = quantize_row(xr, K, threshold, qr);
    }
    return total;
}

void muwa_quantize_weight_rows(muwa_dtype dtype, const void *w, long n0, long n1, long K, int8_t *q, float *absmax,
                               int32_t *rowsum) {
    long rowBytes = K * muwa_dtype_size(dtype);
    float *wide = dtype == MUWA_DTYPE_F32 ? 0 : malloc((size_t)K * sizeof(float));
    for (long n = n0; n < n1; n++) {
        const void *row = (const char *)w + n * rowBytes;
        int8_t *qr = q + n * K;
        if (dtype == MUWA_DTYPE_F32) {
            absmax[n] = quantize_row(row, K, 0, qr);  // a weight row is an input row without outliers
        } else if (wide) {
            muwa_widen(dtype, row, wide, K);
            absmax[n] = quantize_row(wide, K, 0, qr);
        } else {  // no memory for a row: element by element
            float amax = 0;
            for (long k = 0; k < K; k++) {
                float a = fabsf(muwa_f16r(muwa_widen1(dtype, row, k)));
                if (a > amax) amax = a;
            }
            float inv = amax > 0 ? 127.0f * (1.0f / amax) : 0;  // as PyTorch computes 127.0 / tensor
            for (long k = 0; k < K; k++) qr[k] = muwa_i8_quantize1(muwa_f16r(muwa_widen1(dtype, row, k)), inv);
            absmax[n] = amax;
        }
        int32_t sum = 0;
        for (long k = 0; k < K; k++) sum += qr[k];
        rowsum[n] = sum;
    }
    free(wide);
}

/// Elements [k0, k0 + m) of weight row n, dequantized.
static inline void dequantize_span(const muwa_i8_weight *w, long n, long K, long k0, long m, float *out) {
    const int8_t *row = w->q + n * K + k0;
    float scale = w->absmax[n] * MUWA_I8_DEQUANT;
    for (long k = 0; k < m; k++) out[k] = (float)row[k] * scale;
}

void muwa_dequantize_i8_rows(const muwa_i8_weight *w, long n0, long n1, long K, float *dst) {
    for (long n = n0; n < n1; n++) dequantize_span(w, n, K, 0, K, dst + (n - n0) * K);
}

void muwa_dequantize_i8_rows_bf16(const muwa_i8_weight *w, long n0, long n1, long K, uint16_t *dst) {
    float wide[256];
    for (long n = n0; n < n1; n++)
        for (long k0 = 0; k0 < K; k0 += 256) {  // 256 values at a time through f32, then rounded
            long m = K - k0 < 256 ? K - k0 : 256;
            dequantize_span(w, n, K, k0, m, wide);
            muwa_f32_to_bf16_rows(wide, 1, m, m, dst + (n - n0) * K + k0, m);
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
