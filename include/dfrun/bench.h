/* Timing a graph file's model: training steps (forward, backward, optimizer)
 * and inference forwards on random data after a warm-up, with FLOP rates and
 * planned and peak memory. */
#ifndef DFRUN_BENCH_H
#define DFRUN_BENCH_H
#include "dfrun/error.h"
#include <stdint.h>

typedef struct {
    int64_t params;            /* scalar parameters */
    int64_t batch, eval_batch; /* training and inference batch sizes */
    int threads;               /* threads in force */
    int steps, eval_steps;     /* timed training steps and forwards */
    double train_step_s;       /* seconds per training step */
    double train_img_per_s;    /* examples per second in training */
    double train_gflop_per_s;  /* 3x the forward FLOPs per step, per second */
    double eval_s;             /* seconds per inference forward */
    double eval_img_per_s;     /* examples per second in inference */
    double fwd_gflop_per_img;  /* forward GFLOP per example */
    double train_planned_mib;  /* the training graph's planned arena */
    double train_no_reuse_mib; /* the same without buffer reuse */
    double eval_planned_mib;   /* the inference graph's planned arena */
    double peak_rss_mib;       /* the process's peak resident set (0 if unknown) */
    char precision[80];        /* "fp32", or "bf16 (" df_bf16_mode() ")" */
} df_bench_result;

/* Load graph (with "path=value" sets), build it for training at batch and
 * for inference at sample_batch over one parameter store, optimizer from the
 * file's train section; time `steps` training steps and max(steps / 2, 2)
 * forwards after one warm-up each. */
df_status df_bench(const char *graph, const char *const *sets, int nsets, int64_t batch,
                   int64_t sample_batch, int steps, df_bench_result *r);

/* ---- against the PyTorch peer (../shared/bench/torch_ref.py) ---- */
typedef struct {
    int64_t params;
    double train_img_per_s, eval_img_per_s, peak_rss_mib;
} df_peer_result;

typedef struct {
    const char *graph; /* the graph file, with sets as in df_bench */
    const char *const *sets;
    int nsets;
    int64_t batch, sample_batch;
    int steps;                 /* per run, as in df_bench */
    int rounds;                /* runs of each side, alternating which goes first */
    int busy;                  /* a competing single-threaded busy process runs meanwhile */
    const char *python;        /* the peer's interpreter, e.g. /usr/bin/python3 */
    const char *peer;          /* the peer's script: `python peer bench --threads T ...` */
    const char *peer_channels; /* the peer's --channels ("64,128,256"), NULL: its default */
} df_compare_opts;

/* Called after each round with both sides' results; with busy, ours and
 * peer ran beside the busy process and ours_quiet, peer_quiet without it in
 * the same round (else those two are NULL). */
typedef void (*df_compare_round_fn)(void *ctx, int round, const df_bench_result *ours,
                                    const df_peer_result *peer, const df_bench_result *ours_quiet,
                                    const df_peer_result *peer_quiet);

/* Runs df_bench and the peer `rounds` times each, alternating, each run in a
 * child process of its own (so each peak resident set is its own), with the
 * current thread count; errors if the peer's network differs in size. With
 * busy, a round runs both sides quiet, then both beside a competing busy
 * process (the share each keeps of its quiet rate under load). */
df_status df_bench_compare(const df_compare_opts *o, df_compare_round_fn on_round, void *ctx);

/* ---- thread scaling ---- */
/* The machine's own 1 -> threads scaling at this moment: arithmetic alone
 * (no memory traffic) in pieces on dfrun's thread pool, timed on 1 thread
 * and on `threads` with the same work per thread; threads x t1 / tT. On
 * free cores it is about `threads`; less when other processes or virtual
 * machines share them: the ceiling for any program's scaling then. */
double df_cpu_scaling(int threads);
/* The same for memory traffic alone: a triad c = a + 1.5 b over three
 * 96 MiB arrays (beyond the caches), best of three on 1 thread and on
 * `threads`; t1 / tT. Work that streams memory scales no better. */
double df_memory_scaling(int threads);
/* Called after each round with the results on 1 thread and on the current
 * thread count, and df_cpu_scaling and df_memory_scaling measured between them. */
typedef void (*df_scaling_round_fn)(void *ctx, int round, const df_bench_result *one,
                                    const df_bench_result *many, double cpu, double mem);
/* Runs df_bench on 1 thread and on the current thread count `rounds` times
 * each, alternating which goes first, each run in a child process of its
 * own (the options' graph, sets, batches, steps and rounds; the peer's
 * fields and busy are not used), with df_cpu_scaling and df_memory_scaling
 * between the two. */
df_status df_bench_scaling(const df_compare_opts *o, df_scaling_round_fn on_round, void *ctx);

#endif
