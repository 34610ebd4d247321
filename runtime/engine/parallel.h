/* How kernels share work between threads (internal to the library).
 *
 * Work is cut into pieces fixed by the shape (never by the thread count), so
 * every piece computes the same arithmetic whatever the thread count. The
 * pieces are handed out dynamically by dfrun's own thread pool: every thread
 * that is running takes the next piece, and a loop ends when its pieces are
 * done, not when every thread has checked in. A thread that another process
 * keeps off its core (a shared machine) therefore neither holds the others
 * back at the end of a loop, as a static split would, nor delays the start
 * of the next one, as OpenMP's end-of-region barrier does. Idle threads spin
 * briefly, then sleep (no busy waiting while the process is idle).
 *
 *   static void body(void *ctx, int64_t i0, int64_t i1, int worker) {...}
 *   df_parallel_for(n, DF_PIECE(n), body, &ctx);
 *
 * worker is in [0, df_get_threads()): the index of per-thread scratch. */
#ifndef DFRUN_PARALLEL_H
#define DFRUN_PARALLEL_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stdint.h>

/* DF_PIECE(n): iterations per piece for a loop of n iterations, about
 * DF_PIECES pieces (at least one iteration each). DF_PIECE_IF(n, big): the
 * same when big is true, else one piece (run on the calling thread). */
#define DF_PIECES 32
#define DF_PIECE(n) ((n) >= 2 * DF_PIECES ? (int64_t)((n) / DF_PIECES) : (int64_t)1)
#define DF_PIECE_IF(n, big) ((big) ? DF_PIECE(n) : (int64_t)(n))

/* The body of a loop: iterations [i0, i1) on thread `worker`. */
typedef void (*df_loop_fn)(void *ctx, int64_t i0, int64_t i1, int worker);

/* Runs iterations [0, n) in pieces of `piece` iterations (the last may be
 * shorter) on the pool's threads and the calling one; returns when all are
 * done. One piece, or a call from inside a piece, runs on the calling
 * thread. */
void df_parallel_for(int64_t n, int64_t piece, df_loop_fn fn, void *ctx);

/* The calling thread's worker index (0 outside pool threads). */
int df_worker(void);

/* Binding for a graph run. When the thread count equals the CPUs the calling
 * thread may use (and DFRUN_BIND is not 0), df_pool_bind binds the caller to
 * the first of them and pool thread k to the k-th (pool threads apply it when
 * they next wake); otherwise pool threads may use all of the caller's CPUs.
 * df_pool_unbind gives the caller its own CPU set back. */
typedef struct {
    int bound;
    cpu_set_t saved;
} df_pool_binding;
void df_pool_bind(df_pool_binding *b);
void df_pool_unbind(const df_pool_binding *b);

#endif
