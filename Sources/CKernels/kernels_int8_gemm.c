// Int8 GEMM for the many-row products with int8 weights (prefill, scoring, the frozen int8 base in training):
//   y[M, N] (+)= LLM.int8 product of quantized input rows x (muwa_i8_input) with an int8 weight W [N, K]
// The same exact int32 dot products as muwa_gemv_i8 (VNNI vpdpbusd: unsigned × signed bytes, the inputs made
// unsigned by adding 128, corrected by 128 · rowsum[n]), dequantized with the same scalar operations, so it
// gives muwa_gemv_i8's bits (the scalar table is its reference). What differs is the data movement:
//
//   A: the quantized input rows, packed once per call by muwa_gemm_i8_pack_a into MR-row tiles [K4][MR][4]
//      (four consecutive reduction bytes of a row side by side, +128; K4 = ⌈K / 4⌉; rows past M and bytes past K
//      are 0). Threads split the tiles.
//   B: the weight stays row-major [N, K] (decode's gemv reads it so); each call packs the NC-column block it is
//      working on into NR-wide panels [K4][NR][4] (16 × 16 transposes of 4-byte groups; zero padded at the
//      edges), kept in L2 while every A tile passes it.
//   micro-kernel: MR × NR outputs in 2·MR registers over the whole of K (exact int32: no partial results to
//      store between K blocks); per group of 4 reduction bytes two panel loads and MR broadcasts.
//
// With AMX (kernels_amx.c) A is packed in 32-row tiles for the tile unit and the micro-kernel is 32 × 32 blocks of
// TDPBUSD; the sums are the same exact integers, so the bits are the same too.
//
// Without VNNI, on AVX2, kernels_int8_gemm_avx2.c does the same with int16 pairs (6-row tiles, 16-wide panels).
//
// The caller splits the output columns into ranges of whole panels among threads.
#include "kernels_internal.h"
#include <stdlib.h>

static int vnni_supported(void);

/// Which GEMM runs, and so how A is packed: AMX tiles, VNNI tiles, AVX2 int16 pairs, or none (muwa_gemv_i8).
enum layout { NONE, VNNI_TILES, AMX_TILES, AVX2_PAIRS };
static enum layout layout(void) {
    if (vnni_supported()) return muwa_amx_enabled() ? AMX_TILES : VNNI_TILES;
    return muwa_avx2_selected() ? AVX2_PAIRS : NONE;
}

enum { MR = 12, NR = 32, B_BLOCK_BYTES = 384 * 1024 };

// With AMX (muwa_amx_enabled) A is packed for the tile unit instead: AMX_MR-row tiles [K64][AMX_MR][64] (64
// reduction bytes of a row side by side, +128; K64 = ⌈K / 64⌉; zero past M and K), the layout kernels_amx.c reads.
enum { AMX_MR = 32 };

long muwa_gemm_i8_row_block(void) {
    enum layout l = layout();
    return l == AMX_TILES ? AMX_MR : l == AVX2_PAIRS ? MUWA_I8_AVX2_MR : MR;
}

long muwa_gemm_i8_column_block(void) { return layout() == AVX2_PAIRS ? MUWA_I8_AVX2_NR : NR; }
/// Panels of NR columns in gemm_vnni's block of B for reduction length K (B_BLOCK_BYTES of them, at least one).
static long block_panels(long K) {
    long panelBytes = (K + 3) / 4 * 4 * NR, panels = B_BLOCK_BYTES / (panelBytes > 0 ? panelBytes : 1);
    return panels < 1 ? 1 : panels;
}
long muwa_gemm_i8_column_chunk(long K) {
    return layout() == AVX2_PAIRS ? muwa_gemm_i8_avx2_column_chunk(K) : block_panels(K) * NR;
}

long muwa_gemm_i8_packed_a_bytes(long M, long K) {
    enum layout l = layout();
    if (l == AVX2_PAIRS) return muwa_gemm_i8_avx2_packed_a_bytes(M, K);
    if (l == AMX_TILES) return (M + AMX_MR - 1) / AMX_MR * AMX_MR * ((K + 63) / 64) * 64;
    return (M + MR - 1) / MR * MR * ((K + 3) / 4) * 4;
}

/// Input value k of packed row m (signed), in whichever layout muwa_gemm_i8_pack_a wrote.
static inline int32_t packed_a_at(const uint8_t *a, enum layout l, long K, long m, long k) {
    if (l == AVX2_PAIRS) return muwa_gemm_i8_avx2_packed_at(a, K, m, k);
    if (l == AMX_TILES)
        return (int8_t)(a[((m / AMX_MR) * ((K + 63) / 64) + k / 64) * AMX_MR * 64 + (m % AMX_MR) * 64 + k % 64] ^ 0x80);
    return (int8_t)(a[((m / MR) * ((K + 3) / 4) + k / 4) * MR * 4 + (m % MR) * 4 + k % 4] ^ 0x80);
}

void muwa_gemm_i8_pack_a(const muwa_i8_input *x, long M, long K, uint8_t *dst, long t0, long t1) {
    enum layout l = layout();
#if defined(__x86_64__)
    if (l == AVX2_PAIRS) {
        muwa_gemm_i8_avx2_pack_a(x, M, K, dst, t0, t1);
        return;
    }
#endif
    if (l == AMX_TILES) {
        long K64 = (K + 63) / 64;
        for (long t = t0; t < t1; t++)
            for (long i = 0; i < AMX_MR; i++) {
                long m = t * AMX_MR + i;
                const int8_t *row = x->q + (m < M ? m : 0) * K;
                for (long b = 0; b < K64; b++) {
                    uint8_t *d = dst + ((t * K64 + b) * AMX_MR + i) * 64;
                    long n = m >= M ? 0 : K - 64 * b < 64 ? K - 64 * b : 64;  // bytes of the row in this block
                    for (long e = 0; e < n; e++) d[e] = (uint8_t)(row[64 * b + e] ^ 0x80);
                    memset(d + n, 0, (size_t)(64 - n));
                }
            }
        return;
    }
    long K4 = (K + 3) / 4;
    for (long t = t0; t < t1; t++) {
        uint8_t *tile = dst + t * K4 * MR * 4;
        for (long i = 0; i < MR; i++) {
            long m = t * MR + i;
            const int8_t *row = m < M ? x->q + m * K : 0;
            long whole = row ? K / 4 : 0;  // groups of 4 bytes of the row: copied as words, +128 by XOR
            for (long q = 0; q < whole; q++) {
                uint32_t word;
                memcpy(&word, row + 4 * q, 4);
                word ^= 0x80808080u;
                memcpy(tile + (q * MR + i) * 4, &word, 4);
            }
            for (long q = whole; q < K4; q++) {
                uint8_t *d = tile + (q * MR + i) * 4;
                for (long e = 0; e < 4; e++) {
                    long k = 4 * q + e;
                    d[e] = (row && k < K) ? (uint8_t)(row[k] ^ 0x80) : 0;
                }
            }
        }
    }
}

/// y[m, n] += bias[n] for m < M, n in [n0, n1) (nothing when bias is null): the bias after the product, for the
/// paths that do not add it in their finish.
static void add_bias(float *y, long ldy, long M, long n0, long n1, const float *bias) {
    if (!bias) return;
    for (long m = 0; m < M; m++)
        for (long n = n0; n < n1; n++) y[m * ldy + n] += bias[n];
}

/// One NR-wide panel for weight rows [n, n + nr): dst[(q · NR + j) · 4 + e] = W[n + j, 4q + e], 0 outside W.
static void pack_panel(const int8_t *w, long K, long n, long nr, int8_t *dst) {
    long K4 = (K + 3) / 4;
    for (long j = 0; j < NR; j++) {
        const int8_t *row = j < nr ? w + (n + j) * K : 0;
        for (long q = 0; q < K4; q++)
            for (long e = 0; e < 4; e++) {
                long k = 4 * q + e;
                dst[(q * NR + j) * 4 + e] = (row && k < K) ? row[k] : 0;
            }
    }
}

/// Reference: the packed input values (whichever layout) times plain weight panels, summed with plain loops,
/// finished by muwa_i8_finish.
void muwa_gemm_i8_reference(const muwa_i8_weight *w, const muwa_i8_input *x, const uint8_t *a, long M, float *y,
                            long ldy, long n0, long n1, long K, int acc, const float *bias) {
    long K4 = (K + 3) / 4;
    enum layout l = layout();
    int8_t *panel = malloc((size_t)(K4 * 4 * NR));
    if (!panel) {
        muwa_gemv_i8_scalar(w, x, M, y, ldy, n0, n1, K, acc);
        add_bias(y, ldy, M, n0, n1, bias);
        return;
    }
    for (long n = n0; n < n1; n += NR) {
        long nr = n1 - n < NR ? n1 - n : NR;
        pack_panel(w->q, K, n, nr, panel);
        for (long m = 0; m < M; m++) {
            for (long j = 0; j < nr; j++) {
                int32_t dot = 0;
                for (long q = 0; q < K4; q++)
                    for (long e = 0; e < 4; e++)
                        if (4 * q + e < K) dot += packed_a_at(a, l, K, m, 4 * q + e) * (int32_t)panel[(q * NR + j) * 4 + e];
                float s = muwa_i8_finish(w, x, m, n + j, K, dot);
                float *yr = y + m * ldy + n + j;
                *yr = acc ? *yr + s : s;
                if (bias) *yr += bias[n + j];
            }
        }
    }
    free(panel);
}

#if defined(__x86_64__)
#include <immintrin.h>
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

/// pack_panel for a full panel: 16 rows × 16 groups of 4 bytes at a time, a 16 × 16 transpose of 32-bit
/// words; a K that is not a multiple of 64 finishes with the scalar loop.
static VNNI void pack_panel_avx512(const int8_t *w, long K, long n, long nr, int8_t *dst) {
    if (nr != NR) {
        pack_panel(w, K, n, nr, dst);
        return;
    }
    long K4 = (K + 3) / 4, q = 0;
    for (; 4 * (q + 16) <= K; q += 16) {
        for (long jb = 0; jb < NR; jb += 16)
            muwa_transpose16_words(w + (n + jb) * K + 4 * q, K, dst + (q * NR + jb) * 4, 4 * NR);
    }
    for (; q < K4; q++)
        for (long j = 0; j < NR; j++)
            for (long e = 0; e < 4; e++) {
                long k = 4 * q + e;
                dst[(q * NR + j) * 4 + e] = k < K ? w[(n + j) * K + k] : 0;
            }
}

/// Output row m, columns [n, n + nr), from its exact dots (before the 128 · rowsum correction): rows without
/// outliers dequantize 16 at a time with the scalar finish's operations (no FMA), rows with outliers go through
/// muwa_i8_finish itself.
static inline VNNI __attribute__((always_inline)) void finish_row(const muwa_i8_weight *w, const muwa_i8_input *x,
                                                                  long m, long n, long nr, __m512i d0, __m512i d1,
                                                                  float *y, long K, int acc,
                                                                  const float *bias) {
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    const __m512i c128 = _mm512_set1_epi32(128);
    d0 = _mm512_sub_epi32(d0, _mm512_mullo_epi32(c128, _mm512_maskz_loadu_epi32(m0, w->rowsum + n)));
    d1 = _mm512_sub_epi32(d1, _mm512_mullo_epi32(c128, _mm512_maskz_loadu_epi32(m1, w->rowsum + n + 16)));
    if (x->outlier_count[m] > 0) {
        int32_t dots[NR];
        _mm512_storeu_si512(dots, d0);
        _mm512_storeu_si512(dots + 16, d1);
        for (long j = 0; j < nr; j++) {
            float s = muwa_i8_finish(w, x, m, n + j, K, dots[j]);
            y[j] = acc ? y[j] + s : s;
            if (bias) y[j] += bias[n + j];
        }
        return;
    }
    const __m512 xa = _mm512_set1_ps(x->absmax[m]), c = _mm512_set1_ps(MUWA_I8_MM_DEQUANT);
    __m512 s0 = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(d0), _mm512_mul_ps(xa, _mm512_maskz_loadu_ps(m0, w->absmax + n))), c);
    __m512 s1 =
        _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(d1), _mm512_mul_ps(xa, _mm512_maskz_loadu_ps(m1, w->absmax + n + 16))), c);
    if (acc) {
        s0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, y), s0);
        s1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, y + 16), s1);
    }
    if (bias) {  // after the sum, as a separate bias pass would add it
        s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(m0, bias + n));
        s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(m1, bias + n + 16));
    }
    _mm512_mask_storeu_ps(y, m0, s0);
    _mm512_mask_storeu_ps(y + 16, m1, s1);
}

/// ROWS × NR outputs over all K4 groups: rows m.. of the tile `a`, columns n.. of `panel`.
static inline VNNI __attribute__((always_inline)) void micro_rows(const long ROWS, const muwa_i8_weight *w,
                                                                  const muwa_i8_input *x, const uint8_t *a,
                                                                  const int8_t *panel, long K, long m, long n, long nr,
                                                                  float *y, long ldy, int acc, const float *bias) {
    __m512i acc0[MR], acc1[MR];
    for (long i = 0; i < ROWS; i++) acc0[i] = acc1[i] = _mm512_setzero_si512();
    long K4 = (K + 3) / 4;
    for (long q = 0; q < K4; q++) {
        __m512i b0 = _mm512_loadu_si512(panel + q * 4 * NR), b1 = _mm512_loadu_si512(panel + q * 4 * NR + 64);
        for (long i = 0; i < ROWS; i++) {
            uint32_t quad;
            memcpy(&quad, a + (q * MR + i) * 4, 4);
            __m512i av = _mm512_set1_epi32((int)quad);
            acc0[i] = _mm512_dpbusd_epi32(acc0[i], av, b0);
            acc1[i] = _mm512_dpbusd_epi32(acc1[i], av, b1);
        }
    }
    for (long i = 0; i < ROWS; i++) finish_row(w, x, m + i, n, nr, acc0[i], acc1[i], y + (m + i) * ldy + n, K, acc, bias);
}

static VNNI void micro(long mr, const muwa_i8_weight *w, const muwa_i8_input *x, const uint8_t *a, const int8_t *panel,
                       long K, long m, long n, long nr, float *y, long ldy, int acc, const float *bias) {
    switch (mr) {  // one copy per row count, so the accumulators stay in registers
#define ROWS_CASE(r) case r: micro_rows(r, w, x, a, panel, K, m, n, nr, y, ldy, acc, bias); break;
        ROWS_CASE(1) ROWS_CASE(2) ROWS_CASE(3) ROWS_CASE(4) ROWS_CASE(5) ROWS_CASE(6)
        ROWS_CASE(7) ROWS_CASE(8) ROWS_CASE(9) ROWS_CASE(10) ROWS_CASE(11)
        default: micro_rows(MR, w, x, a, panel, K, m, n, nr, y, ldy, acc, bias); break;
#undef ROWS_CASE
    }
}

static VNNI void gemm_vnni(const muwa_i8_weight *w, const muwa_i8_input *x, const uint8_t *a, long M, float *y,
                           long ldy, long n0, long n1, long K, int acc, const float *bias) {
    long K4 = (K + 3) / 4, panelBytes = K4 * 4 * NR, panels = block_panels(K);
    int8_t *block = muwa_thread_buffer((size_t)(panels * panelBytes));
    if (!block) {  // no room for a block: one panel at a time (or the gemv kernel when even that fails)
        panels = 1;
        block = muwa_thread_buffer((size_t)panelBytes);
        if (!block) {
            muwa_gemv_i8_avx512(w, x, M, y, ldy, n0, n1, K, acc);
            add_bias(y, ldy, M, n0, n1, bias);
            return;
        }
    }
    long nc = panels * NR;
    for (long nb = n0; nb < n1; nb += nc) {
        long ne = nb + nc < n1 ? nb + nc : n1;
        for (long n = nb; n < ne; n += NR) pack_panel_avx512(w->q, K, n, ne - n < NR ? ne - n : NR, block + (n - nb) / NR * panelBytes);
        for (long m = 0; m < M; m += MR) {
            const uint8_t *tile = a + (m / MR) * K4 * MR * 4;
            long mr = M - m < MR ? M - m : MR;
            for (long n = nb; n < ne; n += NR)
                micro(mr, w, x, tile, block + (n - nb) / NR * panelBytes, K, m, n, ne - n < NR ? ne - n : NR, y, ldy,
                      acc, bias);
        }
    }
}

/// The AMX GEMM (A packed in AMX_MR-row tiles): the same panels as gemm_vnni, padded with zero groups to whole
/// 64-byte blocks, 32 × 32 blocks of exact sums from kernels_amx.c, finished row by row as above.
static VNNI void gemm_amx(const muwa_i8_weight *w, const muwa_i8_input *x, const uint8_t *a, long M, float *y,
                          long ldy, long n0, long n1, long K, int acc, const float *bias) {
    long K4 = (K + 3) / 4, K64 = (K + 63) / 64, panelBytes = K64 * 64 * NR, panels;
    int8_t *block = muwa_amx_buffer(panelBytes, B_BLOCK_BYTES, &panels);
    if (!block) {
        muwa_gemv_i8_avx512(w, x, M, y, ldy, n0, n1, K, acc);
        add_bias(y, ldy, M, n0, n1, bias);
        return;
    }
    int32_t *sums = (int32_t *)(block + panels * panelBytes);
    long nc = panels * NR;
    muwa_amx_begin();
    for (long nb = n0; nb < n1; nb += nc) {
        long ne = nb + nc < n1 ? nb + nc : n1;
        for (long n = nb; n < ne; n += NR) {
            int8_t *panel = block + (n - nb) / NR * panelBytes;
            pack_panel_avx512(w->q, K, n, ne - n < NR ? ne - n : NR, panel);
            memset(panel + K4 * 4 * NR, 0, (size_t)((K64 * 16 - K4) * 4 * NR));
        }
        for (long m = 0; m < M; m += AMX_MR) {
            const uint8_t *tile = a + (m / AMX_MR) * K64 * AMX_MR * 64;
            long mr = M - m < AMX_MR ? M - m : AMX_MR;
            for (long k0 = 0; k0 < K64; k0 += MUWA_AMX_KB_CHUNK) {  // this A range in L1, every panel past it
                long kb = K64 - k0 < MUWA_AMX_KB_CHUNK ? K64 - k0 : MUWA_AMX_KB_CHUNK;
                for (long n = nb; n < ne; n += NR)
                    muwa_amx_block_i8(tile + k0 * 2048, block + (n - nb) / NR * panelBytes + k0 * 2048, kb,
                                      sums + (n - nb) / NR * AMX_MR * NR, k0 > 0);
            }
            for (long n = nb; n < ne; n += NR) {
                long nr = ne - n < NR ? ne - n : NR;
                const int32_t *s = sums + (n - nb) / NR * AMX_MR * NR;
                for (long i = 0; i < mr; i++)
                    finish_row(w, x, m + i, n, nr, _mm512_load_si512(s + i * NR), _mm512_load_si512(s + i * NR + 16),
                               y + (m + i) * ldy + n, K, acc, bias);
            }
        }
    }
    muwa_amx_end();
}

static int vnni_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
           muwa_avx512_selected();
}
#else
static int vnni_supported(void) { return 0; }
#endif

int muwa_gemm_i8_fast(void) { return layout() != NONE; }

const char *muwa_gemm_i8_kernel(void) {
    static const char *const names[] = {"row kernels", "VNNI", "AMX", "AVX2"};
    return names[layout()];
}

void muwa_gemm_i8(const muwa_i8_weight *w, const muwa_i8_input *x, const uint8_t *a, long M, float *y, long ldy,
                  long n0, long n1, long K, int accumulate, const float *bias) {
#if defined(__x86_64__)
    if (vnni_supported()) {
        if (muwa_amx_enabled())
            gemm_amx(w, x, a, M, y, ldy, n0, n1, K, accumulate, bias);
        else
            gemm_vnni(w, x, a, M, y, ldy, n0, n1, K, accumulate, bias);
        return;
    }
    if (layout() == AVX2_PAIRS && muwa_gemm_i8_avx2(w, x, a, M, y, ldy, n0, n1, K, accumulate, bias)) return;
#endif
    (void)a;  // without VNNI or AVX2 (or memory for a panel) the row kernels of the current table
    muwa_gemv_i8(w, x, M, y, ldy, n0, n1, K, accumulate);
    add_bias(y, ldy, M, n0, n1, bias);
}
