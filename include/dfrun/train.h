/* The trainer: "train this graph file". Denoising score matching (or
 * cross-entropy for classifier models) with the file's data, diffusion and
 * train sections; the lr schedule, clipping, the EMA with warm-up, periodic
 * validation, checkpoints, sample grids and loss plots in a run directory,
 * and exact resume. Everything is reported through a callback; nothing is
 * printed. */
#ifndef DFRUN_TRAIN_H
#define DFRUN_TRAIN_H
#include "dfrun/checkpoint.h"
#include "dfrun/config.h"
#include "dfrun/dsl.h"
#include "dfrun/params.h"

typedef enum {
    DF_EV_NOTICE,     /* text: something the user should know (data fallback, overrides) */
    DF_EV_START,      /* text: the run directory; total: step budget (0: minutes only) */
    DF_EV_LOG,        /* every train.log_every steps: loss, lr, grad_norm, img_per_s, eta_s */
    DF_EV_CHECKPOINT, /* text: the checkpoint written; val_loss */
    DF_EV_SAMPLES,    /* text: the sample grid (or loss plot) written */
    DF_EV_DONE        /* text: "done" or "stopped"; the final checkpoint is written */
} df_train_event_kind;

typedef struct {
    df_train_event_kind kind;
    int64_t step, total;
    double loss, val_loss, lr, grad_norm, img_per_s, elapsed_s, eta_s;
    const char *text;
} df_train_event;

typedef struct {
    const char *graph;       /* graph file (ignored when resuming: the checkpoint's) */
    const char *const *sets; /* "train.lr=1e-3", "vars.ch=[64,128,256]" */
    int nsets;               /* on resume they apply on top of the stored ones */
    const char *out_dir;     /* run directory; NULL: <runs_root>/<graph>/<time> */
    const char *runs_root;   /* NULL: "runs" */
    const char *data_dir;    /* MNIST directory given explicitly (no fallback) */
    int resume;              /* continue out_dir (or the graph's latest run) */
    int no_outputs;          /* no sample grids or plots (tests, benchmarks) */
    volatile int *stop;      /* set non-zero to stop after the current step */
    void (*on_event)(void *ctx, const df_train_event *e);
    void *ctx;
    /* Data parallelism: the ranks that share each batch (see dist.h). NULL:
     * df_dist_world(), all ranks of an mpirun job once df_dist_init() ran
     * (else one). Each rank takes a contiguous shard of the global batch
     * train.batch; gradients are summed before clipping, the optimizer and
     * the EMA; rank 0 alone writes the run directory and reports events. */
    const struct df_dist *dist;
} df_train_opts;

typedef struct df_trainer df_trainer;

/* Load the graph (or the checkpoint to resume), the data, build the
 * training graph, initialise or restore the state, create the run
 * directory. NULL with df_errmsg() on error. */
df_trainer *df_trainer_new(const df_train_opts *o);
void df_trainer_free(df_trainer *t);

/* One optimizer step on the next batch (logs, checkpoints and sample grids
 * fall due by the config's *_every). Fails on a non-finite loss or gradient
 * without touching the last checkpoint. */
df_status df_trainer_step(df_trainer *t);
/* Budget reached or stop requested. */
int df_trainer_done(const df_trainer *t);
/* Steps until done, then a final checkpoint, sample grid and loss plot. */
df_status df_trainer_run(df_trainer *t);
/* Loss on the fixed validation batch (the training loss's objective); with
 * several ranks, a collective call (each rank computes its shard). */
df_status df_trainer_validate(df_trainer *t, double *loss);
/* Write the checkpoint now. */
df_status df_trainer_save(df_trainer *t);

int64_t df_trainer_step_count(const df_trainer *t);
int64_t df_trainer_total(const df_trainer *t);
double df_trainer_loss(const df_trainer *t); /* of the last step */
const char *df_trainer_dir(const df_trainer *t);
const char *df_trainer_checkpoint(const df_trainer *t);
const df_config *df_trainer_config(const df_trainer *t);
df_params *df_trainer_params(df_trainer *t);
df_ema *df_trainer_ema(df_trainer *t);

/* The learning rate at a step (warm-up, then constant or cosine to total). */
double df_lr_at(const df_config *c, int64_t step, int64_t total);

#endif
