/* Checkpoints: safetensors files that describe themselves. Besides the
 * parameters, EMA weights and optimizer state, the metadata carries the fully
 * resolved graph document (includes inlined, overrides applied, every config
 * key), the dfrun and format versions, the step, the RNG state and the EMA
 * update count, so that sampling or resuming needs nothing else. Written
 * atomically; a failed write keeps the previous file. */
#ifndef DFRUN_CHECKPOINT_H
#define DFRUN_CHECKPOINT_H
#include "dfrun/dsl.h"
#include "dfrun/io.h"
#include "dfrun/optim.h"
#include "dfrun/rng.h"
#include "dfrun/version.h"

#define DF_CKPT_FORMAT "dfrun-checkpoint-2"

typedef enum { DF_WEIGHTS_EMA = 0, DF_WEIGHTS_RAW } df_weights;

/* What a checkpoint holds. opt and ema may be NULL (not stored). */
typedef struct {
    df_params *ps;
    df_ema *ema;
    df_optim *opt;
    int64_t step;
    df_rng rng;
    const char *graph_doc;  /* the resolved graph document */
    const char *graph_path; /* the original file (informational) */
    int ranks;              /* processes that trained it (0: not recorded) */
} df_ckpt_state;

df_status df_ckpt_save(const char *path, const df_ckpt_state *s);

/* An opened checkpoint: the file, and its metadata checked and typed. */
typedef struct {
    df_st_file *st;
    const char *path;
    const char *graph_doc;  /* NULL in checkpoints older than format 2 */
    const char *graph_path; /* NULL if not recorded */
    const char *version;    /* dfrun version that wrote it, or "?" */
    int format;             /* 1 or 2 */
    int has_train_state;    /* step, RNG, optimizer state present */
    int64_t step, opt_steps, ema_updates;
    int64_t ranks; /* processes that trained it; 1 when not recorded */
    df_rng rng;
} df_ckpt;

/* Open and validate (numbers in the metadata parsed strictly). */
df_status df_ckpt_open(const char *path, df_ckpt *c);
void df_ckpt_close(df_ckpt *c);

/* The checkpoint's model: its stored graph with sets applied on top; for an
 * old checkpoint, the graph file at the recorded path (notice says so).
 * graph: a graph file given explicitly; it is checked against the stored one
 * (the first parameter whose name or shape differs is named). notice gets a
 * line for the user, or "". */
df_gfile *df_ckpt_graph(const df_ckpt *c, const char *graph, const char *const *sets, int nsets,
                        char *notice, size_t nn);

/* Copy weights into ps (every parameter must be present with its shape and
 * float32 dtype: errors name the first that is not). */
df_status df_ckpt_load_params(const df_ckpt *c, df_params *ps, df_weights w);
/* Restore the training state: EMA weights and count, optimizer state. */
df_status df_ckpt_load_train_state(const df_ckpt *c, df_params *ps, df_ema *ema, df_optim *opt);

/* "<dir>/checkpoint.safetensors" if path is a directory, else path (into buf). */
const char *df_ckpt_path(const char *path, char *buf, size_t n);
/* The newest run under root ("runs"): the latest link with the newest
 * modification time; into buf. DF_EIO if there is none. */
df_status df_ckpt_latest_run(const char *root, char *buf, size_t n);

#endif
