// The input gradient through a frozen int8 weight on VNNI's 16-bit products (vpdpwssd), for CPUs where the bf16
// GEMM runs on f32 FMAs (Intel without AMX, where vdpbf16ps GEMMs ran at about half the speed of FMA ones). Per
// core on Emerald Rapids: f32 FMAs 172–180 GFLOP/s, vpdpwssd 355–390 Gop/s (register-only loops).
//
//   dinp[m, k] += Σ_n dout[m, n] · W[n, k],   W[n, k] = q[n, k] · absmax[n] / 127   (q int8, |q| ≤ 127)
//
// The weight's scale belongs to the reduction index n, so it moves to the gradient: v[m, n] = dout[m, n] ·
// (absmax[n] · 1/127) in f32. v is quantized per row and per block of KC reduction elements to int16,
// v ≈ d[m, n] · s[m, b] with s = max |v| / 32767 over the block, and the sums Σ d · q are exact in int32
// (≤ KC · 32767 · 127 < 2³¹ in magnitude). Each block's sums are scaled and added to dinp in f32:
// dinp[m, k] = fma((float) Σ_b, s[m, b], dinp[m, k]), block after block in order of n.
// The only rounding is d's: at most s/2 per element, 2^-16 of the block's largest |v|, where the bf16 GEMM on
// dequantized rows (MatmulBF16.swift) rounds both operands to 8 significant bits.
//
//   A (the gradient): tiles of MR rows [tiles][Np][MR][2] int16 (pairs of consecutive n; Np = ⌈N/2⌉, zero
//                     padded), scales [tiles][NB][MR] f32 (NB = ⌈N/KC⌉)
//   B (the weight):   per thread, a KC × NC block as NR-wide panels [kp][NR][2] int16, packed from q's rows
//   micro-kernel:     MR × NR = 12 × 32 int32 sums in 24 registers; per pair 2 panel loads, 12 broadcasts,
//                     24 vpdpwssd
#include "kernels_internal.h"
#include <stdint.h>
#include <stdlib.h>

enum { MR = 12, NR = 32, KC = 512, NC = 256 };  // KC · 32767 · 127 < 2^31
_Static_assert(MR == 12, "the micro-kernel dispatch (MUWA_ROWS_SWITCH_12) assumes 12-row tiles");
// Panel pairs the micro-kernel prefetches ahead: one core, M 256, N 8192, K 2048, best of 3 runs of 15:
// 262 Gop/s without, 293 with 8 (vpdpwssd's peak here 355–390).
enum { PF = 8 };

long muwa_i8_backward_row_block(void) { return MR; }
long muwa_i8_backward_column_block(void) { return NR; }
long muwa_i8_backward_packed_a_count(long M, long N) { return (M + MR - 1) / MR * MR * ((N + 1) / 2) * 2; }
long muwa_i8_backward_scale_count(long M, long N) { return (M + MR - 1) / MR * MR * ((N + KC - 1) / KC); }

/// Row m's block [n0, n1) of v = dout · (absmax · 1/127) into `v`, returning max |v| (a NaN sticks).
static float block_values(const float *dout, const float *absmax, long n0, long n1, float *v) {
#pragma clang fp contract(off)  // the products as written, as the vector form computes them
    float amax = 0;
    for (long n = n0; n < n1; n++) {
        v[n - n0] = dout[n] * (absmax[n] * MUWA_I8_DEQUANT);
        float a = fabsf(v[n - n0]);
        amax = a > amax || a != a ? a : amax;
    }
    return amax;
}

/// d[i] = round(v[i] · inv) to nearest even, clamped to ±32767, NaN to 0.
static void round_block(const float *v, long n, float inv, int16_t *d) {
    for (long i = 0; i < n; i++) {
        float r = rintf(v[i] * inv);
        d[i] = (int16_t)(r == r ? (r > 32767.0f ? 32767.0f : r < -32767.0f ? -32767.0f : r) : 0);
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512Q __attribute__((target("avx512f,avx512bw,avx512vl")))

static AVX512Q float block_values_avx512(const float *dout, const float *absmax, long n0, long n1, float *v) {
    const __m512 dq = _mm512_set1_ps(MUWA_I8_DEQUANT), mag = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    __m512 vmax = _mm512_setzero_ps();
    __mmask16 nan = 0;
    long n = n0;
    for (; n + 16 <= n1; n += 16) {
        __m512 x = _mm512_mul_ps(_mm512_loadu_ps(dout + n), _mm512_mul_ps(_mm512_loadu_ps(absmax + n), dq));
        _mm512_storeu_ps(v + n - n0, x);
        __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_castps_si512(mag)));
        nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
        vmax = _mm512_max_ps(vmax, a);
    }
    float amax = nan ? NAN : _mm512_reduce_max_ps(vmax), tail = block_values(dout, absmax, n, n1, v + n - n0);
    return tail > amax || tail != tail ? tail : amax;
}

static AVX512Q void round_block_avx512(const float *v, long n, float inv, int16_t *d) {
    const __m512 s = _mm512_set1_ps(inv), hi = _mm512_set1_ps(32767.0f), lo = _mm512_set1_ps(-32767.0f);
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(v + i), s),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 c = _mm512_min_ps(hi, _mm512_max_ps(lo, r));  // a NaN stays NaN (the second operand) …
        c = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(r, r, _CMP_ORD_Q), c);  // … and becomes 0
        _mm256_storeu_si256((__m256i *)(d + i), _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(c)));
    }
    round_block(v + i, n - i, inv, d + i);
}
#endif

void muwa_i8_backward_pack_a(const float *dout, long ldd, long M, long N, const float *absmax, int16_t *a,
                             float *scales, long t0, long t1) {
    long Np = (N + 1) / 2, NB = (N + KC - 1) / KC;
    float v[KC];
    int16_t d[KC + 1];
#if defined(__x86_64__)
    int vector = muwa_avx512bw_selected();
#endif
    for (long t = t0; t < t1; t++) {
        int16_t *tile = a + t * Np * MR * 2;
        float *ts = scales + t * NB * MR;
        for (long i = 0; i < MR; i++) {
            long m = t * MR + i;
            for (long b = 0; b < NB; b++) {
                long n0 = b * KC, n1 = n0 + KC < N ? n0 + KC : N, len = n1 - n0;
                float amax = 0;
                if (m < M) {
#if defined(__x86_64__)
                    if (vector) {
                        amax = block_values_avx512(dout + m * ldd, absmax, n0, n1, v);
                    } else
#endif
                        amax = block_values(dout + m * ldd, absmax, n0, n1, v);
                }
                ts[b * MR + i] = amax / 32767.0f;
                float inv = amax > 0 && amax <= 3.4e38f ? 32767.0f / amax : 0;
                if (m < M) {
#if defined(__x86_64__)
                    if (vector) round_block_avx512(v, len, inv, d);
                    else
#endif
                        round_block(v, len, inv, d);
                } else {
                    memset(d, 0, (size_t)len * 2);
                }
                d[len] = 0;  // the pad of an odd N
                int16_t *dst = tile + (n0 / 2 * MR + i) * 2;
                for (long p = 0; p < (len + 1) / 2; p++) memcpy(dst + p * MR * 2, d + 2 * p, 4);
            }
        }
    }
}

/// One NR-wide panel of q: dst[(q' · NR + j) · 2 + t] = q[2 (kp0 + q') + t, p + j], zero outside [N, K).
static void pack_panel(const int8_t *q, long N, long K, long p, long nr, long kp0, long kp, int16_t *dst) {
    for (long qq = 0; qq < kp; qq++)
        for (long j = 0; j < NR; j++)
            for (long t = 0; t < 2; t++) {
                long n = 2 * (kp0 + qq) + t;
                dst[(qq * NR + j) * 2 + t] = j < nr && n < N ? q[n * K + p + j] : 0;
            }
}

/// Plain loops over the packed operands: C[mr rows, nr columns] = fma(Σ_q a · b, s_i, C), int32 sums.
static void micro_reference(long mr, long kp, const int16_t *a, const int16_t *b, const float *s, float *c, long ldc,
                            long nr) {
    for (long i = 0; i < mr; i++)
        for (long j = 0; j < nr; j++) {
            int32_t sum = 0;
            for (long q = 0; q < kp; q++)
                sum += a[(q * MR + i) * 2] * b[(q * NR + j) * 2] + a[(q * MR + i) * 2 + 1] * b[(q * NR + j) * 2 + 1];
            c[i * ldc + j] = fmaf((float)sum, s[i], c[i * ldc + j]);
        }
}

typedef void (*micro_fn)(long mr, long kp, const int16_t *a, const int16_t *b, const float *s, float *c, long ldc,
                         long nr);
typedef void (*pack_fn)(const int8_t *q, long N, long K, long p, long nr, long kp0, long kp, int16_t *dst);

/// Columns [p0, p1) of dinp: KC × NC blocks of q packed into the thread's buffer (without one: NR columns at a
/// time in a stack panel), each against every A tile, while the next block streams into L2.
static void gemm(micro_fn micro, pack_fn pack, const int16_t *a, const float *scales, long M, const int8_t *q, long N,
                 long K, float *c, long ldc, long p0, long p1) {
    if (M <= 0 || N <= 0 || p1 <= p0) return;
    long Np = (N + 1) / 2, NB = (N + KC - 1) / KC, tiles = (M + MR - 1) / MR, nc_cap = NC;
    int16_t panel[KC * NR] __attribute__((aligned(64)));
    int16_t *block = muwa_thread_buffer((size_t)NC * KC * 2);
    if (!block) {  // no 256 KiB to spare: one panel at a time, from the stack
        block = panel;
        nc_cap = NR;
    }
    for (long n0 = p0; n0 < p1; n0 += nc_cap) {
        long nc = p1 - n0 < nc_cap ? p1 - n0 : nc_cap;
        for (long b = 0; b < NB; b++) {
            long kp = ((N - b * KC < KC ? N - b * KC : KC) + 1) / 2;  // pairs in this block
            for (long p = 0; p < nc; p += NR)
                pack(q, N, K, n0 + p, nc - p < NR ? nc - p : NR, b * KC / 2, kp, block + p * kp * 2);
            // the next block: b + 1 of these columns, or the first of the next columns
            long nb = b + 1 < NB ? b + 1 : 0, nn0 = b + 1 < NB ? n0 : n0 + nc_cap;
            long nnc = p1 - nn0 < nc_cap ? p1 - nn0 : nc_cap, nrows = (N - nb * KC < KC ? N - nb * KC : KC);
            for (long m = 0; m < M; m += MR) {
                if (nn0 < p1) muwa_prefetch_block_slice((const char *)(q + nb * KC * K + nn0), K, nrows, nnc, m / MR, tiles);
                const int16_t *tile = a + ((m / MR) * Np + b * KC / 2) * MR * 2;
                const float *s = scales + ((m / MR) * NB + b) * MR;
                for (long p = 0; p < nc; p += NR)
                    micro(M - m < MR ? M - m : MR, kp, tile, block + p * kp * 2, s, c + m * ldc + n0 + p, ldc,
                          nc - p < NR ? nc - p : NR);
            }
        }
    }
}

void muwa_i8_backward_reference(const int16_t *a, const float *scales, long M, const int8_t *q, long N, long K,
                                float *c, long ldc, long p0, long p1) {
    gemm(micro_reference, pack_panel, a, scales, M, q, N, K, c, ldc, p0, p1);
}

#if defined(__x86_64__)
#define VNNI16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

/// pack_panel with vector loads: rows 2q and 2q + 1 sign-extended to int16 and interleaved.
static VNNI16 void pack_panel_vnni(const int8_t *q, long N, long K, long p, long nr, long kp0, long kp, int16_t *dst) {
    const __mmask32 cols = nr >= NR ? 0xffffffffu : (__mmask32)((1u << nr) - 1);
    const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    for (long qq = 0; qq < kp; qq++) {
        long n = 2 * (kp0 + qq);
        __m512i r0 = n < N ? _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(cols, q + n * K + p)) : _mm512_setzero_si512();
        __m512i r1 = n + 1 < N ? _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(cols, q + (n + 1) * K + p))
                               : _mm512_setzero_si512();
        __m512i lo = _mm512_unpacklo_epi16(r0, r1), hi = _mm512_unpackhi_epi16(r0, r1);  // per 128-bit lane
        _mm512_storeu_si512(dst + qq * NR * 2, _mm512_permutex2var_epi64(lo, first, hi));
        _mm512_storeu_si512(dst + qq * NR * 2 + 32, _mm512_permutex2var_epi64(lo, second, hi));
    }
}

static inline VNNI16 __attribute__((always_inline)) void micro_rows(const long ROWS, long kp, const int16_t *a,
                                                                    const int16_t *b, const float *s, float *c,
                                                                    long ldc, long nr) {
    __m512i acc0[MR], acc1[MR];
    for (long i = 0; i < ROWS; i++) acc0[i] = acc1[i] = _mm512_setzero_si512();
    for (long q = 0; q < kp; q++) {
        // the panel comes from L2 (the block's other panels ran in between): ask for it PF pairs ahead; past its
        // end this is the next panel, the next call's
        _mm_prefetch((const char *)(b + (q + PF) * NR * 2), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + (q + PF) * NR * 2 + 32), _MM_HINT_T0);
        __m512i b0 = _mm512_loadu_si512(b + q * NR * 2), b1 = _mm512_loadu_si512(b + q * NR * 2 + 32);
        for (long i = 0; i < ROWS; i++) {
            int32_t pair;
            memcpy(&pair, a + (q * MR + i) * 2, 4);
            __m512i ai = _mm512_set1_epi32(pair);
            acc0[i] = _mm512_dpwssd_epi32(acc0[i], ai, b0);
            acc1[i] = _mm512_dpwssd_epi32(acc1[i], ai, b1);
        }
    }
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    for (long i = 0; i < ROWS; i++) {
        __m512 si = _mm512_set1_ps(s[i]);
        float *ci = c + i * ldc;
        _mm512_mask_storeu_ps(ci, m0, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc0[i]), si, _mm512_maskz_loadu_ps(m0, ci)));
        _mm512_mask_storeu_ps(ci + 16, m1,
                              _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc1[i]), si, _mm512_maskz_loadu_ps(m1, ci + 16)));
    }
}

static VNNI16 void micro_vnni(long mr, long kp, const int16_t *a, const int16_t *b, const float *s, float *c, long ldc,
                              long nr) {
#define ROWS(n) micro_rows(n, kp, a, b, s, c, ldc, nr)
    MUWA_ROWS_SWITCH_12(mr, ROWS)
#undef ROWS
}

static int cpu_can(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && muwa_avx512_selected();
}
#else
static int cpu_can(void) { return 0; }
#endif

int muwa_i8_backward_fast(void) { return cpu_can(); }

static int forced = -1;  // muwa_choice: tests and benches

int muwa_i8_backward_enabled(void) {
    // by default where the bf16 GEMM runs on FMAs; MUWA_I8_BACKWARD=int16|bf16 overrides
    static int by_env = -2;
    if (by_env == -2) {
        const char *env = getenv("MUWA_I8_BACKWARD");
        by_env = env ? strcmp(env, "int16") == 0 : -1;
    }
    int by_default = by_env >= 0 ? by_env : muwa_bf16_gemm_fma_enabled();
    return cpu_can() && muwa_choice(&forced, by_default);
}

int muwa_i8_backward_select(int on) { return muwa_choice_set(&forced, on, cpu_can()); }

void muwa_i8_backward(const int16_t *a, const float *scales, long M, const int8_t *q, long N, long K, float *c,
                      long ldc, long p0, long p1) {
#if defined(__x86_64__)
    if (cpu_can()) {
        gemm(micro_vnni, pack_panel_vnni, a, scales, M, q, N, K, c, ldc, p0, p1);
        return;
    }
#endif
    muwa_i8_backward_reference(a, scales, M, q, N, K, c, ldc, p0, p1);
}
