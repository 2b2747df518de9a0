// The bf16 GEMM's second AVX-512 micro-kernel: the same bf16 products summed with f32 FMAs, for cores where
// vdpbf16ps is the slower instruction. On the Intel cores of this kind (Sapphire/Emerald Rapids) vdpbf16ps
// issues at half the rate of f32 FMAs (72 against 156 GFLOP/s per core measured), so a bf16 GEMM on it lost to
// f32; on AMD's Zen 4 it is the other way round (233 against 117). A product of two bf16 values is exact in f32
// (8-bit × 8-bit significands), so an FMA adds exactly the product vdpbf16ps adds, and summing each pair odd
// element first, then even, as the reference does, gives the reference's sums bit for bit.
//
// Same packed A tiles and B panels as kernels_bf16_gemm.c ([pairs][rows][2] bf16), widened to f32 once where
// they are reused: a B panel once per KC × NC block (then read by every A tile), an A tile once per block row
// (then read against every panel). Layouts after widening:
//   A tile  [kp][MR][2] f32, (odd, even) per pair
//   B panel [kp][2][NR] f32, the NR odd elements of a pair, then the NR even
// The micro-kernel keeps MR × NR = 12 × 32 sums in 24 registers; per pair 4 panel loads, 24 broadcasts, 48 FMAs.
// Column blocks are twice the vdpbf16ps kernel's (512: a widened B block of 1 MiB, in L2), so each A tile is
// widened half as often (opt-1.3b bf16 prefill 104.8/107.9 -> 109.5/109.4 tok/s, same-run A/B).
#include "kernels_internal.h"
#include <stdatomic.h>
#include <stdlib.h>

enum { MR = MUWA_BF16_MR, NR = MUWA_BF16_NR, KC = MUWA_BF16_KC, NC = 2 * MUWA_BF16_NC };
_Static_assert(MR == 12, "the micro-kernel dispatch (MUWA_ROWS_SWITCH_12) assumes 12-row tiles");

// -1: not decided; else whether muwa_gemm_bf16 runs this kernel (where AMX does not run).
static int _Atomic fma_on = -1;

#if defined(__x86_64__)
#include <immintrin.h>
#define FMA512 __attribute__((target("avx512f,avx512bw,avx512vl")))

static int cpu_can(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}

/// A tile [kp][MR] of bf16 pairs (even, odd) → [kp][MR][2] f32 (odd, even).
static FMA512 void widen_tile(const uint16_t *a, long kp, float *dst) {
    const __m512i high = _mm512_set1_epi32((int)0xffff0000u);
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    long n = kp * MR, i = 0;  // pairs
    for (; i + 16 <= n; i += 16) {
        __m512i w = _mm512_loadu_si512(a + 2 * i);
        __m512 odd = _mm512_castsi512_ps(_mm512_and_si512(w, high));
        __m512 even = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
        _mm512_storeu_ps(dst + 2 * i, _mm512_permutex2var_ps(odd, lo, even));
        _mm512_storeu_ps(dst + 2 * i + 16, _mm512_permutex2var_ps(odd, hi, even));
    }
    for (; i < n; i++) {
        dst[2 * i] = muwa_bf16_to_f32(a[2 * i + 1]);
        dst[2 * i + 1] = muwa_bf16_to_f32(a[2 * i]);
    }
}

/// A panel [kp][NR] of bf16 pairs → [kp][2][NR] f32 (the odd elements, then the even).
static FMA512 void widen_panel(const uint16_t *b, long kp, float *dst) {
    const __m512i high = _mm512_set1_epi32((int)0xffff0000u);
    for (long q = 0; q < kp; q++) {
        __m512i w0 = _mm512_loadu_si512(b + q * 2 * NR), w1 = _mm512_loadu_si512(b + q * 2 * NR + 32);
        float *d = dst + q * 2 * NR;
        _mm512_storeu_si512(d, _mm512_and_si512(w0, high));
        _mm512_storeu_si512(d + 16, _mm512_and_si512(w1, high));
        _mm512_storeu_si512(d + 32, _mm512_slli_epi32(w0, 16));
        _mm512_storeu_si512(d + 48, _mm512_slli_epi32(w1, 16));
    }
}

/// C[ROWS, nr] (+)= the tile's sums: per pair, every row's odd product, then its even one.
static inline FMA512 __attribute__((always_inline)) void micro_rows_fma(const long ROWS, long kp, const float *a,
                                                                      const float *b, float *c, long ldc, long nr,
                                                                      int add) {
    __m512 acc0[MR], acc1[MR];
    for (long i = 0; i < ROWS; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
    for (long q = 0; q < kp; q++) {
        const float *bq = b + q * 2 * NR, *aq = a + q * MR * 2;
        __m512 o0 = _mm512_loadu_ps(bq), o1 = _mm512_loadu_ps(bq + 16);
        __m512 e0 = _mm512_loadu_ps(bq + 32), e1 = _mm512_loadu_ps(bq + 48);
        for (long i = 0; i < ROWS; i++) {
            __m512 ao = _mm512_set1_ps(aq[2 * i]);
            acc0[i] = _mm512_fmadd_ps(ao, o0, acc0[i]);
            acc1[i] = _mm512_fmadd_ps(ao, o1, acc1[i]);
        }
        for (long i = 0; i < ROWS; i++) {
            __m512 ae = _mm512_set1_ps(aq[2 * i + 1]);
            acc0[i] = _mm512_fmadd_ps(ae, e0, acc0[i]);
            acc1[i] = _mm512_fmadd_ps(ae, e1, acc1[i]);
        }
    }
    muwa_store_sums_x32(acc0, acc1, ROWS, c, ldc, nr, add);
}

static FMA512 void micro_fma(long mr, long kp, const float *a, const float *b, float *c, long ldc, long nr, int add) {
#define ROWS(n) micro_rows_fma(n, kp, a, b, c, ldc, nr, add)
    MUWA_ROWS_SWITCH_12(mr, ROWS)
#undef ROWS
}

int muwa_gemm_bf16_fma(muwa_gemm_b_layout layout, const uint16_t *a, long M, const uint16_t *w, long R, long P,
                       float *c, long ldc, long p0, long p1, int accumulate) {
    if (M <= 0 || p1 <= p0 || R <= 0) return 0;
    long Kp = (R + 1) / 2, kcMax = R < KC ? 2 * Kp : KC;  // reduction elements per block
    // per thread: the widened B block (NC × kcMax f32), the widened A tile (MR × kcMax f32), one bf16 panel
    float *block = muwa_thread_buffer((size_t)((NC + MR) * kcMax * 4 + NR * kcMax * 2 + 128));
    if (!block) return -1;
    float *tile = block + NC * kcMax;
    uint16_t *panel = (uint16_t *)(tile + MR * kcMax);
    for (long n0 = p0; n0 < p1; n0 += NC) {  // the C block [M, nc] stays in cache across the R blocks
        long nc = p1 - n0 < NC ? p1 - n0 : NC;
        for (long r0 = 0; r0 < R; r0 += KC) {
            long kp = ((R - r0 < KC ? R - r0 : KC) + 1) / 2;  // pairs in this block
            int add = accumulate || r0 > 0;
            for (long p = 0; p < nc; p += NR) {
                muwa_bf16_pack_panel(layout, w, R, P, n0 + p, nc - p < NR ? nc - p : NR, r0 / 2, kp, panel);
                widen_panel(panel, kp, block + p * kp * 2);
            }
            for (long m = 0; m < M; m += MR) {
                long mr = M - m < MR ? M - m : MR;
                widen_tile(a + ((m / MR) * Kp + r0 / 2) * MR * 2, kp, tile);
                for (long p = 0; p < nc; p += NR)
                    micro_fma(mr, kp, tile, block + p * kp * 2, c + m * ldc + n0 + p, ldc, nc - p < NR ? nc - p : NR,
                              add);
            }
        }
    }
    return 0;
}
#else
static int cpu_can(void) { return 0; }
int muwa_gemm_bf16_fma(muwa_gemm_b_layout layout, const uint16_t *a, long M, const uint16_t *w, long R, long P,
                       float *c, long ldc, long p0, long p1, int accumulate) {
    (void)layout, (void)a, (void)M, (void)w, (void)R, (void)P, (void)c, (void)ldc, (void)p0, (void)p1;
    (void)accumulate;
    return -1;
}
#endif

int muwa_bf16_gemm_fma_enabled(void) {
    int on = fma_on;
    if (on >= 0) return on;
    // "fma" or "dpbf16": this kernel or vdpbf16ps, whatever the CPU; by default on Intel (half-rate vdpbf16ps)
    const char *env = getenv("MUWA_BF16_GEMM");
    on = cpu_can() && (env ? strcmp(env, "fma") == 0 : muwa_cpu_is_intel());
    fma_on = on;
    return on;
}

int muwa_bf16_gemm_fma_select(int on) {
    if (on && !cpu_can()) return 0;
    fma_on = on ? 1 : 0;
    return 1;
}
