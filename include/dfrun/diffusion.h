/* Diffusion maths: noise schedules and samplers (../shared/spec/diffusion_math.md).
 * Everything runs on a continuous time t in (0, 1] with alpha_bar(t);
 * discrete schedules define alpha_bar at t = i/T (interpolated in log). The
 * samplers drive a caller's noise predictor eps(x, t) and are independent of
 * the network, so they are tested against analytic scores. */
#ifndef DFRUN_DIFFUSION_H
#define DFRUN_DIFFUSION_H
#include "dfrun/error.h"
#include "dfrun/rng.h"
#include <stdint.h>

typedef enum {
    DF_SCHED_VP = 0,      /* VP SDE, linear beta(t) from beta_min to beta_max */
    DF_SCHED_DDPM_LINEAR, /* discrete linear betas 1e-4 .. 0.02 (beta_min/max) over T */
    DF_SCHED_COSINE,      /* discrete cosine (Nichol & Dhariwal) over T */
    DF_SCHED_POLY         /* discrete: 1 - alpha_bar_i = (i/T)^power * (1 - ab_min) ... see .c */
} df_sched_kind;

typedef struct {
    df_sched_kind kind;
    double beta_min, beta_max; /* VP: 0.1, 20; DDPM linear: 1e-4, 0.02 */
    int T;                     /* discrete steps */
    double power;              /* poly */
    double *ab;                /* discrete: ab[0..T], ab[0] = 1 */
} df_schedule;

/* Set up a schedule (discrete tables allocated); df_schedule_free releases. */
df_status df_schedule_init(df_schedule *s, df_sched_kind kind, double beta_min, double beta_max,
                           int T, double power);
void df_schedule_free(df_schedule *s);
/* alpha_bar(t), t in [0, 1]. */
double df_sched_ab(const df_schedule *s, double t);
/* beta(t) = -d/dt log alpha_bar(t) (the VP SDE's; numerical for discrete ones). */
double df_sched_beta(const df_schedule *s, double t);
/* log-SNR lambda(t) = log(sqrt(ab) / sqrt(1 - ab)). */
double df_sched_lambda(const df_schedule *s, double t);
/* The time where log-SNR lambda = log(a/s) is reached (bisection for discrete). */
double df_sched_t_of_lambda(const df_schedule *s, double lambda);

typedef enum {
    DF_SAMPLER_EULER_MARUYAMA = 0, /* reverse SDE, the score-SDE article's */
    DF_SAMPLER_DDPM,               /* ancestral */
    DF_SAMPLER_DDIM,               /* with eta */
    DF_SAMPLER_PF_HEUN,            /* probability-flow ODE, Heun, Karras sigma grid */
    DF_SAMPLER_DPMPP_2M,           /* DPM-Solver++(2M), log-SNR-uniform grid */
    DF_SAMPLER_PC_LANGEVIN         /* Langevin corrector + Euler-Maruyama predictor */
} df_sampler_kind;

/* Name <-> kind ("euler_maruyama", "ddpm", "ddim", "pf_ode_heun", "dpmpp_2m", "pc_langevin"). */
int df_sampler_by_name(const char *name);
const char *df_sampler_name(int kind);

/* The noise predictor: eps[n * dim] for x[n * dim] at time t (same t for the batch). */
typedef df_status (*df_eps_fn)(void *ctx, const float *x, int64_t n, int64_t dim, double t,
                               float *eps);

typedef struct {
    df_sampler_kind kind;
    int steps;
    double t_min; /* last time (1e-3) */
    double eta;   /* DDIM */
    double snr;   /* Langevin corrector */
    int corrector_steps;
    double clip_x0; /* > 0: x0^ clipped to [-clip_x0, clip_x0] (DDIM, DPM++; DDPM's last step) */
} df_sampler_cfg;

df_sampler_cfg df_sampler_defaults(df_sampler_kind kind);

/* Run the sampler from x ~ N(0, I) (drawn here from rng) to samples in x
 * [n * dim]. traj (optional): called after every step with the current x. */
df_status df_sample(const df_schedule *s, const df_sampler_cfg *cfg, df_eps_fn eps, void *ctx,
                    float *x, int64_t n, int64_t dim, df_rng *rng,
                    void (*traj)(void *ctx, const float *x, double t, int step), void *traj_ctx);

/* ---- training: denoising score matching batches ---- */

typedef struct {
    double t_min;         /* continuous schedules: t ~ U(t_min, 1) */
    int predict_score;    /* target -eps with loss weight sigma (else eps, weight 1) */
    double label_dropout; /* probability a label becomes null_class */
    int32_t null_class;
} df_dsm_cfg;

/* Noise B clean examples x0 [B, dim] (labels y0 [B] or NULL) into a training
 * batch: t [B] (i/T for discrete schedules), xt = sqrt(ab) x0 + sqrt(1-ab) eps
 * [B, dim], target [B, dim] (eps, or -eps for score targets), weight [B]
 * (1, or sigma), labels y [B] with dropout if dropout != 0. Row i draws from
 * its own stretch of r's stream, DF_DSM_DRAWS(dim) values at r->counter +
 * i * DF_DSM_DRAWS(dim) (2 uniforms: time, dropout; then dim normals), so a
 * batch split into shards (r advanced to each shard's first row) draws what
 * the whole batch does. Advances r by B * DF_DSM_DRAWS(dim). */
#define DF_DSM_DRAWS(dim) (2 + (uint64_t)(dim))
void df_dsm_batch(const df_schedule *s, const df_dsm_cfg *c, const float *x0, const int32_t *y0,
                  int64_t B, int64_t dim, int dropout, df_rng *r, float *xt, float *target,
                  float *weight, float *t, int32_t *y);

/* Classifier-free guidance on network outputs cond and uncond [n]:
 * eps = scale * (uncond + w (cond - uncond)); scale = 1 for eps models,
 * -sigma(t) for score models. uncond may be NULL (w ignored). */
void df_guided_eps(const float *cond, const float *uncond, int64_t n, double w, double scale,
                   float *eps);

#endif
