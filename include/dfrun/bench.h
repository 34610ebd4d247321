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
} df_bench_result;

/* Load graph (with "path=value" sets), build it for training at batch and
 * for inference at sample_batch over one parameter store, optimizer from the
 * file's train section; time `steps` training steps and max(steps / 2, 2)
 * forwards after one warm-up each. */
df_status df_bench(const char *graph, const char *const *sets, int nsets, int64_t batch,
                   int64_t sample_batch, int steps, df_bench_result *r);

#endif
