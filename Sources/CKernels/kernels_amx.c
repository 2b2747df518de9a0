// Intel AMX (Advanced Matrix Extensions: Sapphire Rapids and later) for the many-row GEMMs. One TDPBUSD
// multiplies a 16 × 64 byte tile by a 64 × 16 one into 16 × 16 int32 sums (16,384 multiply-adds), one TDPBF16PS a
// 16 × 32 bf16 tile by a 32 × 16 one into f32 (8,192): 4 to 8 times what a core's AVX-512 VNNI / BF16 units do.
// This file holds what both GEMMs share: whether AMX can run (CPUID, and Linux's per-process permission for
// the tile data state), the tile configuration, and the 32 × 32 block kernels:
//
//   a: a packed A block, [kb][32 rows][64 bytes] (kb = reduction blocks of 64 bytes: 64 int8 or 32 bf16 per
//      row; the two 16-row halves are the two A tiles, rows 64 bytes apart)
//   b: a packed B panel, [K groups][32 columns][4 bytes] (int8: 4 reduction bytes per column; bf16: 2 bf16),
//      i.e. the VNNI / vdpbf16ps panel layout of kernels_int8_gemm.c / kernels_bf16_gemm.c, padded with zero
//      groups to whole blocks of 16: columns 0–15 of a block are one B tile, rows 128 bytes apart, columns
//      16–31 the next 64 bytes
//   out: the 32 × 32 results, row-major (int32 sums for int8, f32 for bf16), from tiles 0–3 (C), 4–5 (A), 6–7 (B);
//      with `resume` the sums start from what `out` holds (a product over several reduction ranges: the tiles are
//      stored and loaded exactly, so the result does not depend on where the ranges split)
//
// Int8 sums are exact, so the AMX GEMM gives the VNNI GEMM's bits. Bf16 sums are f32 as in vdpbf16ps, in the
// tile unit's own order.
#include "kernels_internal.h"
#include <pthread.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { ARCH_GET_XCOMP_PERM = 0x1022, ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };

static int amx_cpu = 0;            // CPU has AMX-TILE, -INT8, -BF16 and Linux granted the tile state
// -1: not decided; else whether the GEMMs pack for and run AMX (tests switch it). It decides the packed A layout
// whatever the kernel table, so data packed under one table reads the same under another; the AMX kernels
// themselves run only with the avx512 table (the GEMMs fall back to the row kernels otherwise).
static int _Atomic amx_on = -1;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    int tile = (d >> 24) & 1, bf16 = (d >> 22) & 1, int8 = (d >> 25) & 1;
    if (!(tile && bf16 && int8)) return;
    // The kernel enables the tile data state per process on request (Linux ≥ 5.16); without it the first
    // tile instruction faults.
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return;
    unsigned long bits = 0;
    if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &bits) != 0 || !(bits & (1ul << XFEATURE_XTILEDATA))) return;
    amx_cpu = 1;
}

int muwa_amx_supported(void) {
    pthread_once(&amx_once, amx_probe);
    return amx_cpu;
}

int muwa_amx_enabled(void) {
    int on = amx_on;
    if (on >= 0) return on;
    const char *env = getenv("MUWA_AMX");  // MUWA_AMX=0: the AVX-512 kernels even where AMX runs
    on = muwa_amx_supported() && !(env && strcmp(env, "0") == 0);
    amx_on = on;
    return on;
}

int muwa_amx_select(int on) {
    if (on && !muwa_amx_supported()) return 0;
    amx_on = on ? 1 : 0;
    return 1;
}

#define AMX __attribute__((target("amx-tile,amx-int8,amx-bf16,avx512f")))

struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

AMX void muwa_amx_begin(void) {
    struct tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {  // every tile 16 rows of 64 bytes
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
}

AMX void muwa_amx_end(void) { _tile_release(); }

/// Loads the 32 × 32 sums of `out` into tiles 0–3 (resume) or zeroes them.
#define AMX_START(out, resume)                       \
    if (resume) {                                    \
        _tile_loadd(0, out, 128);                    \
        _tile_loadd(1, out + 16, 128);               \
        _tile_loadd(2, out + 16 * 32, 128);          \
        _tile_loadd(3, out + 16 * 32 + 16, 128);     \
    } else {                                         \
        _tile_zero(0);                               \
        _tile_zero(1);                               \
        _tile_zero(2);                               \
        _tile_zero(3);                               \
    }

/// One 32 × 32 block: tiles 4–5 from a (rows 64 bytes apart, 2048 bytes per reduction block), tiles 6–7 from b
/// (rows 128 bytes apart), DP the tile instruction.
#define AMX_BLOCK(name, A, B, OUT, DP)                                              \
    AMX void name(const A *a, const B *b, long kb, OUT *out, int resume) {         \
        const char *ab = (const char *)a, *bb = (const char *)b;                   \
        AMX_START(out, resume)                                                     \
        for (long k = 0; k < kb; k++) {                                            \
            _tile_loadd(4, ab + k * 2048, 64);                                     \
            _tile_loadd(5, ab + k * 2048 + 1024, 64);                              \
            _tile_loadd(6, bb + k * 2048, 128);                                    \
            _tile_loadd(7, bb + k * 2048 + 64, 128);                               \
            DP(0, 4, 6);                                                           \
            DP(1, 4, 7);                                                           \
            DP(2, 5, 6);                                                           \
            DP(3, 5, 7);                                                           \
        }                                                                          \
        _tile_stored(0, out, 128);                                                 \
        _tile_stored(1, out + 16, 128);                                            \
        _tile_stored(2, out + 16 * 32, 128);                                       \
        _tile_stored(3, out + 16 * 32 + 16, 128);                                  \
    }

AMX_BLOCK(muwa_amx_block_i8, uint8_t, int8_t, int32_t, _tile_dpbusd)
AMX_BLOCK(muwa_amx_block_bf16, uint16_t, uint16_t, float, _tile_dpbf16ps)

#else
int muwa_amx_supported(void) { return 0; }
int muwa_amx_enabled(void) { return 0; }
int muwa_amx_select(int on) { return !on; }
void muwa_amx_begin(void) {}
void muwa_amx_end(void) {}
void muwa_amx_block_i8(const uint8_t *a, const int8_t *b, long kb, int32_t *out, int resume) {
    (void)a, (void)b, (void)kb, (void)out, (void)resume;
}
void muwa_amx_block_bf16(const uint16_t *a, const uint16_t *b, long kb, float *out, int resume) {
    (void)a, (void)b, (void)kb, (void)out, (void)resume;
}
#endif

void *muwa_amx_buffer(long panel_bytes, long block_bytes, long *panels) {
    long n = block_bytes / panel_bytes;
    if (n < 1) n = 1;
    void *buffer = muwa_thread_buffer((size_t)(n * (panel_bytes + 32 * 32 * 4)));
    if (!buffer && n > 1) {
        n = 1;
        buffer = muwa_thread_buffer((size_t)(panel_bytes + 32 * 32 * 4));
    }
    *panels = n;
    return buffer;
}
