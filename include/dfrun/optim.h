/* Optimizers over a parameter store's contiguous blocks: SGD with momentum,
 * Adam and AdamW (bias-corrected), global gradient-norm clipping, and an
 * exponential moving average of the weights. */
#ifndef DFRUN_OPTIM_H
#define DFRUN_OPTIM_H
#include "dfrun/error.h"
#include "dfrun/params.h"
#include <stdint.h>

typedef enum { DF_OPT_SGD = 0, DF_OPT_ADAM, DF_OPT_ADAMW } df_opt_kind;

typedef struct {
    df_opt_kind kind;
    float lr;
    float momentum;     /* SGD */
    int nesterov;       /* SGD */
    float beta1, beta2; /* Adam(W) */
    float eps;          /* Adam(W) */
    float weight_decay; /* SGD/Adam: L2 added to the gradient; AdamW: decoupled */
} df_opt_config;

/* Defaults: Adam, lr 2e-4, betas (0.9, 0.999), eps 1e-8, no decay. */
df_opt_config df_opt_defaults(df_opt_kind kind);

typedef struct df_optim df_optim;

/* New optimizer over ps (allocated). Its state (m, v or momentum) is one
 * contiguous block laid out like the parameters. */
df_optim *df_optim_new(df_params *ps, const df_opt_config *cfg);
void df_optim_free(df_optim *o);
/* One update with the gradients in the store; lr overrides cfg.lr if >= 0.
 * Fails with DF_ENONFINITE (parameters unchanged) on a non-finite gradient. */
df_status df_optim_step(df_optim *o, float lr);
/* Steps taken so far (bias correction uses it). */
int64_t df_optim_steps(const df_optim *o);
/* State block (2 * numel floats for Adam, numel for SGD) for checkpoints. */
float *df_optim_state(df_optim *o, int64_t *n);
void df_optim_set_steps(df_optim *o, int64_t steps);

/* L2 norm of all gradients (computed in double, thread-count independent). */
double df_grad_norm(df_params *ps);
/* Scale gradients so their global norm is at most max_norm; returns the norm
 * before clipping (NaN if non-finite: gradients left unchanged). */
double df_clip_grad_norm(df_params *ps, double max_norm);

/* EMA of the weights: ema = d * ema + (1 - d) * w, with d = decay, or with
 * warm-up d = min(decay, (1 + n) / (10 + n)) after n updates (score_sde,
 * k-diffusion), so early averages are not dominated by the initial weights. */
typedef struct df_ema df_ema;
/* Starts as a copy of the weights. */
df_ema *df_ema_new(df_params *ps, float decay, int warmup);
/* The decay the next update uses. */
float df_ema_decay_now(const df_ema *e);
/* Updates so far (checkpoints store it so resume stays exact). */
int64_t df_ema_updates(const df_ema *e);
void df_ema_set_updates(df_ema *e, int64_t n);
void df_ema_free(df_ema *e);
void df_ema_update(df_ema *e);
float *df_ema_data(df_ema *e);
/* Swap the EMA weights with the live ones (call twice to swap back). */
void df_ema_swap(df_ema *e);

#endif
