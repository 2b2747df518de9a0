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

#define BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

/// C = A · B (M × N, reduction K) with B row-major read in place: NAME(M, N, K, A, lda, B, ldb, C, ldc) over
/// ELEM operands (f32 values, or bf16 pairs as 32-bit words), f32 sums. Per 64-column block of B (K × 64, in L1
/// for every row tile), tiles of up to 4 rows × 64 columns in 16 VEC registers; per reduction step 4 (masked)
/// LOADs of B, one BCAST of A per row and 16 STEPs (acc, a, b) → acc. One copy of the tile per row count, so
/// the accumulators stay in registers.
#define SMALL_GEMM(NAME, TARGET, ELEM, VEC, LOAD, BCAST, STEP, AT)                                                \
    static inline TARGET __attribute__((always_inline)) void NAME##_tile(                                         \
        const long ROWS, long K, const ELEM *A, long lda, const ELEM *B, long ldb, float *C, long ldc,              \
        const __mmask16 mk[4], int add) {                                                                          \
        __m512 acc[4][4];                                                                                          \
        for (long r = 0; r < ROWS; r++)                                                                            \
            for (long j = 0; j < 4; j++) acc[r][j] = _mm512_setzero_ps();                                          \
        for (long k = 0; k < K; k++) {                                                                             \
            const ELEM *b = B + k * ldb;                                                                           \
            VEC b0 = LOAD(mk[0], b), b1 = LOAD(mk[1], b + 16), b2 = LOAD(mk[2], b + 32), b3 = LOAD(mk[3], b + 48); \
            for (long r = 0; r < ROWS; r++) {                                                                      \
                VEC a = BCAST(AT(A, lda, r, k));                                                                   \
                acc[r][0] = STEP(acc[r][0], a, b0);                                                                \
                acc[r][1] = STEP(acc[r][1], a, b1);                                                                \
                acc[r][2] = STEP(acc[r][2], a, b2);                                                                \
                acc[r][3] = STEP(acc[r][3], a, b3);                                                                \
            }                                                                                                      \
        }                                                                                                          \
        for (long r = 0; r < ROWS; r++)                                                                            \
            for (long j = 0; j < 4; j++) {                                                                         \
                float *c = C + r * ldc + 16 * j;                                                                   \
                if (add) acc[r][j] = _mm512_add_ps(acc[r][j], _mm512_maskz_loadu_ps(mk[j], c));                    \
                _mm512_mask_storeu_ps(c, mk[j], acc[r][j]);                                                        \
            }                                                                                                      \
    }                                                                                                              \
    static TARGET void NAME(long M, long N, long K, const ELEM *A, long lda, const ELEM *B, long ldb, float *C,    \
                            long ldc, int add) {                                                                   \
        for (long c0 = 0; c0 < N; c0 += 64) {                                                                      \
            __mmask16 mk[4] = {cols_mask(N - c0), cols_mask(N - c0 - 16), cols_mask(N - c0 - 32),                 \
                               cols_mask(N - c0 - 48)};                                                            \
            for (long r0 = 0; r0 < M; r0 += 4) {                                                                   \
                const ELEM *a = &AT(A, lda, r0, 0);                                                                \
                float *c = C + r0 * ldc + c0;                                                                      \
                switch (M - r0 < 4 ? M - r0 : 4) {                                                                 \
                case 1: NAME##_tile(1, K, a, lda, B + c0, ldb, c, ldc, mk, add); break;                            \
                case 2: NAME##_tile(2, K, a, lda, B + c0, ldb, c, ldc, mk, add); break;                            \
                case 3: NAME##_tile(3, K, a, lda, B + c0, ldb, c, ldc, mk, add); break;                            \
                default: NAME##_tile(4, K, a, lda, B + c0, ldb, c, ldc, mk, add); break;                           \
                }                                                                                                  \
            }                                                                                                      \
        }                                                                                                          \
    }

#define F32_LOAD(m, p) _mm512_maskz_loadu_ps(m, p)
#define F32_STEP(acc, a, b) _mm512_fmadd_ps(a, b, acc)
#define A_ROWS(A, lda, r, k) (A)[(r) * (lda) + (k)]  // A row-major
#define A_COLS(A, lda, r, k) (A)[(k) * (lda) + (r)]  // A stored transposed: element (r, k) at k · lda + r
SMALL_GEMM(sgemm_nn_avx512, AVX512, float, __m512, F32_LOAD, _mm512_set1_ps, F32_STEP, A_ROWS)
SMALL_GEMM(sgemm_tn_avx512, AVX512, float, __m512, F32_LOAD, _mm512_set1_ps, F32_STEP, A_COLS)

#define BF16_LOAD(m, p) (__m512bh) _mm512_maskz_loadu_epi32(m, p)
#define BF16_BCAST(x) (__m512bh) _mm512_set1_epi32((int)(x))
SMALL_GEMM(gemm_bf16_words, BF16, uint32_t, __m512bh, BF16_LOAD, BF16_BCAST, _mm512_dpbf16_ps, A_ROWS)
SMALL_GEMM(gemm_bf16_words_tn, BF16, uint32_t, __m512bh, BF16_LOAD, BF16_BCAST, _mm512_dpbf16_ps, A_COLS)

AVX512 void muwa_transpose_f32_avx512(const float *src, long lds, long rows, long cols, float *dst, long ldd) {
    long r16 = rows / 16 * 16, c16 = cols / 16 * 16;
    for (long r = 0; r < r16; r += 16)
        for (long c = 0; c < c16; c += 16)
            muwa_transpose16_words(src + r * lds + c, lds * 4, dst + c * ldd + r, ldd * 4);
    for (long r = 0; r < rows; r++)
        for (long c = r < r16 ? c16 : 0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
}

/// kt[d · L + j] = keys[j · hs + d].
static AVX512 void transpose_keys(const float *keys, long L, long hs, float *kt) {
    muwa_transpose_f32_avx512(keys, hs, L, hs, kt, L);
}

static int avx512_selected(void) { return muwa_avx512_selected(); }

// MARK: - bf16 (compute bf16): the same blocks with bf16 operands and f32 sums (vdpbf16ps), softmax in f32.
// A bf16 operand is kept as 32-bit words, each a pair of bf16 values adjacent along the reduction:
//   Q rows, P rows: plain bf16 rows (word p = elements 2p, 2p + 1)
//   Kᵀ: kp[p · L + j] = (K[j, 2p], K[j, 2p + 1])      V: vp[p · hs + d] = (V[2p, d], V[2p + 1, d])
// so that one vdpbf16ps of a broadcast A word with 16 B words adds two products to each of 16 outputs.
/// bf16 words of n floats (n even, or the last word's high half 0): dst[p] = (src[2p], src[2p + 1]).
static inline BF16 void to_bf16_words(const float *src, long n, uint32_t *dst) {
    long i = 0;
    for (; i + 32 <= n; i += 32)
        _mm512_storeu_si512(dst + i / 2, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i)));
    for (; i < n; i += 2) {
        __m512 v = _mm512_maskz_loadu_ps(n - i >= 2 ? 0x3 : 0x1, src + i);
        __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
        dst[i / 2] = (uint32_t)_mm256_extract_epi32(h, 0);
    }
}

BF16 void muwa_bf16_row_pairs_avx512(const float *x, long ld, long rows, long cols, uint32_t *dst, long ldd) {
    for (long i = 0; 2 * i < rows; i++) {
        const float *x0 = x + 2 * i * ld, *x1 = 2 * i + 1 < rows ? x0 + ld : 0;
        for (long c = 0; c < cols; c += 16) {
            __mmask16 m = cols_mask(cols - c);
            __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x0 + c)));
            __m512i hi = x1 ? _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x1 + c)))
                            : _mm512_setzero_si512();
            _mm512_mask_storeu_epi32(dst + i * ldd + c, m, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
}

BF16 void muwa_bf16_transposed_words_avx512(const float *x, long ld, long n, long hs, uint32_t *tmp, uint32_t *dst) {
    long hp = (hs + 1) / 2, j = 0;
    if (hp % 16 == 0)  // 16 rows at a time to words, then a 16 × 16 transpose of words
        for (; j + 16 <= n; j += 16) {
            for (long i = 0; i < 16; i++) to_bf16_words(x + (j + i) * ld, hs, tmp + i * hp);
            for (long p = 0; p < hp; p += 16) muwa_transpose16_words(tmp + p, hp * 4, dst + p * n + j, n * 4);
        }
    for (; j < n; j++) {  // the rest one row at a time: word p to dst[p · n + j]
        to_bf16_words(x + j * ld, hs, tmp);
        for (long p = 0; p < hp; p++) dst[p * n + j] = tmp[p];
    }
}

static BF16 int attend_blocks_bf16(float *out, long ldo, const float *q, long ldq, const float *keys,
                                   const float *values, float *scores, long T, long past, long L, long hs, long mb,
                                   long first_real, const uint8_t *mask) {
    long hp = (hs + 1) / 2, lp = (L + 1) / 2;  // pairs along a head, along the keys
    // kp (hp × L) | vp (lp × hs) | one bf16 row of K or Q or P (max(hs, L) + 2 floats' worth)
    size_t words = (size_t)(hp * L + lp * hs + mb * (hp > lp ? hp : lp) + 64);
    uint32_t *kp = muwa_thread_buffer(words * 4);
    if (!kp) return -1;
    uint32_t *vp = kp + hp * L, *rowsBuf = vp + lp * hs;
    // Kᵀ through vp's room (not yet filled; 16 · hp words fit it or run into rowsBuf, not yet used), then V
    muwa_bf16_transposed_words_avx512(keys, hs, L, hs, vp, kp);
    muwa_bf16_row_pairs_avx512(values, hs, L, hs, vp, hs);
    uint32_t *qb = rowsBuf, *pb = rowsBuf;  // the block's Q rows, then its P rows (the same room)
    for (long t0 = 0; t0 < T; t0 += mb) {
        long t1 = t0 + mb < T ? t0 + mb : T, rows = t1 - t0;
        long width = first_real > past + t0 ? L : past + t1, wp = (width + 1) / 2;
        for (long r = 0; r < rows; r++) to_bf16_words(q + (t0 + r) * ldq, hs, qb + r * hp);
        gemm_bf16_words(rows, width, hp, qb, hp, kp, L, scores, width, 0);
        for (long t = t0; t < t1; t++) muwa_softmax(scores + (t - t0) * width, width, past + t + 1, mask);
        for (long r = 0; r < rows; r++) to_bf16_words(scores + r * width, width, pb + r * wp);
        gemm_bf16_words(rows, hs, wp, pb, wp, vp, hs, out + t0 * ldo, ldo, 0);
    }
    return 0;
}

// MARK: - AMX (where muwa_amx_enabled): the same bf16 attention on the tile unit (TDPBF16PS, f32 sums), which on
// the Intel cores of this kind runs 16 × 32 · 32 × 16 products where vdpbf16ps issues at half the rate of f32
// FMAs (bf16 attention was 11 % of an int8 prefill there). The operands are the words above, padded so every
// tile is whole: keys to Lp (a multiple of 32) with zero columns of Kᵀ and zero pairs of V, query blocks to 16
// rows, each block's P to its width rounded up to 32 keys with zero words (P is 0 past the causal limit anyway).
// Scores and outputs go through per-thread tiles of 16 rows, then softmax and the copy out use only real rows.

#define AMX_BF16 __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16")))

/// c[16 × 32] (f32, row stride ldc floats) = a[16 × np pairs] · b[np pairs × 32] in bf16 words: a's rows lda
/// words apart, b's rows (pairs) ldb words apart; np a multiple of 16. Tiles 0–1 the sums, 4 a, 6–7 b.
static inline AMX_BF16 void amx_product_16x32(const uint32_t *a, long lda, const uint32_t *b, long ldb, long np,
                                              float *c, long ldc) {
    _tile_zero(0);
    _tile_zero(1);
    for (long p = 0; p < np; p += 16) {
        _tile_loadd(4, a + p, lda * 4);
        _tile_loadd(6, b + p * ldb, ldb * 4);
        _tile_loadd(7, b + p * ldb + 16, ldb * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
    }
    _tile_stored(0, c, ldc * 4);
    _tile_stored(1, c + 16, ldc * 4);
}

static AMX_BF16 int attend_blocks_amx(float *out, long ldo, const float *q, long ldq, const float *keys,
                                      const float *values, long T, long past, long L, long hs, long first_real,
                                      const uint8_t *mask) {
    long hp = hs / 2, Lp = (L + 31) / 32 * 32, lq = Lp / 2;  // hs a multiple of 32 (checked by the caller)
    // kp (hp × Lp) | vp (lq × hs) | qb (16 × hp) | scores (16 × Lp f32) | pb (16 × lq) | ob (16 × hs f32)
    size_t words = (size_t)(hp * Lp + lq * hs + 16 * hp + 16 * Lp + 16 * lq + 16 * hs);
    uint32_t *kp = muwa_thread_buffer(words * 4);
    if (!kp) return -1;
    uint32_t *vp = kp + hp * Lp, *qb = vp + lq * hs, *pb = qb + 16 * hp + 16 * Lp;
    float *sc = (float *)(qb + 16 * hp), *ob = (float *)(pb + 16 * lq);
    long j = 0;
    for (; j + 16 <= L; j += 16) {  // Kᵀ: 16 key rows to words (in qb), a 16 × 16 transpose of words per 16 pairs
        for (long i = 0; i < 16; i++) to_bf16_words(keys + (j + i) * hs, hs, qb + i * hp);
        for (long p = 0; p < hp; p += 16) muwa_transpose16_words(qb + p, hp * 4, kp + p * Lp + j, Lp * 4);
    }
    for (; j < Lp; j++) {  // the last keys one at a time, then zero columns up to Lp
        if (j < L) to_bf16_words(keys + j * hs, hs, qb);
        else memset(qb, 0, (size_t)hp * 4);
        for (long p = 0; p < hp; p++) kp[p * Lp + j] = qb[p];
    }
    for (long p = 0; p < lq; p++) {  // V: rows 2p and 2p + 1 interleaved (missing rows are 0)
        const float *v0 = 2 * p < L ? values + 2 * p * hs : 0, *v1 = 2 * p + 1 < L ? values + (2 * p + 1) * hs : 0;
        for (long d = 0; d < hs; d += 16) {
            __m512i lo = v0 ? _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(v0 + d))) : _mm512_setzero_si512();
            __m512i hi = v1 ? _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(v1 + d))) : _mm512_setzero_si512();
            _mm512_storeu_si512(vp + p * hs + d, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
    muwa_amx_begin();
    for (long t0 = 0; t0 < T; t0 += 16) {
        long rows = T - t0 < 16 ? T - t0 : 16, t1 = t0 + rows;
        long width = first_real > past + t0 ? L : past + t1, wpad = (width + 31) / 32 * 32;
        for (long r = 0; r < 16; r++) {
            if (r < rows) to_bf16_words(q + (t0 + r) * ldq, hs, qb + r * hp);
            else memset(qb + r * hp, 0, (size_t)hp * 4);
        }
        for (long c0 = 0; c0 < wpad; c0 += 32) amx_product_16x32(qb, hp, kp + c0, Lp, hp, sc + c0, Lp);
        for (long r = 0; r < 16; r++) {
            uint32_t *pr = pb + r * lq;
            long used = 0;
            if (r < rows) {
                muwa_softmax(sc + r * Lp, width, past + t0 + r + 1, mask);
                to_bf16_words(sc + r * Lp, width, pr);
                used = (width + 1) / 2;
            }
            memset(pr + used, 0, (size_t)(wpad / 2 - used) * 4);
        }
        for (long d0 = 0; d0 < hs; d0 += 32) amx_product_16x32(pb, lq, vp + d0, hs, wpad / 2, ob + d0, hs);
        for (long r = 0; r < rows; r++) memcpy(out + (t0 + r) * ldo, ob + r * hs, (size_t)hs * 4);
    }
    muwa_amx_end();
    return 0;
}

static int bf16_selected(void) { return avx512_selected() && muwa_cpu_has_bf16(); }
#else
static int avx512_selected(void) { return 0; }
static int bf16_selected(void) { return 0; }
#endif

int muwa_attention_fast(void) { return avx512_selected(); }

int muwa_attention_bf16_fast(void) { return bf16_selected(); }

int muwa_attend_blocks_bf16(float *out, long ldo, const float *q, long ldq, const float *keys, const float *values,
                            float *scores, long T, long past, long L, long hs, long mb, long first_real,
                            const uint8_t *mask) {
    if (T <= 0 || L <= 0 || hs <= 0 || mb <= 0) return 0;
#if defined(__x86_64__)
    if (bf16_selected() && muwa_amx_enabled() && hs % 32 == 0)
        return attend_blocks_amx(out, ldo, q, ldq, keys, values, T, past, L, hs, first_real, mask);
    if (bf16_selected())
        return attend_blocks_bf16(out, ldo, q, ldq, keys, values, scores, T, past, L, hs, mb, first_real, mask);
#endif
    return -1;
}

#if defined(__x86_64__)
BF16 void muwa_gemm_bf16_words_avx512(int a_cols, int add, long M, long N, long K, const uint32_t *A, long lda,
                                      const uint32_t *B, long ldb, float *C, long ldc) {
    if (a_cols) gemm_bf16_words_tn(M, N, K, A, lda, B, ldb, C, ldc, add);
    else gemm_bf16_words(M, N, K, A, lda, B, ldb, C, ldc, add);
}

BF16 void muwa_to_bf16_words_avx512(const float *src, long n, uint32_t *dst) { to_bf16_words(src, n, dst); }

void muwa_sgemm_small_avx512(int a_cols, int add, long M, long N, long K, const float *A, long lda, const float *B,
                             long ldb, float *C, long ldc) {
    if (a_cols) sgemm_tn_avx512(M, N, K, A, lda, B, ldb, C, ldc, add);
    else sgemm_nn_avx512(M, N, K, A, lda, B, ldb, C, ldc, add);
}
#endif

void muwa_sgemm_nn(long M, long N, long K, const float *A, long lda, const float *B, long ldb, float *C, long ldc) {
#if defined(__x86_64__)
    if (avx512_selected()) {
        sgemm_nn_avx512(M, N, K, A, lda, B, ldb, C, ldc, 0);
        return;
    }
#endif
    muwa_sgemm_nn_reference(M, N, K, A, lda, B, ldb, C, ldc);
}

int muwa_attend_blocks(float *out, long ldo, const float *q, long ldq, const float *keys, const float *values,
                       float *scores, long T, long past, long L, long hs, long mb, long first_real,
                       const uint8_t *mask) {
    if (T <= 0 || L <= 0 || hs <= 0 || mb <= 0) return 0;
    if (!avx512_selected()) return -1;  // the caller's sgemm path is faster than the reference loops
    float *kt = muwa_thread_buffer((size_t)(hs * L) * sizeof(float));  // Kᵀ: (hs, L)
    if (!kt) return -1;
#if defined(__x86_64__)
    transpose_keys(keys, L, hs, kt);
#endif
    for (long t0 = 0; t0 < T; t0 += mb) {
        long t1 = t0 + mb < T ? t0 + mb : T, rows = t1 - t0;
        long width = first_real > past + t0 ? L : past + t1;
        muwa_sgemm_nn(rows, width, hs, q + t0 * ldq, ldq, kt, L, scores, width);
        for (long t = t0; t < t1; t++) muwa_softmax(scores + (t - t0) * width, width, past + t + 1, mask);
        muwa_sgemm_nn(rows, hs, width, scores, width, values, hs, out + t0 * ldo, ldo);
    }
    return 0;
}
