// The AVX2 int8 product: bytes sign-extended to int16 and multiplied pairwise into int32 (vpmaddwd), exact
// like the scalar reference, so every table gives the same bits. One weight row at a time against groups
// of up to 4 input rows; K tails in scalar. A row's output never depends on the other rows.
#include "kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2")))

static inline AVX2 int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/// Weight row n against input rows m ..< m + G (G ≤ 4, constant at every call).
static inline AVX2 __attribute__((always_inline)) void group(const muwa_i8_weight *w, const muwa_i8_input *x, long n,
                                                             long m, long G, float *y, long ldy, long K, int acc) {
    __m256i a[4];
    for (long r = 0; r < G; r++) a[r] = _mm256_setzero_si256();
    const int8_t *row = w->q + n * K, *xq = x->q + m * K;
    long k = 0;
    for (; k + 16 <= K; k += 16) {
        __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(row + k)));
        for (long r = 0; r < G; r++) {
            __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(xq + r * K + k)));
            a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(wv, xv));
        }
    }
    for (long r = 0; r < G; r++) {
        int32_t dot = hsum_epi32(a[r]);
        for (long kk = k; kk < K; kk++) dot += (int32_t)row[kk] * (int32_t)xq[r * K + kk];
        float s = muwa_i8_finish(w, x, m + r, n, K, dot);
        float *yr = y + (m + r) * ldy + n;
        *yr = acc ? *yr + s : s;
    }
}

AVX2 void muwa_gemv_i8_avx2(const muwa_i8_weight *w, const muwa_i8_input *x, long M, float *y, long ldy, long n0,
                            long n1, long K, int acc) {
    for (long n = n0; n < n1; n++) {
        long m = 0;
        for (; m + 4 <= M; m += 4) group(w, x, n, m, 4, y, ldy, K, acc);
        switch (M - m) {
        case 1: group(w, x, n, m, 1, y, ldy, K, acc); break;
        case 2: group(w, x, n, m, 2, y, ldy, K, acc); break;
        case 3: group(w, x, n, m, 3, y, ldy, K, acc); break;
        default: break;
        }
    }
}
#else
void muwa_gemv_i8_avx2(const muwa_i8_weight *w, const muwa_i8_input *x, long M, float *y, long ldy, long n0,
                       long n1, long K, int acc) {
    muwa_gemv_i8_scalar(w, x, M, y, ldy, n0, n1, K, acc);
}
#endif
