// Fused widening kernels (see include/ckernels.h). Each has a scalar reference path; the SIMD paths
// are compiled with per-function target attributes and picked once at run time.
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

// ---- scalar reference -------------------------------------------------------------------------
static void gemv_bf16_scalar(const uint16_t *w, const float *x, float *y, long n0, long n1, long K, int acc) {
    for (long n = n0; n < n1; n++) {
        const uint16_t *row = w + n * K;
        float s = 0;
        for (long k = 0; k < K; k++) s += bf16_to_f32(row[k]) * x[k];
        y[n] = acc ? y[n] + s : s;
    }
}

static void gemv_f16_scalar(const uint16_t *w, const float *x, float *y, long n0, long n1, long K, int acc) {
    for (long n = n0; n < n1; n++) {
        const uint16_t *row = w + n * K;
        float s = 0;
        for (long k = 0; k < K; k++) s += f16_to_f32(row[k]) * x[k];
        y[n] = acc ? y[n] + s : s;
    }
}

// ---- AVX-512 ----------------------------------------------------------------------------------
__attribute__((target("avx512f")))
static void gemv_bf16_avx512(const uint16_t *w, const float *x, float *y, long n0, long n1, long K, int acc) {
    for (long n = n0; n < n1; n++) {
        const uint16_t *row = w + n * K;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        long k = 0;
        for (; k + 32 <= K; k += 32) {
            __m512i r0 = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(row + k)));
            __m512i r1 = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(row + k + 16)));
            a0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(r0, 16)), _mm512_loadu_ps(x + k), a0);
            a1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(r1, 16)), _mm512_loadu_ps(x + k + 16), a1);
        }
        float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
        for (; k < K; k++) s += bf16_to_f32(row[k]) * x[k];
        y[n] = acc ? y[n] + s : s;
    }
}

__attribute__((target("avx512f")))
static void gemv_f16_avx512(const uint16_t *w, const float *x, float *y, long n0, long n1, long K, int acc) {
    for (long n = n0; n < n1; n++) {
        const uint16_t *row = w + n * K;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        long k = 0;
        for (; k + 32 <= K; k += 32) {
            __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + k)));
            __m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + k + 16)));
            a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + k), a0);
            a1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + k + 16), a1);
        }
        float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
        for (; k < K; k++) s += f16_to_f32(row[k]) * x[k];
        y[n] = acc ? y[n] + s : s;
    }
}

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

__attribute__((target("avx2,fma,f16c")))
static void gemv_bf16_avx2(const uint16_t *w, const float *x, float *y, long n0, long n1, long K, int acc) {
    for (long n = n0; n < n1; n++) {
        const uint16_t *row = w + n * K;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        long k = 0;
        for (; k + 16 <= K; k += 16) {
            __m256i r0 = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(row + k)));
            __m256i r1 = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(row + k + 8)));
            a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(r0, 16)), _mm256_loadu_ps(x + k), a0);
            a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(r1, 16)), _mm256_loadu_ps(x + k + 8), a1);
        }
        float s = hsum256(_mm256_add_ps(a0, a1));
        for (; k < K; k++) s += bf16_to_f32(row[k]) * x[k];
        y[n] = acc ? y[n] + s : s;
    }
}

__attribute__((target("avx2,fma,f16c")))
static void gemv_f16_avx2(const uint16_t *w, const float *x, float *y, long n0, long n1, long K, int acc) {
    for (long n = n0; n < n1; n++) {
        const uint16_t *row = w + n * K;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        long k = 0;
        for (; k + 16 <= K; k += 16) {
            a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + k))), _mm256_loadu_ps(x + k), a0);
            a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + k + 8))), _mm256_loadu_ps(x + k + 8), a1);
        }
        float s = hsum256(_mm256_add_ps(a0, a1));
        for (; k < K; k++) s += f16_to_f32(row[k]) * x[k];
        y[n] = acc ? y[n] + s : s;
    }
}

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

void muwa_gemv_bf16(const uint16_t *w, const float *x, float *y, long n0, long n1, long K, int accumulate) {
    switch (current_isa()) {
    case ISA_AVX512: gemv_bf16_avx512(w, x, y, n0, n1, K, accumulate); break;
    case ISA_AVX2: gemv_bf16_avx2(w, x, y, n0, n1, K, accumulate); break;
    default: gemv_bf16_scalar(w, x, y, n0, n1, K, accumulate);
    }
}

void muwa_gemv_f16(const uint16_t *w, const float *x, float *y, long n0, long n1, long K, int accumulate) {
    switch (current_isa()) {
    case ISA_AVX512: gemv_f16_avx512(w, x, y, n0, n1, K, accumulate); break;
    case ISA_AVX2: gemv_f16_avx2(w, x, y, n0, n1, K, accumulate); break;
    default: gemv_f16_scalar(w, x, y, n0, n1, K, accumulate);
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
