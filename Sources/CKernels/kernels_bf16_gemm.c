// BF16 GEMM with f32 accumulation for the many-row products (prefill, scoring, the frozen base in training):
//   C[M, P] (+)= A[M, R] · B[R, P]      A: bf16 activations (rounded from f32 by muwa_f32_to_bf16_rows)
// B is a weight kept as plain row-major bf16, read in one of two layouts so that one copy serves both
// directions of a linear layer:
//   MUWA_GEMM_B_NK  W[P, R] (nn.Linear's [N, K]): forward, out = inp · Wᵀ
//   MUWA_GEMM_B_KN  W[R, P]:                      backward, dinp = dout · W
// Decode (≤ 16 rows) reads the same plain [N, K] bf16 through the row-invariant gemv kernels.
//
// Structure (a BLIS-style GEMM): A is rounded to bf16 and packed once per call, by
// muwa_gemm_bf16_pack_a, into MR-row tiles [R/2][MR][2] (pairs of consecutive reduction elements side by side,
// as vdpbf16ps wants them; threads split the tiles). Then the caller splits the output columns among threads;
// each call loops over KC-deep blocks of R and NC-wide blocks of its columns, packs the B block once into
// NR-wide panels [KC/2][NR][2] (zero padded at the edges), and runs an MR × NR register-blocked micro-kernel over
// every MR-row tile of A against every panel: the A tile (MR · KC · 2 bytes) stays in L1, the B block
// (NC · KC · 2 bytes) in L2. The micro-kernel is the only part that differs between the AVX-512 BF16 kernel and the portable
// reference: same packing, same blocking, the same sum per k-pair in the same order (odd element, then even,
// as the instruction documents), so the two agree to rounding (bit for bit where the CPU's vdpbf16ps rounds
// each step, up to denormals, which vdpbf16ps flushes). Where AMX runs (see MARK: - AMX) A has a layout of its
// own and the tile unit sums whole rows of R.
#include "kernels_internal.h"
#include <stdlib.h>

enum { MR = MUWA_BF16_MR, NR = MUWA_BF16_NR, KC = MUWA_BF16_KC, NC = MUWA_BF16_NC };  // kernels_internal.h
_Static_assert(MR == 12, "the micro-kernel dispatch (MUWA_ROWS_SWITCH_12) assumes 12-row tiles");

typedef void (*pack_block_fn)(muwa_gemm_b_layout layout, const uint16_t *w, long R, long P, long n0, long nc,
                              long kp0, long kp, uint16_t *dst);
typedef void (*micro_kernel_fn)(long mr, long kp, const uint16_t *a, const uint16_t *b, float *c, long ldc, long nr,
                                int add);

// MARK: - conversion

static inline uint16_t f32_to_bf16(float f) {  // round to nearest even, NaN stays NaN (c10::BFloat16)
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static void to_bf16_scalar(const float *src, uint16_t *dst, long n) {
    for (long i = 0; i < n; i++) dst[i] = f32_to_bf16(src[i]);
}

// MARK: - packing (shared by both micro-kernels)

/// One NR-wide panel of B for columns [p, p + nr) and reduction pairs [kp0, kp0 + kp):
/// dst[(q * NR + j) * 2 + t] = B[2 (kp0 + q) + t, p + j], zero outside B.
static void pack_panel(muwa_gemm_b_layout layout, const uint16_t *w, long R, long P, long p, long nr, long kp0,
                       long kp, uint16_t *dst) {
    long r0 = 2 * kp0;
    int odd_tail = r0 + 2 * kp > R;  // the last pair reaches past R
    if (layout == MUWA_GEMM_B_NK) {  // B[r, p] = W[p, r]: row p + j of W, pairs along the row
        for (long j = 0; j < NR; j++) {
            uint16_t *d = dst + 2 * j;
            if (j >= nr) {
                for (long q = 0; q < kp; q++) d[q * 2 * NR] = d[q * 2 * NR + 1] = 0;
                continue;
            }
            const uint16_t *row = w + (p + j) * R + r0;
            long full = odd_tail ? kp - 1 : kp;
            for (long q = 0; q < full; q++) {
                d[q * 2 * NR] = row[2 * q];
                d[q * 2 * NR + 1] = row[2 * q + 1];
            }
            if (odd_tail) {
                d[full * 2 * NR] = row[2 * full];
                d[full * 2 * NR + 1] = 0;
            }
        }
    } else {  // B[r, p] = W[r, p]: rows r and r + 1 of W interleaved
        for (long q = 0; q < kp; q++) {
            const uint16_t *even = w + (r0 + 2 * q) * P + p;
            const uint16_t *odd = (r0 + 2 * q + 1 < R) ? even + P : 0;
            uint16_t *d = dst + q * 2 * NR;
            for (long j = 0; j < nr; j++) {
                d[2 * j] = even[j];
                d[2 * j + 1] = odd ? odd[j] : 0;
            }
            for (long j = nr; j < NR; j++) d[2 * j] = d[2 * j + 1] = 0;
        }
    }
}

/// Panels for columns [n0, n0 + nc) side by side (panel p at dst + p · kp · 2), one pack_panel each.
static void pack_block(muwa_gemm_b_layout layout, const uint16_t *w, long R, long P, long n0, long nc, long kp0,
                       long kp, uint16_t *dst) {
    for (long p = 0; p < nc; p += NR)
        pack_panel(layout, w, R, P, n0 + p, nc - p < NR ? nc - p : NR, kp0, kp, dst + p * kp * 2);
}

// MARK: - micro-kernels

/// Reference: C[i, j] (+)= Σ_q (a[q, i, 1]·b[q, j, 1] then a[q, i, 0]·b[q, j, 0]) for an mr × nr tile, plain
/// loops (a: a packed A tile [kp][MR][2], b: a packed panel [kp][NR][2]).
static void micro_reference(long mr, long kp, const uint16_t *a, const uint16_t *b, float *c, long ldc, long nr,
                            int add) {
    for (long i = 0; i < mr; i++) {
        for (long j = 0; j < nr; j++) {
            float s = 0;
            for (long q = 0; q < kp; q++) {
                s += muwa_bf16_to_f32(a[(q * MR + i) * 2 + 1]) * muwa_bf16_to_f32(b[(q * NR + j) * 2 + 1]);
                s += muwa_bf16_to_f32(a[(q * MR + i) * 2]) * muwa_bf16_to_f32(b[(q * NR + j) * 2]);
            }
            c[i * ldc + j] = add ? c[i * ldc + j] + s : s;
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

/// ROWS × 32 tile: 2·ROWS accumulators; per pair of reduction elements two panel loads and ROWS broadcasts.
static inline BF16 __attribute__((always_inline)) void micro_rows(const long ROWS, long kp, const uint16_t *a,
                                                                  const uint16_t *b, float *c, long ldc, long nr,
                                                                  int add) {
    __m512 acc0[MR], acc1[MR];
    for (long i = 0; i < ROWS; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
    for (long q = 0; q < kp; q++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + q * 2 * NR);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + q * 2 * NR + 32);
        for (long i = 0; i < ROWS; i++) {
            uint32_t pair;
            memcpy(&pair, a + (q * MR + i) * 2, 4);
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)pair);
            acc0[i] = _mm512_dpbf16_ps(acc0[i], av, b0);
            acc1[i] = _mm512_dpbf16_ps(acc1[i], av, b1);
        }
    }
    muwa_store_sums_x32(acc0, acc1, ROWS, c, ldc, nr, add);
}

static BF16 void micro_avx512bf16(long mr, long kp, const uint16_t *a, const uint16_t *b, float *c, long ldc, long nr,
                                  int add) {
#define ROWS(n) micro_rows(n, kp, a, b, c, ldc, nr, add)
    MUWA_ROWS_SWITCH_12(mr, ROWS)
#undef ROWS
}

static BF16 void to_bf16_avx512(const float *src, uint16_t *dst, long n) {
    long i = 0;
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), inf = _mm512_set1_epi32(0x7f800000),
                  abs = _mm512_set1_epi32(0x7fffffff), quiet = _mm512_set1_epi32(0x40);
    for (; i + 16 <= n; i += 16) {  // the scalar rounding, 16 at a time (vcvtneps2bf16 would flush denormals)
        __m512i u = _mm512_loadu_si512(src + i);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(
                                                           _mm512_srli_epi32(u, 16), one))), 16);
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), quiet));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(r));
    }
    to_bf16_scalar(src + i, dst + i, n - i);
}

/// One pair of a [K, N] panel: 32 columns of row `even` and of the row P elements below, interleaved
/// (d[2j] = even[j], d[2j + 1] = even[P + j]) by one permute per 32 outputs.
static inline BF16 __attribute__((always_inline)) void interleave_rows32(const uint16_t *even, long P, uint16_t *d) {
    const __m512i lo = _mm512_setr_epi32(0x00200000, 0x00210001, 0x00220002, 0x00230003, 0x00240004, 0x00250005,
                                         0x00260006, 0x00270007, 0x00280008, 0x00290009, 0x002a000a, 0x002b000b,
                                         0x002c000c, 0x002d000d, 0x002e000e, 0x002f000f);
    const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
    __m512i e = _mm512_loadu_si512(even), o = _mm512_loadu_si512(even + P);
    _mm512_storeu_si512(d, _mm512_permutex2var_epi16(e, lo, o));
    _mm512_storeu_si512(d + 32, _mm512_permutex2var_epi16(e, hi, o));
}

/// pack_panel with AVX-512: [N, K] weights by 16 × 16 transposes of 32-bit pairs; [K, N] weights by interleaving
/// 32 columns of two rows with one permute per 32 outputs. Edges (a partial panel, an odd last pair) go to
/// pack_panel.
static BF16 void pack_panel_avx512(muwa_gemm_b_layout layout, const uint16_t *w, long R, long P, long p, long nr,
                                   long kp0, long kp, uint16_t *dst) {
    long r0 = 2 * kp0;
    if (nr != NR || r0 + 2 * kp > R) {
        pack_panel(layout, w, R, P, p, nr, kp0, kp, dst);
        return;
    }
    if (layout == MUWA_GEMM_B_NK) {  // 16 rows × 16 pairs at a time: a 16 × 16 transpose of 32-bit pairs
        long q = 0;
        for (; q + 16 <= kp; q += 16) {
            for (long jb = 0; jb < NR; jb += 16)
                muwa_transpose16_words(w + (p + jb) * R + r0 + 2 * q, 2 * R, dst + (q * NR + jb) * 2, 4 * NR);
        }
        for (; q < kp; q++)
            for (long j = 0; j < NR; j++) memcpy(dst + (q * NR + j) * 2, w + (p + j) * R + r0 + 2 * q, 4);
    } else {
        for (long q = 0; q < kp; q++) interleave_rows32(w + (r0 + 2 * q) * P + p, P, dst + q * 2 * NR);
    }
}

void muwa_bf16_pack_panel(muwa_gemm_b_layout layout, const uint16_t *w, long R, long P, long p, long nr, long kp0,
                          long kp, uint16_t *dst) {
    pack_panel_avx512(layout, w, R, P, p, nr, kp0, kp, dst);
}

/// A whole B block (columns [n0, n0 + nc), the panels side by side at dst + p · kp · 2), read from memory as
/// few, long streams: a [K, N] weight a row pair at a time across every panel (each row's nc columns in one
/// run), an [N, K] weight 16 rows at a time along the whole block (16 streams). The panel-at-a-time order read
/// 32 streams of 64 bytes per step ([N, K]) or one cache line from each of 2·kp rows per panel ([K, N]), which
/// the hardware prefetchers follow poorly. Same bytes as pack_panel_avx512, panel for panel.
static BF16 void pack_block_avx512(muwa_gemm_b_layout layout, const uint16_t *w, long R, long P, long n0, long nc,
                                   long kp0, long kp, uint16_t *dst) {
    long full = nc / NR * NR, r0 = 2 * kp0;
    if (r0 + 2 * kp > R) full = 0;  // an odd last pair: every panel by the edge path
    if (layout == MUWA_GEMM_B_NK) {
        for (long p = 0; p < full; p += NR) {
            uint16_t *d = dst + p * kp * 2;
            for (long jb = 0; jb < NR; jb += 16) {
                long q = 0;
                for (; q + 16 <= kp; q += 16)
                    muwa_transpose16_words(w + (n0 + p + jb) * R + r0 + 2 * q, 2 * R, d + (q * NR + jb) * 2, 4 * NR);
                for (; q < kp; q++)
                    for (long j = jb; j < jb + 16; j++) memcpy(d + (q * NR + j) * 2, w + (n0 + p + j) * R + r0 + 2 * q, 4);
            }
        }
    } else if (full > 0) {
        for (long q = 0; q < kp; q++) {
            const uint16_t *even = w + (r0 + 2 * q) * P + n0;
            for (long p = 0; p < full; p += NR) interleave_rows32(even + p, P, dst + p * kp * 2 + q * 2 * NR);
        }
    }
    for (long p = full; p < nc; p += NR)
        pack_panel_avx512(layout, w, R, P, n0 + p, nc - p < NR ? nc - p : NR, kp0, kp, dst + p * kp * 2);
}

static int fast_supported(void) { return muwa_cpu_has_bf16() && muwa_avx512_selected(); }
#else
static int fast_supported(void) { return 0; }
#endif

// MARK: - driver

/// Prefetches (into L2) slice `slice` of `slices` of the weight bytes that pack_block will read for columns
/// [n0, n0 + nc) and reduction pairs [kp0, kp0 + kp): an [N, K] weight's nc row segments of 2·kp elements, a
/// [K, N] weight's 2·kp row segments of nc elements (muwa_prefetch_block_slice).
static void prefetch_block_slice(muwa_gemm_b_layout layout, const uint16_t *w, long R, long P, long n0, long nc,
                                 long kp0, long kp, long slice, long slices) {
    long r0 = 2 * kp0, r1 = r0 + 2 * kp < R ? r0 + 2 * kp : R;
    if (layout == MUWA_GEMM_B_NK)
        muwa_prefetch_block_slice((const char *)(w + n0 * R + r0), R * 2, nc, (r1 - r0) * 2, slice, slices);
    else
        muwa_prefetch_block_slice((const char *)(w + r0 * P + n0), P * 2, r1 - r0, nc * 2, slice, slices);
}

static void gemm(micro_kernel_fn micro, pack_block_fn pack, muwa_gemm_b_layout layout, const uint16_t *a, long M, const uint16_t *w,
                 long R, long P, float *c, long ldc, long p0, long p1, int accumulate) {
    if (M <= 0 || p1 <= p0 || R <= 0) return;
    long Kp = (R + 1) / 2;  // pairs per packed A row
    long kcMax = R < KC ? 2 * Kp : KC;
    uint16_t *packed = muwa_thread_buffer((size_t)(NC * kcMax * 2 + 64));
    long nc_cap = NC;
    uint16_t panel[KC * NR] __attribute__((aligned(64)));
    if (!packed) {  // no 256 KiB to spare: one panel at a time, from the stack
        packed = panel;
        nc_cap = NR;
    }
    for (long n0 = p0; n0 < p1; n0 += nc_cap) {  // the C block [M, nc] stays in cache across the R blocks
        long nc = p1 - n0 < nc_cap ? p1 - n0 : nc_cap;
        for (long r0 = 0; r0 < R; r0 += KC) {
            long kp = ((R - r0 < KC ? R - r0 : KC) + 1) / 2;  // pairs in this block
            int add = accumulate || r0 > 0;
            pack(layout, w, R, P, n0, nc, r0 / 2, kp, packed);
            long next_n0 = r0 + KC < R ? n0 : n0 + nc_cap, next_r0 = r0 + KC < R ? r0 + KC : 0;
            long next_nc = p1 - next_n0 < nc_cap ? p1 - next_n0 : nc_cap;
            long next_kp = ((R - next_r0 < KC ? R - next_r0 : KC) + 1) / 2, tiles = (M + MR - 1) / MR;
            for (long m = 0; m < M; m += MR) {
                long mr = M - m < MR ? M - m : MR;
                if (next_n0 < p1)
                    prefetch_block_slice(layout, w, R, P, next_n0, next_nc, next_r0 / 2, next_kp, m / MR, tiles);
                const uint16_t *tile = a + ((m / MR) * Kp + r0 / 2) * MR * 2;
                for (long p = 0; p < nc; p += NR)
                    micro(mr, kp, tile, packed + p * kp * 2, c + m * ldc + n0 + p, ldc, nc - p < NR ? nc - p : NR,
                          add);
            }
        }
    }
}

// MARK: - AMX

// With AMX (muwa_amx_enabled) A is packed in AMX_MR-row tiles [KB][AMX_MR][32] (32 reduction elements of a row
// side by side, KB = ⌈R / 32⌉, zero past M and R) and B in panels over the whole of R, padded with zero pairs to
// whole blocks of 16; kernels_amx.c multiplies 32 × 32 blocks over all of R, so a product is never split into
// partial sums.
enum { AMX_MR = 32, AMX_B_BLOCK_BYTES = 384 * 1024 };

/// The reference for the AMX layout: plain loops, per output the pairs in order, odd element then even.
static void reference_amx_layout(muwa_gemm_b_layout layout, const uint16_t *a, long M, const uint16_t *w, long R,
                                 long P, float *c, long ldc, long p0, long p1, int accumulate) {
    long KB = (R + 31) / 32;
    for (long m = 0; m < M; m++) {
        const uint16_t *tile = a + (m / AMX_MR) * KB * AMX_MR * 32;
        for (long p = p0; p < p1; p++) {
            float s = 0;
            for (long r = 0; r < R; r += 2) {
                for (long t = 1; t >= 0; t--) {
                    long k = r + t;
                    if (k >= R) continue;
                    float av = muwa_bf16_to_f32(tile[((k / 32) * AMX_MR + m % AMX_MR) * 32 + k % 32]);
                    float bv = muwa_bf16_to_f32(layout == MUWA_GEMM_B_NK ? w[p * R + k] : w[k * P + p]);
                    s += av * bv;
                }
            }
            c[m * ldc + p] = accumulate ? c[m * ldc + p] + s : s;
        }
    }
}

#if defined(__x86_64__)
static BF16 void gemm_amx(muwa_gemm_b_layout layout, const uint16_t *a, long M, const uint16_t *w, long R, long P,
                          float *c, long ldc, long p0, long p1, int accumulate) {
    if (M <= 0 || p1 <= p0 || R <= 0) return;
    long Kp = (R + 1) / 2, KB = (R + 31) / 32, panelHalves = KB * 16 * NR * 2, sumFloats = AMX_MR * NR, panels;
    uint16_t *block = muwa_amx_buffer(panelHalves * 2, AMX_B_BLOCK_BYTES, &panels);
    if (!block) {  // not even one panel: the plain loops
        reference_amx_layout(layout, a, M, w, R, P, c, ldc, p0, p1, accumulate);
        return;
    }
    float *sums = (float *)(block + panels * panelHalves);
    long nc = panels * NR;
    muwa_amx_begin();
    for (long nb = p0; nb < p1; nb += nc) {
        long ne = nb + nc < p1 ? nb + nc : p1;
        for (long p = nb; p < ne; p += NR) {
            uint16_t *panel = block + (p - nb) / NR * panelHalves;
            pack_panel_avx512(layout, w, R, P, p, ne - p < NR ? ne - p : NR, 0, Kp, panel);
            memset(panel + Kp * NR * 2, 0, (size_t)((KB * 16 - Kp) * NR * 2 * 2));
        }
        for (long m = 0; m < M; m += AMX_MR) {
            const uint16_t *tile = a + (m / AMX_MR) * KB * AMX_MR * 32;
            long mr = M - m < AMX_MR ? M - m : AMX_MR;
            for (long k0 = 0; k0 < KB; k0 += MUWA_AMX_KB_CHUNK) {  // this A range in L1, every panel past it
                long kb = KB - k0 < MUWA_AMX_KB_CHUNK ? KB - k0 : MUWA_AMX_KB_CHUNK;
                for (long p = nb; p < ne; p += NR)
                    muwa_amx_block_bf16(tile + k0 * 1024, block + (p - nb) / NR * panelHalves + k0 * 1024, kb,
                                        sums + (p - nb) / NR * sumFloats, k0 > 0);
            }
            for (long p = nb; p < ne; p += NR) {
                long nr = ne - p < NR ? ne - p : NR;
                const float *out = sums + (p - nb) / NR * sumFloats;
                __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
                __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
                for (long i = 0; i < mr; i++) {
                    float *ci = c + (m + i) * ldc + p;
                    __m512 s0 = _mm512_load_ps(out + i * NR), s1 = _mm512_load_ps(out + i * NR + 16);
                    if (accumulate) {
                        s0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), s0);
                        s1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), s1);
                    }
                    _mm512_mask_storeu_ps(ci, m0, s0);
                    _mm512_mask_storeu_ps(ci + 16, m1, s1);
                }
            }
        }
    }
    muwa_amx_end();
}
#endif

void muwa_gemm_bf16_reference(muwa_gemm_b_layout layout, const uint16_t *a, long M, const uint16_t *w, long R, long P,
                              float *c, long ldc, long p0, long p1, int accumulate) {
    if (muwa_amx_enabled()) {
        reference_amx_layout(layout, a, M, w, R, P, c, ldc, p0, p1, accumulate);
        return;
    }
    gemm(micro_reference, pack_block, layout, a, M, w, R, P, c, ldc, p0, p1, accumulate);
}

void muwa_gemm_bf16(muwa_gemm_b_layout layout, const uint16_t *a, long M, const uint16_t *w, long R, long P, float *c,
                    long ldc, long p0, long p1, int accumulate) {
#if defined(__x86_64__)
    if (fast_supported()) {
        if (muwa_amx_enabled())
            gemm_amx(layout, a, M, w, R, P, c, ldc, p0, p1, accumulate);
        else if (!muwa_bf16_gemm_fma_enabled() || muwa_gemm_bf16_fma(layout, a, M, w, R, P, c, ldc, p0, p1, accumulate))
            gemm(micro_avx512bf16, pack_block_avx512, layout, a, M, w, R, P, c, ldc, p0, p1, accumulate);
        return;
    }
#endif
    muwa_gemm_bf16_reference(layout, a, M, w, R, P, c, ldc, p0, p1, accumulate);
}

int muwa_gemm_bf16_fast(void) { return fast_supported(); }

long muwa_gemm_bf16_column_block(void) { return NR; }
long muwa_gemm_bf16_column_chunk(void) { return muwa_bf16_gemm_fma_enabled() && !muwa_amx_enabled() ? 2 * NC : NC; }

long muwa_gemm_bf16_row_block(void) { return muwa_amx_enabled() ? AMX_MR : MR; }

long muwa_gemm_bf16_packed_a_count(long M, long R) {
    if (muwa_amx_enabled()) return (M + AMX_MR - 1) / AMX_MR * AMX_MR * ((R + 31) / 32) * 32;
    return (M + MR - 1) / MR * MR * ((R + 1) / 2) * 2;
}

static void round_row(const float *src, uint16_t *dst, long n) {
#if defined(__x86_64__)
    if (fast_supported()) {
        to_bf16_avx512(src, dst, n);
        return;
    }
#endif
    to_bf16_scalar(src, dst, n);
}

void muwa_gemm_bf16_pack_a(const float *src, long M, long R, long lds, uint16_t *dst, long t0, long t1) {
    if (muwa_amx_enabled()) {
        long KB = (R + 31) / 32;
        uint16_t *row = malloc((size_t)(KB * 32) * sizeof(uint16_t));
        for (long t = t0; t < t1; t++)
            for (long i = 0; i < AMX_MR; i++) {
                long m = t * AMX_MR + i;
                if (row && m < M) {
                    round_row(src + m * lds, row, R);
                    for (long k = R; k < KB * 32; k++) row[k] = 0;
                }
                for (long b = 0; b < KB; b++) {
                    uint16_t *d = dst + ((t * KB + b) * AMX_MR + i) * 32;
                    for (long e = 0; e < 32; e++) {
                        long k = 32 * b + e;
                        d[e] = m >= M || k >= R ? 0 : row ? row[k] : f32_to_bf16(src[m * lds + k]);
                    }
                }
            }
        free(row);
        return;
    }
    long Kp = (R + 1) / 2;
    uint16_t *row = malloc((size_t)(2 * Kp) * sizeof(uint16_t));
    uint16_t one[2];
    for (long t = t0; t < t1; t++) {
        uint16_t *tile = dst + t * Kp * MR * 2;
        for (long i = 0; i < MR; i++) {
            long m = t * MR + i;
            uint16_t *r = row ? row : one;
            if (m < M && row) {
                round_row(src + m * lds, row, R);
                if (R & 1) row[R] = 0;
            }
            for (long q = 0; q < Kp; q++) {
                uint16_t *d = tile + (q * MR + i) * 2;
                if (m >= M) {
                    d[0] = d[1] = 0;
                } else if (row) {
                    memcpy(d, r + 2 * q, 4);
                } else {  // no memory for a row: round pair by pair
                    d[0] = f32_to_bf16(src[m * lds + 2 * q]);
                    d[1] = 2 * q + 1 < R ? f32_to_bf16(src[m * lds + 2 * q + 1]) : 0;
                }
            }
        }
    }
    free(row);
}

void muwa_f32_to_bf16_rows(const float *src, long M, long K, long lds, uint16_t *dst, long ldd) {
    for (long m = 0; m < M; m++) {
        round_row(src + m * lds, dst + m * ldd, K);
        for (long k = K; k < ldd; k++) dst[m * ldd + k] = 0;
    }
}
