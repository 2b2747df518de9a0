// Hand-written CPU kernels that Swift cannot express with the instructions it is compiled for: fused
// (widen-and-)dot products of F32/BF16/F16 weights with a few input rows, and widening conversions.
//
// One function table per instruction set (kernels_scalar.c: portable, always built, the reference;
// kernels_avx2.c and kernels_avx512.c: x86-64 only), picked once at first use: the best the CPU has, or
// the one MUWA_KERNEL_ISA names ("scalar", "avx2", "avx512") when the CPU has it. Row-major; W is [N, K].
//
// What "bit-identical alone and in a batch" means: with one table (one process, one ISA), a row's output is
// computed with the same operations in the same order whatever the other rows of the call are, so a
// sequence decodes to the same bits alone or in any batch. Across tables the order of additions differs
// (vector widths), so results agree only to rounding (about 1e-6 relative on F32).
//
// Adding a weight dtype: a `muwa_dtype` value here, and one load/widen case per table file.
//
// Int8 weights (LLM.int8, as bitsandbytes' Linear8bitLt): a weight [N, K] is stored as int8 per output row,
// q[n, k] = round(W[n, k] · 127 / absmax[n]), with its row absmax (f32) and the sum of its int8 values. A
// product quantizes each input row the same way (absmax over the row's non-outlier features) and computes
// int8 × int8 in exact int32 arithmetic; input features whose magnitude reaches the threshold are multiplied
// in f32 by the dequantized weight columns (muwa_quantize_rows, muwa_gemv_i8; kernels_int8*.c).
#ifndef MUWA_CKERNELS_H
#define MUWA_CKERNELS_H
#include <stdint.h>

/// Weight element types the kernels read (and widen to f32 in registers).
/// MUWA_DTYPE_I8: the int8 values alone (widening gives the integers; scales live in muwa_i8_weight).
typedef enum { MUWA_DTYPE_F32 = 0, MUWA_DTYPE_BF16 = 1, MUWA_DTYPE_F16 = 2, MUWA_DTYPE_I8 = 3 } muwa_dtype;

/// An int8 weight [N, K]: q row-major; absmax[n] = max_k |W[n, k]| (bitsandbytes' SCB; scale absmax/127);
/// rowsum[n] = sum_k q[n, k] (the correction for VNNI's unsigned × signed products).
typedef struct {
    const int8_t *q;
    const float *absmax;
    const int32_t *rowsum;
} muwa_i8_weight;

/// Input rows [M, K] prepared by muwa_quantize_rows: q[m, k] int8, absmax[m] over the row's non-outliers, and
/// row m's outlier features outlier_cols[outlier_start[m] ..< + outlier_count[m]], read from x in f32.
typedef struct {
    const int8_t *q;
    const float *absmax;
    const float *x;
    const int32_t *outlier_cols;
    const int32_t *outlier_start;
    const int32_t *outlier_count;
} muwa_i8_input;

/// y[m * ldy + n] (+)= sum_k widen(W[n, k]) * x[m * K + k] for m < M, n in [n0, n1): each weight row read
/// once for all M rows, and each row computed exactly as it would be alone.
void muwa_gemv_rows(muwa_dtype dtype, const void *w, const float *x, long M, float *y, long ldy, long n0, long n1,
                    long K, int accumulate);

/// dst[i] = widen(src[i]) for i < n (F32: a copy).
void muwa_widen(muwa_dtype dtype, const void *src, float *dst, long n);

/// Typed conveniences over muwa_gemv_rows / muwa_widen.
void muwa_gemv_rows_f32(const float *w, const float *x, long M, float *y, long ldy, long n0, long n1, long K,
                        int accumulate);
void muwa_gemv_rows_bf16(const uint16_t *w, const float *x, long M, float *y, long ldy, long n0, long n1, long K,
                         int accumulate);
void muwa_gemv_rows_f16(const uint16_t *w, const float *x, long M, float *y, long ldy, long n0, long n1, long K,
                        int accumulate);
void muwa_widen_bf16(const uint16_t *src, float *dst, long n);
void muwa_widen_f16(const uint16_t *src, float *dst, long n);

/// How a bf16 GEMM reads its weight W (plain row-major bf16; one copy serves both directions).
typedef enum {
    MUWA_GEMM_B_NK = 0,  ///< W is [P, R] (nn.Linear's [N, K]): C = A · Wᵀ (forward)
    MUWA_GEMM_B_KN = 1,  ///< W is [R, P]: C = A · W (backward through a frozen weight)
} muwa_gemm_b_layout;

/// C[m, p] (+)= Σ_r A[m, r] · B[r, p] for m < M, p in [p0, p1), f32 accumulation. A: bf16, packed by
/// muwa_gemm_bf16_pack_a; B read from W as `layout` says. AVX-512 BF16 (vdpbf16ps) when the CPU has it and the
/// avx512 table is selected, else the portable reference. Threads split [0, P) into ranges of
/// muwa_gemm_bf16_column_block() columns (kernels_bf16_gemm.c).
void muwa_gemm_bf16(muwa_gemm_b_layout layout, const uint16_t *a, long M, const uint16_t *w, long R, long P, float *c,
                    long ldc, long p0, long p1, int accumulate);
/// The same product with the same packing and plain loops: the reference the fast kernel is tested against.
void muwa_gemm_bf16_reference(muwa_gemm_b_layout layout, const uint16_t *a, long M, const uint16_t *w, long R, long P,
                              float *c, long ldc, long p0, long p1, int accumulate);
/// Rounds A[M, R] (row stride lds, f32) to bf16 (nearest even, as PyTorch) into the packed layout, tiles
/// [t0, t1) of muwa_gemm_bf16_row_block() rows each (rows past M zero); dst holds
/// muwa_gemm_bf16_packed_a_count(M, R) elements.
void muwa_gemm_bf16_pack_a(const float *src, long M, long R, long lds, uint16_t *dst, long t0, long t1);
long muwa_gemm_bf16_packed_a_count(long M, long R);
/// 1 when muwa_gemm_bf16 runs the AVX-512 BF16 kernel (else it runs the reference).
int muwa_gemm_bf16_fast(void);
/// Column ranges given to threads should be multiples of this (the micro-kernel's width).
long muwa_gemm_bf16_column_block(void);
/// Columns a thread should take at a time: the active kernel's block of B (a multiple of the column block).
long muwa_gemm_bf16_column_chunk(void);
/// Rows per packed tile of A (the micro-kernel's height).
long muwa_gemm_bf16_row_block(void);
/// dst[m * ldd + k] = bf16(src[m * lds + k]) rounded to nearest even (as PyTorch); zeros for k in [K, ldd).
void muwa_f32_to_bf16_rows(const float *src, long M, long K, long lds, uint16_t *dst, long ldd);

/// Quantizes input rows x [M, K] for muwa_gemv_i8 (bitsandbytes' int8_vectorwise_quant): elements with
/// |x| ≥ threshold (threshold > 0) are outliers, excluded from the row's absmax; their features are computed
/// in f32 and set to 0 in q. per_row = 1: each row's outlier features are its own (row-invariant: a row's
/// result never depends on the others); per_row = 0: a feature that is an outlier in any row is one for
/// every row (bitsandbytes' batch-wide decomposition). cols needs room for M·K (per_row) or K entries.
/// Returns the number of entries written to cols.
long muwa_quantize_rows(const float *x, long M, long K, float threshold, int per_row, int8_t *q, float *absmax,
                        int32_t *cols, int32_t *start, int32_t *count);

/// muwa_quantize_rows with per_row = 0 in two steps, so that threads can share the second: the features that
/// are an outlier in any row of x [M, K] (ascending, into cols, room for K; returns their number; 0 when
/// threshold ≤ 0), then rows [m0, m1) quantized with those shared features.
long muwa_i8_outlier_features(const float *x, long M, long K, float threshold, int32_t *cols);
/// muwa_i8_outlier_features split so that threads can share it: flags[k] = 1 where feature k is an outlier in
/// some row of [m0, m1) of x [M, K], else 0 (flags: K entries, all written); then the flags of `parts` such
/// arrays (each K entries, `flags` the first, the others `extra` one after the other) merged into the ascending
/// list in `flags` (returns its length). Any split gives the list of muwa_i8_outlier_features.
void muwa_i8_outlier_flags(const float *x, long m0, long m1, long K, float threshold, int32_t *flags);
long muwa_i8_outlier_merge(int32_t *flags, const int32_t *extra, long parts, long K);
void muwa_quantize_rows_shared(const float *x, long m0, long m1, long K, float threshold, const int32_t *cols,
                               long ncols, int8_t *q, float *absmax, int32_t *start, int32_t *count);

/// Quantizes weight rows [n0, n1) of a [N, K] matrix of `dtype` (F32/BF16/F16) to int8 per row:
/// absmax[n], q[n, k] = round(W[n, k] · 127 / absmax[n]) (round half to even), rowsum[n] = sum_k q[n, k].
void muwa_quantize_weight_rows(muwa_dtype dtype, const void *w, long n0, long n1, long K, int8_t *q, float *absmax,
                               int32_t *rowsum);

/// dst[(n - n0) · K + k] = q[n, k] · absmax[n] / 127 for n in [n0, n1) (bitsandbytes' int8_vectorwise_dequant).
void muwa_dequantize_i8_rows(const muwa_i8_weight *w, long n0, long n1, long K, float *dst);
/// The same values rounded to bf16 (nearest even): the weights of the bf16 backward product on int8 weights.
void muwa_dequantize_i8_rows_bf16(const muwa_i8_weight *w, long n0, long n1, long K, uint16_t *dst);

/// y[m · ldy + n] (+)= int8 product of input row m with weight row n, dequantized, plus the row's outlier
/// features in f32, for m < M, n in [n0, n1). Exact int32 dot products, so every table gives the same bits.
void muwa_gemv_i8(const muwa_i8_weight *w, const muwa_i8_input *x, long M, float *y, long ldy, long n0, long n1,
                  long K, int accumulate);

/// Int8 GEMM (kernels_int8_gemm.c): y[m · ldy + n] (+)= muwa_gemv_i8's result, to the bit, for m < M, n in
/// [n0, n1), then + bias[n] when bias is not null (the bits of a separate pass adding it after the product),
/// with the quantized input rows packed once by muwa_gemm_i8_pack_a into `a` (tiles of
/// muwa_gemm_i8_row_block() rows, muwa_gemm_i8_packed_a_bytes(M, K) bytes; threads split the tiles
/// [t0, t1)). Threads split [0, N) into ranges of muwa_gemm_i8_column_block() columns. AVX-512 VNNI when the
/// CPU has it and the avx512 table is selected, else AVX2 int16 pairs under the avx2 or avx512 table
/// (muwa_gemm_i8_fast), else muwa_gemv_i8. The packing follows the selected table: pack and multiply under one.
void muwa_gemm_i8(const muwa_i8_weight *w, const muwa_i8_input *x, const uint8_t *a, long M, float *y, long ldy,
                  long n0, long n1, long K, int accumulate, const float *bias);
/// The same product with the same packing and plain loops: the reference the fast kernel is tested against.
void muwa_gemm_i8_reference(const muwa_i8_weight *w, const muwa_i8_input *x, const uint8_t *a, long M, float *y,
                            long ldy, long n0, long n1, long K, int accumulate, const float *bias);
void muwa_gemm_i8_pack_a(const muwa_i8_input *x, long M, long K, uint8_t *a, long t0, long t1);
long muwa_gemm_i8_packed_a_bytes(long M, long K);
long muwa_gemm_i8_row_block(void);
long muwa_gemm_i8_column_block(void);
/// Columns a thread should take at a time for reduction length K: the kernel's block of packed weight panels.
long muwa_gemm_i8_column_chunk(long K);
int muwa_gemm_i8_fast(void);
/// Which int8 GEMM runs: "VNNI", "AMX", "AVX2" (int16 pairs, kernels_int8_gemm_avx2.c) or "row kernels".
const char *muwa_gemm_i8_kernel(void);

/// The input gradient through a frozen int8 weight [N, K] on VNNI's integer products (kernels_int8_backward.c):
/// c[m · ldc + k] (+)= Σ_n dout[m, n] · q[n, k] · absmax[n] / 127 for m < M, k in [p0, p1) (accumulate 0: c is
/// stored, not read, by the first reduction block; later blocks add into it), with dout · absmax / 127
/// quantized to int16 (bits 16) or int8 (bits 8) per row and per 512 reduction elements, the elements taken in
/// `order` (a permutation of [0, N): the weight's channels by absmax, so each block's steps suit its channels;
/// null: 0, 1, …) (muwa_i8_backward_pack_a: tiles [t0, t1) of muwa_i8_backward_row_block() rows into `a`
/// (muwa_i8_backward_packed_a_bytes(M, N, bits) bytes), `scales` and, for int8, `sums`
/// (muwa_i8_backward_scale_count(M, N) each; sums may be null for int16)), exact int32 sums, each block's sums
/// scaled and added in f32. Threads split [0, K) into ranges of muwa_i8_backward_column_block() columns.
void muwa_i8_backward_pack_a(const float *dout, long ldd, long M, long N, const float *absmax, const int32_t *order,
                             int bits, void *a, float *scales, int32_t *sums, long t0, long t1);
void muwa_i8_backward(int bits, const void *a, const float *scales, const int32_t *sums, long M, const int8_t *q,
                      const int32_t *order, long N, long K, float *c, long ldc, long p0, long p1, int accumulate);
/// The same product with the same packing and plain loops: the reference the VNNI kernels are tested against.
void muwa_i8_backward_reference(int bits, const void *a, const float *scales, const int32_t *sums, long M,
                                const int8_t *q, const int32_t *order, long N, long K, float *c, long ldc, long p0,
                                long p1, int accumulate);
long muwa_i8_backward_packed_a_bytes(long M, long N, int bits);
long muwa_i8_backward_scale_count(long M, long N);
long muwa_i8_backward_row_block(void);
long muwa_i8_backward_column_block(void);
/// Columns a thread should take at a time: the kernel's block of packed weight panels.
long muwa_i8_backward_column_chunk(void);
/// 1 when muwa_i8_backward runs integer kernels (VNNI; AVX2 for int16) rather than the reference.
int muwa_i8_backward_fast(void);
/// Which kernels muwa_i8_backward runs: "VNNI" (both widths), "AVX2" (int16 only) or "reference".
const char *muwa_i8_backward_kernel(void);
/// The gradient's width when training's int8 base takes this path (bf16 compute, or auto without bf16), else 0:
/// with VNNI 8 by default (vpdpbusd: about 3.5 times the FMA rate on Intel, twice vdpbf16ps's on Zen 4); on AVX2
/// 16 where no bf16 GEMM runs (vpmaddwd, about 1.6 times the FMA rate on Zen 3); MUWA_I8_BACKWARD=int16|int8|bf16
/// overrides (int16: vpdpwssd, about half int8's speed, 16-bit steps; int8 is int16 on AVX2).
int muwa_i8_backward_bits(void);
/// Tests and benches: 16 or 8 forces this path at that width (0 returned where the CPU cannot run it), 0 the
/// bf16 GEMM, -1 the default.
int muwa_i8_backward_select(int bits);

/// C[r · ldc + c] = Σ_k A[r · lda + k] · B[k · ldb + c] for r < M, c < N: a small product with B row-major read in
/// place, no packing (kernels_attention.c; AVX-512 when the avx512 table is selected, else the reference loops).
void muwa_sgemm_nn(long M, long N, long K, const float *A, long lda, const float *B, long ldb, float *C, long ldc);
void muwa_sgemm_nn_reference(long M, long N, long K, const float *A, long lda, const float *B, long ldb, float *C,
                             long ldc);
/// 1 when muwa_attend_blocks runs (the avx512 table is selected); else it returns -1 and the caller's sgemm path,
/// faster than the reference loops, runs instead.
int muwa_attention_fast(void);
/// Prefill attention of one (sequence, head) (Attention.swift's attendBlocks, with muwa_sgemm_nn): q (T, hs;
/// row stride ldq), keys and values (L, hs), out (T, hs; row stride ldo); query blocks of mb rows, block
/// [t0, t1) scoring keys 0 ..< past + t1, or all L when first_real > past + t0; scores holds mb · L floats.
/// Returns 0, or -1, writing nothing, when muwa_attention_fast() is 0 or the per-thread buffer for Kᵀ (hs · L
/// floats) cannot be had.
int muwa_attend_blocks(float *out, long ldo, const float *q, long ldq, const float *keys, const float *values,
                       float *scores, long T, long past, long L, long hs, long mb, long first_real,
                       const uint8_t *mask);

/// Decode attention of one (sequence, head) (kernels_attention_decode.c): q and out (hs), keys and values (L, hs)
/// rows, scores (L) its buffer: scores = keys · q, muwa_softmax(scores, L, L, mask), out = scoresᵀ · values.
/// Returns 0, or -1, writing nothing, when muwa_attention_fast() is 0 (or muwa_attend_one_select(0) is in
/// force); the caller's gemv path runs then. muwa_attend_one_reference is the same in plain loops.
int muwa_attend_one(float *out, const float *q, const float *keys, const float *values, float *scores, long L,
                    long hs, const uint8_t *mask);
void muwa_attend_one_reference(float *out, const float *q, const float *keys, const float *values, float *scores,
                               long L, long hs, const uint8_t *mask);
/// Tests: 1 forces muwa_attend_one's AVX-512 form (0 returned where it cannot run), 0 the callers' gemv path,
/// -1 the default.
int muwa_attend_one_select(int on);

/// The same blocks in bf16 (compute bf16): Q, Kᵀ, P and V rounded to bf16 (round to nearest even), products
/// with f32 sums (vdpbf16ps), softmax in f32. Returns -1, writing nothing, when the CPU or the selected table
/// lacks avx512_bf16 (muwa_attention_bf16_fast() == 0) or its per-thread buffer cannot be had.
int muwa_attention_bf16_fast(void);
int muwa_attend_blocks_bf16(float *out, long ldo, const float *q, long ldq, const float *keys, const float *values,
                            float *scores, long T, long past, long L, long hs, long mb, long first_real,
                            const uint8_t *mask);

/// Attention's softmax of one row of n scores over the keys j < limit with mask[j] != 0 (mask may be null);
/// the other entries become 0, and a row with no such key becomes 1/n everywhere (kernels_softmax.c). AVX-512
/// when the avx512 table is selected, else the reference (libm expf, a sum in key order).
void muwa_softmax(float *row, long n, long limit, const uint8_t *mask);
void muwa_softmax_reference(float *row, long n, long limit, const uint8_t *mask);
/// The vocabulary softmax of training's loss head (CrossEntropy.swift): *max_out = the largest x[j] (NaN
/// skipped), out[j] = exp(x[j] − max) where out is not null, and the sum of those in double, returned.
/// AVX-512 (exp16, within 2 ulp of expf; sums in 16 double lanes) when the avx512 table is selected, else the
/// reference (libm expf, the sum in order). out may be x.
double muwa_exp_sum(const float *x, long n, float *out, float *max_out);
double muwa_exp_sum_reference(const float *x, long n, float *out, float *max_out);

/// The instruction set the kernels use now: "avx512", "avx2" or "scalar".
const char *muwa_kernel_isa(void);
/// 1 when this CPU (and build) can run `name`'s table.
int muwa_kernel_isa_supported(const char *name);
/// Switches every later call to `name`'s table; 0 (and no change) when unsupported. For tests and benches:
/// not to be called while kernels run on other threads.
int muwa_kernel_select_isa(const char *name);
/// 1 when the CPU has bf16 dot products (avx512_bf16).
int muwa_cpu_has_bf16(void);
/// 1 when the CPU has AMX (tile, int8, bf16) and Linux granted this process the tile state.
int muwa_amx_supported(void);
/// 1 when the int8 and bf16 GEMMs pack for and run the AMX kernels (kernels_amx.c): the CPU supports it and
/// MUWA_AMX is not 0. Fixed for the process except through muwa_amx_select.
int muwa_amx_enabled(void);
/// Tests and benches: switch the GEMMs to AMX (1) or AVX-512 (0); 0 when the CPU cannot run AMX. Never while a
/// GEMM runs, and repack A afterwards (the layout follows the switch).
int muwa_amx_select(int on);

/// 1 when muwa_gemm_bf16 (where AMX does not run it) sums the bf16 products with f32 FMAs instead of vdpbf16ps
/// (kernels_bf16_gemm_fma.c): by default on Intel CPUs, where vdpbf16ps runs at half the FMA rate; MUWA_BF16_GEMM
/// (fma or dpbf16) overrides. Both give the reference's sums.
int muwa_bf16_gemm_fma_enabled(void);
/// Tests and benches: the FMA kernel (1) or vdpbf16ps (0); 0 when the CPU cannot run AVX-512. Never while a GEMM runs.
int muwa_bf16_gemm_fma_select(int on);

/// 1 when the AVX-512 f32/bf16/f16 row kernels read two weight rows side by side for one or two input rows (two
/// streams): the default on Intel, where one core read bf16 rows at 9.8 GB/s one at a time and 11.5 two at a
/// time (2 threads: 19.6 and 22.8); AMD's Zen 4 read one stream fastest. MUWA_GEMV_ROW_PAIRS=0|1 overrides.
/// Each row's sums are the same operations either way, so results do not change.
int muwa_gemv_row_pairs(void);
/// Tests and benches: row pairs on (1) or off (0). Never while a kernel runs.
void muwa_gemv_row_pairs_select(int on);

/// Bytes ahead of each weight stream that the decode kernels (the AVX-512 row kernels and the VNNI int8 one)
/// prefetch into L1, or 0 for none: 4096 on Intel, where the hardware prefetchers alone left a core's stream
/// short of the memory's rate (int8 rows, 2 threads: 19 GB/s without, 22–24 with, a plain read 27), 0 elsewhere
/// (AMD's Zen 4 streams one row at its full rate). MUWA_GEMV_PREFETCH=bytes overrides. Results do not change.
long muwa_gemv_prefetch(void);
/// Tests and benches: the prefetch distance in bytes (0: none). Never while a kernel runs.
void muwa_gemv_prefetch_select(long bytes);

/// One part of a parallel region: fn(ctx, part) for part in 0 ..< parts (thread_pool.c).
typedef void (*muwa_pool_fn)(void *ctx, long part);
/// Runs fn(ctx, p) for every p < parts, part 0 on the calling thread and the rest on the engine's persistent
/// workers (which spin briefly between regions, then sleep), and returns 1 when all are done. Returns 0, having
/// run nothing, when parts < 2, the pool is busy with another region (another thread's, or this one's: a region
/// started from inside a part) or a worker thread cannot be started: the caller then runs the parts itself.
int muwa_pool_run(long parts, muwa_pool_fn fn, void *ctx);
/// Products with one small dimension r, a LoRA adapter's rank (kernels_lowrank.c); rows [m0, m1) or columns
/// [l0, l1) of the result, so callers split them among threads. y(i, l) is y[i·L + l] ([r, L]) or, with y_lr,
/// y[l·r + i] ([L, r]); z(i, l) likewise with z_lr.
///   rows_dot: out[m, i]  = α · Σ_l x[m, l] · y(i, l)      (out [M, r] with row stride ldo)
///   rows_add: out[m, l] += α · Σ_i u[m, i] · y(i, l)      (out [M, L])
///   cols_acc: z(i, l)   += α · Σ_m u[m, i] · x[m, l]      (z [r, L] or [L, r])
/// AVX-512 where the avx512 table is selected, else the *_reference loops. A result does not depend on the range split.
void muwa_lowrank_rows_dot(float *out, long ldo, const float *x, long ldx, const float *y, int y_lr, long L, long r,
                           float alpha, long m0, long m1);
void muwa_lowrank_rows_add(float *out, long ldo, const float *u, long ldu, const float *y, int y_lr, long L, long r,
                           float alpha, long m0, long m1);
void muwa_lowrank_cols_acc(float *z, int z_lr, const float *u, long ldu, const float *x, long ldx, long M, long L,
                           long r, float alpha, long l0, long l1);
void muwa_lowrank_rows_dot_reference(float *out, long ldo, const float *x, long ldx, const float *y, int y_lr, long L,
                                     long r, float alpha, long m0, long m1);
void muwa_lowrank_rows_add_reference(float *out, long ldo, const float *u, long ldu, const float *y, int y_lr, long L,
                                     long r, float alpha, long m0, long m1);
void muwa_lowrank_cols_acc_reference(float *z, int z_lr, const float *u, long ldu, const float *x, long ldx, long M,
                                     long L, long r, float alpha, long l0, long l1);
/// Tests: the AVX-512 kernels (1), the reference loops (0) or the selected table's choice again (-1); 0 when this
/// CPU cannot run AVX-512.
int muwa_lowrank_select(int fast_kernels);

/// Training attention of one (sequence, head) of a packed batch (kernels_attention_train.c; PackedAttention.swift):
/// q, k, v, out, dout, dq, dk, dv (n, hs) with row stride ld; p (n, n), row t = softmax of query t's causal
/// scores, zeros past t. forward writes out and p; backward accumulates dq, dk, dv. Each returns 0, or -1
/// having written nothing when muwa_causal_attention_select / the avx512 table leaves them off or the per-thread
/// buffer cannot be had (the caller's sgemm path then runs).
int muwa_causal_attention_forward(float *out, float *p, const float *q, const float *k, const float *v, long ld,
                                  long n, long hs);
int muwa_causal_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *p,
                                   const float *q, const float *k, const float *v, long ld, long n, long hs);
/// Tests: the kernels above (1), the caller's sgemm path (0) or the selected table's choice again (-1); 0 when
/// this CPU cannot run them.
int muwa_causal_attention_select(int on);
/// x[r · ld + c] = 0 for r < rows, c < cols: a (sequence, head)'s slice of a gradient, cleared by the thread that
/// then fills it (one call, not one memset a row).
void muwa_zero_rows(float *x, long rows, long cols, long ld);
/// The same under compute bf16 (kernels_attention_train_bf16.c): bf16 operands, f32 sums, f32 softmax and
/// outputs; -1 having written nothing where muwa_attention_bf16_fast() is 0 or the per-thread buffer cannot be
/// had (the caller's f32 path then runs).
int muwa_causal_attention_forward_bf16(float *out, float *p, const float *q, const float *k, const float *v, long ld,
                                       long n, long hs);
int muwa_causal_attention_backward_bf16(float *dq, float *dk, float *dv, const float *dout, const float *p,
                                        const float *q, const float *k, const float *v, long ld, long n, long hs);

/// Dropout of one row (kernels_dropout.c; Dropout.swift's DropoutMask): element c is element first + c of the
/// stream, kept when muwa_dropout_keeps(key, threshold, first + c). accumulate 0: out[c] = kept ? in[c]·scale : 0
/// (out may be in); 1: out[c] += in[c]·scale where kept. AVX-512 (DQ) or scalar: the same elements kept.
void muwa_dropout_row(float *out, const float *in, long n, uint64_t key, uint64_t first, uint64_t threshold,
                      float scale, int accumulate);
int muwa_dropout_keeps(uint64_t key, uint64_t threshold, uint64_t i);
/// Tests: the AVX-512 row kernel (1), the scalar loop (0) or the selected table's choice again (-1); 0 when this
/// CPU cannot run it.
int muwa_dropout_select(int fast_kernel);

/// Layer norm's input gradient with a frozen weight and bias, rows [r0, r1) of (N, C) (kernels_layernorm.c):
/// dinp += (dn − mean(dn) − n · mean(dn ⊙ n)) · rstd with n = (x − mean) · rstd, dn = weight ⊙ dout (weight may
/// be null: 1). AVX-512 when the avx512 table is selected (sums in 16 lanes), else the reference (column order).
void muwa_layernorm_backward_rows(float *dinp, const float *dout, const float *inp, const float *weight,
                                  const float *mean, const float *rstd, long C, long r0, long r1);
void muwa_layernorm_backward_rows_reference(float *dinp, const float *dout, const float *inp, const float *weight,
                                            const float *mean, const float *rstd, long C, long r0, long r1);

#endif
