// The engine's worker threads: a persistent pool that runs one parallel region at a time, parts 1 ..< parts on
// its workers and part 0 on the caller, and returns when every part is done.
//
// Why not GCD's concurrentPerform: decode runs ~150 parallel regions a token (every projection, attention, the
// norms), each a few hundred µs, and GCD's workers sleep between them; waking a sleeping vCPU costs tens of µs,
// and a decode step spent ~11 % of its CPU time idle at those joins. Here a worker that has just finished spins
// (PAUSE) for up to SPIN_NS on its own slot before it sleeps on a futex, so back-to-back regions start at once,
// and an idle daemon's workers still sleep.
//
// Each worker has its own slot (one cache line): the caller writes the job into it and bumps its ticket; the
// worker runs that part and decrements `remaining`; the caller spins (then sleeps) until it reaches 0. Nothing is
// shared between workers, no lock is held while a part runs, and threads are created once (as regions first need
// them), never per region.
//
// One region at a time: muwa_pool_run returns 0 without running anything when the pool is busy (another
// thread's region, or a region started from inside a part), and the caller runs its parts another way (Swift:
// GCD), so nested and concurrent regions stay correct.
#define _GNU_SOURCE  // pthread_setname_np
#include "kernels_internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
static void futex_wait(_Atomic uint32_t *word, uint32_t value) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, value, 0, 0, 0);
}
static void futex_wake(_Atomic uint32_t *word) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
}
#define POOL_AVAILABLE 1
#else
#define POOL_AVAILABLE 0
#endif

#if POOL_AVAILABLE
enum { MAX_WORKERS = 255, SPIN_NS = 200 * 1000 };

static inline void cpu_relax(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/// Spins until *word != value for up to SPIN_NS, then sleeps on it (with `sleeping` set so the writer wakes it).
static uint32_t wait_change(_Atomic uint32_t *word, uint32_t value, _Atomic uint32_t *sleeping) {
    uint32_t v;
    long long start = 0;
    for (unsigned i = 1;; i++) {
        if ((v = atomic_load_explicit(word, memory_order_acquire)) != value) return v;
        cpu_relax();
        if ((i & 63) == 0) {  // reading the clock every 64 pauses keeps its cost out of the wake-up latency
            long long t = now_ns();
            if (start == 0) start = t;
            else if (t - start > SPIN_NS) break;
        }
    }
    atomic_store(sleeping, 1);
    while ((v = atomic_load(word)) == value) futex_wait(word, value);  // the futex re-checks the word: no lost wake
    atomic_store(sleeping, 0);
    return v;
}

/// The writer's side of wait_change: publish, then wake the waiter if it went to sleep.
static void publish(_Atomic uint32_t *word, uint32_t value, _Atomic uint32_t *sleeping) {
    atomic_store(word, value);
    if (atomic_load(sleeping)) futex_wake(word);
}

struct slot {
    _Alignas(64) _Atomic uint32_t ticket;  // bumped by the caller for each job given to this worker
    _Atomic uint32_t sleeping;
    muwa_pool_fn fn;
    void *ctx;
    long part;
};

static struct slot slots[MAX_WORKERS + 1];  // slots[i] for worker i (1-based)
static _Alignas(64) _Atomic uint32_t remaining;  // parts of the current region not yet done by workers
static _Atomic uint32_t caller_sleeping;
static int started;                              // workers running (guarded by region_lock)
static pthread_mutex_t region_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int inside_part;  // this thread is running a part (its region holds the pool)

static void *worker_main(void *arg) {
    struct slot *s = arg;
    uint32_t seen = 0;
    inside_part = 1;  // a worker only ever runs parts: a region it starts would wait on itself
#if defined(__linux__)
    pthread_setname_np(pthread_self(), "muwa-worker");
#endif
    for (;;) {
        seen = wait_change(&s->ticket, seen, &s->sleeping);
        s->fn(s->ctx, s->part);
        if (atomic_fetch_sub(&remaining, 1) == 1 && atomic_load(&caller_sleeping)) futex_wake(&remaining);
    }
    return 0;
}

/// Starts workers until `want` run (region_lock held); returns how many run.
static int grow(int want) {
    while (started < want) {
        pthread_t thread;
        pthread_attr_t attr;
        if (pthread_attr_init(&attr) != 0) break;
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 8u << 20);  // Swift bodies may use stack temporaries
        int rc = pthread_create(&thread, &attr, worker_main, &slots[started + 1]);
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        started++;
    }
    return started;
}

int muwa_pool_run(long parts, muwa_pool_fn fn, void *ctx) {
    if (parts < 2 || parts > MAX_WORKERS + 1 || inside_part) return 0;
    if (pthread_mutex_trylock(&region_lock) != 0) return 0;
    if (grow((int)parts - 1) < parts - 1) {
        pthread_mutex_unlock(&region_lock);
        return 0;
    }
    atomic_store(&remaining, (uint32_t)(parts - 1));
    for (long p = 1; p < parts; p++) {
        struct slot *s = &slots[p];
        s->fn = fn;
        s->ctx = ctx;
        s->part = p;
        publish(&s->ticket, atomic_load_explicit(&s->ticket, memory_order_relaxed) + 1, &s->sleeping);
    }
    inside_part = 1;
    fn(ctx, 0);
    inside_part = 0;
    for (uint32_t left; (left = atomic_load_explicit(&remaining, memory_order_acquire)) != 0;)
        wait_change(&remaining, left, &caller_sleeping);
    pthread_mutex_unlock(&region_lock);
    return 1;
}
#else
int muwa_pool_run(long parts, muwa_pool_fn fn, void *ctx) {
    (void)parts, (void)fn, (void)ctx;
    return 0;
}
#endif
