// The AVX-512 int8 product (avx512_vnni vpdpbusd: unsigned × signed bytes, 4 products summed into each
// int32 lane). Inputs are made unsigned by adding 128 (xor 0x80), so each dot is Σ (qx + 128) · qw and the
// exact signed dot is that minus 128 · rowsum[n]. K tails use byte masks (zero bytes add nothing), so there
// is no scalar tail. Integer sums are exact: the result is the scalar table's to the bit, and a row's output
// never depends on the other rows. Blocks of up to 4 weight rows × 4 input rows share their loads; with more
// rows (prefill) the input rows go in chunks that stay in L2 while the weights stream past them. CPUs with
// avx512f but without avx512_vnni use the AVX2 product.
#include "kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

/// NB ≤ 4 weight rows from n against G ≤ 4 input rows (constants at every call: registers only).
static inline VNNI __attribute__((always_inline)) void block(const muwa_i8_weight *w, const muwa_i8_input *x,
                                                             long n, long NB, long m, long G, float *y, long ldy,
                                                             long K, int acc) {
    const __m512i offset = _mm512_set1_epi8((char)0x80);
    __m512i a[4][4];
    for (long j = 0; j < NB; j++)
        for (long r = 0; r < G; r++) a[j][r] = _mm512_setzero_si512();
    const int8_t *wq = w->q + n * K, *xq = x->q + m * K;
    long k = 0;
    for (; k + 64 <= K; k += 64) {
        __m512i wv[4], xv[4];
        for (long j = 0; j < NB; j++) wv[j] = _mm512_loadu_si512((const void *)(wq + j * K + k));
        for (long r = 0; r < G; r++) xv[r] = _mm512_xor_si512(_mm512_loadu_si512((const void *)(xq + r * K + k)), offset);
        for (long j = 0; j < NB; j++)
            for (long r = 0; r < G; r++) a[j][r] = _mm512_dpbusd_epi32(a[j][r], xv[r], wv[j]);
    }
    if (k < K) {
        __mmask64 mask = (__mmask64)(~0ULL >> (64 - (K - k)));
        __m512i wv[4], xv[4];
        for (long j = 0; j < NB; j++) wv[j] = _mm512_maskz_loadu_epi8(mask, wq + j * K + k);
        for (long r = 0; r < G; r++)
            xv[r] = _mm512_maskz_mov_epi8(mask, _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, xq + r * K + k), offset));
        for (long j = 0; j < NB; j++)
            for (long r = 0; r < G; r++) a[j][r] = _mm512_dpbusd_epi32(a[j][r], xv[r], wv[j]);
    }
    for (long j = 0; j < NB; j++) {
        int32_t correction = 128 * w->rowsum[n + j];
        for (long r = 0; r < G; r++) {
            int32_t dot = _mm512_reduce_add_epi32(a[j][r]) - correction;
            float s = muwa_i8_finish(w, x, m + r, n + j, K, dot);
            float *yr = y + (m + r) * ldy + n + j;
            *yr = acc ? *yr + s : s;
        }
    }
}

/// NB weight rows from n against input rows [m0, m1), in groups of up to 4.
static inline VNNI __attribute__((always_inline)) void weight_rows(const muwa_i8_weight *w, const muwa_i8_input *x,
                                                                   long n, long NB, long m0, long m1, float *y,
                                                                   long ldy, long K, int acc) {
    long m = m0;
    for (; m + 4 <= m1; m += 4) block(w, x, n, NB, m, 4, y, ldy, K, acc);
    switch (m1 - m) {
    case 1: block(w, x, n, NB, m, 1, y, ldy, K, acc); break;
    case 2: block(w, x, n, NB, m, 2, y, ldy, K, acc); break;
    case 3: block(w, x, n, NB, m, 3, y, ldy, K, acc); break;
    default: break;
    }
}

static VNNI void gemv_i8_vnni(const muwa_i8_weight *w, const muwa_i8_input *x, long M, float *y, long ldy, long n0,
                              long n1, long K, int acc) {
    long chunk = (256L * 1024 / (K > 0 ? K : 1)) & ~3L;  // input rows that stay in L2 (256 KiB of int8)
    if (chunk < 16) chunk = 16;
    for (long m0 = 0; m0 < M; m0 += chunk) {
        long m1 = m0 + chunk < M ? m0 + chunk : M;
        long n = n0;
        for (; n + 4 <= n1; n += 4) weight_rows(w, x, n, 4, m0, m1, y, ldy, K, acc);
        for (; n < n1; n++) weight_rows(w, x, n, 1, m0, m1, y, ldy, K, acc);
    }
}

static int has_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
}

void muwa_gemv_i8_avx512(const muwa_i8_weight *w, const muwa_i8_input *x, long M, float *y, long ldy, long n0,
                         long n1, long K, int acc) {
    static int vnni = -1;  // benign race: every thread computes the same value
    if (vnni < 0) vnni = has_vnni();
    if (vnni) gemv_i8_vnni(w, x, M, y, ldy, n0, n1, K, acc);
    else muwa_gemv_i8_avx2(w, x, M, y, ldy, n0, n1, K, acc);
}
#else
void muwa_gemv_i8_avx512(const muwa_i8_weight *w, const muwa_i8_input *x, long M, float *y, long ldy, long n0,
                         long n1, long K, int acc) {
    muwa_gemv_i8_scalar(w, x, M, y, ldy, n0, n1, K, acc);
}
#endif
