// Products with one small dimension r (a LoRA adapter's rank, 4–64) against activations [M, L] (L = K or N of
// a projection, thousands). A BLAS GEMM runs these far below its peak — its blocking assumes every dimension is
// large, and it copies the big operand to pack it — and below the size where the engine splits a GEMM across
// threads; in a LoRA training step of opt-1.3b they were 6 % of the samples, on one core. Three shapes:
//   rows_dot  out[m, i]  = α · Σ_l x[m, l] · y(i, l)     (M, r)   u = x·Aᵀ, g = α·dout·B
//   rows_add  out[m, l] += α · Σ_i u[m, i] · y(i, l)     (M, L)   out += α·u·Bᵀ, dinp += g·A
//   cols_acc  z(i, l)   += α · Σ_m u[m, i] · x[m, l]     (r, L)   dA += gᵀ·x, dB += α·doutᵀ·u
// y(i, l) is y[i·L + l] (an [r, L] matrix such as lora_A) or, with y_lr, y[l·r + i] (an [L, r] one such as
// lora_B); likewise z with z_lr. Each call covers a range of rows (rows_*) or columns (cols_acc), so callers split
// them among threads; a result never depends on the split (each sum runs over its whole reduction in a fixed
// order). The *_reference functions are the plain loops the AVX-512 ones (and kernels_lowrank_avx2.c's) are tested
// against.
#include "kernels_internal.h"

#define Y(i, l) (y_lr ? y[(l) * r + (i)] : y[(i) * L + (l)])

void muwa_lowrank_rows_dot_reference(float *out, long ldo, const float *x, long ldx, const float *y, int y_lr, long L,
                                     long r, float alpha, long m0, long m1) {
    for (long m = m0; m < m1; m++)
        for (long i = 0; i < r; i++) {
            float s = 0;
            for (long l = 0; l < L; l++) s += x[m * ldx + l] * Y(i, l);
            out[m * ldo + i] = alpha * s;
        }
}

void muwa_lowrank_rows_add_reference(float *out, long ldo, const float *u, long ldu, const float *y, int y_lr, long L,
                                     long r, float alpha, long m0, long m1) {
    for (long m = m0; m < m1; m++)
        for (long l = 0; l < L; l++) {
            float s = out[m * ldo + l];
            for (long i = 0; i < r; i++) s += (alpha * u[m * ldu + i]) * Y(i, l);
            out[m * ldo + l] = s;
        }
}

void muwa_lowrank_cols_acc_reference(float *z, int z_lr, const float *u, long ldu, const float *x, long ldx, long M,
                                     long L, long r, float alpha, long l0, long l1) {
    for (long i = 0; i < r; i++)
        for (long l = l0; l < l1; l++) {
            float s = 0;
            for (long m = 0; m < M; m++) s += u[m * ldu + i] * x[m * ldx + l];
            float *zi = z_lr ? &z[l * r + i] : &z[i * L + l];
            *zi += alpha * s;
        }
}
#undef Y

/// rows_add's blocking, shared by the vector forms: blocks of up to MUWA_LR_ADD_LB columns and MUWA_LR_ADD_IB of r
/// (y [L, r] is transposed into the block first), MUWA_LR_ADD_ROWS output rows at a time (rows past m1 repeat the
/// last row: the same loads, products and stores of the same values), each block of rows handed to `block`.
static inline void rows_add_blocked(muwa_lowrank_add_block block, float *out, long ldo, const float *u, long ldu,
                                    const float *y, int y_lr, long L, long r, float alpha, long m0, long m1) {
    enum { ROWS = MUWA_LR_ADD_ROWS, LB = MUWA_LR_ADD_LB, IB = MUWA_LR_ADD_IB };
    float yt[IB * LB] __attribute__((aligned(64)));
    for (long l0 = 0; l0 < L; l0 += LB) {
        long lb = L - l0 < LB ? L - l0 : LB;
        for (long i0 = 0; i0 < r; i0 += IB) {
            long ib = r - i0 < IB ? r - i0 : IB;
            const float *yb = y + i0 * L + l0;
            long ys = L;
            if (y_lr) {
                for (long l = 0; l < lb; l++)
                    for (long i = 0; i < ib; i++) yt[i * LB + l] = y[(l0 + l) * r + i0 + i];
                yb = yt;
                ys = LB;
            }
            for (long m = m0; m < m1; m += ROWS) {
                float *orow[ROWS], coef[ROWS][IB];
                for (long j = 0; j < ROWS; j++) {
                    long row = m + j < m1 ? m + j : m1 - 1;
                    orow[j] = out + row * ldo + l0;
                    for (long i = 0; i < ib; i++) coef[j][i] = alpha * u[row * ldu + i0 + i];
                }
                block(orow, (const float (*)[IB])coef, yb, ys, lb, ib);
            }
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))

static inline __mmask16 tail_mask(long n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

enum { DOT_ROWS = 4, DOT_COLS = 4, ACC_IB = 6, ACC_VECS = 4 };

/// rows_dot with y [r, L]: 4 rows × 4 of r per block, 16 sums of 16 lanes along l, then one reduction each.
/// Rows or columns past the edge repeat the last one and are not stored, so the block code has no branches.
static AVX512 void rows_dot_rl(float *out, long ldo, const float *x, long ldx, const float *y, long L, long r,
                               float alpha, long m0, long m1) {
    for (long m = m0; m < m1; m += DOT_ROWS) {
        const float *xr[DOT_ROWS];
        muwa_edge_rows(xr, DOT_ROWS, x, m, m1 - 1, ldx);
        for (long i0 = 0; i0 < r; i0 += DOT_COLS) {
            const float *yr[DOT_COLS];
            muwa_edge_rows(yr, DOT_COLS, y, i0, r - 1, L);
            __m512 acc[DOT_ROWS][DOT_COLS];
            for (long j = 0; j < DOT_ROWS; j++)
                for (long c = 0; c < DOT_COLS; c++) acc[j][c] = _mm512_setzero_ps();
            for (long l = 0; l < L; l += 16) {
                __mmask16 k = tail_mask(L - l);
                __m512 yv[DOT_COLS];
                for (long c = 0; c < DOT_COLS; c++) yv[c] = _mm512_maskz_loadu_ps(k, yr[c] + l);
                for (long j = 0; j < DOT_ROWS; j++) {
                    __m512 xv = _mm512_maskz_loadu_ps(k, xr[j] + l);
                    for (long c = 0; c < DOT_COLS; c++) acc[j][c] = _mm512_fmadd_ps(xv, yv[c], acc[j][c]);
                }
            }
            for (long j = 0; j < DOT_ROWS && m + j < m1; j++)
                for (long c = 0; c < DOT_COLS && i0 + c < r; c++)
                    out[(m + j) * ldo + i0 + c] = alpha * _mm512_reduce_add_ps(acc[j][c]);
        }
    }
}

/// rows_dot with y [L, r]: sixteen of r at a time in the lanes, x broadcast along l (even and odd l in two
/// sums per row, added at the end).
static AVX512 void rows_dot_lr(float *out, long ldo, const float *x, long ldx, const float *y, long L, long r,
                               float alpha, long m0, long m1) {
    for (long m = m0; m < m1; m += DOT_ROWS) {
        const float *xr[DOT_ROWS];
        muwa_edge_rows(xr, DOT_ROWS, x, m, m1 - 1, ldx);
        for (long i0 = 0; i0 < r; i0 += 16) {
            __mmask16 k = tail_mask(r - i0);
            __m512 even[DOT_ROWS], odd[DOT_ROWS];
            for (long j = 0; j < DOT_ROWS; j++) even[j] = odd[j] = _mm512_setzero_ps();
            long l = 0;
            for (; l + 2 <= L; l += 2) {
                __m512 y0 = _mm512_maskz_loadu_ps(k, y + l * r + i0), y1 = _mm512_maskz_loadu_ps(k, y + (l + 1) * r + i0);
                for (long j = 0; j < DOT_ROWS; j++) {
                    even[j] = _mm512_fmadd_ps(_mm512_set1_ps(xr[j][l]), y0, even[j]);
                    odd[j] = _mm512_fmadd_ps(_mm512_set1_ps(xr[j][l + 1]), y1, odd[j]);
                }
            }
            if (l < L) {
                __m512 y0 = _mm512_maskz_loadu_ps(k, y + l * r + i0);
                for (long j = 0; j < DOT_ROWS; j++) even[j] = _mm512_fmadd_ps(_mm512_set1_ps(xr[j][l]), y0, even[j]);
            }
            __m512 a = _mm512_set1_ps(alpha);
            for (long j = 0; j < DOT_ROWS && m + j < m1; j++)
                _mm512_mask_storeu_ps(out + (m + j) * ldo + i0, k, _mm512_mul_ps(a, _mm512_add_ps(even[j], odd[j])));
        }
    }
}

/// rows_add's inner block on AVX-512: 16 columns at a time, each output vector loaded once, given its products
/// and stored.
static AVX512 void rows_add_block_avx512(float *const *orow, const float (*coef)[MUWA_LR_ADD_IB], const float *yb,
                                         long ys, long lb, long ib) {
    for (long l = 0; l < lb; l += 16) {
        __mmask16 k = tail_mask(lb - l);
        __m512 acc[MUWA_LR_ADD_ROWS];
        for (long j = 0; j < MUWA_LR_ADD_ROWS; j++) acc[j] = _mm512_maskz_loadu_ps(k, orow[j] + l);
        for (long i = 0; i < ib; i++) {
            __m512 yv = _mm512_maskz_loadu_ps(k, yb + i * ys + l);
            for (long j = 0; j < MUWA_LR_ADD_ROWS; j++) acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(coef[j][i]), yv, acc[j]);
        }
        for (long j = 0; j < MUWA_LR_ADD_ROWS; j++) _mm512_mask_storeu_ps(orow[j] + l, k, acc[j]);
    }
}

/// cols_acc: 64 columns × 6 of r in 24 sums over all M rows, then added to z (scattered when z is [L, r]).
static AVX512 void cols_acc_avx512(float *z, int z_lr, const float *u, long ldu, const float *x, long ldx, long M,
                                   long L, long r, float alpha, long l0, long l1) {
    for (long l = l0; l < l1; l += 16 * ACC_VECS) {
        __mmask16 k[ACC_VECS];
        for (long v = 0; v < ACC_VECS; v++) k[v] = l + 16 * v < l1 ? tail_mask(l1 - l - 16 * v) : 0;
        for (long i0 = 0; i0 < r; i0 += ACC_IB) {
            long col[ACC_IB];
            for (long c = 0; c < ACC_IB; c++) col[c] = i0 + c < r ? i0 + c : r - 1;
            __m512 acc[ACC_IB][ACC_VECS];
            for (long c = 0; c < ACC_IB; c++)
                for (long v = 0; v < ACC_VECS; v++) acc[c][v] = _mm512_setzero_ps();
            for (long m = 0; m < M; m++) {
                __m512 xv[ACC_VECS];
                for (long v = 0; v < ACC_VECS; v++) xv[v] = _mm512_maskz_loadu_ps(k[v], x + m * ldx + l + 16 * v);
                for (long c = 0; c < ACC_IB; c++) {
                    __m512 uc = _mm512_set1_ps(u[m * ldu + col[c]]);
                    for (long v = 0; v < ACC_VECS; v++) acc[c][v] = _mm512_fmadd_ps(uc, xv[v], acc[c][v]);
                }
            }
            __m512 a = _mm512_set1_ps(alpha);
            for (long c = 0; c < ACC_IB && i0 + c < r; c++)
                for (long v = 0; v < ACC_VECS; v++) {
                    if (!k[v]) continue;
                    __m512 add = _mm512_mul_ps(a, acc[c][v]);
                    long lv = l + 16 * v;
                    if (!z_lr) {
                        float *zr = z + (i0 + c) * L + lv;
                        _mm512_mask_storeu_ps(zr, k[v], _mm512_add_ps(_mm512_maskz_loadu_ps(k[v], zr), add));
                    } else {
                        float lanes[16];
                        _mm512_storeu_ps(lanes, add);
                        long n = l1 - lv < 16 ? l1 - lv : 16;
                        for (long t = 0; t < n; t++) z[(lv + t) * r + i0 + c] += lanes[t];
                    }
                }
        }
    }
}

static int forced = -1;  // muwa_lowrank_select
/// The vector kernels: the AVX-512 ones under the avx512 table, the AVX2 ones (kernels_lowrank_avx2.c) under avx2.
static int fast(void) { return muwa_choice(&forced, muwa_avx2_selected()); }
int muwa_lowrank_select(int fast_kernels) { return muwa_choice_set(&forced, fast_kernels, muwa_avx2_selected()); }
#else
static int fast(void) { return 0; }
int muwa_lowrank_select(int fast_kernels) { return fast_kernels > 0 ? 0 : 1; }
#endif

void muwa_lowrank_rows_dot(float *out, long ldo, const float *x, long ldx, const float *y, int y_lr, long L, long r,
                           float alpha, long m0, long m1) {
    if (m1 <= m0 || r <= 0) return;
#if defined(__x86_64__)
    if (fast() && L > 0) {
        int wide = muwa_avx512_selected();
        if (y_lr) (wide ? rows_dot_lr : muwa_lowrank_rows_dot_lr_avx2)(out, ldo, x, ldx, y, L, r, alpha, m0, m1);
        else (wide ? rows_dot_rl : muwa_lowrank_rows_dot_rl_avx2)(out, ldo, x, ldx, y, L, r, alpha, m0, m1);
        return;
    }
#endif
    muwa_lowrank_rows_dot_reference(out, ldo, x, ldx, y, y_lr, L, r, alpha, m0, m1);
}

void muwa_lowrank_rows_add(float *out, long ldo, const float *u, long ldu, const float *y, int y_lr, long L, long r,
                           float alpha, long m0, long m1) {
    if (m1 <= m0 || r <= 0 || L <= 0) return;
#if defined(__x86_64__)
    if (fast()) {
        rows_add_blocked(muwa_avx512_selected() ? rows_add_block_avx512 : muwa_lowrank_rows_add_block_avx2, out, ldo,
                         u, ldu, y, y_lr, L, r, alpha, m0, m1);
        return;
    }
#endif
    muwa_lowrank_rows_add_reference(out, ldo, u, ldu, y, y_lr, L, r, alpha, m0, m1);
}

void muwa_lowrank_cols_acc(float *z, int z_lr, const float *u, long ldu, const float *x, long ldx, long M, long L,
                           long r, float alpha, long l0, long l1) {
    if (l1 <= l0 || r <= 0) return;
#if defined(__x86_64__)
    if (fast()) {
        (muwa_avx512_selected() ? cols_acc_avx512 : muwa_lowrank_cols_acc_avx2)(z, z_lr, u, ldu, x, ldx, M, L, r, alpha,
                                                                                l0, l1);
        return;
    }
#endif
    muwa_lowrank_cols_acc_reference(z, z_lr, u, ldu, x, ldx, M, L, r, alpha, l0, l1);
}
