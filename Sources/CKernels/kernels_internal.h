// Shared by the kernel tables: scalar conversions (the exact ones every table uses for tails) and the
// table type dispatch.c chooses among.
#ifndef MUWA_KERNELS_INTERNAL_H
#define MUWA_KERNELS_INTERNAL_H
#include "ckernels.h"
#include <string.h>

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
    default: return ((const float *)w)[i];
    }
}

/// Bytes per element of `dtype`.
static inline long muwa_dtype_size(muwa_dtype dtype) { return dtype == MUWA_DTYPE_F32 ? 4 : 2; }

typedef void (*muwa_gemv_rows_fn)(muwa_dtype, const void *, const float *, long, float *, long, long, long, long, int);
typedef void (*muwa_widen_fn)(muwa_dtype, const void *, float *, long);

/// One instruction set's kernels.
struct muwa_kernel_table {
    const char *name;
    int (*supported)(void);
    muwa_gemv_rows_fn gemv_rows;
    muwa_widen_fn widen;
};

extern const struct muwa_kernel_table muwa_table_scalar, muwa_table_avx2, muwa_table_avx512;
#endif
