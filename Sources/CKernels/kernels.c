// Fused widening kernels (see include/ckernels.h). Each has a scalar path; the SIMD paths are compiled
// with per-function target attributes and picked once at run time.
#include "ckernels.h"
#include <immintrin.h>
#include <string.h>

static inline float bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) { u = sign; }
        else {  // subnormal: normalise
            int e = -1;
            do { e++; man <<= 1; } while ((man & 0x400) == 0);
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000 | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// ---- AVX-512 ----------------------------------------------------------------------------------
__attribute__((target("avx512f")))
static void widen_bf16_avx512(const uint16_t *src, float *dst, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i r = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(r, 16)));
    }
    for (; i < n; i++) dst[i] = bf16_to_f32(src[i]);
}

__attribute__((target("avx512f")))
static void widen_f16_avx512(const uint16_t *src, float *dst, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    for (; i < n; i++) dst[i] = f16_to_f32(src[i]);
}

// ---- AVX2 + FMA + F16C ------------------------------------------------------------------------
__attribute__((target("avx2,fma,f16c")))
static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// ---- several rows at once ----------------------------------------------------------------------
// y[m, n] (+)= sum_k widen(W[n, k]) * x[m, k] for every row m < M: each weight row is read once for all
// the input rows (decode of a batch is bound by reading the weights). Every output is computed with the
// same operations in the same order whatever M is (per row: two vector accumulators over K, their sum
// reduced, then the scalar tail), so a row's result does not depend on which other rows share the call.
static inline float widen_f32(float v) { return v; }
static inline __attribute__((target("avx512f"))) __m512 load16_f32(const float *p) { return _mm512_loadu_ps(p); }
static inline __attribute__((target("avx512f"))) __m512 load16_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
static inline __attribute__((target("avx512f"))) __m512 load16_f16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
static inline __attribute__((target("avx2,fma,f16c"))) __m256 load8_f32(const float *p) { return _mm256_loadu_ps(p); }
static inline __attribute__((target("avx2,fma,f16c"))) __m256 load8_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
static inline __attribute__((target("avx2,fma,f16c"))) __m256 load8_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

#define ROWS_SCALAR(NAME, T, WIDEN)                                                                          \
    static void NAME(const T *w, const float *x, long M, float *y, long ldy, long n0, long n1, long K,       \
                     int acc) {                                                                              \
        for (long n = n0; n < n1; n++) {                                                                     \
            const T *row = w + n * K;                                                                        \
            for (long m = 0; m < M; m++) {                                                                   \
                const float *xr = x + m * K;                                                                 \
                float s = 0;                                                                                 \
                for (long k = 0; k < K; k++) s += WIDEN(row[k]) * xr[k];                                     \
                float *yr = y + m * ldy;                                                                     \
                yr[n] = acc ? yr[n] + s : s;                                                                 \
            }                                                                                                \
        }                                                                                                    \
    }

// A block of NB weight rows against a group of G input rows; NB and G are constants at every call, so the
// compiler keeps the 2·NB·G accumulators (at most 18) and the weights in registers. Every (weight row, input row) pair has
// its own two accumulators (even and odd 16-lane halves of each 32-wide step), fed the same products in the
// same order whatever the blocking is; one or two rows go one weight row at a time (the fastest for them),
// more rows in blocks of 3 weight rows × 3 input rows.
#define ROWS_AVX512(NAME, T, LOAD, WIDEN)                                                                    \
    __attribute__((target("avx512f"), always_inline)) static inline void NAME##_block(                      \
        const T *w, long n, long NB, const float *x, long G, float *y, long ldy, long K, int acc) {         \
        __m512 a0[3][3], a1[3][3];                                                                           \
        for (long j = 0; j < NB; j++)                                                                        \
            for (long r = 0; r < G; r++) a0[j][r] = a1[j][r] = _mm512_setzero_ps();                          \
        long k = 0;                                                                                          \
        for (; k + 32 <= K; k += 32) {                                                                       \
            __m512 w0[3], w1[3];                                                                             \
            for (long j = 0; j < NB; j++) {                                                                  \
                w0[j] = LOAD(w + (n + j) * K + k);                                                           \
                w1[j] = LOAD(w + (n + j) * K + k + 16);                                                      \
            }                                                                                                \
            for (long r = 0; r < G; r++) {                                                                   \
                __m512 x0 = _mm512_loadu_ps(x + r * K + k), x1 = _mm512_loadu_ps(x + r * K + k + 16);       \
                for (long j = 0; j < NB; j++) {                                                              \
                    a0[j][r] = _mm512_fmadd_ps(w0[j], x0, a0[j][r]);                                         \
                    a1[j][r] = _mm512_fmadd_ps(w1[j], x1, a1[j][r]);                                         \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
        for (long j = 0; j < NB; j++) {                                                                      \
            const T *row = w + (n + j) * K;                                                                  \
            for (long r = 0; r < G; r++) {                                                                   \
                float s = _mm512_reduce_add_ps(_mm512_add_ps(a0[j][r], a1[j][r]));                           \
                for (long kk = k; kk < K; kk++) s += WIDEN(row[kk]) * x[r * K + kk];                         \
                float *yr = y + r * ldy + n + j;                                                             \
                *yr = acc ? *yr + s : s;                                                                     \
            }                                                                                                \
        }                                                                                                    \
    }                                                                                                        \
    __attribute__((target("avx512f"))) static void NAME(const T *w, const float *x, long M, float *y,       \
                                                        long ldy, long n0, long n1, long K, int acc) {      \
        long n = n0;                                                                                         \
        if (M <= 2) {                                                                                        \
            for (; n < n1; n++) {                                                                            \
                if (M == 1) NAME##_block(w, n, 1, x, 1, y, ldy, K, acc);                                     \
                else NAME##_block(w, n, 1, x, 2, y, ldy, K, acc);                                            \
            }                                                                                                \
            return;                                                                                          \
        }                                                                                                    \
        for (; n + 3 <= n1; n += 3) {                                                                        \
            for (long m0 = 0; m0 < M; m0 += 3) {                                                             \
                const float *xg = x + m0 * K;                                                                \
                float *yg = y + m0 * ldy;                                                                    \
                switch (M - m0 < 3 ? M - m0 : 3) {                                                           \
                case 1: NAME##_block(w, n, 3, xg, 1, yg, ldy, K, acc); break;                                \
                case 2: NAME##_block(w, n, 3, xg, 2, yg, ldy, K, acc); break;                                \
                default: NAME##_block(w, n, 3, xg, 3, yg, ldy, K, acc); break;                               \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
        for (; n < n1; n++) {                                                                                \
            for (long m0 = 0; m0 < M; m0 += 3) {                                                             \
                const float *xg = x + m0 * K;                                                                \
                float *yg = y + m0 * ldy;                                                                    \
                switch (M - m0 < 3 ? M - m0 : 3) {                                                           \
                case 1: NAME##_block(w, n, 1, xg, 1, yg, ldy, K, acc); break;                                \
                case 2: NAME##_block(w, n, 1, xg, 2, yg, ldy, K, acc); break;                                \
                default: NAME##_block(w, n, 1, xg, 3, yg, ldy, K, acc); break;                               \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }

#define GROUP_CASES_4(F)                                                                                    \
    case 1: F(row, xg, 1, yg, ldy, n, K, acc); break;                                                       \
    case 2: F(row, xg, 2, yg, ldy, n, K, acc); break;                                                       \
    case 3: F(row, xg, 3, yg, ldy, n, K, acc); break;                                                       \
    default: F(row, xg, 4, yg, ldy, n, K, acc); break;

#define ROWS_AVX2(NAME, T, LOAD, WIDEN)                                                                      \
    __attribute__((target("avx2,fma,f16c"), always_inline)) static inline void NAME##_group(                \
        const T *row, const float *x, long G, float *y, long ldy, long n, long K, int acc) {                \
        __m256 a0[4], a1[4];                                                                                 \
        for (long r = 0; r < G; r++) a0[r] = a1[r] = _mm256_setzero_ps();                                    \
        long k = 0;                                                                                          \
        for (; k + 16 <= K; k += 16) {                                                                       \
            __m256 w0 = LOAD(row + k), w1 = LOAD(row + k + 8);                                               \
            for (long r = 0; r < G; r++) {                                                                   \
                a0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + r * K + k), a0[r]);                          \
                a1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + r * K + k + 8), a1[r]);                      \
            }                                                                                                \
        }                                                                                                    \
        for (long r = 0; r < G; r++) {                                                                       \
            float s = hsum256(_mm256_add_ps(a0[r], a1[r]));                                                  \
            for (long kk = k; kk < K; kk++) s += WIDEN(row[kk]) * x[r * K + kk];                             \
            float *yr = y + r * ldy;                                                                         \
            yr[n] = acc ? yr[n] + s : s;                                                                     \
        }                                                                                                    \
    }                                                                                                        \
    __attribute__((target("avx2,fma,f16c"))) static void NAME(const T *w, const float *x, long M, float *y, \
                                                              long ldy, long n0, long n1, long K, int acc) { \
        for (long n = n0; n < n1; n++) {                                                                     \
            const T *row = w + n * K;                                                                        \
            for (long m0 = 0; m0 < M; m0 += 4) {                                                             \
                const float *xg = x + m0 * K;                                                                \
                float *yg = y + m0 * ldy;                                                                    \
                switch (M - m0 < 4 ? M - m0 : 4) { GROUP_CASES_4(NAME##_group) }                             \
            }                                                                                                \
        }                                                                                                    \
    }

ROWS_SCALAR(rows_f32_scalar, float, widen_f32)
ROWS_SCALAR(rows_bf16_scalar, uint16_t, bf16_to_f32)
ROWS_SCALAR(rows_f16_scalar, uint16_t, f16_to_f32)
ROWS_AVX512(rows_f32_avx512, float, load16_f32, widen_f32)
ROWS_AVX512(rows_bf16_avx512, uint16_t, load16_bf16, bf16_to_f32)
ROWS_AVX512(rows_f16_avx512, uint16_t, load16_f16, f16_to_f32)
ROWS_AVX2(rows_f32_avx2, float, load8_f32, widen_f32)
ROWS_AVX2(rows_bf16_avx2, uint16_t, load8_bf16, bf16_to_f32)
ROWS_AVX2(rows_f16_avx2, uint16_t, load8_f16, f16_to_f32)

// ---- dispatch ---------------------------------------------------------------------------------
enum { ISA_UNKNOWN, ISA_SCALAR, ISA_AVX2, ISA_AVX512 };
static int isa = ISA_UNKNOWN;

static int current_isa(void) {
    if (isa == ISA_UNKNOWN) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) isa = ISA_AVX512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isa = ISA_AVX2;
        else isa = ISA_SCALAR;
    }
    return isa;
}

const char *muwa_kernel_isa(void) {
    switch (current_isa()) {
    case ISA_AVX512: return "avx512";
    case ISA_AVX2: return "avx2";
    default: return "scalar";
    }
}

void muwa_widen_bf16(const uint16_t *src, float *dst, long n) {
    if (current_isa() == ISA_AVX512) { widen_bf16_avx512(src, dst, n); return; }
    for (long i = 0; i < n; i++) dst[i] = bf16_to_f32(src[i]);
}

void muwa_widen_f16(const uint16_t *src, float *dst, long n) {
    if (current_isa() == ISA_AVX512) { widen_f16_avx512(src, dst, n); return; }
    for (long i = 0; i < n; i++) dst[i] = f16_to_f32(src[i]);
}

#define ROWS_DISPATCH(NAME, T, PREFIX)                                                                       \
    void NAME(const T *w, const float *x, long M, float *y, long ldy, long n0, long n1, long K, int acc) {   \
        switch (current_isa()) {                                                                             \
        case ISA_AVX512: PREFIX##_avx512(w, x, M, y, ldy, n0, n1, K, acc); break;                            \
        case ISA_AVX2: PREFIX##_avx2(w, x, M, y, ldy, n0, n1, K, acc); break;                                \
        default: PREFIX##_scalar(w, x, M, y, ldy, n0, n1, K, acc);                                           \
        }                                                                                                    \
    }

ROWS_DISPATCH(muwa_gemv_rows_f32, float, rows_f32)
ROWS_DISPATCH(muwa_gemv_rows_bf16, uint16_t, rows_bf16)
ROWS_DISPATCH(muwa_gemv_rows_f16, uint16_t, rows_f16)
