// Hand-written CPU kernels that Swift cannot express with the instructions it is compiled for:
// fused (widen-and-)dot products of F32/BF16/F16 weights with a few input rows (AVX-512 or AVX2+F16C
// when the CPU has them, chosen at run time, with a portable scalar fallback). Row-major; W is [N, K].
#ifndef MUWA_CKERNELS_H
#define MUWA_CKERNELS_H
#include <stdint.h>

/// y[m * ldy + n] (+)= sum_k widen(W[n, k]) * x[m * K + k] for m < M, n in [n0, n1): each weight row read
/// once for all M rows, and each row computed exactly as it would be alone (the same operations in the same
/// order whatever M is), so a row's result never depends on the other rows of the call.
void muwa_gemv_rows_f32(const float *w, const float *x, long M, float *y, long ldy, long n0, long n1, long K,
                        int accumulate);
void muwa_gemv_rows_bf16(const uint16_t *w, const float *x, long M, float *y, long ldy, long n0, long n1, long K,
                         int accumulate);
void muwa_gemv_rows_f16(const uint16_t *w, const float *x, long M, float *y, long ldy, long n0, long n1, long K,
                        int accumulate);

/// dst[i] = widen(src[i]) for i < n.
void muwa_widen_bf16(const uint16_t *src, float *dst, long n);
void muwa_widen_f16(const uint16_t *src, float *dst, long n);

/// Which instruction set the kernels dispatch to: "avx512", "avx2", or "scalar".
const char *muwa_kernel_isa(void);
#endif
