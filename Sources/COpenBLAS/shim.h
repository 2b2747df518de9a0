// The OpenBLAS CBLAS interface (Debian: libopenblas-dev puts cblas.h on the include path).
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
// openblas_set_num_threads / openblas_get_num_threads / openblas_get_corename
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
// A DYNAMIC_ARCH build's kernel selection (exported by Debian's libopenblas0-pthread; weak so that a build
// without them still links and simply keeps its choice).
void gotoblas_dynamic_init(void) __attribute__((weak));
void gotoblas_dynamic_quit(void) __attribute__((weak));

/// OpenBLAS 0.3.21 (Debian 12) does not know CPUs newer than it, such as Emerald Rapids (family 6, model
/// 207), and falls back to its Prescott (SSE3) kernels: sgemm then runs at a tenth of the machine's speed.
/// When the core it chose lacks instructions this CPU has, and the user has not set OPENBLAS_CORETYPE,
/// select the kernels the CPU can run (Cooperlake = SkylakeX + bf16, SkylakeX, Haswell) the way
/// OPENBLAS_CORETYPE would at load. Call once, before the first BLAS call and with no other thread in
/// OpenBLAS. Returns the core in use afterwards.
static inline const char *muwa_openblas_fit_core(void) {
#if defined(__x86_64__)
    if (!getenv("OPENBLAS_CORETYPE") && gotoblas_dynamic_init && gotoblas_dynamic_quit) {
        __builtin_cpu_init();
        const char *want = 0;
        int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                     __builtin_cpu_supports("avx512cd");
        if (avx512) want = __builtin_cpu_supports("avx512bf16") ? "Cooperlake" : "SkylakeX";
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) want = "Haswell";
        const char *have = openblas_get_corename();
        // Only replace a fallback: a core OpenBLAS recognised (Zen, SapphireRapids in later releases) stays.
        static const char *const fallbacks[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                                "Sandybridge", "Katmai", "Coppermine", "Northwood", "Banias"};
        int fallback = 0;
        for (unsigned i = 0; have && i < sizeof fallbacks / sizeof fallbacks[0]; i++)
            if (strcasecmp(have, fallbacks[i]) == 0) fallback = 1;
        if (want && fallback) {
            setenv("OPENBLAS_CORETYPE", want, 1);
            gotoblas_dynamic_quit();
            gotoblas_dynamic_init();
            unsetenv("OPENBLAS_CORETYPE");  // child processes (the PyTorch bench) see the environment as it was
        }
    }
#endif
    return openblas_get_corename();
}
