// The weight panels and the micro-kernels of the int8 base's input-gradient product (kernels_int8_backward.h has
// the layouts; kernels_int8_backward.c the blocking around them).
//
//   bits 16: panel [kg][NR][2] int16, q sign-extended;  micro-kernel 12 × 32 int32 sums in 24 registers, per
//            group 2 panel loads, 12 broadcasts, 24 vpdpwssd (signed 16 × 16-bit pairs)
//   bits 8:  panel [kg][NR][4] bytes q + 128 (unsigned); micro-kernel the same shape on vpdpbusd (unsigned ×
//            signed bytes, the gradient the signed operand): Σ (q + 128) · d = Σ q · d + 128 · Σ d, so each
//            block's sums lose 128 · d_sum[i] (the tile row's sum of its int8 gradient over the block) before
//            they are scaled. Every sum is exact (|Σ| ≤ KC · 255 · 127 < 2^24) and so is its conversion to f32.
// Per core on Emerald Rapids, register-only: vpdpwssd 355–390 Gop/s, vpdpbusd 618–650: a group of 4 bytes
// carries twice the products with int8 at about the same instruction rate.
#include "kernels_int8_backward.h"
#include "kernels_internal.h"
#include <string.h>

enum { MR = MUWA_I8B_MR, NR = MUWA_I8B_NR };
_Static_assert(MR == 12, "the micro-kernel dispatch (MUWA_ROWS_SWITCH_12) assumes 12-row tiles");
// Panel groups the micro-kernels prefetch ahead: one core, M 256, N 8192, K 2048, best of 3 runs of 15:
// 262 Gop/s without, 293 with 8 (int16).
enum { PF = 8 };

/// dst[(g · NR + j) · 2 + t] = row 2 (g0 + g) + t of q (in `order`), column p + j, as int16; zero outside [N, K).
void muwa_i8b_pack_panel16(const int8_t *q, const int32_t *order, long N, long K, long p, long nr, long g0, long kg,
                           uint8_t *dst) {
    int16_t *d = (int16_t *)(void *)dst;
    for (long g = 0; g < kg; g++)
        for (long j = 0; j < NR; j++)
            for (long t = 0; t < 2; t++) {
                long n = 2 * (g0 + g) + t;
                d[(g * NR + j) * 2 + t] = j < nr && n < N ? muwa_i8b_row(q, order, n, K)[p + j] : 0;
            }
}

/// dst[(g · NR + j) · 4 + t] = row 4 (g0 + g) + t of q (in `order`), column p + j, + 128 as a byte; 128 (q = 0)
/// outside [N, K).
void muwa_i8b_pack_panel8(const int8_t *q, const int32_t *order, long N, long K, long p, long nr, long g0, long kg,
                          uint8_t *dst) {
    for (long g = 0; g < kg; g++)
        for (long j = 0; j < NR; j++)
            for (long t = 0; t < 4; t++) {
                long n = 4 * (g0 + g) + t;
                dst[(g * NR + j) * 4 + t] = (uint8_t)((j < nr && n < N ? muwa_i8b_row(q, order, n, K)[p + j] : 0) + 128);
            }
}

/// Plain loops: the int16 pairs' sums, scaled into C.
void muwa_i8b_micro_reference16(long mr, long kg, const uint8_t *a, const uint8_t *b, const float *s,
                                const int32_t *d, float *c, long ldc, long nr, int add) {
    (void)d;
    const int16_t *a16 = (const int16_t *)(const void *)a, *b16 = (const int16_t *)(const void *)b;
    for (long i = 0; i < mr; i++)
        for (long j = 0; j < nr; j++) {
            int32_t sum = 0;
            for (long g = 0; g < kg; g++)
                for (long t = 0; t < 2; t++) sum += a16[(g * MR + i) * 2 + t] * b16[(g * NR + j) * 2 + t];
            c[i * ldc + j] = fmaf((float)sum, s[i], add ? c[i * ldc + j] : 0);
        }
}

/// Plain loops: the unsigned weight bytes times the signed gradient bytes, less 128 · d[i], scaled into C.
void muwa_i8b_micro_reference8(long mr, long kg, const uint8_t *a, const uint8_t *b, const float *s,
                               const int32_t *d, float *c, long ldc, long nr, int add) {
    for (long i = 0; i < mr; i++)
        for (long j = 0; j < nr; j++) {
            int32_t sum = 0;
            for (long g = 0; g < kg; g++)
                for (long t = 0; t < 4; t++) sum += (int32_t)b[(g * NR + j) * 4 + t] * (int8_t)a[(g * MR + i) * 4 + t];
            c[i * ldc + j] = fmaf((float)(sum - 128 * d[i]), s[i], add ? c[i * ldc + j] : 0);
        }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define VNNI16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

/// pack_panel16 with vector loads: rows 2g and 2g + 1 sign-extended to int16 and interleaved.
VNNI16 void muwa_i8b_pack_panel16_avx512(const int8_t *q, const int32_t *order, long N, long K, long p, long nr,
                                         long g0, long kg, uint8_t *dst) {
    const __mmask32 cols = nr >= NR ? 0xffffffffu : (__mmask32)((1u << nr) - 1);
    const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    for (long g = 0; g < kg; g++) {
        long n = 2 * (g0 + g);
        __m512i r0 = n < N ? _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(cols, muwa_i8b_row(q, order, n, K) + p))
                           : _mm512_setzero_si512();
        __m512i r1 = n + 1 < N
                         ? _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(cols, muwa_i8b_row(q, order, n + 1, K) + p))
                         : _mm512_setzero_si512();
        __m512i lo = _mm512_unpacklo_epi16(r0, r1), hi = _mm512_unpackhi_epi16(r0, r1);  // per 128-bit lane
        _mm512_storeu_si512(dst + g * NR * 4, _mm512_permutex2var_epi64(lo, first, hi));
        _mm512_storeu_si512(dst + g * NR * 4 + 64, _mm512_permutex2var_epi64(lo, second, hi));
    }
}

/// pack_panel8 with vector loads: rows 4g … 4g + 3 interleaved byte by byte, + 128.
VNNI16 void muwa_i8b_pack_panel8_avx512(const int8_t *q, const int32_t *order, long N, long K, long p, long nr,
                                        long g0, long kg, uint8_t *dst) {
    const __mmask32 cols = nr >= NR ? 0xffffffffu : (__mmask32)((1u << nr) - 1);
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    for (long g = 0; g < kg; g++) {
        long n = 4 * (g0 + g);
        __m256i r[4];
        for (long t = 0; t < 4; t++)
            r[t] = n + t < N ? _mm256_maskz_loadu_epi8(cols, muwa_i8b_row(q, order, n + t, K) + p)
                             : _mm256_setzero_si256();
        // per 128-bit lane: bytes of rows 0/1 and 2/3 paired, then the pairs paired: 4-byte groups per column
        __m256i p01l = _mm256_unpacklo_epi8(r[0], r[1]), p01h = _mm256_unpackhi_epi8(r[0], r[1]);
        __m256i p23l = _mm256_unpacklo_epi8(r[2], r[3]), p23h = _mm256_unpackhi_epi8(r[2], r[3]);
        __m256i c0 = _mm256_unpacklo_epi16(p01l, p23l), c1 = _mm256_unpackhi_epi16(p01l, p23l);  // cols 0-3|16-19, 4-7|20-23
        __m256i c2 = _mm256_unpacklo_epi16(p01h, p23h), c3 = _mm256_unpackhi_epi16(p01h, p23h);  // 8-11|24-27, 12-15|28-31
        uint8_t *o = dst + g * NR * 4;
        _mm256_storeu_si256((__m256i *)(void *)o, _mm256_xor_si256(_mm256_permute2x128_si256(c0, c1, 0x20), bias));
        _mm256_storeu_si256((__m256i *)(void *)(o + 32), _mm256_xor_si256(_mm256_permute2x128_si256(c2, c3, 0x20), bias));
        _mm256_storeu_si256((__m256i *)(void *)(o + 64), _mm256_xor_si256(_mm256_permute2x128_si256(c0, c1, 0x31), bias));
        _mm256_storeu_si256((__m256i *)(void *)(o + 96), _mm256_xor_si256(_mm256_permute2x128_si256(c2, c3, 0x31), bias));
    }
}

/// ROWS × 32 sums over kg groups, on vpdpwssd (BITS 16) or vpdpbusd (BITS 8), then scaled into C (add) or stored
/// (C not read: the first block of a product that overwrites).
static inline VNNI16 __attribute__((always_inline)) void micro_rows(const long ROWS, const int BITS, long kg,
                                                                    const uint8_t *a, const uint8_t *b,
                                                                    const float *s, const int32_t *d, float *c,
                                                                    long ldc, long nr, int add) {
    __m512i acc0[MR], acc1[MR];
    for (long i = 0; i < ROWS; i++) acc0[i] = acc1[i] = _mm512_setzero_si512();
    for (long g = 0; g < kg; g++) {
        // the panel comes from L2 (the block's other panels ran in between): ask for it PF groups ahead; past
        // its end this is the next panel, the next call's
        _mm_prefetch((const char *)(b + (g + PF) * NR * 4), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + (g + PF) * NR * 4 + 64), _MM_HINT_T0);
        __m512i b0 = _mm512_loadu_si512(b + g * NR * 4), b1 = _mm512_loadu_si512(b + g * NR * 4 + 64);
        for (long i = 0; i < ROWS; i++) {
            int32_t group;
            memcpy(&group, a + (g * MR + i) * 4, 4);
            __m512i ai = _mm512_set1_epi32(group);
            if (BITS == 16) {
                acc0[i] = _mm512_dpwssd_epi32(acc0[i], ai, b0);
                acc1[i] = _mm512_dpwssd_epi32(acc1[i], ai, b1);
            } else {
                acc0[i] = _mm512_dpbusd_epi32(acc0[i], b0, ai);
                acc1[i] = _mm512_dpbusd_epi32(acc1[i], b1, ai);
            }
        }
    }
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    for (long i = 0; i < ROWS; i++) {
        if (BITS == 8) {
            __m512i correction = _mm512_set1_epi32(128 * d[i]);
            acc0[i] = _mm512_sub_epi32(acc0[i], correction);
            acc1[i] = _mm512_sub_epi32(acc1[i], correction);
        }
        __m512 si = _mm512_set1_ps(s[i]);
        float *ci = c + i * ldc;
        __m512 c0 = add ? _mm512_maskz_loadu_ps(m0, ci) : _mm512_setzero_ps();
        __m512 c1 = add ? _mm512_maskz_loadu_ps(m1, ci + 16) : _mm512_setzero_ps();
        _mm512_mask_storeu_ps(ci, m0, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc0[i]), si, c0));
        _mm512_mask_storeu_ps(ci + 16, m1, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc1[i]), si, c1));
    }
}

VNNI16 void muwa_i8b_micro_vnni16(long mr, long kg, const uint8_t *a, const uint8_t *b, const float *s,
                                  const int32_t *d, float *c, long ldc, long nr, int add) {
#define ROWS(n) micro_rows(n, 16, kg, a, b, s, d, c, ldc, nr, add)
    MUWA_ROWS_SWITCH_12(mr, ROWS)
#undef ROWS
}

VNNI16 void muwa_i8b_micro_vnni8(long mr, long kg, const uint8_t *a, const uint8_t *b, const float *s,
                                 const int32_t *d, float *c, long ldc, long nr, int add) {
#define ROWS(n) micro_rows(n, 8, kg, a, b, s, d, c, ldc, nr, add)
    MUWA_ROWS_SWITCH_12(mr, ROWS)
#undef ROWS
}
#endif
