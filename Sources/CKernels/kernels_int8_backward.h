// The int8 base's input-gradient product (kernels_int8_backward.c: the gradient's quantization, the blocking and
// the entry points; kernels_int8_backward_vnni.c: the weight panels and the micro-kernels). Both operands are
// laid out in groups of 4 bytes: 2 int16 values (bits 16) or 4 int8 values (bits 8) of consecutive reduction
// indices n, so the blocking is the same for both widths.
#ifndef MUWA_KERNELS_INT8_BACKWARD_H
#define MUWA_KERNELS_INT8_BACKWARD_H
#include <stdint.h>

enum {
    MUWA_I8B_MR = 12,   // rows of a gradient tile
    MUWA_I8B_NR = 32,   // columns of a weight panel
    MUWA_I8B_KC = 512,  // reduction elements per scale block: KC · 32767 · 127 < 2^31, KC · 255 · 127 < 2^24
    MUWA_I8B_NC = 256,  // columns of a packed weight block
};

/// Reduction elements per 4-byte group.
static inline long muwa_i8b_group(int bits) { return bits == 8 ? 4 : 2; }

/// C[mr rows, nr columns] = fma(Σ_g a · b − correction, s_i, add ? C : 0) over kg groups: a [kg][MR][4 bytes] (the
/// gradient tile), b [kg][NR][4 bytes] (a weight panel), s and d the tile rows' block scales and sums (d: bits 8
/// only).
typedef void (*muwa_i8b_micro)(long mr, long kg, const uint8_t *a, const uint8_t *b, const float *s, const int32_t *d,
                               float *c, long ldc, long nr, int add);
/// Reduction row n of q [N, K] in the product's order (order[n]; null: n).
static inline const int8_t *muwa_i8b_row(const int8_t *q, const int32_t *order, long n, long K) {
    return q + (order ? order[n] : n) * K;
}

/// One NR-wide panel: columns [p, p + nr) of q [N, K], groups [g0, g0 + kg) of reduction rows (taken in `order`),
/// into dst.
typedef void (*muwa_i8b_pack)(const int8_t *q, const int32_t *order, long N, long K, long p, long nr, long g0,
                              long kg, uint8_t *dst);

void muwa_i8b_micro_reference16(long mr, long kg, const uint8_t *a, const uint8_t *b, const float *s,
                                const int32_t *d, float *c, long ldc, long nr, int add);
void muwa_i8b_micro_reference8(long mr, long kg, const uint8_t *a, const uint8_t *b, const float *s,
                               const int32_t *d, float *c, long ldc, long nr, int add);
void muwa_i8b_pack_panel16(const int8_t *q, const int32_t *order, long N, long K, long p, long nr, long g0, long kg,
                           uint8_t *dst);
void muwa_i8b_pack_panel8(const int8_t *q, const int32_t *order, long N, long K, long p, long nr, long g0, long kg,
                          uint8_t *dst);
#if defined(__x86_64__)
// AVX2 without VNNI, bits 16 only (kernels_int8_backward_avx2.c)
void muwa_i8b_micro_avx2_16(long mr, long kg, const uint8_t *a, const uint8_t *b, const float *s, const int32_t *d,
                            float *c, long ldc, long nr, int add);
void muwa_i8b_pack_panel16_avx2(const int8_t *q, const int32_t *order, long N, long K, long p, long nr, long g0,
                                long kg, uint8_t *dst);
void muwa_i8b_micro_vnni16(long mr, long kg, const uint8_t *a, const uint8_t *b, const float *s, const int32_t *d,
                           float *c, long ldc, long nr, int add);
void muwa_i8b_micro_vnni8(long mr, long kg, const uint8_t *a, const uint8_t *b, const float *s, const int32_t *d,
                          float *c, long ldc, long nr, int add);
void muwa_i8b_pack_panel16_avx512(const int8_t *q, const int32_t *order, long N, long K, long p, long nr, long g0, long kg,
                                  uint8_t *dst);
void muwa_i8b_pack_panel8_avx512(const int8_t *q, const int32_t *order, long N, long K, long p, long nr, long g0, long kg,
                                 uint8_t *dst);
#endif
#endif
