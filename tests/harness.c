/* Shared test helpers: deterministic data, comparisons, coverage records and
 * the finite-difference gradient checker. */
#include "harness.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char g_fwd[DF_OP_COUNT], g_grad[DF_OP_COUNT];
int dft_live(df_graph *g, int op, int (*keep)(const df_node *)) {
    int n = 0;
    for (int i = 0; i < df_graph_size(g); i++) {
        const df_node *d = df_graph_node(g, i);
        n += !d->dead && d->op == op && (!keep || keep(d));
    }
    return n;
}
void dft_mark_forward(int op) {
    if (op >= 0 && op < DF_OP_COUNT) g_fwd[op] = 1;
}
void dft_mark_grad(int op) {
    if (op >= 0 && op < DF_OP_COUNT) g_grad[op] = 1;
}
int dft_has_forward(int op) {
    return op >= 0 && op < DF_OP_COUNT && g_fwd[op];
}
int dft_has_grad(int op) {
    return op >= 0 && op < DF_OP_COUNT && g_grad[op];
}

void dft_fill_uniform(float *x, int64_t n, float lo, float hi, uint64_t seed) {
    df_rng r = df_rng_new(seed);
    df_rng_uniform(&r, x, n);
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * x[i];
}

void dft_fill_int(int32_t *x, int64_t n, int32_t lo, int32_t hi, uint64_t seed) {
    df_rng r = df_rng_new(seed);
    df_rng_randint(&r, x, n, hi - lo);
    for (int64_t i = 0; i < n; i++) x[i] += lo;
}

int dft_close(const float *got, const float *ref, int64_t n, float atol, float rtol,
              const char *what) {
    int64_t worst = -1;
    double wexcess = 0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - ref[i]), lim = atol + rtol * fabs(ref[i]);
        if (!(err <= lim) && (worst < 0 || err - lim > wexcess || isnan(err))) {
            worst = i;
            wexcess = isnan(err) ? INFINITY : err - lim;
        }
    }
    if (worst >= 0) {
        fprintf(stderr, "%s: mismatch at element %lld: got %.7g, expected %.7g (atol %g rtol %g)\n",
                what, (long long)worst, got[worst], ref[worst], atol, rtol);
        return 1;
    }
    return 0;
}

typedef struct {
    df_params *ps;
    df_graph *g;
    df_node **in;
    df_node *out, *r, *loss;
    void **buf;
} gc_graph;

static void gc_free(gc_graph *c, int n_in) {
    if (c->buf)
        for (int i = 0; i < n_in + 1; i++) free(c->buf[i]);
    free(c->buf);
    free(c->in);
    df_graph_free(c->g);
    df_params_free(c->ps);
    memset(c, 0, sizeof *c);
}

/* Build inputs + f + random-weighted loss; returns 0 on success. */
static int gc_build(gc_graph *c, dft_build_fn build, void *ctx, const dft_input *ins, int n_in,
                    uint64_t seed, int no_reuse, int *first_fwd, int *last_fwd) {
    memset(c, 0, sizeof *c);
    c->ps = df_params_new();
    c->g = df_graph_new(c->ps);
    c->in = calloc(n_in, sizeof *c->in);
    c->buf = calloc(n_in + 1, sizeof *c->buf);
    df_node *wrt[16];
    int nw = 0;
    for (int i = 0; i < n_in; i++) {
        c->in[i] = df_input(c->g, ins[i].name, ins[i].dtype, ins[i].shape);
        if (ins[i].wrt && nw < 16) wrt[nw++] = c->in[i];
    }
    if (first_fwd) *first_fwd = df_graph_size(c->g);
    c->out = build(c->g, c->in, ctx);
    if (last_fwd) *last_fwd = df_graph_size(c->g);
    if (!c->out) {
        fprintf(stderr, "gradcheck: build failed: %s\n", df_graph_errmsg(c->g));
        return 1;
    }
    c->r = df_input(c->g, "gc.r", DF_F32, c->out->shape);
    c->loss = df_sum_all(c->g, df_mul(c->g, c->out, c->r));
    df_keep(c->g, c->out);
    df_keep(c->g, c->loss);
    if (!c->loss || df_backward(c->g, c->loss, wrt, nw)) {
        fprintf(stderr, "gradcheck: backward failed: %s\n", df_errmsg());
        return 1;
    }
    df_compile_opts o = {.no_reuse = no_reuse, .no_inplace = no_reuse};
    if (df_compile(c->g, &o)) {
        fprintf(stderr, "gradcheck: compile failed: %s\n", df_errmsg());
        return 1;
    }
    for (int i = 0; i <= n_in; i++) {
        df_node *x = i < n_in ? c->in[i] : c->r;
        int64_t n = df_shape_numel(&x->shape);
        c->buf[i] = malloc((size_t)n * 4);
        if (x->dtype == DF_I32)
            dft_fill_int(c->buf[i], n, ins[i].ilo, ins[i].ihi, seed + 31 * i);
        else if (i < n_in)
            dft_fill_uniform(c->buf[i], n, ins[i].lo, ins[i].hi, seed + 31 * i);
        else
            dft_fill_uniform(c->buf[i], n, -1, 1, seed + 31 * i);
        df_set_input(c->g, x, c->buf[i], n);
    }
    return 0;
}

static double gc_loss(gc_graph *c) {
    if (df_run(c->g)) {
        fprintf(stderr, "gradcheck: run failed: %s\n", df_errmsg());
        return NAN;
    }
    const float *y = df_data(c->out), *r = df_data(c->r);
    int64_t n = df_shape_numel(&c->out->shape);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)y[i] * r[i];
    return s;
}

int dft_gradcheck(dft_build_fn build, void *ctx, const dft_input *ins, int n_in, uint64_t seed,
                  float h, double tol, int max_elems) {
    gc_graph c, c2;
    int f0 = 0, f1 = 0, fails = 0;
    if (max_elems <= 0) max_elems = 64;
    if (getenv("DFT_TOLSCALE")) tol *= atof(getenv("DFT_TOLSCALE")); /* for experiments */
    if (gc_build(&c, build, ctx, ins, n_in, seed, 0, &f0, &f1)) {
        gc_free(&c, n_in);
        return 1;
    }
    if (isnan(gc_loss(&c))) {
        gc_free(&c, n_in);
        return 1;
    }
    /* same graph with memory reuse off: bitwise identical gradients */
    if (gc_build(&c2, build, ctx, ins, n_in, seed, 1, NULL, NULL) || isnan(gc_loss(&c2))) {
        gc_free(&c, n_in);
        gc_free(&c2, n_in);
        return 1;
    }
    for (int i = 0; i < n_in; i++) {
        if (!ins[i].wrt) continue;
        df_node *ga = df_grad_of(c.g, c.in[i]), *gb = df_grad_of(c2.g, c2.in[i]);
        int64_t n = df_shape_numel(&c.in[i]->shape);
        if (!ga || !gb) {
            fprintf(stderr, "gradcheck: no gradient for input '%s'\n", ins[i].name);
            fails++;
            continue;
        }
        if (memcmp(df_data(ga), df_data(gb), (size_t)n * 4)) {
            fprintf(stderr, "gradcheck: gradient of '%s' differs with memory reuse off\n",
                    ins[i].name);
            fails++;
        }
    }
    gc_free(&c2, n_in);

    /* analytic gradients of every input first: the finite-difference runs
     * below overwrite the gradient buffers */
    float *ans[16] = {0};
    for (int i = 0; i < n_in && i < 16 && !fails; i++) {
        if (!ins[i].wrt) continue;
        int64_t n = df_shape_numel(&c.in[i]->shape);
        ans[i] = malloc((size_t)n * 4);
        memcpy(ans[i], df_data(df_grad_of(c.g, c.in[i])), (size_t)n * 4);
    }
    for (int i = 0; i < n_in && i < 16 && !fails; i++) {
        if (!ins[i].wrt) continue;
        df_node *x = c.in[i];
        int64_t n = df_shape_numel(&x->shape);
        float *an = ans[i];
        ans[i] = NULL;
        float *xd = df_data(x);
        int m = n < max_elems ? (int)n : max_elems;
        double *fd = calloc(m, sizeof *fd);
        int64_t *idx = calloc(m, sizeof *idx);
        char *skip = calloc(m, 1);
        df_rng pick = df_rng_new(seed * 7 + i);
        double maxfd = 0;
        for (int k = 0; k < m; k++) {
            int32_t r;
            if (n <= max_elems)
                idx[k] = k;
            else {
                df_rng_randint(&pick, &r, 1, (int32_t)(n < INT32_MAX ? n : INT32_MAX));
                idx[k] = r;
            }
            float x0 = xd[idx[k]];
            double l0 = gc_loss(&c);
            xd[idx[k]] = x0 + h;
            double lp = gc_loss(&c);
            xd[idx[k]] = x0 - h;
            double lm = gc_loss(&c);
            xd[idx[k]] = x0;
            fd[k] = (lp - lm) / (2.0 * h);
            /* kink: one-sided slopes disagree far more than curvature explains */
            double right = (lp - l0) / h, left = (l0 - lm) / h;
            if (fabs(right - left) > 0.1 * (fabs(right) + fabs(left)) + 1e-3 &&
                fabs(right - left) > 10 * tol * (fabs(fd[k]) + 1e-2))
                skip[k] = 1;
            if (!skip[k] && fabs(fd[k]) > maxfd) maxfd = fabs(fd[k]);
        }
        double scale = 0.1 * maxfd + 1e-4;
        int nskip = 0;
        for (int k = 0; k < m; k++) {
            if (skip[k]) {
                nskip++;
                continue;
            }
            double a = an[idx[k]], err = fabs(a - fd[k]);
            if (!(err <= tol * (fabs(fd[k]) + scale))) {
                if (!fails)
                    fprintf(stderr,
                            "gradcheck: d/d %s[%lld]: autodiff %.6g, finite difference %.6g "
                            "(err %.3g > tol %.3g)\n",
                            ins[i].name, (long long)idx[k], a, fd[k], err,
                            tol * (fabs(fd[k]) + scale));
                fails++;
            }
        }
        if (nskip > m / 2) {
            fprintf(stderr, "gradcheck: %d of %d elements of %s skipped as kinks\n", nskip, m,
                    ins[i].name);
            fails++;
        }
        free(an);
        free(fd);
        free(idx);
        free(skip);
    }
    for (int i = 0; i < 16; i++) free(ans[i]);
    if (!fails) {
        for (int k = f0; k < f1; k++) {
            df_node *nd = df_graph_node(c.g, k);
            const df_op_desc *d = df_op_table[nd->op];
            if (!(d->flags & DF_OPF_LEAF) && nd->requires_grad) dft_mark_grad(nd->op);
        }
        for (int k = f1; k < df_graph_size(c.g); k++) {
            df_node *nd = df_graph_node(c.g, k);
            if (nd->is_backward && (df_op_table[nd->op]->flags & DF_OPF_GRAD_ONLY))
                dft_mark_forward(nd->op);
        }
    }
    gc_free(&c, n_in);
    return fails;
}

float *dft_forward(dft_build_fn build, void *ctx, const dft_input *ins, int n_in, void *const *data,
                   df_shape *out_shape) {
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *in[16];
    float *res = NULL;
    for (int i = 0; i < n_in && i < 16; i++)
        in[i] = df_input(g, ins[i].name, ins[i].dtype, ins[i].shape);
    df_node *out = build(g, in, ctx);
    if (!out) {
        fprintf(stderr, "dft_forward: build failed: %s\n", df_graph_errmsg(g));
        goto done;
    }
    df_keep(g, out);
    if (df_compile(g, NULL)) {
        fprintf(stderr, "dft_forward: compile failed: %s\n", df_errmsg());
        goto done;
    }
    for (int i = 0; i < n_in; i++) df_set_input(g, in[i], data[i], df_shape_numel(&in[i]->shape));
    if (df_run(g)) {
        fprintf(stderr, "dft_forward: run failed: %s\n", df_errmsg());
        goto done;
    }
    int64_t n = df_shape_numel(&out->shape);
    res = malloc((size_t)n * 4);
    memcpy(res, df_data(out), (size_t)n * 4);
    if (out_shape) *out_shape = out->shape;
done:
    df_graph_free(g);
    df_params_free(ps);
    return res;
}
