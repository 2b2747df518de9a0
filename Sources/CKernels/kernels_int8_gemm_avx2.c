// The int8 GEMM (kernels_int8_gemm.c) for CPUs with AVX2 and no AVX-512 VNNI (AMD Zen 2/3, Intel before Ice
// Lake): the same exact int32 dots as muwa_gemv_i8, so the same bits, on vpmaddwd — both operands sign-extended
// to int16 and multiplied pairwise into int32 (no +128 and correction: 16-bit products of int8 values are exact).
// Register-only, one Zen 3 core: vpmaddwd + vpaddd on a 6 × 16 tile 80 G MAC/s, f32 FMAs on the same tile 50,
// unsigned × signed vpmaddubsw with the sign moved to the weight (llama.cpp's AVX2 dot) 50.
//
//   A: the quantized input rows, packed once per call (muwa_gemm_i8_pack_a) into MR2-row tiles [K2][MR2][2]
//      int16 (two consecutive reduction elements of a row side by side; K2 = ⌈K / 2⌉; zero past M and K).
//   B: each call packs the block of columns it works on into NR2-wide panels [K2][NR2][2] int16 (8 × 8
//      transposes of 32-bit pairs), kept in L2 while every A tile passes it.
//   micro-kernel: MR2 × NR2 = 6 × 16 int32 sums in 12 registers over the whole of K; per pair of reduction
//      elements two panel loads, 6 broadcasts, 12 vpmaddwd and 12 vpaddd. |Σ| ≤ K · 127² < 2^31 for K < 133,000.
#include "kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))

enum { MR2 = MUWA_I8_AVX2_MR, NR2 = MUWA_I8_AVX2_NR, BLOCK_BYTES = 320 * 1024 };

/// Panels of NR2 columns per packed block of B for reduction length K (at least one).
static long block_panels(long K) {
    long panelBytes = (K + 1) / 2 * 4 * NR2, panels = BLOCK_BYTES / (panelBytes > 0 ? panelBytes : 1);
    return panels < 1 ? 1 : panels;
}
long muwa_gemm_i8_avx2_column_chunk(long K) { return block_panels(K) * NR2; }

long muwa_gemm_i8_avx2_packed_a_bytes(long M, long K) { return (M + MR2 - 1) / MR2 * MR2 * ((K + 1) / 2) * 4; }

/// Input value k of packed row m (for the reference).
int32_t muwa_gemm_i8_avx2_packed_at(const uint8_t *a, long K, long m, long k) {
    int16_t v;
    memcpy(&v, a + ((((m / MR2) * ((K + 1) / 2) + k / 2) * MR2 + m % MR2) * 2 + k % 2) * 2, 2);
    return v;
}

AVX2 void muwa_gemm_i8_avx2_pack_a(const muwa_i8_input *x, long M, long K, uint8_t *dst, long t0, long t1) {
    long K2 = (K + 1) / 2;
    for (long t = t0; t < t1; t++) {
        uint8_t *tile = dst + t * K2 * MR2 * 4;
        for (long i = 0; i < MR2; i++) {
            long m = t * MR2 + i, q = 0;
            const int8_t *row = m < M ? x->q + m * K : 0;
            if (row)
                for (; 2 * (q + 8) <= K; q += 8) {  // 16 values: 8 pairs, each to its group's slot for row i
                    int32_t pairs[8];
                    _mm256_storeu_si256((__m256i *)(void *)pairs,
                                        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(row + 2 * q))));
                    for (long e = 0; e < 8; e++) memcpy(tile + ((q + e) * MR2 + i) * 4, pairs + e, 4);
                }
            for (; q < K2; q++) {
                int16_t pair[2] = {row && 2 * q < K ? row[2 * q] : 0, row && 2 * q + 1 < K ? row[2 * q + 1] : 0};
                memcpy(tile + (q * MR2 + i) * 4, pair, 4);
            }
        }
    }
}

/// One NR2-wide panel for weight rows [n, n + nr): dst[(q · NR2 + j) · 2 + e] = W[n + j, 2q + e] as int16, 0
/// outside W. Whole panels go 8 rows × 8 pairs at a time (an 8 × 8 transpose of 32-bit pairs).
static AVX2 void pack_panel(const int8_t *w, long K, long n, long nr, int16_t *dst) {
    long K2 = (K + 1) / 2, q = 0;
    if (nr == NR2)
        for (; 2 * (q + 8) <= K; q += 8)
            for (long jb = 0; jb < NR2; jb += 8) {
                __m256i r[8], t[8], u[8];
                for (int j = 0; j < 8; j++)
                    r[j] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + (n + jb + j) * K + 2 * q)));
                for (int j = 0; j < 8; j += 2) {
                    t[j] = _mm256_unpacklo_epi32(r[j], r[j + 1]);      // pairs 0,1 | 4,5 of rows j, j+1
                    t[j + 1] = _mm256_unpackhi_epi32(r[j], r[j + 1]);  // pairs 2,3 | 6,7
                }
                for (int g = 0; g < 8; g += 4) {
                    u[g] = _mm256_unpacklo_epi64(t[g], t[g + 2]);          // pair 0 | 4 of rows g…g+3
                    u[g + 1] = _mm256_unpackhi_epi64(t[g], t[g + 2]);      // pair 1 | 5
                    u[g + 2] = _mm256_unpacklo_epi64(t[g + 1], t[g + 3]);  // pair 2 | 6
                    u[g + 3] = _mm256_unpackhi_epi64(t[g + 1], t[g + 3]);  // pair 3 | 7
                }
                for (int e = 0; e < 4; e++) {
                    _mm256_storeu_si256((__m256i *)(void *)(dst + ((q + e) * NR2 + jb) * 2),
                                        _mm256_permute2x128_si256(u[e], u[4 + e], 0x20));
                    _mm256_storeu_si256((__m256i *)(void *)(dst + ((q + e + 4) * NR2 + jb) * 2),
                                        _mm256_permute2x128_si256(u[e], u[4 + e], 0x31));
                }
            }
    for (; q < K2; q++)
        for (long j = 0; j < NR2; j++)
            for (long e = 0; e < 2; e++) {
                long k = 2 * q + e;
                dst[(q * NR2 + j) * 2 + e] = j < nr && k < K ? w[(n + j) * K + k] : 0;
            }
}

/// Output row m, columns [n, n + nr), from its exact dots: rows without outliers dequantize 8 at a time with the
/// scalar finish's operations (no FMA), rows with outliers through muwa_i8_finish itself.
static inline AVX2 __attribute__((always_inline)) void finish_row(const muwa_i8_weight *w, const muwa_i8_input *x,
                                                                  long m, long n, long nr, __m256i d0, __m256i d1,
                                                                  float *y, long K, int acc, const float *bias) {
    if (x->outlier_count[m] > 0 || nr < NR2) {
        int32_t dots[NR2];
        _mm256_storeu_si256((__m256i *)(void *)dots, d0);
        _mm256_storeu_si256((__m256i *)(void *)(dots + 8), d1);
        for (long j = 0; j < nr; j++) {
            float s = muwa_i8_finish(w, x, m, n + j, K, dots[j]);
            y[j] = acc ? y[j] + s : s;
            if (bias) y[j] += bias[n + j];
        }
        return;
    }
    const __m256 xa = _mm256_set1_ps(x->absmax[m]), c = _mm256_set1_ps(MUWA_I8_MM_DEQUANT);
    __m256 s0 = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(d0), _mm256_mul_ps(xa, _mm256_loadu_ps(w->absmax + n))), c);
    __m256 s1 =
        _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(d1), _mm256_mul_ps(xa, _mm256_loadu_ps(w->absmax + n + 8))), c);
    if (acc) {
        s0 = _mm256_add_ps(_mm256_loadu_ps(y), s0);
        s1 = _mm256_add_ps(_mm256_loadu_ps(y + 8), s1);
    }
    if (bias) {  // after the sum, as a separate bias pass would add it
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(bias + n));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(bias + n + 8));
    }
    _mm256_storeu_ps(y, s0);
    _mm256_storeu_ps(y + 8, s1);
}

/// ROWS × NR2 outputs over all K2 pairs: rows m.. of the tile `a`, columns n.. of `panel`.
static inline AVX2 __attribute__((always_inline)) void micro_rows(const long ROWS, const muwa_i8_weight *w,
                                                                  const muwa_i8_input *x, const uint8_t *a,
                                                                  const int16_t *panel, long K, long m, long n,
                                                                  long nr, float *y, long ldy, int acc,
                                                                  const float *bias) {
    __m256i acc0[MR2], acc1[MR2];
    for (long i = 0; i < ROWS; i++) acc0[i] = acc1[i] = _mm256_setzero_si256();
    long K2 = (K + 1) / 2;
    for (long q = 0; q < K2; q++) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(const void *)(panel + q * 2 * NR2));
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(const void *)(panel + q * 2 * NR2 + 16));
        for (long i = 0; i < ROWS; i++) {
            int32_t pair;
            memcpy(&pair, a + (q * MR2 + i) * 4, 4);
            __m256i av = _mm256_set1_epi32(pair);
            acc0[i] = _mm256_add_epi32(acc0[i], _mm256_madd_epi16(av, b0));
            acc1[i] = _mm256_add_epi32(acc1[i], _mm256_madd_epi16(av, b1));
        }
    }
    for (long i = 0; i < ROWS; i++)
        finish_row(w, x, m + i, n, nr, acc0[i], acc1[i], y + (m + i) * ldy + n, K, acc, bias);
}

static AVX2 void micro(long mr, const muwa_i8_weight *w, const muwa_i8_input *x, const uint8_t *a,
                       const int16_t *panel, long K, long m, long n, long nr, float *y, long ldy, int acc,
                       const float *bias) {
    _Static_assert(MR2 == 6, "one case per row count below");
    switch (mr) {  // one copy per row count, so the sums stay in registers
    case 1: micro_rows(1, w, x, a, panel, K, m, n, nr, y, ldy, acc, bias); break;
    case 2: micro_rows(2, w, x, a, panel, K, m, n, nr, y, ldy, acc, bias); break;
    case 3: micro_rows(3, w, x, a, panel, K, m, n, nr, y, ldy, acc, bias); break;
    case 4: micro_rows(4, w, x, a, panel, K, m, n, nr, y, ldy, acc, bias); break;
    case 5: micro_rows(5, w, x, a, panel, K, m, n, nr, y, ldy, acc, bias); break;
    default: micro_rows(6, w, x, a, panel, K, m, n, nr, y, ldy, acc, bias); break;
    }
}

/// Columns [n0, n1) for the M rows packed in `a`; 0 when there is no memory for one panel (the caller falls back).
AVX2 int muwa_gemm_i8_avx2(const muwa_i8_weight *w, const muwa_i8_input *x, const uint8_t *a, long M, float *y,
                           long ldy, long n0, long n1, long K, int acc, const float *bias) {
    long K2 = (K + 1) / 2, panelBytes = K2 * 4 * NR2, panels = block_panels(K);
    int16_t *block = muwa_thread_buffer((size_t)(panels * panelBytes));
    if (!block) {
        panels = 1;
        block = muwa_thread_buffer((size_t)panelBytes);
        if (!block) return 0;
    }
    long nc = panels * NR2, panelWords = panelBytes / 2;
    for (long nb = n0; nb < n1; nb += nc) {
        long ne = nb + nc < n1 ? nb + nc : n1;
        for (long n = nb; n < ne; n += NR2)
            pack_panel(w->q, K, n, ne - n < NR2 ? ne - n : NR2, block + (n - nb) / NR2 * panelWords);
        for (long m = 0; m < M; m += MR2) {
            const uint8_t *tile = a + (m / MR2) * K2 * MR2 * 4;
            long mr = M - m < MR2 ? M - m : MR2;
            for (long n = nb; n < ne; n += NR2)
                micro(mr, w, x, tile, block + (n - nb) / NR2 * panelWords, K, m, n, ne - n < NR2 ? ne - n : NR2, y,
                      ldy, acc, bias);
        }
    }
    return 1;
}
#endif
