// kernels_lowrank.c's three rank-r products on AVX2 + FMA (8 lanes; masked loads and stores at the edges), the
// same blocking as the AVX-512 forms with half the width: for CPUs without AVX-512 (on Zen 3 the plain loops
// were 13 % of an opt-1.3b LoRA step on an int8 base). A sum still runs over its whole reduction in a fixed
// order, so a result never depends on how rows or columns are split.
#include "kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))

enum { DOT_ROWS = 4, DOT_COLS = 3, ACC_IB = 6, ACC_VECS = 2 };

static inline AVX2 float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// rows_dot with y [r, L]: 4 rows × 3 of r per block, 12 sums of 8 lanes along l, then one reduction each.
AVX2 void muwa_lowrank_rows_dot_rl_avx2(float *out, long ldo, const float *x, long ldx, const float *y, long L, long r,
                                        float alpha, long m0, long m1) {
    for (long m = m0; m < m1; m += DOT_ROWS) {
        const float *xr[DOT_ROWS];
        muwa_edge_rows(xr, DOT_ROWS, x, m, m1 - 1, ldx);
        for (long i0 = 0; i0 < r; i0 += DOT_COLS) {
            const float *yr[DOT_COLS];
            muwa_edge_rows(yr, DOT_COLS, y, i0, r - 1, L);
            __m256 acc[DOT_ROWS][DOT_COLS];
            for (long j = 0; j < DOT_ROWS; j++)
                for (long c = 0; c < DOT_COLS; c++) acc[j][c] = _mm256_setzero_ps();
            for (long l = 0; l < L; l += 8) {
                __m256i k = muwa_lanes8(L - l);
                __m256 yv[DOT_COLS];
                for (long c = 0; c < DOT_COLS; c++) yv[c] = _mm256_maskload_ps(yr[c] + l, k);
                for (long j = 0; j < DOT_ROWS; j++) {
                    __m256 xv = _mm256_maskload_ps(xr[j] + l, k);
                    for (long c = 0; c < DOT_COLS; c++) acc[j][c] = _mm256_fmadd_ps(xv, yv[c], acc[j][c]);
                }
            }
            for (long j = 0; j < DOT_ROWS && m + j < m1; j++)
                for (long c = 0; c < DOT_COLS && i0 + c < r; c++) out[(m + j) * ldo + i0 + c] = alpha * hsum(acc[j][c]);
        }
    }
}

/// rows_dot with y [L, r]: eight of r at a time in the lanes, x broadcast along l (even and odd l in two sums per
/// row, added at the end).
AVX2 void muwa_lowrank_rows_dot_lr_avx2(float *out, long ldo, const float *x, long ldx, const float *y, long L, long r,
                                        float alpha, long m0, long m1) {
    for (long m = m0; m < m1; m += DOT_ROWS) {
        const float *xr[DOT_ROWS];
        muwa_edge_rows(xr, DOT_ROWS, x, m, m1 - 1, ldx);
        for (long i0 = 0; i0 < r; i0 += 8) {
            __m256i k = muwa_lanes8(r - i0);
            __m256 even[DOT_ROWS], odd[DOT_ROWS];
            for (long j = 0; j < DOT_ROWS; j++) even[j] = odd[j] = _mm256_setzero_ps();
            long l = 0;
            for (; l + 2 <= L; l += 2) {
                __m256 y0 = _mm256_maskload_ps(y + l * r + i0, k), y1 = _mm256_maskload_ps(y + (l + 1) * r + i0, k);
                for (long j = 0; j < DOT_ROWS; j++) {
                    even[j] = _mm256_fmadd_ps(_mm256_set1_ps(xr[j][l]), y0, even[j]);
                    odd[j] = _mm256_fmadd_ps(_mm256_set1_ps(xr[j][l + 1]), y1, odd[j]);
                }
            }
            if (l < L) {
                __m256 y0 = _mm256_maskload_ps(y + l * r + i0, k);
                for (long j = 0; j < DOT_ROWS; j++) even[j] = _mm256_fmadd_ps(_mm256_set1_ps(xr[j][l]), y0, even[j]);
            }
            __m256 a = _mm256_set1_ps(alpha);
            for (long j = 0; j < DOT_ROWS && m + j < m1; j++)
                _mm256_maskstore_ps(out + (m + j) * ldo + i0, k, _mm256_mul_ps(a, _mm256_add_ps(even[j], odd[j])));
        }
    }
}

/// rows_add's inner block (kernels_lowrank.c's rows_add_blocked): 8 columns at a time, each output vector loaded
/// once, given its products and stored.
AVX2 void muwa_lowrank_rows_add_block_avx2(float *const *orow, const float (*coef)[MUWA_LR_ADD_IB], const float *yb,
                                           long ys, long lb, long ib) {
    for (long l = 0; l < lb; l += 8) {
        __m256i k = muwa_lanes8(lb - l);
        __m256 acc[MUWA_LR_ADD_ROWS];
        for (long j = 0; j < MUWA_LR_ADD_ROWS; j++) acc[j] = _mm256_maskload_ps(orow[j] + l, k);
        for (long i = 0; i < ib; i++) {
            __m256 yv = _mm256_maskload_ps(yb + i * ys + l, k);
            for (long j = 0; j < MUWA_LR_ADD_ROWS; j++) acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(coef[j][i]), yv, acc[j]);
        }
        for (long j = 0; j < MUWA_LR_ADD_ROWS; j++) _mm256_maskstore_ps(orow[j] + l, k, acc[j]);
    }
}

/// cols_acc: 16 columns × 6 of r in 12 sums over all M rows, then added to z (scattered when z is [L, r]).
AVX2 void muwa_lowrank_cols_acc_avx2(float *z, int z_lr, const float *u, long ldu, const float *x, long ldx, long M,
                                     long L, long r, float alpha, long l0, long l1) {
    for (long l = l0; l < l1; l += 8 * ACC_VECS) {
        __m256i k[ACC_VECS];
        for (long v = 0; v < ACC_VECS; v++) k[v] = muwa_lanes8(l1 - l - 8 * v);
        for (long i0 = 0; i0 < r; i0 += ACC_IB) {
            long col[ACC_IB];
            for (long c = 0; c < ACC_IB; c++) col[c] = i0 + c < r ? i0 + c : r - 1;
            __m256 acc[ACC_IB][ACC_VECS];
            for (long c = 0; c < ACC_IB; c++)
                for (long v = 0; v < ACC_VECS; v++) acc[c][v] = _mm256_setzero_ps();
            for (long m = 0; m < M; m++) {
                __m256 xv[ACC_VECS];
                for (long v = 0; v < ACC_VECS; v++) xv[v] = _mm256_maskload_ps(x + m * ldx + l + 8 * v, k[v]);
                for (long c = 0; c < ACC_IB; c++) {
                    __m256 uc = _mm256_set1_ps(u[m * ldu + col[c]]);
                    for (long v = 0; v < ACC_VECS; v++) acc[c][v] = _mm256_fmadd_ps(uc, xv[v], acc[c][v]);
                }
            }
            __m256 a = _mm256_set1_ps(alpha);
            for (long c = 0; c < ACC_IB && i0 + c < r; c++)
                for (long v = 0; v < ACC_VECS; v++) {
                    long lv = l + 8 * v, n = l1 - lv < 8 ? l1 - lv : 8;
                    if (n <= 0) continue;
                    __m256 add = _mm256_mul_ps(a, acc[c][v]);
                    if (!z_lr) {
                        float *zr = z + (i0 + c) * L + lv;
                        _mm256_maskstore_ps(zr, k[v], _mm256_add_ps(_mm256_maskload_ps(zr, k[v]), add));
                    } else {
                        float sums[8];
                        _mm256_storeu_ps(sums, add);
                        for (long t = 0; t < n; t++) z[(lv + t) * r + i0 + c] += sums[t];
                    }
                }
        }
    }
}
#endif
