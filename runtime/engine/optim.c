/* Optimizers, gradient clipping and the EMA, over the parameter store's
 * contiguous blocks (alignment padding between tensors stays zero). */
#include "dfrun/optim.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

static int grads_finite(const float *g, int64_t n) {
    int ok = 1;
#pragma omp parallel for reduction(& : ok) schedule(static)
    for (int64_t i = 0; i < n; i++) ok &= isfinite(g[i]) ? 1 : 0;
    return ok;
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
    float wd = c->weight_decay;
    const float *dm = o->decay;
    if (c->kind == DF_OPT_SGD) {
        float *m = o->state, mu = c->momentum;
        int nest = c->nesterov;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i] + wd * dm[i] * w[i];
            float mi = o->steps == 1 ? gi : mu * m[i] + gi;
            m[i] = mi;
            w[i] -= lr * (nest ? gi + mu * mi : mi);
        }
        return DF_OK;
    }
    float *m = o->state, *v = o->state + n;
    float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    double bc1 = 1.0 - pow(b1, (double)o->steps), bc2 = 1.0 - pow(b2, (double)o->steps);
    float step = (float)(lr / bc1), rs = (float)(1.0 / sqrt(bc2));
    int adamw = c->kind == DF_OPT_ADAMW;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
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
    return DF_OK;
}

/* Fixed 4096-element chunks summed in order: independent of the thread count. */
double df_grad_norm(df_params *ps) {
    const float *g = df_params_grad(ps);
    int64_t n = df_params_block_numel(ps);
    if (!g || n == 0) return 0.0;
    int64_t chunk = 4096, nc = (n + chunk - 1) / chunk;
    double *part = malloc((size_t)nc * sizeof(double));
    if (!part) return NAN;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nc; c++) {
        double s = 0;
        int64_t e = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        for (int64_t i = c * chunk; i < e; i++) s += (double)g[i] * g[i];
        part[c] = s;
    }
    double s = 0;
    for (int64_t c = 0; c < nc; c++) s += part[c];
    free(part);
    return sqrt(s);
}

double df_clip_grad_norm(df_params *ps, double max_norm) {
    double norm = df_grad_norm(ps);
    if (!isfinite(norm)) return NAN;
    if (max_norm > 0 && norm > max_norm) {
        float s = (float)(max_norm / (norm + 1e-6));
        float *g = df_params_grad(ps);
        int64_t n = df_params_block_numel(ps);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) g[i] *= s;
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
    const float *w = df_params_data(e->ps);
    float d = df_ema_decay_now(e), *m = e->w;
    e->updates++;
    int64_t n = e->n;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) m[i] = d * m[i] + (1 - d) * w[i];
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
