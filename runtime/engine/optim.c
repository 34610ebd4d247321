/* Optimizers, gradient clipping and the EMA, over the parameter store's
 * contiguous blocks (alignment padding between tensors stays zero). */
#include "dfrun/optim.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "parallel.h"
#include <stdatomic.h>

struct df_optim {
    df_params *ps;
    df_opt_config cfg;
    int64_t n;    /* block length when created */
    float *state; /* Adam: m then v; SGD: momentum */
    float *decay; /* per-element weight-decay mask (1 or 0) */
    int64_t steps;
};

df_opt_config df_opt_defaults(df_opt_kind kind) {
    df_opt_config c = {kind, 2e-4f, 0.9f, 0, 0.9f, 0.999f, 1e-8f, 0.0f};
    if (kind == DF_OPT_SGD) c.lr = 1e-2f;
    if (kind == DF_OPT_ADAMW) c.weight_decay = 1e-2f;
    return c;
}

df_optim *df_optim_new(df_params *ps, const df_opt_config *cfg) {
    if (!ps || !cfg) {
        df_seterr(DF_EINVAL, "df_optim_new: NULL argument");
        return NULL;
    }
    if (cfg->kind < DF_OPT_SGD || cfg->kind > DF_OPT_ADAMW || !(cfg->lr >= 0) ||
        !(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1) ||
        !(cfg->eps > 0) || !(cfg->weight_decay >= 0) || !(cfg->momentum >= 0)) {
        df_seterr(DF_EINVAL,
                  "df_optim_new: bad configuration (lr %g, betas %g %g, eps %g, decay %g, "
                  "momentum %g): expected lr >= 0, 0 <= beta < 1, eps > 0, decay >= 0",
                  cfg->lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay, cfg->momentum);
        return NULL;
    }
    if (df_params_alloc(ps)) return NULL;
    df_optim *o = calloc(1, sizeof *o);
    if (!o) goto oom;
    o->ps = ps;
    o->cfg = *cfg;
    o->n = df_params_block_numel(ps);
    int k = cfg->kind == DF_OPT_SGD ? 1 : 2;
    o->state = calloc((size_t)(k * o->n + 1), sizeof(float));
    o->decay = calloc((size_t)(o->n + 1), sizeof(float));
    if (!o->state || !o->decay) goto oom;
    for (int i = 0; i < df_params_count(ps); i++) {
        const df_param_info *p = df_params_info(ps, i);
        if (p->decay)
            for (int64_t j = 0; j < p->numel; j++) o->decay[p->offset + j] = 1.0f;
    }
    return o;
oom:
    df_optim_free(o);
    df_seterr(DF_ENOMEM, "df_optim_new: out of memory");
    return NULL;
}

void df_optim_free(df_optim *o) {
    if (!o) return;
    free(o->state);
    free(o->decay);
    free(o);
}

int64_t df_optim_steps(const df_optim *o) {
    return o ? o->steps : 0;
}
void df_optim_set_steps(df_optim *o, int64_t s) {
    if (o) o->steps = s;
}
float *df_optim_state(df_optim *o, int64_t *n) {
    if (!o) return NULL;
    if (n) *n = (o->cfg.kind == DF_OPT_SGD ? 1 : 2) * o->n;
    return o->state;
}

typedef struct {
    const float *g;
    _Atomic int bad;
} finite_job;
static void finite_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    finite_job *j = ctx;
    int ok = 1;
    (void)worker;
    for (int64_t i = i0; i < i1; i++) ok &= isfinite(j->g[i]) ? 1 : 0;
    if (!ok) atomic_store(&j->bad, 1);
}
static int grads_finite(const float *g, int64_t n) {
    finite_job j = {g, 0};
    df_parallel_for(n, DF_PIECE(n), finite_piece, &j);
    return !atomic_load(&j.bad);
}

/* One optimizer update of elements [i0, i1) (the step's constants in o). */
typedef struct {
    const df_opt_config *c;
    float *w, *m, *v;
    const float *g, *dm;
    float lr, step, rs;
    int64_t steps;
} update_job;
static void sgd_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const update_job *j = ctx;
    float *w = j->w, *m = j->m, mu = j->c->momentum, wd = j->c->weight_decay, lr = j->lr;
    const float *g = j->g, *dm = j->dm;
    int nest = j->c->nesterov;
    (void)worker;
    for (int64_t i = i0; i < i1; i++) {
        float gi = g[i] + wd * dm[i] * w[i];
        float mi = j->steps == 1 ? gi : mu * m[i] + gi;
        m[i] = mi;
        w[i] -= lr * (nest ? gi + mu * mi : mi);
    }
}
static void adam_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const update_job *j = ctx;
    float *w = j->w, *m = j->m, *v = j->v, wd = j->c->weight_decay, lr = j->lr;
    float b1 = j->c->beta1, b2 = j->c->beta2, eps = j->c->eps, step = j->step, rs = j->rs;
    const float *g = j->g, *dm = j->dm;
    int adamw = j->c->kind == DF_OPT_ADAMW;
    (void)worker;
    for (int64_t i = i0; i < i1; i++) {
        float gi = g[i];
        if (!adamw)
            gi += wd * dm[i] * w[i];
        else
            w[i] -= lr * wd * dm[i] * w[i];
        float mi = b1 * m[i] + (1 - b1) * gi;
        float vi = b2 * v[i] + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] -= step * mi / (sqrtf(vi) * rs + eps);
    }
}

df_status df_optim_step(df_optim *o, float lr) {
    if (!o) return df_seterr(DF_EINVAL, "df_optim_step: optimizer is NULL");
    if (df_params_block_numel(o->ps) != o->n)
        return df_seterr(DF_ESTATE, "df_optim_step: the parameter store grew after the "
                                    "optimizer was created");
    float *w = df_params_data(o->ps), *g = df_params_grad(o->ps);
    int64_t n = o->n;
    if (!grads_finite(g, n))
        return df_seterr(DF_ENONFINITE, "df_optim_step: non-finite gradient; parameters left "
                                        "unchanged");
    const df_opt_config *c = &o->cfg;
    if (lr < 0) lr = c->lr;
    o->steps++;
    update_job j = {c, w, o->state, o->state + n, g, o->decay, lr, 0, 0, o->steps};
    if (c->kind == DF_OPT_SGD) {
        df_parallel_for(n, DF_PIECE(n), sgd_piece, &j);
        return DF_OK;
    }
    double bc1 = 1.0 - pow(c->beta1, (double)o->steps), bc2 = 1.0 - pow(c->beta2, (double)o->steps);
    j.step = (float)(lr / bc1), j.rs = (float)(1.0 / sqrt(bc2));
    df_parallel_for(n, DF_PIECE(n), adam_piece, &j);
    return DF_OK;
}

typedef struct {
    const float *g;
    double *part;
    int64_t n, chunk;
} sumsq_job;
static void sumsq_piece(void *ctx, int64_t c0, int64_t c1, int worker) {
    const sumsq_job *j = ctx;
    (void)worker;
    for (int64_t c = c0; c < c1; c++) {
        double s = 0;
        int64_t e = (c + 1) * j->chunk < j->n ? (c + 1) * j->chunk : j->n;
        for (int64_t i = c * j->chunk; i < e; i++) s += (double)j->g[i] * j->g[i];
        j->part[c] = s;
    }
}
/* Fixed 4096-element chunks summed in order: independent of the thread count. */
double df_grad_norm(df_params *ps) {
    const float *g = df_params_grad(ps);
    int64_t n = df_params_block_numel(ps);
    if (!g || n == 0) return 0.0;
    int64_t chunk = 4096, nc = (n + chunk - 1) / chunk;
    double *part = malloc((size_t)nc * sizeof(double));
    if (!part) return NAN;
    df_parallel_for(nc, DF_PIECE(nc), sumsq_piece, &(sumsq_job){g, part, n, chunk});
    double s = 0;
    for (int64_t c = 0; c < nc; c++) s += part[c];
    free(part);
    return sqrt(s);
}

/* y = s y (x NULL), or the EMA y = s y + (1 - s) x, on [i0, i1) */
typedef struct {
    float *y;
    const float *x;
    float s;
} scale_job;
static void scale_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const scale_job *j = ctx;
    float *y = j->y, s = j->s;
    (void)worker;
    if (!j->x)
        for (int64_t i = i0; i < i1; i++) y[i] *= s;
    else
        for (int64_t i = i0; i < i1; i++) y[i] = s * y[i] + (1 - s) * j->x[i];
}

double df_clip_grad_norm(df_params *ps, double max_norm) {
    double norm = df_grad_norm(ps);
    if (!isfinite(norm)) return NAN;
    if (max_norm > 0 && norm > max_norm) {
        int64_t n = df_params_block_numel(ps);
        scale_job j = {df_params_grad(ps), NULL, (float)(max_norm / (norm + 1e-6))};
        df_parallel_for(n, DF_PIECE(n), scale_piece, &j);
    }
    return norm;
}

struct df_ema {
    df_params *ps;
    float decay;
    int warmup;
    int64_t updates;
    int64_t n;
    float *w;
};

df_ema *df_ema_new(df_params *ps, float decay, int warmup) {
    if (!ps || !(decay >= 0 && decay <= 1)) {
        df_seterr(DF_EINVAL, "df_ema_new: store NULL or decay %g outside [0, 1]", decay);
        return NULL;
    }
    if (df_params_alloc(ps)) return NULL;
    df_ema *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->ps = ps;
    e->decay = decay;
    e->warmup = warmup;
    e->n = df_params_block_numel(ps);
    e->w = malloc((size_t)(e->n + 1) * sizeof(float));
    if (!e->w) {
        free(e);
        df_seterr(DF_ENOMEM, "df_ema_new: out of memory");
        return NULL;
    }
    memcpy(e->w, df_params_data(ps), (size_t)e->n * sizeof(float));
    return e;
}
void df_ema_free(df_ema *e) {
    if (!e) return;
    free(e->w);
    free(e);
}
void df_ema_update(df_ema *e) {
    if (!e) return;
    scale_job j = {e->w, df_params_data(e->ps), df_ema_decay_now(e)};
    e->updates++;
    df_parallel_for(e->n, DF_PIECE(e->n), scale_piece, &j);
}
float df_ema_decay_now(const df_ema *e) {
    if (!e) return 0;
    double w = (1.0 + e->updates) / (10.0 + e->updates);
    return e->warmup && w < e->decay ? (float)w : e->decay;
}
int64_t df_ema_updates(const df_ema *e) {
    return e ? e->updates : 0;
}
void df_ema_set_updates(df_ema *e, int64_t n) {
    if (e) e->updates = n < 0 ? 0 : n;
}
float *df_ema_data(df_ema *e) {
    return e ? e->w : NULL;
}
void df_ema_swap(df_ema *e) {
    if (!e) return;
    float *w = df_params_data(e->ps);
    for (int64_t i = 0; i < e->n; i++) {
        float t = w[i];
        w[i] = e->w[i];
        e->w[i] = t;
    }
}
