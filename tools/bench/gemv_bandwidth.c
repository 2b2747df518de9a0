// Weight bandwidth of the decode kernels alone (one input row, M = 1), without the engine around them:
// GB/s of weight bytes read by muwa_gemv_rows (F32, BF16) and muwa_gemv_i8, over enough matrices of
// [N, K] to leave the caches, on 1..T threads split by weight rows (pthreads started per matrix, so the
// figure includes a thread start: an upper bound on what a per-call split costs). Build and run:
//   clang -O3 -ISources/CKernels/include -ISources/CKernels tools/bench/gemv_bandwidth.c Sources/CKernels/*.c \
//         -lpthread -lm -o /tmp/gemv_bandwidth && /tmp/gemv_bandwidth 2048 2048 2
// MUWA_KERNEL_ISA picks the table as in the engine.
#include "ckernels.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
    int kind;  // muwa_dtype; MUWA_DTYPE_I8: the int8 product with its scales
    const void *w;
    const muwa_i8_weight *iw;
    const muwa_i8_input *ix;
    const float *x;
    float *y;
    long N, K, n0, n1;
} job;

static void run(const job *j) {
    if (j->kind == MUWA_DTYPE_I8) muwa_gemv_i8(j->iw, j->ix, 1, j->y, j->N, j->n0, j->n1, j->K, 0);
    else muwa_gemv_rows((muwa_dtype)j->kind, j->w, j->x, 1, j->y, j->N, j->n0, j->n1, j->K, 0);
}

static void *thread_main(void *a) {
    run((const job *)a);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s N K threads\n", argv[0]);
        return 2;
    }
    long N = atol(argv[1]), K = atol(argv[2]);
    int threads = atoi(argv[3]);
    if (N < 4 || K < 1 || threads < 1 || threads > 64) return 2;
    long matrices = (512L << 20) / (N * K) + 1;
    float *x = malloc(K * 4), *y = malloc(N * 4);
    int8_t *xq = malloc(K);
    for (long k = 0; k < K; k++) x[k] = (float)(k % 7) - 3, xq[k] = (int8_t)(k % 7 * 10 - 30);
    float xabs = 3;
    int32_t start = 0, count = 0, cols = 0;
    muwa_i8_input input = {xq, &xabs, x, &cols, &start, &count};
    const int kinds[] = {MUWA_DTYPE_F32, MUWA_DTYPE_BF16, MUWA_DTYPE_I8};
    const char *names[] = {"f32", "bf16", "int8"};
    printf("kernels: %s\n", muwa_kernel_isa());
    for (int ki = 0; ki < 3; ki++) {
        int kind = kinds[ki];
        long es = kind == MUWA_DTYPE_F32 ? 4 : kind == MUWA_DTYPE_BF16 ? 2 : 1;
        char **ws = malloc(matrices * sizeof(char *));
        muwa_i8_weight *iws = malloc(matrices * sizeof(muwa_i8_weight));
        float *absmax = malloc(N * 4);
        int32_t *rowsum = calloc(N, 4);
        for (long n = 0; n < N; n++) absmax[n] = 1;
        for (long l = 0; l < matrices; l++) {
            ws[l] = aligned_alloc(64, (N * K * es + 63) / 64 * 64);
            memset(ws[l], 1, N * K * es);
            iws[l] = (muwa_i8_weight){(const int8_t *)ws[l], absmax, rowsum};
        }
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now();
            for (long l = 0; l < matrices; l++) {
                pthread_t tid[64];
                job jobs[64];
                for (int t = 0; t < threads; t++) {
                    long n0 = t == 0 ? 0 : (N * t / threads) & ~3L, n1 = t == threads - 1 ? N : (N * (t + 1) / threads) & ~3L;
                    jobs[t] = (job){kind, ws[l], &iws[l], &input, x, y, N, K, n0, n1};
                }
                for (int t = 1; t < threads; t++) pthread_create(&tid[t], 0, thread_main, &jobs[t]);
                run(&jobs[0]);
                for (int t = 1; t < threads; t++) pthread_join(tid[t], 0);
            }
            double dt = now() - t0;
            if (dt < best) best = dt;
        }
        printf("%-5s [%ld, %ld] threads %d: %6.2f GB/s  %8.1f us a matrix\n", names[ki], N, K, threads,
               (double)matrices * N * K * es / best / 1e9, best / matrices * 1e6);
        for (long l = 0; l < matrices; l++) free(ws[l]);
        free(ws), free(iws), free(absmax), free(rowsum);
    }
    return 0;
}
