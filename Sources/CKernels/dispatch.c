// Picks the kernel table once: MUWA_KERNEL_ISA when set and supported, else the best the CPU has
// (avx512, avx2, scalar). Tests switch tables with muwa_kernel_select_isa to run every path the host has.
#include "kernels_internal.h"
#include <pthread.h>
#include <stdatomic.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <stdlib.h>
#include <string.h>

static const struct muwa_kernel_table *const tables[] = {&muwa_table_avx512, &muwa_table_avx2, &muwa_table_scalar};
static const struct muwa_kernel_table *_Atomic current = 0;

static const struct muwa_kernel_table *find(const char *name) {
    for (unsigned i = 0; i < sizeof tables / sizeof tables[0]; i++)
        if (name && strcmp(tables[i]->name, name) == 0 && tables[i]->supported()) return tables[i];
    return 0;
}

static const struct muwa_kernel_table *table(void) {
    const struct muwa_kernel_table *t = current;
    if (t) return t;
    t = find(getenv("MUWA_KERNEL_ISA"));  // an unsupported or unknown name falls back to the best
    for (unsigned i = 0; !t && i < sizeof tables / sizeof tables[0]; i++)
        if (tables[i]->supported()) t = tables[i];
    current = t;
    return t;
}

const char *muwa_kernel_isa(void) { return table()->name; }

int muwa_kernel_isa_supported(const char *name) { return find(name) != 0; }

int muwa_kernel_select_isa(const char *name) {
    const struct muwa_kernel_table *t = find(name);
    if (!t) return 0;
    current = t;
    return 1;
}

void muwa_gemv_rows(muwa_dtype dtype, const void *w, const float *x, long M, float *y, long ldy, long n0, long n1,
                    long K, int accumulate) {
    table()->gemv_rows(dtype, w, x, M, y, ldy, n0, n1, K, accumulate);
}

void muwa_widen(muwa_dtype dtype, const void *src, float *dst, long n) { table()->widen(dtype, src, dst, n); }

void muwa_gemv_i8(const muwa_i8_weight *w, const muwa_i8_input *x, long M, float *y, long ldy, long n0, long n1,
                  long K, int accumulate) {
    table()->gemv_i8(w, x, M, y, ldy, n0, n1, K, accumulate);
}

void muwa_gemv_rows_f32(const float *w, const float *x, long M, float *y, long ldy, long n0, long n1, long K,
                        int accumulate) {
    muwa_gemv_rows(MUWA_DTYPE_F32, w, x, M, y, ldy, n0, n1, K, accumulate);
}

void muwa_gemv_rows_bf16(const uint16_t *w, const float *x, long M, float *y, long ldy, long n0, long n1, long K,
                         int accumulate) {
    muwa_gemv_rows(MUWA_DTYPE_BF16, w, x, M, y, ldy, n0, n1, K, accumulate);
}

void muwa_gemv_rows_f16(const uint16_t *w, const float *x, long M, float *y, long ldy, long n0, long n1, long K,
                        int accumulate) {
    muwa_gemv_rows(MUWA_DTYPE_F16, w, x, M, y, ldy, n0, n1, K, accumulate);
}

void muwa_widen_bf16(const uint16_t *src, float *dst, long n) { muwa_widen(MUWA_DTYPE_BF16, src, dst, n); }

void muwa_widen_f16(const uint16_t *src, float *dst, long n) { muwa_widen(MUWA_DTYPE_F16, src, dst, n); }

int muwa_avx512_selected(void) { return table() == &muwa_table_avx512; }

int muwa_avx2_selected(void) { return table() == &muwa_table_avx512 || table() == &muwa_table_avx2; }

int muwa_avx512bw_selected(void) {
#if defined(__x86_64__)
    static int cpu = -1;  // benign race: every thread computes the same value
    if (cpu < 0) {
        __builtin_cpu_init();
        cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512vl");
    }
    return cpu && muwa_avx512_selected();
#else
    return 0;
#endif
}

int muwa_cpu_has_bf16(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

int muwa_cpu_is_intel(void) {
#if defined(__x86_64__)
    static int intel = -1;  // benign race: every thread computes the same value
    if (intel < 0) {
        unsigned a, b, c, d;
        intel = __get_cpuid(0, &a, &b, &c, &d) && b == 0x756e6547 && d == 0x49656e69 && c == 0x6c65746e;  // GenuineIntel
    }
    return intel;
#else
    return 0;
#endif
}

static int _Atomic pairs = -1;

void muwa_gemv_row_pairs_select(int on) { pairs = on ? 1 : 0; }

int muwa_gemv_row_pairs(void) {
    if (pairs < 0) {
        const char *env = getenv("MUWA_GEMV_ROW_PAIRS");  // 1 or 0 overrides the CPU's default
        pairs = env && (env[0] == '0' || env[0] == '1') ? env[0] == '1' : muwa_cpu_is_intel();
    }
    return pairs;
}

static long _Atomic prefetch_bytes = -1;

void muwa_gemv_prefetch_select(long bytes) { prefetch_bytes = bytes > 0 ? bytes : 0; }

long muwa_gemv_prefetch(void) {
    long d = prefetch_bytes;
    if (d < 0) {
        const char *env = getenv("MUWA_GEMV_PREFETCH");  // bytes ahead; 0 turns it off
        long v = env ? strtol(env, 0, 10) : -1;
        d = v >= 0 && v <= (1L << 20) ? v : (muwa_cpu_is_intel() ? 4096 : 0);
        prefetch_bytes = d;
    }
    return d;
}

// MARK: - per-thread buffers

struct thread_buffer {
    void *bytes;
    size_t size;
};
static pthread_key_t buffer_key;
static pthread_once_t buffer_once = PTHREAD_ONCE_INIT;
static int buffer_key_made;

static void free_buffer(void *p) {
    struct thread_buffer *b = p;
    free(b->bytes);
    free(b);
}

static void make_buffer_key(void) { buffer_key_made = pthread_key_create(&buffer_key, free_buffer) == 0; }

void *muwa_thread_buffer(size_t bytes) {
    pthread_once(&buffer_once, make_buffer_key);
    if (!buffer_key_made) return 0;
    struct thread_buffer *b = pthread_getspecific(buffer_key);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b || pthread_setspecific(buffer_key, b) != 0) {
            free(b);
            return 0;
        }
    }
    if (b->size < bytes) {
        free(b->bytes);
        b->size = 0;
        b->bytes = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (b->bytes) b->size = bytes;
    }
    return b->bytes;
}
