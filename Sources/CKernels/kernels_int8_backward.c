// The input gradient through a frozen int8 weight on VNNI's integer products, on every CPU with VNNI. Per core on
// Emerald Rapids: f32 FMAs 172–180 GFLOP/s, vpdpwssd 355–390 Gop/s, vpdpbusd 618–650 (register-only loops), where
// vdpbf16ps GEMMs ran at about half the speed of FMA ones; on Zen 4 vdpbf16ps about 225 GFLOP/s and vpdpbusd 460
// Gop/s, and the int8 product made an opt-1.3b int8-base training step 1.2x faster than the bf16 GEMM on
// dequantized rows.
//
//   dinp[m, k] += Σ_n dout[m, n] · W[n, k],   W[n, k] = q[n, k] · absmax[n] / 127   (q int8, |q| ≤ 127)
//
// The weight's scale belongs to the reduction index n, so it moves to the gradient: v[m, n] = dout[m, n] ·
// (absmax[n] · 1/127) in f32. v is quantized per row and per block of KC reduction elements to int16 (bits 16:
// v ≈ d · s, s = max |v| / 32767 over the block) or to int8 (bits 8: s = max |v| / 127), and the sums Σ d · q
// are exact in int32. Each block's sums are scaled and added to dinp in f32: dinp[m, k] = fma((float) Σ_b,
// s[m, b], dinp[m, k]), block after block in order of n. The only rounding is d's: at most s/2 per element,
// 2^-16 (int16) or 2^-8 (int8) of the block's largest |v|; the bf16 GEMM on dequantized rows (MatmulBF16.swift)
// rounds both operands to 8 significant bits. int8 is the default (vpdpbusd, about twice int16's speed): as
// bitsandbytes' own int8 training layer (SwitchBackLinear: the output gradient row-wise int8 for this product,
// the weight int8 with one scale) but finer, one scale per row and block of channels taken in the weight's order
// of absmax (`order`), so each block's step suits its channels' scales. MUWA_I8_BACKWARD=int16 keeps 2^-16.
//
//   A (the gradient): tiles of MR rows [tiles][Ng][MR][4 bytes] (groups of G = 2 int16 or 4 int8 values of
//                     consecutive n; Ng = ⌈N/G⌉, zero padded), scales [tiles][NB][MR] f32 (NB = ⌈N/KC⌉) and,
//                     for int8, the rows' sums of d over each block, [tiles][NB][MR] int32
//   B (the weight):   per thread, a KC × NC block as NR-wide panels [kg][NR][4 bytes] (kernels_int8_backward_vnni.c)
#include "kernels_int8_backward.h"
#include "kernels_internal.h"
#include <stdint.h>
#include <stdlib.h>

enum { MR = MUWA_I8B_MR, NR = MUWA_I8B_NR, KC = MUWA_I8B_KC, NC = MUWA_I8B_NC };

long muwa_i8_backward_row_block(void) { return MR; }
long muwa_i8_backward_column_block(void) { return NR; }
long muwa_i8_backward_column_chunk(void) { return NC; }
long muwa_i8_backward_packed_a_bytes(long M, long N, int bits) {
    long G = muwa_i8b_group(bits);
    return (M + MR - 1) / MR * MR * ((N + G - 1) / G) * 4;
}
long muwa_i8_backward_scale_count(long M, long N) { return (M + MR - 1) / MR * MR * ((N + KC - 1) / KC); }
/// Row m's block [n0, n1) of v = dout · (absmax · 1/127) into `v`, returning max |v| (a NaN sticks); dout's
/// element n is dout[idx[n]] where idx is given (a block of the weight's order), else dout[n].
static float block_values(const float *dout, const int32_t *idx, const float *absmax, long n0, long n1, float *v) {
#pragma clang fp contract(off)  // the products as written, as the vector form computes them
    float amax = 0;
    for (long n = n0; n < n1; n++) {
        v[n - n0] = dout[idx ? idx[n] : n] * (absmax[n] * MUWA_I8_DEQUANT);
        float a = fabsf(v[n - n0]);
        amax = a > amax || a != a ? a : amax;
    }
    return amax;
}

/// d[i] = round(v[i] · inv) to nearest even, clamped to ±limit, NaN to 0.
static void round_block(const float *v, long n, float inv, float limit, int16_t *d) {
    for (long i = 0; i < n; i++) {
        float r = rintf(v[i] * inv);
        d[i] = (int16_t)(r == r ? (r > limit ? limit : r < -limit ? -limit : r) : 0);
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512Q __attribute__((target("avx512f,avx512bw,avx512vl")))

static AVX512Q float block_values_avx512(const float *dout, const int32_t *idx, const float *absmax, long n0, long n1,
                                         float *v) {
    const __m512 dq = _mm512_set1_ps(MUWA_I8_DEQUANT), mag = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    __m512 vmax = _mm512_setzero_ps();
    __mmask16 nan = 0;
    long n = n0;
    for (; n + 16 <= n1; n += 16) {
        __m512 d = idx ? _mm512_i32gather_ps(_mm512_loadu_si512(idx + n), dout, 4) : _mm512_loadu_ps(dout + n);
        __m512 x = _mm512_mul_ps(d, _mm512_mul_ps(_mm512_loadu_ps(absmax + n), dq));
        _mm512_storeu_ps(v + n - n0, x);
        __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_castps_si512(mag)));
        nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
        vmax = _mm512_max_ps(vmax, a);
    }
    float amax = nan ? NAN : _mm512_reduce_max_ps(vmax), tail = block_values(dout, idx, absmax, n, n1, v + n - n0);
    return tail > amax || tail != tail ? tail : amax;
}

static AVX512Q void round_block_avx512(const float *v, long n, float inv, float limit, int16_t *d) {
    const __m512 s = _mm512_set1_ps(inv), hi = _mm512_set1_ps(limit), lo = _mm512_set1_ps(-limit);
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(v + i), s),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 c = _mm512_min_ps(hi, _mm512_max_ps(lo, r));  // a NaN stays NaN (the second operand) …
        c = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(r, r, _CMP_ORD_Q), c);  // … and becomes 0
        _mm256_storeu_si256((__m256i *)(d + i), _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(c)));
    }
    round_block(v + i, n - i, inv, limit, d + i);
}

#define AVX2Q __attribute__((target("avx2,fma")))

/// block_values 8 at a time (the same products, no FMA; a NaN sticks).
static AVX2Q float block_values_avx2(const float *dout, const int32_t *idx, const float *absmax, long n0, long n1,
                                     float *v) {
    const __m256 dq = _mm256_set1_ps(MUWA_I8_DEQUANT), mag = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 vmax = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
    long n = n0;
    for (; n + 8 <= n1; n += 8) {
        __m256 d = idx ? _mm256_i32gather_ps(dout, _mm256_loadu_si256((const __m256i *)(const void *)(idx + n)), 4)
                       : _mm256_loadu_ps(dout + n);
        __m256 x = _mm256_mul_ps(d, _mm256_mul_ps(_mm256_loadu_ps(absmax + n), dq));
        _mm256_storeu_ps(v + n - n0, x);
        __m256 a = _mm256_and_ps(x, mag);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
        vmax = _mm256_max_ps(vmax, a);
    }
    float amax = _mm256_movemask_ps(nan) ? NAN : muwa_hmax8(vmax, 0);
    float tail = block_values(dout, idx, absmax, n, n1, v + n - n0);
    return tail > amax || tail != tail ? tail : amax;
}

/// round_block 16 at a time: round to nearest even, clamp, NaN to 0, narrowed to int16 in order.
static AVX2Q void round_block_avx2(const float *v, long n, float inv, float limit, int16_t *d) {
    const __m256 s = _mm256_set1_ps(inv);
    long i = 0;
    __m256i half[2];
    for (; i + 16 <= n; i += 16) {
        for (int h = 0; h < 2; h++) half[h] = muwa_round_clamp8(_mm256_mul_ps(_mm256_loadu_ps(v + i + 8 * h), s), limit);
        // packs works per 128-bit lane (0-3 8-11 | 4-7 12-15): put the quarters back in order (exact: |d| ≤ limit)
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(half[0], half[1]), 0xd8);
        _mm256_storeu_si256((__m256i *)(void *)(d + i), packed);
    }
    round_block(v + i, n - i, inv, limit, d + i);
}
#endif

void muwa_i8_backward_pack_a(const float *dout, long ldd, long M, long N, const float *absmax, const int32_t *order,
                             int bits, void *a, float *scales, int32_t *sums, long t0, long t1) {
    const long G = muwa_i8b_group(bits), Ng = (N + G - 1) / G, NB = (N + KC - 1) / KC;
    const float limit = bits == 8 ? 127.0f : 32767.0f;
    float v[KC], scale[KC];  // scale: a block of absmax in `order`
    int16_t d[KC];
    uint8_t groups[KC * 2 + 8];  // the block's values at their width, zero to a whole group
#if defined(__x86_64__)
    int vector = muwa_avx512bw_selected(), avx2 = !vector && muwa_avx2_selected();
#endif
    // tile by tile, and in a tile block by block: a tile's rows (MR · N floats: 384 KiB at N 8192) stay in L2 while
    // each block gathers its elements from anywhere in them (blocks outside tiles read every row from L3 or memory
    // once per block: 16 % of an opt-1.3b training step); a block's absmax is gathered in `order` once per tile
    for (long t = t0; t < t1; t++) {
        uint8_t *tile = (uint8_t *)a + t * Ng * MR * 4;
        for (long b = 0; b < NB; b++) {
            long n0 = b * KC, n1 = n0 + KC < N ? n0 + KC : N, len = n1 - n0;
            const float *s = absmax + n0;
            if (order) {
                for (long n = 0; n < len; n++) scale[n] = absmax[order[n0 + n]];
                s = scale;
            }
            for (long i = 0; i < MR; i++) {
                long m = t * MR + i;
                float amax = 0;
                if (m < M) {
                    const float *x = order ? dout + m * ldd : dout + m * ldd + n0;
                    const int32_t *idx = order ? order + n0 : NULL;
#if defined(__x86_64__)
                    if (vector) {
                        amax = block_values_avx512(x, idx, s, 0, len, v);
                    } else if (avx2) {
                        amax = block_values_avx2(x, idx, s, 0, len, v);
                    } else
#endif
                        amax = block_values(x, idx, s, 0, len, v);
                }
                scales[(t * NB + b) * MR + i] = amax / limit;
                float inv = amax > 0 && amax <= 3.4e38f ? limit / amax : 0;
                if (m < M) {
#if defined(__x86_64__)
                    if (vector) round_block_avx512(v, len, inv, limit, d);
                    else if (avx2) round_block_avx2(v, len, inv, limit, d);
                    else
#endif
                        round_block(v, len, inv, limit, d);
                } else {
                    memset(d, 0, (size_t)len * 2);
                }
                memset(groups, 0, sizeof groups);
                if (bits == 8) {
                    int32_t sum = 0;
                    for (long n = 0; n < len; n++) {
                        groups[n] = (uint8_t)(int8_t)d[n];
                        sum += d[n];
                    }
                    sums[(t * NB + b) * MR + i] = sum;
                } else {
                    memcpy(groups, d, (size_t)len * 2);
                }
                uint8_t *dst = tile + (n0 / G * MR + i) * 4;
                for (long g = 0; g < (len + G - 1) / G; g++) memcpy(dst + g * MR * 4, groups + 4 * g, 4);
            }
        }
    }
}

/// Columns [p0, p1) of dinp: KC × NC blocks of q packed into the thread's buffer (without one: NR columns at a
/// time in a stack panel), each against every A tile, while the next block streams into L2.
static void gemm(muwa_i8b_micro micro, muwa_i8b_pack pack, int bits, const uint8_t *a, const float *scales,
                 const int32_t *sums, long M, const int8_t *q, const int32_t *order, long N, long K, float *c, long ldc,
                 long p0, long p1, int accumulate) {
    if (M <= 0 || N <= 0 || p1 <= p0) return;
    const long G = muwa_i8b_group(bits), Ng = (N + G - 1) / G, NB = (N + KC - 1) / KC, tiles = (M + MR - 1) / MR;
    long nc_cap = NC;
    uint8_t panel[KC / 2 * NR * 4] __attribute__((aligned(64)));
    uint8_t *block = muwa_thread_buffer((size_t)NC * KC / 2 * 4);
    if (!block) {  // no 256 KiB to spare: one panel at a time, from the stack
        block = panel;
        nc_cap = NR;
    }
    for (long n0 = p0; n0 < p1; n0 += nc_cap) {
        long nc = p1 - n0 < nc_cap ? p1 - n0 : nc_cap;
        for (long b = 0; b < NB; b++) {
            long kg = ((N - b * KC < KC ? N - b * KC : KC) + G - 1) / G;  // groups in this block
            for (long p = 0; p < nc; p += NR)
                pack(q, order, N, K, n0 + p, nc - p < NR ? nc - p : NR, b * KC / G, kg, block + p * kg * 4);
            // the next block: b + 1 of these columns, or the first of the next columns
            long nb = b + 1 < NB ? b + 1 : 0, nn0 = b + 1 < NB ? n0 : n0 + nc_cap;
            long nnc = p1 - nn0 < nc_cap ? p1 - nn0 : nc_cap, nrows = (N - nb * KC < KC ? N - nb * KC : KC);
            for (long m = 0; m < M; m += MR) {
                if (nn0 < p1)  // this tile's share of the block's rows, each where `order` puts it
                    for (long r = nrows * (m / MR) / tiles; r < nrows * (m / MR + 1) / tiles; r++)
                        muwa_prefetch_block_slice((const char *)(muwa_i8b_row(q, order, nb * KC + r, K) + nn0), 0, 1,
                                                  nnc, 0, 1);
                const uint8_t *tile = a + ((m / MR) * Ng + b * KC / G) * MR * 4;
                long at = ((m / MR) * NB + b) * MR;
                for (long p = 0; p < nc; p += NR)
                    micro(M - m < MR ? M - m : MR, kg, tile, block + p * kg * 4, scales + at, sums ? sums + at : NULL,
                          c + m * ldc + n0 + p, ldc, nc - p < NR ? nc - p : NR, accumulate || b > 0);
            }
        }
    }
}

void muwa_i8_backward_reference(int bits, const void *a, const float *scales, const int32_t *sums, long M,
                                const int8_t *q, const int32_t *order, long N, long K, float *c, long ldc, long p0,
                                long p1, int accumulate) {
    if (bits == 8)
        gemm(muwa_i8b_micro_reference8, muwa_i8b_pack_panel8, 8, a, scales, sums, M, q, order, N, K, c, ldc, p0, p1,
             accumulate);
    else
        gemm(muwa_i8b_micro_reference16, muwa_i8b_pack_panel16, 16, a, scales, NULL, M, q, order, N, K, c, ldc, p0,
             p1, accumulate);
}

static int cpu_can(void) {  // VNNI: both widths
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && muwa_avx512_selected();
#else
    return 0;
#endif
}

/// AVX2 without VNNI: int16 gradients only (kernels_int8_backward_avx2.c).
static int avx2_can(void) { return !cpu_can() && muwa_avx2_selected(); }

int muwa_i8_backward_fast(void) { return cpu_can() || avx2_can(); }

const char *muwa_i8_backward_kernel(void) { return cpu_can() ? "VNNI" : avx2_can() ? "AVX2" : "reference"; }

static int forced = -1;  // tests and benches: 0, 8 or 16

int muwa_i8_backward_bits(void) {
    // VNNI: int8 by default (vpdpbusd is about twice vdpbf16ps's rate on Zen 4 and 3.5 times the FMA rate on Intel);
    // AVX2: int16 (its only width) where there is no bf16 GEMM to run instead; MUWA_I8_BACKWARD=int16|int8|bf16
    // overrides (int8 means int16 on AVX2)
    static int by_env = -2;
    if (by_env == -2) {
        const char *env = getenv("MUWA_I8_BACKWARD");
        by_env = !env ? -1 : strcmp(env, "int16") == 0 ? 16 : strcmp(env, "int8") == 0 ? 8 : 0;
    }
    if (cpu_can()) {
        if (forced >= 0) return forced;
        return by_env >= 0 ? by_env : 8;
    }
    if (!avx2_can()) return 0;
    if (forced >= 0) return forced;
    return by_env == 0 || muwa_gemm_bf16_fast() ? 0 : 16;
}

int muwa_i8_backward_select(int bits) {
    if (bits < 0) {
        forced = -1;
        return 1;
    }
    if (bits != 0 && bits != 8 && bits != 16) return 0;
    if (bits == 8 && !cpu_can()) return 0;
    if (bits == 16 && !cpu_can() && !avx2_can()) return 0;
    forced = bits;
    return 1;
}

void muwa_i8_backward(int bits, const void *a, const float *scales, const int32_t *sums, long M, const int8_t *q,
                      const int32_t *order, long N, long K, float *c, long ldc, long p0, long p1, int accumulate) {
#if defined(__x86_64__)
    if (cpu_can()) {
        if (bits == 8)
            gemm(muwa_i8b_micro_vnni8, muwa_i8b_pack_panel8_avx512, 8, a, scales, sums, M, q, order, N, K, c, ldc, p0,
                 p1, accumulate);
        else
            gemm(muwa_i8b_micro_vnni16, muwa_i8b_pack_panel16_avx512, 16, a, scales, NULL, M, q, order, N, K, c, ldc,
                 p0, p1, accumulate);
        return;
    }
    if (bits == 16 && avx2_can()) {
        gemm(muwa_i8b_micro_avx2_16, muwa_i8b_pack_panel16_avx2, 16, a, scales, NULL, M, q, order, N, K, c, ldc, p0,
             p1, accumulate);
        return;
    }
#endif
    muwa_i8_backward_reference(bits, a, scales, sums, M, q, order, N, K, c, ldc, p0, p1, accumulate);
}
