/* Sampling a trained model: a generator drives a sampler with the model's
 * noise prediction, batched, with classifier-free guidance (the conditional
 * and null-class passes in one forward). Open it from a checkpoint alone
 * (self-describing checkpoints) or over live parameters. */
#ifndef DFRUN_SAMPLE_H
#define DFRUN_SAMPLE_H
#include "dfrun/checkpoint.h"
#include "dfrun/config.h"
#include "dfrun/diffusion.h"
#include "dfrun/model.h"

typedef struct {
    const char *ckpt;        /* checkpoint file or run directory */
    const char *graph;       /* optional: checked against the stored graph */
    const char *const *sets; /* overrides of the stored config (sampler.*) */
    int nsets;
    df_weights weights; /* EMA (default) or raw */
    int64_t batch;      /* forward batch; 0: 200, or 2 x count when that is smaller */
    int64_t count;      /* samples the caller will draw, if known (0: not known) */
} df_gen_opts;

typedef struct df_generator df_generator;

/* NULL with df_errmsg() on error. */
df_generator *df_generator_open(const df_gen_opts *o);
/* Over a graph file and live parameters (sample grids during training). */
df_generator *df_generator_new(df_gfile *f, const df_config *c, df_params *ps, int64_t batch);
void df_generator_free(df_generator *g);
/* A line for the user about how the model was found ("" if nothing to say). */
const char *df_generator_notice(const df_generator *g);
const df_config *df_generator_config(const df_generator *g);
const df_model *df_generator_model(const df_generator *g);

typedef struct {
    int64_t count;
    const int32_t *labels;         /* [count] or NULL (unconditional: the null class) */
    const df_sampler_cfg *sampler; /* NULL: the config's */
    const double *guidance;        /* NULL: the config's sampler.guidance */
    uint64_t seed;
    void (*traj)(void *ctx, const float *x, double t, int step); /* optional */
    void *traj_ctx;
} df_gen_request;

/* Samples into out [count * dim] (images clamped to [-1, 1]). */
df_status df_generate(df_generator *g, const df_gen_request *r, float *out);

/* df_generate, and a PNG of the reverse process at 9 times from noise to
 * samples (images: a row per sample, up to 10; 2-D points: density panels). */
df_status df_generate_trajectory(df_generator *g, const df_gen_request *r, float *out,
                                 const char *path);

/* The schedule, sampler and optimizer settings of a config. */
df_status df_config_schedule(const df_config *c, df_schedule *s);
df_sampler_cfg df_config_sampler(const df_config *c);

/* Samples to a file by extension: .png (image grid with `cols` per row, or a
 * scatter plot for 2-D points) or .npy ([count, ...x's shape]). */
df_status df_save_samples(const char *path, const float *x, int64_t count, const df_shape *xshape,
                          int cols);

#endif
