// Shared by the kernel tables: scalar conversions (the exact ones every table uses for tails) and the
// table type dispatch.c chooses among.
#ifndef MUWA_KERNELS_INTERNAL_H
#define MUWA_KERNELS_INTERNAL_H
#include "ckernels.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

/// 1 on an Intel CPU (CPUID vendor GenuineIntel): some kernels pick the variant measured faster there.
int muwa_cpu_is_intel(void);

/// The bf16 GEMM's blocking (kernels_bf16_gemm.c, kernels_bf16_gemm_fma.c): MR × NR register tiles, KC
/// reduction elements (even) and NC columns (a multiple of NR) per cache block.
enum { MUWA_BF16_MR = 12, MUWA_BF16_NR = 32, MUWA_BF16_KC = 512, MUWA_BF16_NC = 256 };

/// The micro-kernels' dispatch on a tile's row count (MR = 12 in every GEMM that uses it): CALL(n) for mr = n
/// in 1 ..< 12, else CALL(12), so each row count gets its own inlined copy with its sums in registers.
#define MUWA_ROWS_SWITCH_12(mr, CALL)                                                                              \
    switch (mr) {                                                                                                  \
    case 1: CALL(1); break;                                                                                        \
    case 2: CALL(2); break;                                                                                        \
    case 3: CALL(3); break;                                                                                        \
    case 4: CALL(4); break;                                                                                        \
    case 5: CALL(5); break;                                                                                        \
    case 6: CALL(6); break;                                                                                        \
    case 7: CALL(7); break;                                                                                        \
    case 8: CALL(8); break;                                                                                        \
    case 9: CALL(9); break;                                                                                        \
    case 10: CALL(10); break;                                                                                      \
    case 11: CALL(11); break;                                                                                      \
    default: CALL(12); break;                                                                                      \
    }

/// Prefetches into L2 slice `slice` of `slices` of a weight block: `segments` runs of `seg_bytes` bytes, `stride`
/// bytes apart from `base`. The GEMMs spread the next block's slices over the current block's row tiles, so the
/// weights stream from memory while the micro-kernel computes and the next packing reads them from L2.
static inline void muwa_prefetch_block_slice(const char *base, long stride, long segments, long seg_bytes, long slice,
                                             long slices) {
    for (long s = segments * slice / slices; s < segments * (slice + 1) / slices; s++) {
        const char *seg = base + s * stride;
        uintptr_t line = (uintptr_t)seg & ~(uintptr_t)63, end = (uintptr_t)(seg + seg_bytes);
        for (; line < end; line += 64) __builtin_prefetch((const void *)line, 0, 2);
    }
}

/// p[j] = base + min(first + j, last) · stride for j < n: a block's rows, those past the edge repeating the last
/// (the low-rank kernels' blocks then need no branches; what they compute there is never stored).
static inline __attribute__((always_inline)) void muwa_edge_rows(const float **p, long n, const float *base, long first,
                                                                 long last, long stride) {
    for (long j = 0; j < n; j++) p[j] = base + (first + j < last ? first + j : last) * stride;
}

/// A kernel choice tests can force (the *_select functions): *forced is -1 (follow `by_default`) or 0 / 1.
static inline int muwa_choice(const int *forced, int by_default) { return *forced >= 0 ? *forced : by_default; }
/// Sets a choice: on > 0 forces the fast kernel (refused, returning 0, when `possible` is 0), 0 the reference,
/// on < 0 the default again.
static inline int muwa_choice_set(int *forced, int on, int possible) {
    if (on > 0 && !possible) return 0;
    *forced = on < 0 ? -1 : on > 0;
    return 1;
}
/// One NR-wide panel of the bf16 GEMM's B, columns [p, p + nr) and pairs [kp0, kp0 + kp): [kp][NR][2] bf16,
/// zero outside B (x86-64 with AVX-512 only; kernels_bf16_gemm.c).
void muwa_bf16_pack_panel(muwa_gemm_b_layout layout, const uint16_t *w, long R, long P, long p, long nr, long kp0,
                          long kp, uint16_t *dst);

/// muwa_gemm_bf16 with f32 FMAs on the same packed operands (kernels_bf16_gemm_fma.c): 0, or -1 having written
/// nothing when this CPU cannot run it or its per-thread buffer cannot be had.
int muwa_gemm_bf16_fma(muwa_gemm_b_layout layout, const uint16_t *a, long M, const uint16_t *w, long R, long P,
                       float *c, long ldc, long p0, long p1, int accumulate);

static inline float muwa_bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float muwa_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do { e++; man <<= 1; } while ((man & 0x400) == 0);
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {  // infinity, or NaN made quiet as F16C's vcvtph2ps does
        u = sign | 0x7f800000 | (man << 13) | (man ? 0x400000u : 0);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/// Element i of a weight row of `dtype`, as f32.
static inline __attribute__((always_inline)) float muwa_widen1(muwa_dtype dtype, const void *w, long i) {
    switch (dtype) {
    case MUWA_DTYPE_BF16: return muwa_bf16_to_f32(((const uint16_t *)w)[i]);
    case MUWA_DTYPE_F16: return muwa_f16_to_f32(((const uint16_t *)w)[i]);
    case MUWA_DTYPE_I8: return (float)((const int8_t *)w)[i];
    default: return ((const float *)w)[i];
    }
}

/// Bytes per element of `dtype`.
static inline long muwa_dtype_size(muwa_dtype dtype) {
    return dtype == MUWA_DTYPE_F32 ? 4 : dtype == MUWA_DTYPE_I8 ? 1 : 2;
}

/// v rounded to the nearest float16 (ties to even) and back: what bitsandbytes' A.to(torch.float16) does.
/// Integer operations only, so it vectorises and needs no F16C.
static inline float muwa_f16r(float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) return v;                             // inf, NaN
    if (a >= 0x477ff000u) return v > 0 ? INFINITY : -INFINITY;  // rounds past 65504
    if (a < 0x38800000u) return rintf(v * 0x1p24f) * 0x1p-24f;  // float16 subnormals: steps of 2^-24
    u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;
    memcpy(&v, &u, 4);
    return v;
}

/// round(v · inv) as int8: round half to even like torch.round, clamped (v ≤ absmax, so only rounding).
static inline int8_t muwa_i8_quantize1(float v, float inv) {
    float r = rintf(v * inv);
    if (r != r) return 0;  // NaN (an infinite row absmax): 0, as the vector code gives
    return (int8_t)(r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r);
}

/// The row quantization's scalar steps, shared by the scalar code and the vector forms' tails: the largest
/// |f16r(x)| of xr[k0 ..< K] above `amax` (outliers left out when threshold > 0; a NaN never taken) …
static inline float muwa_i8_absmax_tail(const float *xr, long k0, long K, float threshold, float amax) {
    for (long k = k0; k < K; k++) {
        float a = fabsf(muwa_f16r(xr[k]));
        if ((!(threshold > 0) || a < threshold) && a > amax) amax = a;
    }
    return amax;
}
/// … and xr[k0 ..< K] quantized with `inv` (outliers 0).
static inline void muwa_i8_quantize_tail(const float *xr, long k0, long K, float threshold, float inv, int8_t *qr) {
    for (long k = k0; k < K; k++) {
        float v = muwa_f16r(xr[k]);
        qr[k] = (threshold > 0 && fabsf(v) >= threshold) ? 0 : muwa_i8_quantize1(v, inv);
    }
}
/// The outlier scan's exact test of element i (|f16r(xr[i])| ≥ threshold): a hit is listed at out[found] (list) or
/// flagged at out[i]; returns found plus the hit.
static inline long muwa_i8_outlier_at(const float *xr, long i, float threshold, int list, int32_t *out, long found) {
    if (!(fabsf(muwa_f16r(xr[i])) >= threshold)) return found;
    if (list) out[found] = (int32_t)i;
    else out[i] = 1;
    return found + 1;
}

/// bitsandbytes' int8_mm_dequant factor (its constant: 1/127² is 6.2000124e-05, it writes 6.200124e-05, and we
/// match it) and int8_vectorwise_dequant factor 1/127.
#define MUWA_I8_MM_DEQUANT 6.200124e-05f
#define MUWA_I8_DEQUANT 7.874015718698502e-3f

/// The end of every table's int8 product for (input row m, weight row n): the exact int32 dot `dot`
/// dequantized as bitsandbytes' int8_mm_dequant, plus row m's outlier features in f32 in index order. The
/// same scalar operations in every table, so tables agree to the bit.
static inline __attribute__((always_inline)) float muwa_i8_finish(const muwa_i8_weight *w, const muwa_i8_input *x,
                                                                  long m, long n, long K, int32_t dot) {
#pragma clang fp contract(off)  // no FMA in the tables that have it: the same bits everywhere
    float s = (float)dot * (x->absmax[m] * w->absmax[n]) * MUWA_I8_MM_DEQUANT;
    long c0 = x->outlier_start[m], c1 = c0 + x->outlier_count[m];
    if (c1 > c0) {
        const int8_t *row = w->q + n * K;
        const float *xr = x->x + m * K;
        float scale = w->absmax[n] * MUWA_I8_DEQUANT, o = 0;
        for (long c = c0; c < c1; c++) {
            int32_t k = x->outlier_cols[c];
            o += xr[k] * ((float)row[k] * scale);
        }
        s += o;
    }
    return s;
}

typedef void (*muwa_gemv_rows_fn)(muwa_dtype, const void *, const float *, long, float *, long, long, long, long, int);
typedef void (*muwa_widen_fn)(muwa_dtype, const void *, float *, long);
typedef void (*muwa_gemv_i8_fn)(const muwa_i8_weight *, const muwa_i8_input *, long, float *, long, long, long, long,
                                int);

/// One instruction set's kernels.
struct muwa_kernel_table {
    const char *name;
    int (*supported)(void);
    muwa_gemv_rows_fn gemv_rows;
    muwa_widen_fn widen;
    muwa_gemv_i8_fn gemv_i8;
};

/// The int8 products of each table (kernels_int8_*.c; the scalar one in kernels_int8.c).
void muwa_gemv_i8_scalar(const muwa_i8_weight *, const muwa_i8_input *, long, float *, long, long, long, long, int);
void muwa_gemv_i8_avx2(const muwa_i8_weight *, const muwa_i8_input *, long, float *, long, long, long, long, int);
void muwa_gemv_i8_avx512(const muwa_i8_weight *, const muwa_i8_input *, long, float *, long, long, long, long, int);

/// The AVX-512 input quantization (kernels_int8_avx512.c): quantize_row's and the outlier scan's operations,
/// 16 at a time.
int muwa_i8_quant_avx512_supported(void);
float muwa_i8_quantize_row_avx512(const float *xr, long K, float threshold, int8_t *qr);
/// Row xr's outlier features (|f16r(x)| ≥ threshold), in order: list = 1 writes their indices to out and
/// list = 0 sets out[k] = 1; returns how many.
long muwa_i8_scan_outliers_avx512(const float *xr, long K, float threshold, int list, int32_t *out);
/// The AVX2 + F16C forms of quantize_row and the outlier scan (kernels_int8_avx2.c; x86-64 only).
float muwa_i8_quantize_row_avx2(const float *xr, long K, float threshold, int8_t *qr);
long muwa_i8_scan_outliers_avx2(const float *xr, long K, float threshold, int list, int32_t *out);

/// A 64-byte aligned buffer of at least `bytes` that belongs to the calling thread (dispatch.c): kept between
/// calls (a GEMM's packed panels; allocating them per call costs an mmap and page faults each time) and freed
/// when the thread ends. Null when there is no memory. Callers must not free it or hold it across calls that
/// may use it themselves.
void *muwa_thread_buffer(size_t bytes);

#if defined(__x86_64__)
#include <immintrin.h>
/// The end of the bf16 GEMM's micro-kernels: row i's 32 sums (acc0[i], acc1[i]) into c + i · ldc, only the
/// first nr columns, adding what C holds first when `add`.
static inline __attribute__((target("avx512f"), always_inline)) void
muwa_store_sums_x32(__m512 *acc0, __m512 *acc1, long rows, float *c, long ldc, long nr, int add) {
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    for (long i = 0; i < rows; i++) {
        float *ci = c + i * ldc;
        if (add) {
            acc0[i] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), acc0[i]);
            acc1[i] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), acc1[i]);
        }
        _mm512_mask_storeu_ps(ci, m0, acc0[i]);
        _mm512_mask_storeu_ps(ci + 16, m1, acc1[i]);
    }
}

/// The AVX2 kernels' shared steps (kernels_*_avx2.c, kernels_int8_backward.c): lanes [0, n) of 8 (n clipped to
/// 0 … 8) as a maskload/maskstore mask …
static inline __attribute__((target("avx2"), always_inline)) __m256i muwa_lanes8(long n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 0 ? 0 : n > 8 ? 8 : n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
/// … the largest of init and the 8 lanes (a NaN lane never taken) …
static inline __attribute__((target("avx2"), always_inline)) float muwa_hmax8(__m256 v, float init) {
    float l[8];
    _mm256_storeu_ps(l, v);
    for (int i = 0; i < 8; i++) init = l[i] > init ? l[i] : init;
    return init;
}
/// … and x rounded to nearest even, clamped to ±limit, as int32, NaN to 0 (the scalar quantizers' rounding).
static inline __attribute__((target("avx2"), always_inline)) __m256i muwa_round_clamp8(__m256 x, float limit) {
    __m256 r = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 c = _mm256_min_ps(_mm256_set1_ps(limit), _mm256_max_ps(_mm256_set1_ps(-limit), r));  // a NaN stays NaN …
    return _mm256_cvtps_epi32(_mm256_and_ps(c, _mm256_cmp_ps(r, r, _CMP_ORD_Q)));            // … and becomes 0
}

/// A 16 × 16 transpose of 32-bit words (a bf16 pair or four int8 values): row i of the source (16 words at
/// src + i · src_stride bytes) becomes column i of the destination (row e at dst + e · dst_stride bytes). The
/// GEMMs' panel packing of [N, K] weights.
static inline __attribute__((target("avx512f"), always_inline)) void
muwa_transpose16_words(const void *src, long src_stride, void *dst, long dst_stride) {
    __m512i r[16], t[16], u[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512((const char *)src + i * src_stride);
    for (int g = 0; g < 4; g++) {
        t[4 * g] = _mm512_unpacklo_epi32(r[4 * g], r[4 * g + 1]);
        t[4 * g + 1] = _mm512_unpackhi_epi32(r[4 * g], r[4 * g + 1]);
        t[4 * g + 2] = _mm512_unpacklo_epi32(r[4 * g + 2], r[4 * g + 3]);
        t[4 * g + 3] = _mm512_unpackhi_epi32(r[4 * g + 2], r[4 * g + 3]);
        u[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);      // word 4L + 0 of rows 4g…4g+3
        u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);  // word 4L + 1
        u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    char *d = dst;
    for (int e = 0; e < 4; e++) {
        __m512i v0 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x88), v1 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xdd);
        __m512i v2 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x88),
                v3 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xdd);
        _mm512_storeu_si512(d + e * dst_stride, _mm512_shuffle_i32x4(v0, v2, 0x88));
        _mm512_storeu_si512(d + (e + 8) * dst_stride, _mm512_shuffle_i32x4(v0, v2, 0xdd));
        _mm512_storeu_si512(d + (e + 4) * dst_stride, _mm512_shuffle_i32x4(v1, v3, 0x88));
        _mm512_storeu_si512(d + (e + 12) * dst_stride, _mm512_shuffle_i32x4(v1, v3, 0xdd));
    }
}
#endif

#if defined(__x86_64__)
/// C (M × N) (+= when add) A · B with B row-major read in place, AVX-512 (kernels_attention.c): A row-major
/// (A[r · lda + k]) or, with a_cols, stored transposed (element (r, k) at A[k · lda + r]).
void muwa_sgemm_small_avx512(int a_cols, int add, long M, long N, long K, const float *A, long lda, const float *B,
                             long ldb, float *C, long ldc);
/// The bf16 form of muwa_sgemm_small_avx512 (avx512_bf16, kernels_attention.c): operands are 32-bit words, each a
/// pair of bf16 values adjacent along the reduction (K counts pairs), f32 sums.
void muwa_gemm_bf16_words_avx512(int a_cols, int add, long M, long N, long K, const uint32_t *A, long lda,
                                 const uint32_t *B, long ldb, float *C, long ldc);
/// dst[p] = (bf16(src[2p]), bf16(src[2p + 1])), the last word's high half 0 when n is odd (vcvtneps2bf16).
void muwa_to_bf16_words_avx512(const float *src, long n, uint32_t *dst);
/// Rows paired as bf16 words, for a product reducing over rows (V, K, a query block's dO, Q, P, dS):
/// dst[i · ldd + c] = (bf16(x[2i, c]), bf16(x[2i + 1, c])) for i < ⌈rows / 2⌉, c < cols (row 2i + 1 past rows: 0).
void muwa_bf16_row_pairs_avx512(const float *x, long ld, long rows, long cols, uint32_t *dst, long ldd);
/// The rows of x (n × hs, row stride ld) as bf16 words, transposed (Kᵀ, Vᵀ): dst[p · n + j] = (bf16(x[j, 2p]),
/// bf16(x[j, 2p + 1])) for j < n, p < hp = ⌈hs / 2⌉; tmp holds 16 · hp words.
void muwa_bf16_transposed_words_avx512(const float *x, long ld, long n, long hs, uint32_t *tmp, uint32_t *dst);
/// dst[c · ldd + r] = src[r · lds + c] for r < rows, c < cols: 16 × 16 blocks by muwa_transpose16_words, the edges
/// by plain loops (kernels_attention.c; AVX-512F).
void muwa_transpose_f32_avx512(const float *src, long lds, long rows, long cols, float *dst, long ldd);
#endif

/// dS = P ⊙ (dP − rowsum(P ⊙ dP)) in place over a causal query block [t0, t1) (kernels_attention_train.c).
void muwa_softmax_backward_block(float *d, const float *p, long n, long t0, long t1);

/// 1 when the avx512 kernel table is selected (MUWA_KERNEL_ISA, or the best this CPU runs): the condition every
/// AVX-512 kernel outside the tables checks (dispatch.c).
int muwa_avx512_selected(void);
/// 1 when the CPU has avx512f, avx512bw and avx512vl and the avx512 table is selected: the condition of the
/// AVX-512 input quantization and softmax (dispatch.c).
int muwa_avx512bw_selected(void);

// AMX (kernels_amx.c): tile configuration for the calling thread, released at the end; 32 × 32 blocks over kb
// reduction blocks of 64 bytes (layouts in kernels_amx.c).
void muwa_amx_begin(void);
void muwa_amx_end(void);
void muwa_amx_block_i8(const uint8_t *a, const int8_t *b, long kb, int32_t *out, int resume);
void muwa_amx_block_bf16(const uint16_t *a, const uint16_t *b, long kb, float *out, int resume);
/// The calling thread's buffer for an AMX GEMM: *panels B panels of panel_bytes (as many as fit in block_bytes, at
/// least one; fewer when memory is short), then one 32 × 32 block of 4-byte sums per panel. Null without memory.
void *muwa_amx_buffer(long panel_bytes, long block_bytes, long *panels);
/// Reduction blocks (of 64 bytes) per pass of the AMX GEMMs: a 32-row A range of 8 blocks (16 KiB) stays in L1
/// while every panel of the B block passes it.
enum { MUWA_AMX_KB_CHUNK = 8 };

/// 1 when the avx2 or the avx512 table is selected (both need AVX2 and FMA): the condition of the AVX2 kernels
/// outside the tables (dispatch.c).
int muwa_avx2_selected(void);

// The int8 GEMM on AVX2 (kernels_int8_gemm_avx2.c; kernels_int8_gemm.c chooses it where VNNI is missing): A in
// MUWA_I8_AVX2_MR-row tiles of int16 pairs, B panels MUWA_I8_AVX2_NR columns wide.
enum { MUWA_I8_AVX2_MR = 6, MUWA_I8_AVX2_NR = 16 };
long muwa_gemm_i8_avx2_column_chunk(long K);
long muwa_gemm_i8_avx2_packed_a_bytes(long M, long K);
int32_t muwa_gemm_i8_avx2_packed_at(const uint8_t *a, long K, long m, long k);
void muwa_gemm_i8_avx2_pack_a(const muwa_i8_input *x, long M, long K, uint8_t *dst, long t0, long t1);
int muwa_gemm_i8_avx2(const muwa_i8_weight *w, const muwa_i8_input *x, const uint8_t *a, long M, float *y, long ldy,
                      long n0, long n1, long K, int acc, const float *bias);

// kernels_lowrank.c's products on AVX2 + FMA (kernels_lowrank_avx2.c; x86-64 only)
void muwa_lowrank_rows_dot_rl_avx2(float *out, long ldo, const float *x, long ldx, const float *y, long L, long r,
                                   float alpha, long m0, long m1);
void muwa_lowrank_rows_dot_lr_avx2(float *out, long ldo, const float *x, long ldx, const float *y, long L, long r,
                                   float alpha, long m0, long m1);
/// rows_add's blocking (kernels_lowrank.c) and the inner block each vector form supplies: MUWA_LR_ADD_ROWS output
/// rows orow[j][0 ..< lb] += Σ_i coef[j][i] · yb[i · ys + l] for i < ib.
enum { MUWA_LR_ADD_ROWS = 4, MUWA_LR_ADD_LB = 256, MUWA_LR_ADD_IB = 16 };
typedef void (*muwa_lowrank_add_block)(float *const *orow, const float (*coef)[MUWA_LR_ADD_IB], const float *yb,
                                       long ys, long lb, long ib);
void muwa_lowrank_rows_add_block_avx2(float *const *orow, const float (*coef)[MUWA_LR_ADD_IB], const float *yb,
                                      long ys, long lb, long ib);
void muwa_lowrank_cols_acc_avx2(float *z, int z_lr, const float *u, long ldu, const float *x, long ldx, long M, long L,
                                long r, float alpha, long l0, long l1);

/// The vector exponentials' constants (kernels_softmax.c, kernels_softmax_avx2.c): x clamped to [LO, HI], n =
/// round(x · log2 e), r = x − n · (LN2_HI + LN2_LO), e^r ≈ 1 + r + r² · P(r) with Cephes' expf coefficients
/// (highest degree first), then scaled by 2^n.
#define MUWA_EXP_HI 88.72283935546875f
#define MUWA_EXP_LO (-104.0f)
#define MUWA_EXP_LOG2E 1.44269504088896341f
#define MUWA_EXP_LN2_HI 0.693359375f
#define MUWA_EXP_LN2_LO (-2.12194440e-4f)
static const float muwa_exp_poly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                       4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

// kernels_softmax.c's row softmax and exp-sum on AVX2 + FMA (kernels_softmax_avx2.c; x86-64 only)
void muwa_softmax_avx2(float *row, long n, long limit, const uint8_t *mask);
double muwa_exp_sum_avx2(const float *x, long n, float *out, float *max_out);

extern const struct muwa_kernel_table muwa_table_scalar, muwa_table_avx2, muwa_table_avx512;
#endif
