/* Sampling a model through the samplers (see sample.h). */
#include "dfrun/plot.h"
#include "dfrun/sample.h"
#include "dfrun/image.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct df_generator {
    df_gfile *f;   /* owned when opened from a checkpoint */
    df_params *ps; /* owned likewise */
    int owns;
    df_config cfg;
    df_schedule sched;
    df_model m;
    char notice[1400];
};

df_status df_config_schedule(const df_config *c, df_schedule *s) {
    return df_schedule_init(s, (df_sched_kind)c->diffusion.schedule, c->diffusion.beta_min,
                            c->diffusion.beta_max, (int)c->diffusion.T, c->diffusion.power);
}

df_sampler_cfg df_config_sampler(const df_config *c) {
    df_sampler_cfg s = df_sampler_defaults((df_sampler_kind)c->sampler.name);
    s.steps = (int)c->sampler.steps;
    s.t_min = c->diffusion.t_min;
    s.eta = c->sampler.eta;
    s.snr = c->sampler.snr;
    s.corrector_steps = (int)c->sampler.corrector_steps;
    s.clip_x0 = c->sampler.clip_x0;
    return s;
}

static df_generator *finish(df_generator *g, int64_t batch) {
    if (df_config_schedule(&g->cfg, &g->sched) ||
        df_model_build(&g->m, g->f, g->ps, batch ? batch : 200, DF_MODEL_INFER)) {
        df_generator_free(g);
        return NULL;
    }
    if (g->m.classifier) {
        df_seterr(DF_EINVAL, "%s: a classifier (no input 't') cannot be sampled",
                  df_gfile_path(g->f));
        df_generator_free(g);
        return NULL;
    }
    return g;
}

df_generator *df_generator_new(df_gfile *f, const df_config *c, df_params *ps, int64_t batch) {
    df_generator *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->f = f;
    g->ps = ps;
    g->cfg = *c;
    return finish(g, batch);
}

df_generator *df_generator_open(const df_gen_opts *o) {
    char path[1200];
    df_ckpt c;
    if (!o || !o->ckpt) return df_seterr(DF_EINVAL, "df_generator_open: no checkpoint"), NULL;
    if (df_ckpt_open(df_ckpt_path(o->ckpt, path, sizeof path), &c)) return NULL;
    df_generator *g = calloc(1, sizeof *g);
    if (!g) return df_ckpt_close(&c), NULL;
    g->owns = 1;
    g->ps = df_params_new();
    g->f = df_ckpt_graph(&c, o->graph, o->sets, o->nsets, g->notice, sizeof g->notice);
    if (!g->f) {
        df_ckpt_close(&c);
        df_generator_free(g);
        return NULL;
    }
    g->cfg = *df_gfile_config(g->f);
    /* no larger than one forward of the guided pairs of every sample needs */
    int64_t batch = o->batch ? o->batch : o->count > 0 && 2 * o->count < 200 ? 2 * o->count : 200;
    g = finish(g, batch);
    if (g && df_ckpt_load_params(&c, g->ps, o->weights)) {
        df_generator_free(g);
        g = NULL;
    }
    df_ckpt_close(&c);
    return g;
}

void df_generator_free(df_generator *g) {
    if (!g) return;
    df_model_free(&g->m);
    df_schedule_free(&g->sched);
    if (g->owns) {
        df_gfile_free(g->f);
        df_params_free(g->ps);
    }
    free(g);
}

const char *df_generator_notice(const df_generator *g) {
    return g ? g->notice : "";
}
const df_config *df_generator_config(const df_generator *g) {
    return g ? &g->cfg : NULL;
}
const df_model *df_generator_model(const df_generator *g) {
    return g ? &g->m : NULL;
}

typedef struct {
    df_generator *g;
    const int32_t *labels; /* [count] or NULL */
    double w;
    float *xb, *tb; /* [B, dim], [B] */
    int32_t *yb;    /* [B] */
} eps_ctx;

/* eps for n samples in batches of the graph; guidance runs the conditional
 * and the null-class pass of a sample in one batch */
static df_status model_eps(void *vctx, const float *x, int64_t n, int64_t dim, double t,
                           float *eps) {
    eps_ctx *c = vctx;
    df_model *m = &c->g->m;
    int null = (int)c->g->cfg.diffusion.null_class;
    int guided = c->labels && m->y && c->w != 1.0;
    int64_t B = m->batch, per = guided ? B / 2 : B;
    double ab = df_sched_ab(&c->g->sched, t);
    double scale = c->g->cfg.diffusion.predict == DF_PREDICT_SCORE ? -sqrt(1 - ab) : 1.0;
    for (int64_t i = 0; i < B; i++) c->tb[i] = (float)t;
    for (int64_t b0 = 0; b0 < n; b0 += per) {
        int64_t k = n - b0 < per ? n - b0 : per;
        memcpy(c->xb, x + b0 * dim, (size_t)(k * dim) * 4);
        for (int64_t i = 0; i < k; i++) c->yb[i] = c->labels ? c->labels[b0 + i] : null;
        if (guided) {
            memcpy(c->xb + per * dim, x + b0 * dim, (size_t)(k * dim) * 4);
            for (int64_t i = 0; i < k; i++) c->yb[per + i] = null;
        }
        df_set_input(m->g, m->x, c->xb, B * dim);
        df_set_input(m->g, m->t, c->tb, B);
        if (m->y) df_set_input(m->g, m->y, c->yb, B);
        df_status st = df_run(m->g);
        if (st) return st;
        const float *o = df_data(m->out);
        df_guided_eps(o, guided ? o + per * dim : NULL, k * dim, c->w, scale, eps + b0 * dim);
    }
    return DF_OK;
}

df_status df_generate(df_generator *g, const df_gen_request *r, float *out) {
    if (!g || !r || !out || r->count < 1) return df_seterr(DF_EINVAL, "df_generate: bad arguments");
    df_model *m = &g->m;
    int null = (int)g->cfg.diffusion.null_class;
    for (int64_t i = 0; r->labels && i < r->count; i++)
        if (r->labels[i] < 0 || r->labels[i] > null)
            return df_seterr(DF_ERANGE, "label %d of sample %lld is outside 0..%d", r->labels[i],
                             (long long)i, null);
    if (r->labels && !m->y)
        return df_seterr(DF_EINVAL, "this model has no class input 'y': labels do not apply");
    double w = r->guidance ? *r->guidance : g->cfg.sampler.guidance;
    if (r->labels && m->y && w != 1.0 && m->batch < 2)
        return df_seterr(DF_EINVAL, "guidance needs a forward batch of at least 2");
    df_sampler_cfg sc = r->sampler ? *r->sampler : df_config_sampler(&g->cfg);
    eps_ctx c = {g, r->labels, w, NULL, NULL, NULL};
    c.xb = calloc((size_t)(m->batch * m->dim), 4);
    c.tb = malloc((size_t)m->batch * 4);
    c.yb = calloc((size_t)m->batch, 4);
    df_status st = DF_ENOMEM;
    if (c.xb && c.tb && c.yb) {
        df_rng rng = df_rng_new(r->seed ^ 0xabcdefull);
        st = df_sample(&g->sched, &sc, model_eps, &c, out, r->count, m->dim, &rng, r->traj,
                       r->traj_ctx);
    } else
        df_seterr(DF_ENOMEM, "out of memory");
    free(c.xb), free(c.tb), free(c.yb);
    for (int64_t i = 0; !st && i < r->count * m->dim; i++)
        if (!isfinite(out[i]))
            st = df_seterr(DF_ENONFINITE,
                           "sample %lld is not finite: the model produced NaN or Inf (check the "
                           "checkpoint's weights and the sampler settings)",
                           (long long)(i / m->dim));
    if (!st && m->x->shape.nd == 4) /* images: pixels in [-1, 1] */
        for (int64_t i = 0; i < r->count * m->dim; i++)
            out[i] = out[i] < -1 ? -1 : out[i] > 1 ? 1 : out[i];
    return st;
}

df_status df_save_samples(const char *path, const float *x, int64_t count, const df_shape *xs,
                          int cols) {
    const char *ext = path ? strrchr(path, '.') : NULL;
    if (!path || !path[0]) return df_seterr(DF_EINVAL, "no output file given (an empty name)");
    if (ext && !strcmp(ext, ".npy")) {
        int64_t shp[DF_MAX_DIMS] = {count};
        for (int i = 1; i < xs->nd; i++) shp[i] = xs->d[i];
        return df_npy_write(path, x, shp, xs->nd);
    }
    if (!ext || strcmp(ext, ".png"))
        return df_seterr(DF_EINVAL, "'%s': the output must end in .png or .npy", path);
    if (xs->nd == 4 && xs->d[1] == 1)
        return df_png_grid(path, x, count, (int)xs->d[2], (int)xs->d[3], cols, 2);
    if (xs->nd == 2 && xs->d[1] == 2) {
        df_plot_opts o = {"samples", "x1", "x2", 0, 0, 0};
        return df_plot_scatter(path, x, count, -3, 3, &o);
    }
    char s[96];
    return df_seterr(DF_EINVAL, "'%s': no picture for samples of shape %s; write .npy", path,
                     df_shape_str(xs, s, sizeof s));
}

typedef struct {
    int every, n, max;
    int64_t keep, dim; /* samples kept per snapshot, values per sample */
    float *buf;        /* [max + 1, keep, dim] */
} snaps;

static void snap(void *ctx, const float *x, double t, int step) {
    snaps *s = ctx;
    (void)t;
    if (step % s->every || s->n >= s->max) return;
    memcpy(s->buf + s->n * s->keep * s->dim, x, (size_t)(s->keep * s->dim) * 4);
    s->n++;
}

/* image rows: samples; columns: times (noise to samples) */
static df_status traj_images(const char *path, const snaps *s, const df_shape *xs) {
    int cols = s->n;
    float *grid = malloc((size_t)(cols * s->keep * s->dim) * 4);
    if (!grid) return df_seterr(DF_ENOMEM, "out of memory");
    for (int64_t i = 0; i < s->keep; i++)
        for (int c = 0; c < cols; c++)
            memcpy(grid + (i * cols + c) * s->dim, s->buf + (c * s->keep + i) * s->dim,
                   (size_t)s->dim * 4);
    df_status st = df_png_grid(path, grid, cols * s->keep, (int)xs->d[2], (int)xs->d[3], cols, 2);
    free(grid);
    return st;
}

/* 2-D points: one density panel per time over [-3, 3]^2 */
static df_status traj_points(const char *path, const snaps *s) {
    int S = 120, cols = s->n;
    float *pan = malloc((size_t)cols * S * S * 4);
    if (!pan) return df_seterr(DF_ENOMEM, "out of memory");
    for (int c = 0; c < cols; c++) {
        float *img = pan + (size_t)c * S * S;
        for (int i = 0; i < S * S; i++) img[i] = -1;
        for (int64_t i = 0; i < s->keep; i++) {
            const float *q = s->buf + (c * s->keep + i) * 2;
            int px = (int)((q[0] + 3) / 6 * S), py = (int)((3 - q[1]) / 6 * S);
            if (px >= 0 && px < S && py >= 0 && py < S && img[py * S + px] < 1)
                img[py * S + px] += 0.5f;
        }
    }
    df_status st = df_png_grid(path, pan, cols, S, S, cols, 2);
    free(pan);
    return st;
}

df_status df_generate_trajectory(df_generator *g, const df_gen_request *r, float *out,
                                 const char *path) {
    if (!g || !r || !path) return df_seterr(DF_EINVAL, "df_generate_trajectory: bad arguments");
    const df_shape *xs = &g->m.x->shape;
    int img = xs->nd == 4;
    df_sampler_cfg sc = r->sampler ? *r->sampler : df_config_sampler(&g->cfg);
    snaps s = {sc.steps / 8 > 0 ? sc.steps / 8 : 1, 0, 8, 0, g->m.dim, NULL};
    s.keep = img ? (r->count < 10 ? r->count : 10) : r->count;
    s.buf = malloc((size_t)((s.max + 1) * s.keep * s.dim) * 4);
    if (!s.buf) return df_seterr(DF_ENOMEM, "out of memory");
    df_gen_request q = *r;
    q.traj = snap;
    q.traj_ctx = &s;
    df_status st = df_generate(g, &q, out);
    if (!st) {
        memcpy(s.buf + s.n * s.keep * s.dim, out, (size_t)(s.keep * s.dim) * 4);
        s.n++;
        st = img ? traj_images(path, &s, xs) : traj_points(path, &s);
    }
    free(s.buf);
    return st;
}
