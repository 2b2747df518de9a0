// Hand-written CPU kernels that Swift cannot express with the instructions it is compiled for:
// fused widen-and-dot products over BF16/F16 weights (AVX-512 or AVX2+F16C when the CPU has them,
// chosen at run time, with a portable scalar fallback). Row-major; W is [N, K].
#ifndef MUWA_CKERNELS_H
#define MUWA_CKERNELS_H
#include <stdint.h>

/// y[n] (+)= sum_k widen(W[n, k]) * x[k] for n in [n0, n1).
void muwa_gemv_bf16(const uint16_t *w, const float *x, float *y, long n0, long n1, long K, int accumulate);
void muwa_gemv_f16(const uint16_t *w, const float *x, float *y, long n0, long n1, long K, int accumulate);

/// dst[i] = widen(src[i]) for i < n.
void muwa_widen_bf16(const uint16_t *src, float *dst, long n);
void muwa_widen_f16(const uint16_t *src, float *dst, long n);

/// Which instruction set the kernels dispatch to: "avx512", "avx2", or "scalar".
const char *muwa_kernel_isa(void);
#endif
