// The AVX-512 table (x86-64; compiled with target attributes, chosen at run time when the CPU has
// avx512f). Decode of a batch is bound by reading the weights, so each weight row is read once for all the
// input rows; every (weight row, input row) pair has its own two accumulators (even and odd 16-lane halves
// of each 32-wide step), fed the same products in the same order whatever the blocking is, then reduced and
// finished with the scalar tail: a row's result does not depend on the other rows of the call.
#include "kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))

/// 16 weights of `dtype` from w[i…], widened to f32.
static inline AVX512 __attribute__((always_inline)) __m512 load16(muwa_dtype dtype, const void *w, long i) {
    switch (dtype) {
    case MUWA_DTYPE_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i))), 16));
    case MUWA_DTYPE_F16:
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i)));
    case MUWA_DTYPE_I8:
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)((const int8_t *)w + i))));
    default:
        return _mm512_loadu_ps((const float *)w + i);
    }
}

static inline const void *row_at(muwa_dtype dtype, const void *w, long n, long K) {
    return (const char *)w + n * K * muwa_dtype_size(dtype);
}

/// NB weight rows from n against G input rows; NB ≤ 3 and G ≤ 3 are constants at every call, so the
/// compiler keeps the 2·NB·G accumulators and the weights in registers. pf: bytes ahead of each row to prefetch
/// (muwa_gemv_prefetch), 0 for none.
static inline AVX512 __attribute__((always_inline)) void block(muwa_dtype dtype, const void *w, long n, long NB,
                                                               const float *x, long G, float *y, long ldy, long K,
                                                               int acc, long pf) {
    const long step = 32 * (long)muwa_dtype_size(dtype);  // bytes of a row per step
    __m512 a0[3][3], a1[3][3];
    for (long j = 0; j < NB; j++)
        for (long r = 0; r < G; r++) a0[j][r] = a1[j][r] = _mm512_setzero_ps();
    long k = 0;
    for (; k + 32 <= K; k += 32) {
        __m512 w0[3], w1[3];
        for (long j = 0; j < NB; j++) {
            const void *row = row_at(dtype, w, n + j, K);
            if (pf)  // past the end of the weights: a prefetch never faults
                for (long b = 0; b < step; b += 64) _mm_prefetch((const char *)row + k * (step / 32) + pf + b, _MM_HINT_T0);
            w0[j] = load16(dtype, row, k);
            w1[j] = load16(dtype, row, k + 16);
        }
        for (long r = 0; r < G; r++) {
            __m512 x0 = _mm512_loadu_ps(x + r * K + k), x1 = _mm512_loadu_ps(x + r * K + k + 16);
            for (long j = 0; j < NB; j++) {
                a0[j][r] = _mm512_fmadd_ps(w0[j], x0, a0[j][r]);
                a1[j][r] = _mm512_fmadd_ps(w1[j], x1, a1[j][r]);
            }
        }
    }
    for (long j = 0; j < NB; j++) {
        const void *row = row_at(dtype, w, n + j, K);
        for (long r = 0; r < G; r++) {
            float s = _mm512_reduce_add_ps(_mm512_add_ps(a0[j][r], a1[j][r]));
            for (long kk = k; kk < K; kk++) s += muwa_widen1(dtype, row, kk) * x[r * K + kk];
            float *yr = y + r * ldy + n + j;
            *yr = acc ? *yr + s : s;
        }
    }
}

/// NB weight rows from n against every input row, in groups of up to 3.
static inline AVX512 __attribute__((always_inline)) void rows_from(muwa_dtype dtype, const void *w, long n, long NB,
                                                                   const float *x, long M, float *y, long ldy, long K,
                                                                   int acc, long pf) {
    for (long m0 = 0; m0 < M; m0 += 3) {
        const float *xg = x + m0 * K;
        float *yg = y + m0 * ldy;
        switch (M - m0 < 3 ? M - m0 : 3) {
        case 1: block(dtype, w, n, NB, xg, 1, yg, ldy, K, acc, pf); break;
        case 2: block(dtype, w, n, NB, xg, 2, yg, ldy, K, acc, pf); break;
        default: block(dtype, w, n, NB, xg, 3, yg, ldy, K, acc, pf); break;
        }
    }
}

/// One or two input rows go one weight row at a time, or two where that reads faster (muwa_gemv_row_pairs);
/// more in 3 × 3 blocks.
static inline AVX512 __attribute__((always_inline)) void rows(muwa_dtype dtype, const void *w, const float *x, long M,
                                                              float *y, long ldy, long n0, long n1, long K, int acc) {
    long n = n0, pf = muwa_gemv_prefetch();
    if (M <= 2) {
        if (muwa_gemv_row_pairs()) {
            for (; n + 2 <= n1; n += 2) {
                if (M == 1) block(dtype, w, n, 2, x, 1, y, ldy, K, acc, pf);
                else block(dtype, w, n, 2, x, 2, y, ldy, K, acc, pf);
            }
        }
        for (; n < n1; n++) {
            if (M == 1) block(dtype, w, n, 1, x, 1, y, ldy, K, acc, pf);
            else block(dtype, w, n, 1, x, 2, y, ldy, K, acc, pf);
        }
        return;
    }
    for (; n + 3 <= n1; n += 3) rows_from(dtype, w, n, 3, x, M, y, ldy, K, acc, pf);
    for (; n < n1; n++) rows_from(dtype, w, n, 1, x, M, y, ldy, K, acc, pf);
}

static AVX512 void gemv_rows_avx512(muwa_dtype dtype, const void *w, const float *x, long M, float *y, long ldy,
                                    long n0, long n1, long K, int acc) {
    switch (dtype) {  // one specialised copy per dtype
    case MUWA_DTYPE_BF16: rows(MUWA_DTYPE_BF16, w, x, M, y, ldy, n0, n1, K, acc); break;
    case MUWA_DTYPE_F16: rows(MUWA_DTYPE_F16, w, x, M, y, ldy, n0, n1, K, acc); break;
    case MUWA_DTYPE_I8: rows(MUWA_DTYPE_I8, w, x, M, y, ldy, n0, n1, K, acc); break;
    default: rows(MUWA_DTYPE_F32, w, x, M, y, ldy, n0, n1, K, acc); break;
    }
}

static AVX512 void widen_avx512(muwa_dtype dtype, const void *src, float *dst, long n) {
    long i = 0;
    if (dtype != MUWA_DTYPE_F32)
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load16(dtype, src, i));
    for (; i < n; i++) dst[i] = muwa_widen1(dtype, src, i);
}

static int supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

const struct muwa_kernel_table muwa_table_avx512 = {"avx512", supported, gemv_rows_avx512, widen_avx512,
                                                 muwa_gemv_i8_avx512};
#else
static int unsupported(void) { return 0; }
const struct muwa_kernel_table muwa_table_avx512 = {"avx512", unsupported, 0, 0, 0};
#endif
