// The portable table: plain C that builds everywhere. It is the reference the SIMD tables are tested
// against, and what runs on CPUs without AVX2 (or MUWA_KERNEL_ISA=scalar). Each output is one sum over k
// in order, so rows are independent of each other.
#include "kernels_internal.h"

static inline __attribute__((always_inline)) void rows(muwa_dtype dtype, const void *w, const float *x, long M,
                                                        float *y, long ldy, long n0, long n1, long K, int acc) {
    const char *base = (const char *)w;
    long rowBytes = K * muwa_dtype_size(dtype);
    for (long n = n0; n < n1; n++) {
        const void *row = base + n * rowBytes;
        for (long m = 0; m < M; m++) {
            const float *xr = x + m * K;
            float s = 0;
            for (long k = 0; k < K; k++) s += muwa_widen1(dtype, row, k) * xr[k];
            float *yr = y + m * ldy;
            yr[n] = acc ? yr[n] + s : s;
        }
    }
}

// One specialised copy per dtype: `dtype` is a constant inside each.
static void gemv_rows_scalar(muwa_dtype dtype, const void *w, const float *x, long M, float *y, long ldy, long n0,
                             long n1, long K, int acc) {
    switch (dtype) {
    case MUWA_DTYPE_BF16: rows(MUWA_DTYPE_BF16, w, x, M, y, ldy, n0, n1, K, acc); break;
    case MUWA_DTYPE_F16: rows(MUWA_DTYPE_F16, w, x, M, y, ldy, n0, n1, K, acc); break;
    case MUWA_DTYPE_I8: rows(MUWA_DTYPE_I8, w, x, M, y, ldy, n0, n1, K, acc); break;
    default: rows(MUWA_DTYPE_F32, w, x, M, y, ldy, n0, n1, K, acc); break;
    }
}

static void widen_scalar(muwa_dtype dtype, const void *src, float *dst, long n) {
    for (long i = 0; i < n; i++) dst[i] = muwa_widen1(dtype, src, i);
}

static int always(void) { return 1; }

const struct muwa_kernel_table muwa_table_scalar = {"scalar", always, gemv_rows_scalar, widen_scalar,
                                                 muwa_gemv_i8_scalar};
