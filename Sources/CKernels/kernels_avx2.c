// The AVX2 table (x86-64 with AVX2, FMA and F16C; chosen at run time when the CPU lacks AVX-512, or with
// MUWA_KERNEL_ISA=avx2). One weight row at a time against groups of up to 4 input rows; each (weight row,
// input row) pair has two 8-lane accumulators (halves of each 16-wide step), reduced and finished with the
// scalar tail, the same operations whatever the group: rows stay independent of each other.
#include "kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma,f16c")))

/// 8 weights of `dtype` from w[i…], widened to f32.
static inline AVX2 __attribute__((always_inline)) __m256 load8(muwa_dtype dtype, const void *w, long i) {
    switch (dtype) {
    case MUWA_DTYPE_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i))), 16));
    case MUWA_DTYPE_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
    case MUWA_DTYPE_I8:
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)((const int8_t *)w + i))));
    default:
        return _mm256_loadu_ps((const float *)w + i);
    }
}

static inline AVX2 float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// One weight row against G ≤ 4 input rows (G constant at every call).
static inline AVX2 __attribute__((always_inline)) void group(muwa_dtype dtype, const void *row, const float *x, long G,
                                                             float *y, long ldy, long n, long K, int acc) {
    __m256 a0[4], a1[4];
    for (long r = 0; r < G; r++) a0[r] = a1[r] = _mm256_setzero_ps();
    long k = 0;
    for (; k + 16 <= K; k += 16) {
        __m256 w0 = load8(dtype, row, k), w1 = load8(dtype, row, k + 8);
        for (long r = 0; r < G; r++) {
            a0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + r * K + k), a0[r]);
            a1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + r * K + k + 8), a1[r]);
        }
    }
    for (long r = 0; r < G; r++) {
        float s = hsum256(_mm256_add_ps(a0[r], a1[r]));
        for (long kk = k; kk < K; kk++) s += muwa_widen1(dtype, row, kk) * x[r * K + kk];
        float *yr = y + r * ldy;
        yr[n] = acc ? yr[n] + s : s;
    }
}

static inline AVX2 __attribute__((always_inline)) void rows(muwa_dtype dtype, const void *w, const float *x, long M,
                                                            float *y, long ldy, long n0, long n1, long K, int acc) {
    long rowBytes = K * muwa_dtype_size(dtype);
    for (long n = n0; n < n1; n++) {
        const void *row = (const char *)w + n * rowBytes;
        for (long m0 = 0; m0 < M; m0 += 4) {
            const float *xg = x + m0 * K;
            float *yg = y + m0 * ldy;
            switch (M - m0 < 4 ? M - m0 : 4) {
            case 1: group(dtype, row, xg, 1, yg, ldy, n, K, acc); break;
            case 2: group(dtype, row, xg, 2, yg, ldy, n, K, acc); break;
            case 3: group(dtype, row, xg, 3, yg, ldy, n, K, acc); break;
            default: group(dtype, row, xg, 4, yg, ldy, n, K, acc); break;
            }
        }
    }
}

static AVX2 void gemv_rows_avx2(muwa_dtype dtype, const void *w, const float *x, long M, float *y, long ldy, long n0,
                                long n1, long K, int acc) {
    switch (dtype) {  // one specialised copy per dtype
    case MUWA_DTYPE_BF16: rows(MUWA_DTYPE_BF16, w, x, M, y, ldy, n0, n1, K, acc); break;
    case MUWA_DTYPE_F16: rows(MUWA_DTYPE_F16, w, x, M, y, ldy, n0, n1, K, acc); break;
    case MUWA_DTYPE_I8: rows(MUWA_DTYPE_I8, w, x, M, y, ldy, n0, n1, K, acc); break;
    default: rows(MUWA_DTYPE_F32, w, x, M, y, ldy, n0, n1, K, acc); break;
    }
}

static AVX2 void widen_avx2(muwa_dtype dtype, const void *src, float *dst, long n) {
    long i = 0;
    if (dtype != MUWA_DTYPE_F32)
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(dtype, src, i));
    for (; i < n; i++) dst[i] = muwa_widen1(dtype, src, i);
}

static int supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

const struct muwa_kernel_table muwa_table_avx2 = {"avx2", supported, gemv_rows_avx2, widen_avx2,
                                                 muwa_gemv_i8_avx2};
#else
static int unsupported(void) { return 0; }
const struct muwa_kernel_table muwa_table_avx2 = {"avx2", unsupported, 0, 0, 0};
#endif
