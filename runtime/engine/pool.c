/* dfrun's thread pool (see parallel.h).
 *
 * One loop at a time is posted by the thread that runs the graph. Its pieces
 * are claimed through one 64-bit word, [loop tag 24 bits | pieces 20 | next
 * piece 20], by compare-and-swap: a claim succeeds only for the current loop
 * and a piece that exists, so a thread that wakes late for a finished loop
 * claims nothing and touches nothing, and the poster never waits for it.
 * The poster takes pieces too, then waits for the count of finished pieces.
 * Waiting threads spin for a short while, then sleep on a futex.
 *
 * Binding (df_pool_bind): when the threads are exactly the CPUs the caller
 * may use, each is bound to one of them for a graph run. On a shared machine
 * the scheduler then time-slices a competing process with one of our threads
 * instead of stacking two of ours on one CPU; the dynamic hand-out of pieces
 * gives the thread with a CPU of its own the larger share. When the poster
 * goes to sleep waiting for a loop's last pieces, the workers may run
 * anywhere until their next wake (release_workers). */
#define _GNU_SOURCE
#include "parallel.h"
#include "dfrun/runtime.h"
#include <errno.h>
#include <immintrin.h>
#include <linux/futex.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TAG_BITS 24
#define CNT_BITS 20
#define MAX_PIECES ((1 << CNT_BITS) - 1)
#define SPIN_CYCLES 100000 /* time-stamp cycles to spin before sleeping: some tens of us */
#define MAX_WORKERS 1024

static struct {
    _Atomic uint64_t claim;         /* [tag | pieces | next] */
    _Atomic uint32_t posted;        /* futex: bumped for every loop posted */
    _Atomic int64_t done;           /* pieces finished in the current loop */
    _Atomic uint32_t poster_sleeps; /* futex: the poster is asleep waiting for `done` */
    _Atomic int sleepers;           /* pool threads asleep (or about to be) on `posted` */
    _Atomic int participants;       /* workers allowed to take pieces: [0, participants) */
    int64_t n, piece;
    df_loop_fn fn;
    void *ctx;
    uint32_t tag;
    pthread_mutex_t grow;      /* serialises starting threads */
    int started;               /* pool threads running (workers 1 .. started) */
    _Atomic uint32_t bind_gen; /* bumped when the workers' CPU sets change */
    cpu_set_t bind_mask;       /* the CPUs of the last bind */
    int bind_one;              /* worker k runs on the k-th CPU of bind_mask (else on all) */
} P = {.grow = PTHREAD_MUTEX_INITIALIZER};

static pid_t worker_tid[MAX_WORKERS + 1];   /* the kernel's id of each pool thread */
static _Thread_local int tls_worker;        /* 0: the poster or a foreign thread */
static _Thread_local int tls_in_loop;       /* inside a piece: nested loops run inline */
static _Thread_local int tls_blas_one;      /* a pool thread's OpenMP thread count is set to 1 */
static _Thread_local uint32_t tls_bind_gen; /* the bind this thread has applied */
static _Thread_local int tls_bound;         /* inside a bound run (df_run from a hook: as is) */

/* OpenBLAS (OpenMP flavour) sizes its own parallelism from the calling
 * thread's omp_get_max_threads(), and a thread that is not an OpenMP thread
 * gets the default (all cores): its GEMMs would start an OpenMP team of their
 * own inside our pieces. Pool threads ask for 1 once; the caller's thread
 * (the application's) asks for 1 during a loop and gets its setting back. */
static inline void blas_single(void) {
    if (tls_blas_one) return;
    omp_set_num_threads(1);
    tls_blas_one = 1;
}

int df_worker(void) {
    return tls_worker;
}

static void futex_wait(_Atomic uint32_t *a, uint32_t v) {
    syscall(SYS_futex, (uint32_t *)a, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}
static void futex_wake(_Atomic uint32_t *a) {
    syscall(SYS_futex, (uint32_t *)a, FUTEX_WAKE_PRIVATE, MAX_WORKERS, NULL, NULL, 0);
}

/* the k-th CPU of m (k taken modulo the count) as a one-CPU set */
static cpu_set_t nth_cpu(const cpu_set_t *m, int k) {
    cpu_set_t one;
    CPU_ZERO(&one);
    int n = CPU_COUNT(m), i = 0;
    k = n ? k % n : 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, m) && i++ == k) {
            CPU_SET(c, &one);
            break;
        }
    return one;
}

/* a pool thread applies the latest bind (when it wakes for a loop) */
static void apply_bind(void) {
    uint32_t g = atomic_load_explicit(&P.bind_gen, memory_order_acquire);
    if (g == tls_bind_gen) return;
    tls_bind_gen = g;
    cpu_set_t m = P.bind_one ? nth_cpu(&P.bind_mask, tls_worker) : P.bind_mask;
    if (CPU_COUNT(&m)) pthread_setaffinity_np(pthread_self(), sizeof m, &m); /* none: as started */
}

void df_pool_bind(df_pool_binding *b) {
    static int mode = -1;
    b->bound = 0;
    if (mode < 0) {
        const char *e = getenv("DFRUN_BIND");
        mode = !(e && e[0] == '0');
    }
    int nt = df_get_threads();
    if (tls_worker || tls_in_loop || tls_bound || nt < 2) return;
    cpu_set_t m;
    if (pthread_getaffinity_np(pthread_self(), sizeof m, &m)) return;
    int one = mode && CPU_COUNT(&m) == nt;
    if (one != P.bind_one ||
        !CPU_EQUAL(&m, &P.bind_mask)) { /* the workers follow at their next wake */
        P.bind_mask = m;
        P.bind_one = one;
        atomic_fetch_add_explicit(&P.bind_gen, 1, memory_order_release);
    }
    if (!one) return;
    cpu_set_t first = nth_cpu(&m, 0);
    if (pthread_setaffinity_np(pthread_self(), sizeof first, &first)) return;
    b->saved = m;
    b->bound = tls_bound = 1;
}

void df_pool_unbind(const df_pool_binding *b) {
    if (!b->bound) return;
    pthread_setaffinity_np(pthread_self(), sizeof b->saved, &b->saved);
    tls_bound = 0;
}

/* The poster is about to sleep until a loop's last pieces are done: when the
 * workers are bound one per CPU, they may run anywhere until their next wake
 * (apply_bind binds them again). A worker that a competing process keeps off
 * its CPU while it holds a piece can then be moved by the kernel to the CPU
 * the poster leaves idle, instead of holding everyone up for the rest of the
 * other process's time slice. */
static void release_workers(void) {
    if (!tls_bound || !P.bind_one) return;
    for (int k = 1; k <= P.started; k++)
        if (worker_tid[k]) sched_setaffinity(worker_tid[k], sizeof P.bind_mask, &P.bind_mask);
    atomic_fetch_add_explicit(&P.bind_gen, 1, memory_order_release);
}

static inline uint64_t pack(uint32_t tag, int64_t cnt, int64_t next) {
    return ((uint64_t)tag << (2 * CNT_BITS)) | ((uint64_t)cnt << CNT_BITS) | (uint64_t)next;
}

/* Take pieces of the loop tagged `tag` until none is left. */
static void take_pieces(uint32_t tag, int worker) {
    uint64_t v = atomic_load_explicit(&P.claim, memory_order_acquire);
    for (;;) {
        uint32_t t = (uint32_t)(v >> (2 * CNT_BITS));
        int64_t cnt = (int64_t)((v >> CNT_BITS) & MAX_PIECES), next = (int64_t)(v & MAX_PIECES);
        if (t != tag || next >= cnt) return;
        /* a thread beyond the count asked for (after df_set_threads lowered
         * it) takes nothing: its scratch was not planned */
        if (worker >= atomic_load_explicit(&P.participants, memory_order_relaxed)) return;
        if (!atomic_compare_exchange_weak_explicit(&P.claim, &v, v + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        /* a piece of this loop is ours: the loop's fields stay until it is done */
        int64_t i0 = next * P.piece, i1 = i0 + P.piece < P.n ? i0 + P.piece : P.n;
        tls_in_loop = 1;
        P.fn(P.ctx, i0, i1, worker);
        tls_in_loop = 0;
        /* seq_cst pairs with the poster's store of poster_sleeps, then load of done */
        if (atomic_fetch_add(&P.done, 1) + 1 == cnt && atomic_load(&P.poster_sleeps)) {
            atomic_store(&P.poster_sleeps, 0);
            futex_wake(&P.poster_sleeps);
        }
        v = atomic_load_explicit(&P.claim, memory_order_acquire);
    }
}

/* arg: the worker index in the low 32 bits, the loop count posted when it
 * was started in the high ones (a loop posted since is one to join) */
static void *worker_main(void *arg) {
    tls_worker = (int)((uintptr_t)arg & 0xffffffffu);
    worker_tid[tls_worker] = (pid_t)syscall(SYS_gettid);
    blas_single();
    uint32_t seen = (uint32_t)((uintptr_t)arg >> 32);
    for (;;) {
        uint32_t now = seen;
        for (uint64_t t0 = __rdtsc(); __rdtsc() - t0 < SPIN_CYCLES;) {
            now = atomic_load_explicit(&P.posted, memory_order_acquire);
            if (now != seen) break;
            _mm_pause();
        }
        if (now == seen) {
            atomic_fetch_add(&P.sleepers, 1); /* seq_cst: pairs with the poster's bump, then load */
            futex_wait(&P.posted, seen);
            atomic_fetch_sub(&P.sleepers, 1);
            continue;
        }
        seen = now;
        apply_bind();
        uint64_t v = atomic_load_explicit(&P.claim, memory_order_acquire);
        take_pieces((uint32_t)(v >> (2 * CNT_BITS)), tls_worker);
    }
    return NULL;
}

/* A child of fork() has only the thread that forked: it starts its own pool. */
static void forked_child(void) {
    pthread_mutex_init(&P.grow, NULL);
    P.started = 0;
    atomic_store(&P.sleepers, 0);
    tls_in_loop = 0;
    P.bind_one = 0;
    CPU_ZERO(&P.bind_mask);
    tls_bound = 0;
}
static void register_fork_handler(void) {
    pthread_atfork(NULL, NULL, forked_child);
}

/* Start pool threads up to want - 1 (they live as long as the process). */
static void ensure_threads(int want) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (want > MAX_WORKERS) want = MAX_WORKERS;
    pthread_once(&once, register_fork_handler);
    if (want - 1 <= P.started) return;
    pthread_mutex_lock(&P.grow);
    while (P.started < want - 1) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        uintptr_t arg = (uintptr_t)(P.started + 1) | (uintptr_t)atomic_load(&P.posted)
                                                         << 32; /* before this loop's post */
        int rc = pthread_create(&th, &at, worker_main, (void *)arg);
        pthread_attr_destroy(&at);
        if (rc) break; /* fewer threads: the work still gets done by those there are */
        P.started++;
    }
    pthread_mutex_unlock(&P.grow);
}

static void run_inline(int64_t n, int64_t piece, df_loop_fn fn, void *ctx) {
    int was = tls_in_loop;
    tls_in_loop = 1;
    for (int64_t i0 = 0; i0 < n; i0 += piece)
        fn(ctx, i0, i0 + piece < n ? i0 + piece : n, tls_worker);
    tls_in_loop = was;
}

static void post_loop(int64_t n, int64_t piece, df_loop_fn fn, void *ctx);

void df_parallel_for(int64_t n, int64_t piece, df_loop_fn fn, void *ctx) {
    if (n <= 0) return;
    if (tls_blas_one || tls_in_loop) { /* a pool thread, or nested: already 1 */
        post_loop(n, piece, fn, ctx);
        return;
    }
    int was = omp_get_max_threads();
    if (was != 1) omp_set_num_threads(1);
    post_loop(n, piece, fn, ctx);
    if (was != 1) omp_set_num_threads(was);
}

static void post_loop(int64_t n, int64_t piece, df_loop_fn fn, void *ctx) {
    if (piece < 1) piece = 1;
    int64_t cnt = (n + piece - 1) / piece;
    if (cnt > MAX_PIECES) { /* bigger pieces: the claim word holds 2^20 - 1 */
        piece = (n + MAX_PIECES - 1) / MAX_PIECES;
        cnt = (n + piece - 1) / piece;
    }
    int nt = df_get_threads();
    if (cnt == 1 || nt == 1 || tls_in_loop) {
        run_inline(n, piece, fn, ctx);
        return;
    }
    ensure_threads(nt);
    P.n = n, P.piece = piece, P.fn = fn, P.ctx = ctx;
    atomic_store_explicit(&P.participants, nt, memory_order_relaxed);
    P.tag = (P.tag + 1) & ((1u << TAG_BITS) - 1);
    atomic_store_explicit(&P.done, 0, memory_order_relaxed);
    atomic_store_explicit(&P.claim, pack(P.tag, cnt, 0), memory_order_release);
    atomic_fetch_add(&P.posted, 1);
    if (atomic_load(&P.sleepers)) futex_wake(&P.posted);
    take_pieces(P.tag, 0);
    uint64_t t0 = __rdtsc();
    while (atomic_load_explicit(&P.done, memory_order_acquire) < cnt) {
        if (__rdtsc() - t0 < SPIN_CYCLES) {
            _mm_pause();
            continue;
        }
        atomic_store(&P.poster_sleeps, 1);
        if (atomic_load(&P.done) < cnt) {
            release_workers();
            futex_wait(&P.poster_sleeps, 1);
        }
    }
}
