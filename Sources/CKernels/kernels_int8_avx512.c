// The AVX-512 int8 product (avx512_vnni vpdpbusd: unsigned × signed bytes, 4 products summed into each
// int32 lane). Inputs are made unsigned by adding 128 (xor 0x80), so each dot is Σ (qx + 128) · qw and the
// exact signed dot is that minus 128 · rowsum[n]. K tails use byte masks (zero bytes add nothing), so there
// is no scalar tail. Integer sums are exact: the result is the scalar table's to the bit, and a row's output
// never depends on the other rows. One weight row at a time (a single sequential stream for the prefetchers)
// against up to 4 input rows that share its loads; with more rows (prefill) the input rows go in chunks that
// stay in L2 while the weights stream past them. CPUs with
// avx512f but without avx512_vnni use the AVX2 product.
#include "kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

/// Weight row n against G ≤ 4 input rows from m (G is a constant at every call: registers only); pf: bytes ahead
/// of the row to prefetch (muwa_gemv_prefetch), 0 for none.
static inline VNNI __attribute__((always_inline)) void block(const muwa_i8_weight *w, const muwa_i8_input *x,
                                                             long n, long m, long G, float *y, long ldy, long K,
                                                             int acc, long pf) {
    const __m512i offset = _mm512_set1_epi8((char)0x80);
    __m512i a[4];
    for (long r = 0; r < G; r++) a[r] = _mm512_setzero_si512();
    const int8_t *wq = w->q + n * K, *xq = x->q + m * K;
    long k = 0;
    for (; k + 64 <= K; k += 64) {
        if (pf) _mm_prefetch((const char *)(wq + k + pf), _MM_HINT_T0);  // past the end: a prefetch never faults
        __m512i wv = _mm512_loadu_si512((const void *)(wq + k)), xv[4];
        for (long r = 0; r < G; r++) xv[r] = _mm512_xor_si512(_mm512_loadu_si512((const void *)(xq + r * K + k)), offset);
        for (long r = 0; r < G; r++) a[r] = _mm512_dpbusd_epi32(a[r], xv[r], wv);
    }
    if (k < K) {
        __mmask64 mask = (__mmask64)(~0ULL >> (64 - (K - k)));
        __m512i wv = _mm512_maskz_loadu_epi8(mask, wq + k);
        for (long r = 0; r < G; r++) {
            __m512i xv = _mm512_maskz_mov_epi8(mask, _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, xq + r * K + k), offset));
            a[r] = _mm512_dpbusd_epi32(a[r], xv, wv);
        }
    }
    int32_t correction = 128 * w->rowsum[n];
    for (long r = 0; r < G; r++) {
        float s = muwa_i8_finish(w, x, m + r, n, K, _mm512_reduce_add_epi32(a[r]) - correction);
        float *yr = y + (m + r) * ldy + n;
        *yr = acc ? *yr + s : s;
    }
}

/// Weight row n against input rows [m0, m1), in groups of up to 4 that share its loads.
static inline VNNI __attribute__((always_inline)) void weight_row(const muwa_i8_weight *w, const muwa_i8_input *x,
                                                                  long n, long m0, long m1, float *y, long ldy,
                                                                  long K, int acc, long pf) {
    long m = m0;
    for (; m + 4 <= m1; m += 4) block(w, x, n, m, 4, y, ldy, K, acc, pf);
    switch (m1 - m) {
    case 1: block(w, x, n, m, 1, y, ldy, K, acc, pf); break;
    case 2: block(w, x, n, m, 2, y, ldy, K, acc, pf); break;
    case 3: block(w, x, n, m, 3, y, ldy, K, acc, pf); break;
    default: break;
    }
}

static VNNI void gemv_i8_vnni(const muwa_i8_weight *w, const muwa_i8_input *x, long M, float *y, long ldy, long n0,
                              long n1, long K, int acc) {
    long chunk = (256L * 1024 / (K > 0 ? K : 1)) & ~3L;  // input rows that stay in L2 (256 KiB of int8)
    long pf = muwa_gemv_prefetch();
    if (chunk < 16) chunk = 16;
    for (long m0 = 0; m0 < M; m0 += chunk) {
        long m1 = m0 + chunk < M ? m0 + chunk : M;
        // one weight row at a time: the weights stream through memory in order. Blocks of 4 rows (4 streams
        // 4·K bytes apart, each K long) ran at 10 GB/s on one Zen 4 core where one stream runs at 22.
        for (long n = n0; n < n1; n++) weight_row(w, x, n, m0, m1, y, ldy, K, acc, pf);
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

// MARK: - input quantization, 16 at a time (kernels_int8.c's quantize_row and outlier scan, the same bits)

#define AVX512Q __attribute__((target("avx512f,avx512bw,avx512vl")))

/// muwa_f16r on 16 lanes: the hardware's float16 conversion (vcvtps2ph, round to nearest even, subnormals and
/// overflow to ±inf as IEEE says) and back. It equals the scalar integer rounding for every finite value and inf;
/// a NaN stays a NaN (its payload may differ, and nothing reads it: NaN quantizes to 0 either way).
static inline AVX512Q __m512 f16r16(__m512 v) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

static inline AVX512Q __m512 abs16(__m512 v) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)));
}

int muwa_i8_quant_avx512_supported(void) { return muwa_avx512bw_selected(); }

AVX512Q float muwa_i8_quantize_row_avx512(const float *xr, long K, float threshold, int8_t *qr) {
    int outliers = threshold > 0;
    const __m512 thr = _mm512_set1_ps(threshold);
    __m512 vmax = _mm512_setzero_ps();
    long k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 a = abs16(f16r16(_mm512_loadu_ps(xr + k)));
        // a > amax with NaN never taken, as the scalar loop; outliers (a ≥ threshold) left out
        __mmask16 keep = _mm512_cmp_ps_mask(a, vmax, _CMP_GT_OQ);
        if (outliers) keep &= _mm512_cmp_ps_mask(a, thr, _CMP_LT_OQ);
        vmax = _mm512_mask_mov_ps(vmax, keep, a);
    }
    float amax = _mm512_reduce_max_ps(vmax);
    amax = muwa_i8_absmax_tail(xr, k, K, threshold, amax);
    float inv = amax > 0 ? 127.0f * (1.0f / amax) : 0;  // as PyTorch computes 127.0 / tensor
    const __m512 vinv = _mm512_set1_ps(inv), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    for (k = 0; k + 16 <= K; k += 16) {
        __m512 v = f16r16(_mm512_loadu_ps(xr + k));
        __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(v, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        r = _mm512_min_ps(hi, _mm512_max_ps(lo, r));  // NaN stays NaN (the second operand), then converts to 0
        __m512i qi = _mm512_cvttps_epi32(r);
        if (outliers) qi = _mm512_maskz_mov_epi32(_mm512_cmp_ps_mask(abs16(v), thr, _CMP_LT_OQ), qi);
        _mm_storeu_si128((__m128i *)(qr + k), _mm512_cvtepi32_epi8(qi));
    }
    muwa_i8_quantize_tail(xr, k, K, threshold, inv, qr);
    return amax;
}

AVX512Q long muwa_i8_scan_outliers_avx512(const float *xr, long K, float threshold, int list, int32_t *out) {
    // |f16r(v)| ≥ threshold needs |v| ≥ threshold / (1 + 2^-11) - 2^-25: a cheap filter, then the exact test
    const __m512 near = _mm512_set1_ps(threshold * 0.999f - 0x1p-24f);
    long found = 0, k = 0;
    for (; k + 16 <= K; k += 16) {
        __mmask16 hit = _mm512_cmp_ps_mask(abs16(_mm512_loadu_ps(xr + k)), near, _CMP_GE_OQ);
        for (; hit; hit &= hit - 1) {
            long i = k + __builtin_ctz(hit);
            found = muwa_i8_outlier_at(xr, i, threshold, list, out, found);
        }
    }
    for (; k < K; k++) found = muwa_i8_outlier_at(xr, k, threshold, list, out, found);
    return found;
}
#else
int muwa_i8_quant_avx512_supported(void) { return 0; }
void muwa_gemv_i8_avx512(const muwa_i8_weight *w, const muwa_i8_input *x, long M, float *y, long ldy, long n0,
                         long n1, long K, int acc) {
    muwa_gemv_i8_scalar(w, x, M, y, ldy, n0, n1, K, acc);
}
#endif
