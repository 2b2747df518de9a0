// Prefill attention of one (sequence, head) without OpenBLAS (Attention.swift's attendBlocks does the same with
// sgemm): queries in blocks of mb rows, block [t0, t1) scoring keys 0 ..< width (its causal limit, or all L when
// one of its rows sees no real key), softmax per row, then the block's outputs.
//   q: (T, hs; row stride ldq)   keys, values: (L, hs) row-major   out: (T, hs; row stride ldo)
//   scores (block rows, width) = Q · Kᵀ   →  softmax  →   out (block rows, hs) = P · V
// Both products are one small kernel, C = A · B with B row-major and read in place (no packing): for the scores
// B is Kᵀ, transposed once per call into a per-thread buffer (hs × L floats), shared by every block; for the
// outputs B is V itself. The micro-kernel keeps 4 rows × 64 columns in 16 registers; per reduction step it
// loads 4 vectors of B and broadcasts 4 values of A. sgemm packs its operands for every call instead (its copy
// routines were a third of attention's samples in an int8 prefill profile of opt-1.3b, blocks of 8 query rows).
// muwa_sgemm_nn_reference is the plain-loop reference the tests hold the kernel to (float tolerance: the kernel
// uses FMA).
#include "kernels_internal.h"

void muwa_sgemm_nn_reference(long M, long N, long K, const float *A, long lda, const float *B, long ldb, float *C,
                             long ldc) {
    for (long r = 0; r < M; r++)
        for (long c = 0; c < N; c++) {
            float s = 0;
            for (long k = 0; k < K; k++) s += A[r * lda + k] * B[k * ldb + c];
            C[r * ldc + c] = s;
        }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))

static inline AVX512 __attribute__((always_inline)) __mmask16 cols_mask(long n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/// ROWS rows × up to 64 columns (masks k0…k3) of C = A · B over all K.
static inline AVX512 __attribute__((always_inline)) void tile(const long ROWS, long K, const float *A, long lda,
                                                              const float *B, long ldb, float *C, long ldc,
                                                              const __mmask16 mk[4]) {
    __m512 acc[4][4];
    for (long r = 0; r < ROWS; r++)
        for (long j = 0; j < 4; j++) acc[r][j] = _mm512_setzero_ps();
    for (long k = 0; k < K; k++) {
        const float *b = B + k * ldb;
        __m512 b0 = _mm512_maskz_loadu_ps(mk[0], b), b1 = _mm512_maskz_loadu_ps(mk[1], b + 16);
        __m512 b2 = _mm512_maskz_loadu_ps(mk[2], b + 32), b3 = _mm512_maskz_loadu_ps(mk[3], b + 48);
        for (long r = 0; r < ROWS; r++) {
            __m512 a = _mm512_set1_ps(A[r * lda + k]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(a, b2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(a, b3, acc[r][3]);
        }
    }
    for (long r = 0; r < ROWS; r++)
        for (long j = 0; j < 4; j++) _mm512_mask_storeu_ps(C + r * ldc + 16 * j, mk[j], acc[r][j]);
}

static AVX512 void sgemm_nn_avx512(long M, long N, long K, const float *A, long lda, const float *B, long ldb, float *C,
                                   long ldc) {
    for (long c0 = 0; c0 < N; c0 += 64) {  // a 64-column block of B (K × 64) stays in L1 for every row tile
        __mmask16 mk[4] = {cols_mask(N - c0), cols_mask(N - c0 - 16), cols_mask(N - c0 - 32), cols_mask(N - c0 - 48)};
        for (long r0 = 0; r0 < M; r0 += 4) {
            const float *a = A + r0 * lda;
            float *c = C + r0 * ldc + c0;
            switch (M - r0 < 4 ? M - r0 : 4) {  // one copy per row count, so the accumulators stay in registers
            case 1: tile(1, K, a, lda, B + c0, ldb, c, ldc, mk); break;
            case 2: tile(2, K, a, lda, B + c0, ldb, c, ldc, mk); break;
            case 3: tile(3, K, a, lda, B + c0, ldb, c, ldc, mk); break;
            default: tile(4, K, a, lda, B + c0, ldb, c, ldc, mk); break;
            }
        }
    }
}

/// kt[d · L + j] = keys[j · hs + d]: 16 × 16 blocks by muwa_transpose16_words, the edges by plain loops.
static AVX512 void transpose_keys(const float *keys, long L, long hs, float *kt) {
    long j16 = L / 16 * 16, d16 = hs / 16 * 16;
    for (long j = 0; j < j16; j += 16)
        for (long d = 0; d < d16; d += 16)
            muwa_transpose16_words(keys + j * hs + d, hs * 4, kt + d * L + j, L * 4);
    for (long j = 0; j < L; j++)
        for (long d = j < j16 ? d16 : 0; d < hs; d++) kt[d * L + j] = keys[j * hs + d];
}

static int avx512_selected(void) { return strcmp(muwa_kernel_isa(), "avx512") == 0; }
#else
static int avx512_selected(void) { return 0; }
#endif

int muwa_attention_fast(void) { return avx512_selected(); }

void muwa_sgemm_nn(long M, long N, long K, const float *A, long lda, const float *B, long ldb, float *C, long ldc) {
#if defined(__x86_64__)
    if (avx512_selected()) {
        sgemm_nn_avx512(M, N, K, A, lda, B, ldb, C, ldc);
        return;
    }
#endif
    muwa_sgemm_nn_reference(M, N, K, A, lda, B, ldb, C, ldc);
}

int muwa_attend_blocks(float *out, long ldo, const float *q, long ldq, const float *keys, const float *values,
                       float *scores, long T, long past, long L, long hs, long mb, long first_real,
                       const uint8_t *mask) {
    if (T <= 0 || L <= 0 || hs <= 0 || mb <= 0) return 0;
    float *kt = muwa_thread_buffer((size_t)(hs * L) * sizeof(float));  // Kᵀ: (hs, L)
    if (!kt) return -1;
#if defined(__x86_64__)
    if (avx512_selected())
        transpose_keys(keys, L, hs, kt);
    else
#endif
        for (long j = 0; j < L; j++)
            for (long d = 0; d < hs; d++) kt[d * L + j] = keys[j * hs + d];
    for (long t0 = 0; t0 < T; t0 += mb) {
        long t1 = t0 + mb < T ? t0 + mb : T, rows = t1 - t0;
        long width = first_real > past + t0 ? L : past + t1;
        muwa_sgemm_nn(rows, width, hs, q + t0 * ldq, ldq, kt, L, scores, width);
        for (long t = t0; t < t1; t++) muwa_softmax(scores + (t - t0) * width, width, past + t + 1, mask);
        muwa_sgemm_nn(rows, hs, width, scores, width, values, hs, out + t0 * ldo, ldo);
    }
    return 0;
}
