// The int8 base's input-gradient product (kernels_int8_backward.c) on AVX2 without VNNI (AMD Zen 2/3, Intel
// before Ice Lake): int16 gradients only (bits 16), the same panels and tiles as the VNNI kernels, each group's
// 2 int16 pairs multiplied and summed into int32 by vpmaddwd and added by vpaddd — the same exact sums as
// vpdpwssd, so the same bits as the reference. int8 gradients would gain nothing here: AVX2 has no unsigned ×
// signed byte dot product that cannot saturate (vpmaddubsw's int16 pair sums can), and 4-byte groups through
// vpmaddwd are int16 pairs again. One Zen 3 core, register-only: 80 G MAC/s, f32 FMAs 50.
//
//   panel: [kg][NR][2] int16 (muwa_i8b_pack_panel16's layout), packed here 32 columns × 2 rows at a time
//   micro-kernel: the VNNI kernels' 12 × 32 tile in four 6 × 16 parts (12 int32 sums in registers each), the
//   16 columns' half outside so it stays in L1 while both row halves pass it.
#include "kernels_int8_backward.h"
#include "kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))

enum { MR = MUWA_I8B_MR, NR = MUWA_I8B_NR, RH = 6, CH = 16 };
_Static_assert(MR == 2 * RH && NR == 2 * CH, "the tile in four parts");

/// Columns [p, p + nr) of q's row n as 32 int16 in two registers (zero past nr or when n ≥ N).
static inline AVX2 __attribute__((always_inline)) void widen_row(const int8_t *q, const int32_t *order, long N,
                                                                 long K, long n, long p, long nr, __m256i *lo,
                                                                 __m256i *hi) {
    if (n >= N) {
        *lo = *hi = _mm256_setzero_si256();
        return;
    }
    const int8_t *row = muwa_i8b_row(q, order, n, K) + p;
    int8_t edge[NR];
    if (nr < NR) {
        memset(edge, 0, sizeof edge);
        memcpy(edge, row, (size_t)nr);
        row = edge;
    }
    *lo = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)row));
    *hi = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(row + 16)));
}

/// muwa_i8b_pack_panel16 with vector loads: rows 2g and 2g + 1 sign-extended to int16 and interleaved.
AVX2 void muwa_i8b_pack_panel16_avx2(const int8_t *q, const int32_t *order, long N, long K, long p, long nr, long g0,
                                     long kg, uint8_t *dst) {
    for (long g = 0; g < kg; g++) {
        long n = 2 * (g0 + g);
        __m256i a0, a1, b0, b1;  // row n: columns 0-15, 16-31; row n + 1 the same
        widen_row(q, order, N, K, n, p, nr, &a0, &a1);
        widen_row(q, order, N, K, n + 1, p, nr, &b0, &b1);
        // per 128-bit lane: unpacklo pairs columns 0-3 | 8-11, unpackhi 4-7 | 12-15
        __m256i l0 = _mm256_unpacklo_epi16(a0, b0), h0 = _mm256_unpackhi_epi16(a0, b0);
        __m256i l1 = _mm256_unpacklo_epi16(a1, b1), h1 = _mm256_unpackhi_epi16(a1, b1);
        uint8_t *o = dst + g * NR * 4;
        _mm256_storeu_si256((__m256i *)(void *)o, _mm256_permute2x128_si256(l0, h0, 0x20));         // 0-7
        _mm256_storeu_si256((__m256i *)(void *)(o + 32), _mm256_permute2x128_si256(l0, h0, 0x31));  // 8-15
        _mm256_storeu_si256((__m256i *)(void *)(o + 64), _mm256_permute2x128_si256(l1, h1, 0x20));  // 16-23
        _mm256_storeu_si256((__m256i *)(void *)(o + 96), _mm256_permute2x128_si256(l1, h1, 0x31));  // 24-31
    }
}

/// Rows [r0, r0 + ROWS) × columns [c0, c0 + 16) of the tile over kg groups: C = fma((float) Σ, s, add ? C : 0),
/// columns past nr untouched.
static inline AVX2 __attribute__((always_inline)) void part(const long ROWS, long r0, long c0, long kg,
                                                            const uint8_t *a, const uint8_t *b, const float *s,
                                                            float *c, long ldc, long nr, int add) {
    __m256i acc0[RH], acc1[RH];
    for (long i = 0; i < ROWS; i++) acc0[i] = acc1[i] = _mm256_setzero_si256();
    for (long g = 0; g < kg; g++) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(const void *)(b + (g * NR + c0) * 4));
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(const void *)(b + (g * NR + c0 + 8) * 4));
        for (long i = 0; i < ROWS; i++) {
            int32_t group;
            memcpy(&group, a + (g * MR + r0 + i) * 4, 4);
            __m256i ai = _mm256_set1_epi32(group);
            acc0[i] = _mm256_add_epi32(acc0[i], _mm256_madd_epi16(ai, b0));
            acc1[i] = _mm256_add_epi32(acc1[i], _mm256_madd_epi16(ai, b1));
        }
    }
    const __m256i m0 = muwa_lanes8(nr - c0), m1 = muwa_lanes8(nr - c0 - 8);
    const int whole = nr - c0 >= 16;
    for (long i = 0; i < ROWS; i++) {
        __m256 si = _mm256_set1_ps(s[r0 + i]);
        float *ci = c + (r0 + i) * ldc + c0;
        if (whole) {
            __m256 c0v = add ? _mm256_loadu_ps(ci) : _mm256_setzero_ps();
            __m256 c1v = add ? _mm256_loadu_ps(ci + 8) : _mm256_setzero_ps();
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc0[i]), si, c0v));
            _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc1[i]), si, c1v));
        } else {
            __m256 c0v = add ? _mm256_maskload_ps(ci, m0) : _mm256_setzero_ps();
            __m256 c1v = add ? _mm256_maskload_ps(ci + 8, m1) : _mm256_setzero_ps();
            _mm256_maskstore_ps(ci, m0, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc0[i]), si, c0v));
            _mm256_maskstore_ps(ci + 8, m1, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc1[i]), si, c1v));
        }
    }
}

/// Rows [r0, r0 + rows) (rows ≤ 6), columns [c0, c0 + 16): one inlined copy per row count.
static AVX2 void part_rows(long rows, long r0, long c0, long kg, const uint8_t *a, const uint8_t *b, const float *s,
                           float *c, long ldc, long nr, int add) {
    switch (rows) {
    case 1: part(1, r0, c0, kg, a, b, s, c, ldc, nr, add); break;
    case 2: part(2, r0, c0, kg, a, b, s, c, ldc, nr, add); break;
    case 3: part(3, r0, c0, kg, a, b, s, c, ldc, nr, add); break;
    case 4: part(4, r0, c0, kg, a, b, s, c, ldc, nr, add); break;
    case 5: part(5, r0, c0, kg, a, b, s, c, ldc, nr, add); break;
    default: part(6, r0, c0, kg, a, b, s, c, ldc, nr, add); break;
    }
}

/// The muwa_i8b_micro contract for bits 16: mr × nr of the 12 × 32 tile, in parts of 6 rows × 16 columns.
AVX2 void muwa_i8b_micro_avx2_16(long mr, long kg, const uint8_t *a, const uint8_t *b, const float *s,
                                 const int32_t *d, float *c, long ldc, long nr, int add) {
    (void)d;
    for (long c0 = 0; c0 < nr; c0 += CH)
        for (long r0 = 0; r0 < mr; r0 += RH)
            part_rows(mr - r0 < RH ? mr - r0 : RH, r0, c0, kg, a, b, s, c, ldc, nr, add);
}
#endif
