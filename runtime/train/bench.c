/* Timing a graph file's model for training and inference (see bench.h). */
#define _GNU_SOURCE
#include "dfrun/bench.h"
#include "dfrun/config.h"
#include "dfrun/model.h"
#include "dfrun/optim.h"
#include "dfrun/rng.h"
#include "dfrun/runtime.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* peak resident set in MiB from /proc/self/status (0 where there is none) */
static double peak_rss_mib(void) {
    FILE *p = fopen("/proc/self/status", "r");
    char line[256];
    long kib = 0;
    while (p && fgets(line, sizeof line, p))
        if (!strncmp(line, "VmHWM:", 6)) kib = atol(line + 6);
    if (p) fclose(p);
    return kib / 1024.0;
}

/* Random inputs of the training graph: x, target ~ N(0, 1), t ~ U(0, 1),
 * loss weight 1, class labels i % 10 (a classifier's: i % classes). y [B]
 * must hold labels for the larger of the two batches. */
static df_status feed_train(df_model *m, df_rng *r, int32_t *y) {
    int64_t B = m->batch, n = B * m->dim;
    float *x = malloc((size_t)n * sizeof(float)),
          *tgt = malloc((size_t)n * sizeof(float)); /* [B, dim] */
    float *t = malloc((size_t)B * sizeof(float)), *lw = malloc((size_t)B * sizeof(float)); /* [B] */
    df_status st = DF_OK;
    if (!x || !tgt || !t || !lw) {
        st = df_seterr(DF_ENOMEM, "out of memory for a batch of %lld examples", (long long)B);
        goto out;
    }
    df_rng_normal(r, x, n);
    df_rng_normal(r, tgt, n);
    df_rng_uniform(r, t, B);
    for (int64_t i = 0; i < B; i++) lw[i] = 1;
    st = df_set_input(m->g, m->x, x, n);
    if (m->classifier) {
        int64_t C = m->out->shape.d[1];
        int32_t *lab = malloc((size_t)B * sizeof(int32_t)); /* [B] */
        if (!lab) {
            st = df_seterr(DF_ENOMEM, "out of memory");
            goto out;
        }
        for (int64_t i = 0; i < B; i++) lab[i] = (int32_t)(i % C);
        if (!st) st = df_set_input(m->g, m->labels, lab, B);
        free(lab);
        goto out;
    }
    if (!st) st = df_set_input(m->g, m->t, t, B);
    if (!st && m->y) st = df_set_input(m->g, m->y, y, B);
    if (!st) st = df_set_input(m->g, m->weight, lw, B);
    if (!st) st = df_set_input(m->g, m->target, tgt, n);
out:
    free(x), free(tgt), free(t), free(lw);
    return st;
}

/* Random inputs of the inference graph: x ~ N(0, 1), t = 0.5, labels y. */
static df_status feed_eval(df_model *m, df_rng *r, const int32_t *y) {
    int64_t B = m->batch, n = B * m->dim;
    float *x = malloc((size_t)n * sizeof(float)),
          *t = malloc((size_t)B * sizeof(float)); /* [B, dim], [B] */
    df_status st = DF_OK;
    if (!x || !t) {
        st = df_seterr(DF_ENOMEM, "out of memory for a batch of %lld examples", (long long)B);
        goto out;
    }
    df_rng_normal(r, x, n);
    for (int64_t i = 0; i < B; i++) t[i] = 0.5f;
    st = df_set_input(m->g, m->x, x, n);
    if (!st && m->t) st = df_set_input(m->g, m->t, t, B);
    if (!st && m->y) st = df_set_input(m->g, m->y, y, B);
out:
    free(x), free(t);
    return st;
}

df_status df_bench(const char *graph, const char *const *sets, int nsets, int64_t batch,
                   int64_t sample_batch, int steps, df_bench_result *r) {
    if (!graph || !r) return df_seterr(DF_EINVAL, "df_bench: NULL argument");
    if (batch < 1 || sample_batch < 1 || steps < 1)
        return df_seterr(DF_EINVAL,
                         "df_bench: batch %lld, sample batch %lld, steps %d (expected >= 1 each)",
                         (long long)batch, (long long)sample_batch, steps);
    memset(r, 0, sizeof *r);
    df_gfile *f = df_gfile_load(graph, sets, nsets);
    if (!f) return DF_EINVAL; /* the message is the loader's */
    df_params *ps = df_params_new();
    df_model tr = {0}, ev = {0};
    df_optim *opt = NULL;
    int64_t ny = batch > sample_batch ? batch : sample_batch;
    int32_t *y = malloc((size_t)ny * sizeof(int32_t)); /* [max(batch, sample_batch)] */
    df_rng rng = df_rng_new(1);
    df_status st = DF_OK;
    if (!ps || !y) {
        st = df_seterr(DF_ENOMEM, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < ny; i++) y[i] = (int32_t)(i % 10);
    if ((st = df_model_build(&tr, f, ps, batch, DF_MODEL_TRAIN)) || (st = df_params_init(ps, 0)))
        goto out;
    df_opt_config oc = df_config_optim(df_gfile_config(f));
    if (!(opt = df_optim_new(ps, &oc))) {
        st = DF_EINVAL; /* the message is df_optim_new's */
        goto out;
    }
    /* training: one warm-up step, then `steps` timed ones */
    if ((st = feed_train(&tr, &rng, y)) || (st = df_run(tr.g)) || (st = df_optim_step(opt, -1)))
        goto out;
    double t0 = df_seconds();
    for (int k = 0; k < steps; k++)
        if ((st = df_run(tr.g)) || (st = df_optim_step(opt, -1))) goto out;
    double ts = (df_seconds() - t0) / steps;
    df_plan_stats pt, pe;
    if ((st = df_plan_get_stats(tr.g, &pt))) goto out;
    double fl = df_graph_flops(tr.g, 0) / batch; /* forward FLOPs per example */
    /* inference, as dfrun sample runs it: no training graph alive; one
     * warm-up forward, then max(steps / 2, 2) timed ones */
    df_model_free(&tr);
    if ((st = df_model_build(&ev, f, ps, sample_batch, DF_MODEL_INFER)) ||
        (st = feed_eval(&ev, &rng, y)) || (st = df_run(ev.g)))
        goto out;
    int ne = steps / 2 > 2 ? steps / 2 : 2;
    t0 = df_seconds();
    for (int k = 0; k < ne; k++)
        if ((st = df_run(ev.g))) goto out;
    double es = (df_seconds() - t0) / ne;
    if ((st = df_plan_get_stats(ev.g, &pe))) goto out;
    r->params = df_params_numel(ps);
    r->batch = batch;
    r->eval_batch = sample_batch;
    r->threads = df_get_threads();
    r->steps = steps;
    r->eval_steps = ne;
    r->train_step_s = ts;
    r->train_img_per_s = batch / ts;
    r->train_gflop_per_s = 3 * fl * batch / ts / 1e9;
    r->eval_s = es;
    r->eval_img_per_s = sample_batch / es;
    r->fwd_gflop_per_img = fl / 1e9;
    r->train_planned_mib = pt.planned_bytes / 1048576.0;
    r->train_no_reuse_mib = pt.naive_bytes / 1048576.0;
    r->eval_planned_mib = pe.planned_bytes / 1048576.0;
    r->peak_rss_mib = peak_rss_mib();
    if (df_gfile_config(f)->train.precision == DF_PRECISION_BF16)
        snprintf(r->precision, sizeof r->precision, "bf16 (%s)", df_bf16_mode());
    else
        snprintf(r->precision, sizeof r->precision, "fp32");
out:
    free(y);
    df_optim_free(opt);
    df_model_free(&tr);
    df_model_free(&ev);
    df_params_free(ps);
    df_gfile_free(f);
    return st;
}
