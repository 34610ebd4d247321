/* Distributed context for data-parallel training with MPI. A process started
 * by mpirun (Open MPI: OMPI_COMM_WORLD_SIZE or PMIX_RANK in the environment)
 * initialises MPI in df_dist_init(); any other process never touches MPI and
 * sees one rank. Built without MPI, every context has one rank. Only the
 * calling (main) thread talks to MPI (MPI_THREAD_FUNNELED). */
#ifndef DFRUN_DIST_H
#define DFRUN_DIST_H
#include "dfrun/error.h"
#include "dfrun/graph.h"
#include "dfrun/params.h"
#include <stddef.h>

typedef struct df_dist df_dist;

/* Non-zero when libdfrun was built with MPI. */
int df_dist_built(void);
/* Initialise MPI if this process was started by mpirun (else nothing). Safe
 * to call more than once. */
df_status df_dist_init(void);
/* Finalize MPI if df_dist_init() initialised it. */
void df_dist_finalize(void);
/* Stop every rank of the job with exit code (MPI_Abort); without MPI, exit. */
void df_dist_abort(int code);

/* All ranks of the job (one rank when MPI is not in use). */
const df_dist *df_dist_world(void);
/* This process alone: a one-rank context (MPI_COMM_SELF). */
const df_dist *df_dist_self(void);
int df_dist_rank(const df_dist *d);
int df_dist_size(const df_dist *d);
/* Ranks of d on this host (MPI_COMM_TYPE_SHARED). */
int df_dist_local_size(const df_dist *d);

/* In-place element-wise sum over the ranks of d (blocking). */
df_status df_dist_sum(const df_dist *d, double *x, int n);
/* Rank root's bytes to every rank of d. */
df_status df_dist_bcast(const df_dist *d, void *buf, size_t bytes, int root);

/* Gradient averaging that overlaps the backward pass: the store's gradient
 * block is cut into buckets of about bucket_bytes in reverse parameter order;
 * each is scaled and summed over the ranks with a non-blocking allreduce as
 * soon as the graph's nodes that write its gradients have run (buckets are
 * started in a fixed order, so every rank issues the same sequence). */
typedef struct df_gradsync df_gradsync;
typedef struct {
    int64_t steps, buckets;
    double bytes;    /* per step */
    double wait_s;   /* total time blocked in df_gradsync_finish */
    double skew_s;   /* DF_SYNC_PROBE: at the barrier before (not in wait_s) */
    double window_s; /* total time from the first bucket's start to the end of finish */
} df_gradsync_stats;

enum {
    DF_SYNC_OVERLAP = 1, /* start buckets during the backward pass (else all in finish) */
    DF_SYNC_PROBE = 2    /* finish first waits at a barrier, timed apart (rank skew) */
};
/* flags: DF_SYNC_*. Takes g's df_on_node hook (until freed). NULL and
 * df_errmsg() on error. */
df_gradsync *df_gradsync_new(const df_dist *d, df_params *ps, df_graph *g, size_t bucket_bytes,
                             int flags);
/* Free, releasing the graph's hook. */
void df_gradsync_free(df_gradsync *s);
/* Before df_run(g): every gradient is pending; gradients will be scaled by scale. */
void df_gradsync_begin(df_gradsync *s, float scale);
/* After df_run(g) (also after a failed one): start the buckets not started
 * yet, wait for all. */
df_status df_gradsync_finish(df_gradsync *s);
/* Timings so far (zeros for NULL). */
df_gradsync_stats df_gradsync_get_stats(const df_gradsync *s);

#endif
