/* GroupNorm (affine, biased variance, like torch.nn.GroupNorm) and its
 * gradient kernels. x [B, C, ...]: statistics per (b, group) over C/G
 * channels and all spatial positions, computed in double, two passes. */
#include "gn_silu.h"
#include "util.h"
#include <math.h>
#include "parallel.h"

typedef struct {
    int64_t B, C, S, G, cg; /* S: spatial size; cg: channels per group */
} gn_dims;

static gn_dims dims_of(const df_node *x, int groups) {
    gn_dims d;
    d.B = x->shape.d[0];
    d.C = x->shape.d[1];
    d.S = df_shape_numel(&x->shape) / (d.B * d.C);
    d.G = groups;
    d.cg = d.C / groups;
    return d;
}

static df_status check_affine(const df_node *n, int at, int64_t C) {
    char a[96];
    for (int k = at; k < at + 2 && k < n->n_in; k++) {
        const df_node *p = n->in[k];
        if (p->dtype != DF_F32 || p->shape.nd != 1 || p->shape.d[0] != C)
            return df_seterr(DF_ESHAPE, "%s has shape %s, expected [%lld] (the channels)",
                             k == at ? "gamma" : "beta", df_shape_str(&p->shape, a, sizeof a),
                             (long long)C);
    }
    return DF_OK;
}

/* inputs: x, [gamma, beta]; ia[0] = groups; fa[0] = eps */
static df_status gn_shape(df_node *n) {
    char a[96];
    const df_node *x = n->in[0];
    if (n->n_in == 2) return df_seterr(DF_EINVAL, "give both gamma and beta, or neither");
    if (x->dtype != DF_F32 || x->shape.nd < 2)
        return df_shape_err(n, "float32 [B, C, ...]", &x->shape);
    int64_t C = x->shape.d[1];
    if (n->ia[0] < 1 || C % n->ia[0])
        return df_seterr(DF_EINVAL, "groups %d must divide the %lld channels of %s", n->ia[0],
                         (long long)C, df_shape_str(&x->shape, a, sizeof a));
    if (!(n->fa[0] > 0)) return df_seterr(DF_EINVAL, "eps %g must be > 0", n->fa[0]);
    df_status st = check_affine(n, 1, C);
    if (st) return st;
    n->shape = x->shape;
    n->dtype = DF_F32;
    return DF_OK;
}

/* One pass: sum and sum of squares in double (float inputs: E[x^2] - m^2
 * loses at most ~1e-16 (m / sd)^2 relatively, nothing at these scales). */
static void group_stats(const float *x, int64_t n, double eps, double *mean, double *rstd) {
    double s = 0, q = 0;
#pragma omp simd reduction(+ : s, q)
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        s += v;
        q += v * v;
    }
    double m = s / n, var = q / n - m * m;
    *mean = m;
    *rstd = 1.0 / sqrt((var > 0 ? var : 0) + eps);
}

typedef struct {
    const float *x;
    float *stats;
    int64_t n; /* elements per group */
    double eps;
} stats_job;
static void stats_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const stats_job *j = ctx;
    (void)worker;
    for (int64_t i = i0; i < i1; i++) {
        double m, r;
        group_stats(j->x + i * j->n, j->n, j->eps, &m, &r);
        j->stats[2 * i] = (float)m, j->stats[2 * i + 1] = (float)r;
    }
}
void gn_stats(const float *x, int64_t B, int64_t C, int64_t S, int64_t G, double eps,
              float *stats) {
    df_parallel_for(B * G, DF_PIECE(B * G), stats_piece, &(stats_job){x, stats, C / G * S, eps});
}

/* groupnorm_stats(x) -> [B, G, 2]: gn_stats as an op (ia[0] = groups, fa[0]
 * = eps). fuse.c makes it where a groupnorm_silu folded into a convolution
 * was: the convolution, its weight gradient and the fused gradient of the
 * groupnorm read these instead of each taking them again. */
static df_status gn_stats_shape(df_node *n) {
    df_status st = gn_shape(n); /* x alone: checks the groups and eps */
    if (st) return st;
    n->shape = df_shape3(n->in[0]->shape.d[0], n->ia[0], 2);
    return DF_OK;
}
static df_status gn_stats_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    gn_dims d = dims_of(n->in[0], n->ia[0]);
    gn_stats(df_inp(n, 0), d.B, d.C, d.S, d.G, n->fa[0], df_out(n));
    return DF_OK;
}

/* (batch, group) pairs [i0, i1) of groupnorm, or of groupnorm_silu:
 * y = silu(groupnorm(x)) with the same arithmetic as the two ops apart */
static void gn_fwd_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const df_node *n = ctx;
    gn_dims d = dims_of(n->in[0], n->ia[0]);
    const float *x = df_inp(n, 0); // [B, C, S]
    const float *gam = n->n_in > 1 ? df_inp(n, 1) : NULL, *bet = n->n_in > 1 ? df_inp(n, 2) : NULL;
    float *y = df_out(n);
    double eps = n->fa[0];
    int silu = n->op == DF_OP_GROUPNORM_SILU;
    (void)worker;
    for (int64_t bg = i0; bg < i1; bg++) {
        int64_t b = bg / d.G, grp = bg % d.G, off = (b * d.C + grp * d.cg) * d.S;
        double m, r;
        group_stats(x + off, d.cg * d.S, eps, &m, &r);
        for (int64_t cc = 0; cc < d.cg; cc++) {
            int64_t ch = grp * d.cg + cc;
            float a = (float)r * (gam ? gam[ch] : 1.0f);
            float bb = bet ? bet[ch] : 0.0f, mf = (float)m; /* (x - m) a + beta: no cancellation */
            const float *xs = x + off + cc * d.S;
            float *ys = y + off + cc * d.S;
            gn_row(xs, 1, mf, a, bb, silu, ys, d.S);
        }
    }
}
/* One channel's sums for the gradients, in double: sum x, sum x^2 (the
 * group's statistics), sum g x and sum g. */
typedef struct {
    double x, xx, gx, g;
} chan_sums;
static chan_sums channel_sums(const float *xs, const float *gs, int64_t S) {
    double s1 = 0, s2 = 0, gx = 0, g1 = 0;
#pragma omp simd reduction(+ : s1, s2, gx, g1)
    for (int64_t k = 0; k < S; k++) {
        double xv = xs[k], gv = gs[k];
        s1 += xv;
        s2 += xv * xv;
        gx += gv * xv;
        g1 += gv;
    }
    return (chan_sums){s1, s2, gx, g1};
}

static df_status gn_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    gn_dims d = dims_of(n->in[0], n->ia[0]);
    df_parallel_for(d.B * d.G, DF_PIECE(d.B * d.G), gn_fwd_piece, (void *)n);
    return DF_OK;
}

/* groupnorm_bwd_x(x, [gamma], gy): dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
 * with g = gy * gamma, means over the group */
static df_status gn_bwd_x_shape(df_node *n) {
    const df_node *x = n->in[0];
    n->shape = x->shape;
    n->dtype = DF_F32;
    const df_node *gam = n->in[1];
    if (n->n_in == 3 && (gam->shape.nd != 1 || gam->shape.d[0] != x->shape.d[1]))
        return df_shape_err(n, "gamma [C]", &gam->shape);
    if (!df_shape_eq(&n->in[n->n_in - 1]->shape, &x->shape))
        return df_shape_err(n, "the gradient in the input's shape", &n->in[n->n_in - 1]->shape);
    return DF_OK;
}
/* dx of one group (cg channels of S values: x, gy the gradient at the
 * groupnorm's output, gam its cg gammas or NULL); with gpart, also each
 * channel's sum of gy xhat (groupnorm_bwd_gamma's term for this image), in
 * cg doubles. */
static void group_dx(const float *x, const float *gy, const float *gam, int64_t cg, int64_t S,
                     double eps, float *dx, double *gpart) {
    int64_t cnt = cg * S;
    /* one pass: the group's statistics and, per channel, sum g and sum g x
     * (sum g (x - m) = sum g x - m sum g, in double) */
    double sx = 0, sxx = 0, sg = 0, sgxr = 0;
    for (int64_t cc = 0; cc < cg; cc++) {
        double ga = gam ? gam[cc] : 1.0;
        chan_sums cs = channel_sums(x + cc * S, gy + cc * S, S);
        sx += cs.x, sxx += cs.xx;
        sg += ga * cs.g;
        sgxr += ga * cs.gx;
        if (gpart) gpart[cc] = cs.gx, gpart[cg + cc] = cs.g; /* finished below */
    }
    double m = sx / cnt, var = sxx / cnt - m * m;
    double r = 1.0 / sqrt((var > 0 ? var : 0) + eps);
    double mg = sg / cnt, mgx = (sgxr - m * sg) * r / cnt;
    for (int64_t cc = 0; gpart && cc < cg; cc++) gpart[cc] = (gpart[cc] - m * gpart[cg + cc]) * r;
    for (int64_t cc = 0; cc < cg; cc++) {
        float ga = gam ? gam[cc] : 1.0f;
        const float *xs = x + cc * S, *gs = gy + cc * S;
        float *o = dx + cc * S;
        float rf = (float)r, mf = (float)m, mgf = (float)mg, mgxf = (float)mgx;
        for (int64_t s = 0; s < S; s++) {
            float xh = (xs[s] - mf) * rf;
            o[s] = rf * (gs[s] * ga - mgf - xh * mgxf);
        }
    }
}
static void gn_bwd_x_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const df_node *n = ctx;
    gn_dims d = dims_of(n->in[0], n->ia[0]);
    const float *x = df_inp(n, 0), *gam = n->n_in == 3 ? df_inp(n, 1) : NULL;
    const float *gy = df_inp(n, n->n_in - 1);
    (void)worker;
    for (int64_t bg = i0; bg < i1; bg++) {
        int64_t b = bg / d.G, grp = bg % d.G, off = (b * d.C + grp * d.cg) * d.S;
        group_dx(x + off, gy + off, gam ? gam + grp * d.cg : NULL, d.cg, d.S, n->fa[0],
                 df_out(n) + off, NULL);
    }
}
static df_status gn_bwd_x_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    gn_dims d = dims_of(n->in[0], n->ia[0]);
    df_parallel_for(d.B * d.G, DF_PIECE(d.B * d.G), gn_bwd_x_piece, (void *)n);
    return DF_OK;
}

/* groupnorm_bwd_gamma(x, gy) -> [C] = sum over B and space of gy * xhat */
static df_status gn_bwd_gamma_shape(df_node *n) {
    n->shape = df_shape1(n->in[0]->shape.d[1]);
    n->dtype = DF_F32;
    return DF_OK;
}
/* per channel, over batches in order: channel groups [i0, i1) */
static void gn_bwd_gamma_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const df_node *n = ctx;
    gn_dims d = dims_of(n->in[0], n->ia[0]);
    const float *x = df_inp(n, 0), *gy = df_inp(n, 1);
    float *dg = df_out(n);
    double eps = n->fa[0];
    (void)worker;
    for (int64_t grp = i0; grp < i1; grp++) {
        double a[4096]; /* cg <= 4096: checked by the caller */
        int64_t cg = d.cg;
        double sgx[4096], sgs[4096]; /* per channel of one image: sum g x, sum g */
        for (int64_t cc = 0; cc < cg; cc++) a[cc] = 0;
        for (int64_t b = 0; b < d.B; b++) {
            /* one pass: the group's statistics and the channels' sums;
             * sum g (x - m) = sum g x - m sum g, in double */
            int64_t off = (b * d.C + grp * cg) * d.S;
            double sx = 0, sxx = 0;
            for (int64_t cc = 0; cc < cg; cc++) {
                chan_sums cs = channel_sums(x + off + cc * d.S, gy + off + cc * d.S, d.S);
                sx += cs.x, sxx += cs.xx, sgx[cc] = cs.gx, sgs[cc] = cs.g;
            }
            double cnt = (double)(cg * d.S), m = sx / cnt, var = sxx / cnt - m * m;
            double r = 1.0 / sqrt((var > 0 ? var : 0) + eps);
            for (int64_t cc = 0; cc < cg; cc++) a[cc] += (sgx[cc] - m * sgs[cc]) * r;
        }
        for (int64_t cc = 0; cc < cg; cc++) dg[grp * cg + cc] = (float)a[cc];
    }
}
static df_status gn_bwd_gamma_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    gn_dims d = dims_of(n->in[0], n->ia[0]);
    if (d.cg > 4096) return df_seterr(DF_EINVAL, "more than 4096 channels per group");
    df_parallel_for(d.G, 1, gn_bwd_gamma_piece, (void *)n);
    return DF_OK;
}

/* groupnorm_silu_bwd(x, [gamma, beta], gy) -> dt = silu'(t) gy with
 * t = groupnorm(x) recomputed (not stored): the gradient reaching the
 * groupnorm's output, as silu_bwd(t, gy) would give it */
static df_status gn_silu_bwd_shape(df_node *n) {
    if (n->n_in != 2 && n->n_in != 4)
        return df_seterr(DF_EINVAL, "inputs: x, [gamma, beta], gy (got %d)", n->n_in);
    df_node *gy = n->in[n->n_in - 1];
    n->n_in--; /* the groupnorm's own inputs */
    df_status st = gn_shape(n);
    n->n_in++;
    if (st) return st;
    if (!df_shape_eq(&gy->shape, &n->in[0]->shape) || gy->dtype != DF_F32)
        return df_shape_err(n, "the gradient in the input's shape", &gy->shape);
    return DF_OK;
}
static void gn_silu_bwd_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const df_node *n = ctx;
    gn_dims d = dims_of(n->in[0], n->ia[0]);
    const float *x = df_inp(n, 0), *gy = df_inp(n, n->n_in - 1);
    const float *gam = n->n_in > 2 ? df_inp(n, 1) : NULL, *bet = n->n_in > 2 ? df_inp(n, 2) : NULL;
    float *dt = df_out(n);
    (void)worker;
    for (int64_t bg = i0; bg < i1; bg++) {
        int64_t b = bg / d.G, grp = bg % d.G, off = (b * d.C + grp * d.cg) * d.S;
        double m, r;
        group_stats(x + off, d.cg * d.S, n->fa[0], &m, &r);
        for (int64_t cc = 0; cc < d.cg; cc++) {
            int64_t ch = grp * d.cg + cc;
            float a = (float)r * (gam ? gam[ch] : 1.0f);
            float bb = bet ? bet[ch] : 0.0f, mf = (float)m; /* (x - m) a + beta: no cancellation */
            const float *xs = x + off + cc * d.S, *gs = gy + off + cc * d.S;
            float *o = dt + off + cc * d.S;
            silu_grad_row(xs, 1, mf, a, bb, gs, o, d.S);
        }
    }
}
static df_status gn_silu_bwd_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    gn_dims d = dims_of(n->in[0], n->ia[0]);
    df_parallel_for(d.B * d.G, DF_PIECE(d.B * d.G), gn_silu_bwd_piece, (void *)n);
    return DF_OK;
}

/* groupnorm_silu_bwd_all(x, gamma, beta, gy, [acc], [stats]) -> [dx (B C S)
 * | dgamma (C) | dbeta (C) | dx summed over each plane (B C) | dx summed
 * over all but the channels (C)], where with acc (x's shape) dx is the sum
 * dx + acc, as the add of another path's gradient to dx gives it, and with
 * ia[1] = 1 the last input is x's groupnorm_stats (read, not taken again):
 * what groupnorm_silu_bwd, groupnorm_bwd_x, groupnorm_bwd_gamma, the reduce
 * of dt to beta's shape and the reduces of dx to [B, C, 1, 1] and [1, C, 1,
 * 1] (the gradients of a time embedding and of a bias added before the
 * groupnorm) compute, bitwise, in one pass
 * over memory: each (image, group) makes dt in a buffer of the thread's and
 * takes dx, gamma's and beta's terms from it, and dx's plane sums while dx
 * is in cache; the terms are summed over the images in order at the end.
 * fuse.c makes it, and a part (view) and slices of it replace the nodes. */
static df_status gn_all_shape(df_node *n) {
    int nin = n->n_in, stats = n->ia[1] == 1, acc = nin - stats == 5;
    if (nin - stats != 4 && nin - stats != 5)
        return df_seterr(DF_EINVAL, "inputs: x, gamma, beta, gy, [acc], [stats] (got %d)", nin);
    n->n_in = 4; /* groupnorm_silu_bwd's own inputs */
    df_status st = gn_silu_bwd_shape(n);
    n->n_in = nin;
    if (st) return st;
    const df_shape *x = &n->in[0]->shape;
    if (acc && (!df_shape_eq(&n->in[4]->shape, x) || n->in[4]->dtype != DF_F32))
        return df_shape_err(n, "acc in the input's shape", &n->in[4]->shape);
    df_shape ss = df_shape3(x->d[0], n->ia[0], 2);
    if (stats && (!df_shape_eq(&n->in[nin - 1]->shape, &ss) || n->in[nin - 1]->dtype != DF_F32))
        return df_shape_err(n, "stats [B, groups, 2]", &n->in[nin - 1]->shape);
    n->shape = df_shape1(df_shape_numel(x) + (3 + x->d[0]) * x->d[1]);
    return DF_OK;
}
/* scratch: gamma's terms [B][C] doubles, beta's [B][C] floats, then per
 * thread (64-aligned) dt of one group [cg][S] and 2 cg doubles */
/* floats of one group's dt, rounded to a cache line (gamma's terms follow) */
static int64_t gn_all_dt(const gn_dims *d) {
    return (d->cg * d->S + 15) & ~(int64_t)15;
}
static size_t gn_all_per(const gn_dims *d) {
    return ((size_t)gn_all_dt(d) * 4 + (size_t)d->cg * 16 + 63) & ~(size_t)63;
}
static size_t gn_all_scratch(const df_node *n, int nt) {
    gn_dims d = dims_of(n->in[0], n->ia[0]);
    return (size_t)(d.B * d.C) * 12 + 64 + (size_t)(nt > 0 ? nt : 1) * gn_all_per(&d);
}
typedef struct {
    const df_node *n;
    gn_dims d;
    double *gterm;
    float *bterm;
    char *per_thread;
    size_t per;
} gn_all_job;
static void gn_all_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const gn_all_job *j = ctx;
    const df_node *n = j->n;
    gn_dims d = j->d;
    const float *x = df_inp(n, 0), *gam = df_inp(n, 1), *bet = df_inp(n, 2), *gy = df_inp(n, 3);
    float *dt = (float *)(j->per_thread + j->per * (size_t)worker);  // [cg][S]
    double *gpart = (double *)(dt + gn_all_dt(&d));                  // [2][cg]
    const float *st = n->ia[1] == 1 ? df_inp(n, n->n_in - 1) : NULL; // [B, G, 2] or NULL
    for (int64_t bg = i0; bg < i1; bg++) {
        int64_t b = bg / d.G, grp = bg % d.G, off = (b * d.C + grp * d.cg) * d.S;
        double m, r;
        if (st) /* the same values, rounded to float, as groupnorm_silu_bwd takes */
            m = st[2 * bg], r = st[2 * bg + 1];
        else
            group_stats(x + off, d.cg * d.S, n->fa[0], &m, &r);
        for (int64_t cc = 0; cc < d.cg; cc++) {
            int64_t ch = grp * d.cg + cc;
            silu_grad_row(x + off + cc * d.S, 1, (float)m, (float)r * gam[ch], bet[ch],
                          gy + off + cc * d.S, dt + cc * d.S, d.S);
            j->bterm[b * d.C + ch] = df_sum_row(dt + cc * d.S, d.S);
        }
        float *dx = df_out(n) + off; // [cg][S]
        group_dx(x + off, dt, gam + grp * d.cg, d.cg, d.S, n->fa[0], dx, gpart);
        if (n->n_in - (st != NULL) == 5) { /* dx + acc, as the add it replaces (no fma) */
            const float *a = df_inp(n, 4) + off;
#pragma omp simd
            for (int64_t i = 0; i < d.cg * d.S; i++) dx[i] = dx[i] + a[i];
        }
        float *rows = df_out(n) + d.B * d.C * d.S + 2 * d.C + b * d.C + grp * d.cg; // [cg]
        for (int64_t cc = 0; cc < d.cg; cc++) {
            j->gterm[b * d.C + grp * d.cg + cc] = gpart[cc];
            rows[cc] = df_sum_row(dx + cc * d.S, d.S); /* as the reduce to [B, C, 1, 1] */
        }
    }
}
/* dgamma, dbeta and dx's sums over all but the channels, of channels [c0,
 * c1): the terms summed over the images in order (as the reduce op does) */
static void gn_all_sum(void *ctx, int64_t c0, int64_t c1, int worker) {
    const gn_all_job *j = ctx;
    gn_dims d = j->d;
    float *dg = df_out(j->n) + d.B * d.C * d.S, *db = dg + d.C, *rows = db + d.C; // [B][C]
    float *cols = rows + d.B * d.C;                                               // [C]
    (void)worker;
    for (int64_t c = c0; c < c1; c++) {
        double a = 0, s = 0, r = 0;
        for (int64_t b = 0; b < d.B; b++) {
            a += j->gterm[b * d.C + c], s += j->bterm[b * d.C + c];
            r += rows[b * d.C + c];
        }
        dg[c] = (float)a, db[c] = (float)(s * 1.0), cols[c] = (float)(r * 1.0);
    }
}
static df_status gn_all_fwd(const df_node *n, df_exec_ctx *c) {
    gn_dims d = dims_of(n->in[0], n->ia[0]);
    gn_all_job j = {
        n, d, c->scratch, (float *)((double *)c->scratch + d.B * d.C), NULL, gn_all_per(&d)};
    j.per_thread = (char *)(((uintptr_t)(j.bterm + d.B * d.C) + 63) & ~(uintptr_t)63);
    df_parallel_for(d.B * d.G, DF_PIECE(d.B * d.G), gn_all_piece, &j);
    df_parallel_for(d.C, DF_PIECE(d.C), gn_all_sum, &j);
    return DF_OK;
}

/* Gradients of groupnorm given dt, the gradient at its output */
static df_status gn_grads(df_graph *g, df_node *n, df_node *dt, df_node **gin) {
    int32_t ia = n->ia[0];
    float fa = n->fa[0];
    int affine = n->n_in == 3;
    if (n->in[0]->requires_grad) {
        df_node *in[3] = {n->in[0], affine ? n->in[1] : dt, dt};
        gin[0] = df_node_new(g, DF_OP_GROUPNORM_BWD_X, in, affine ? 3 : 2, &ia, 1, &fa, 1);
    }
    if (affine && n->in[1]->requires_grad)
        gin[1] = df_node_new(g, DF_OP_GROUPNORM_BWD_GAMMA, (df_node *[]){n->in[0], dt}, 2, &ia, 1,
                             &fa, 1);
    if (affine && n->in[2]->requires_grad) gin[2] = df_sum_to(g, dt, n->in[2]->shape, 1);
    return df_graph_status(g);
}
static df_status gn_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    return gn_grads(g, n, gy, gin);
}
static df_status gn_silu_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    df_node *in[4] = {n->in[0], n->in[1], n->in[2], gy};
    if (n->n_in == 1) in[1] = gy;
    df_node *dt = df_node_new(g, DF_OP_GROUPNORM_SILU_BWD, in, n->n_in + 1, n->ia, 1, n->fa, 1);
    return gn_grads(g, n, dt, gin);
}
static double gn_flops(const df_node *n) {
    return 8.0 * df_shape_numel(&n->shape);
}
static double gn_silu_flops(const df_node *n) {
    return 12.0 * df_shape_numel(&n->shape);
}

const df_op_desc df_opdesc_groupnorm = {.name = "groupnorm",
                                        .min_in = 1,
                                        .max_in = 3,
                                        .shape = gn_shape,
                                        .forward = gn_fwd,
                                        .backward = gn_bwd,
                                        .flops = gn_flops};
const df_op_desc df_opdesc_groupnorm_silu = {.name = "groupnorm_silu",
                                             .min_in = 1,
                                             .max_in = 3,
                                             .shape = gn_shape,
                                             .forward = gn_fwd,
                                             .backward = gn_silu_bwd,
                                             .flops = gn_silu_flops};
const df_op_desc df_opdesc_groupnorm_silu_bwd = {.name = "groupnorm_silu_bwd",
                                                 .min_in = 2,
                                                 .max_in = 4,
                                                 .flags = DF_OPF_GRAD_ONLY,
                                                 .shape = gn_silu_bwd_shape,
                                                 .forward = gn_silu_bwd_fwd,
                                                 .flops = gn_silu_flops};
const df_op_desc df_opdesc_groupnorm_stats = {.name = "groupnorm_stats",
                                              .min_in = 1,
                                              .max_in = 1,
                                              .flags = DF_OPF_GRAD_ONLY,
                                              .shape = gn_stats_shape,
                                              .forward = gn_stats_fwd};
const df_op_desc df_opdesc_groupnorm_silu_bwd_all = {.name = "groupnorm_silu_bwd_all",
                                                     .min_in = 4,
                                                     .max_in = 6,
                                                     .flags = DF_OPF_GRAD_ONLY,
                                                     .shape = gn_all_shape,
                                                     .forward = gn_all_fwd,
                                                     .scratch = gn_all_scratch,
                                                     .flops = gn_silu_flops};
const df_op_desc df_opdesc_groupnorm_bwd_x = {.name = "groupnorm_bwd_x",
                                              .min_in = 2,
                                              .max_in = 3,
                                              .flags = DF_OPF_GRAD_ONLY,
                                              .shape = gn_bwd_x_shape,
                                              .forward = gn_bwd_x_fwd,
                                              .flops = gn_flops};
const df_op_desc df_opdesc_groupnorm_bwd_gamma = {.name = "groupnorm_bwd_gamma",
                                                  .min_in = 2,
                                                  .max_in = 2,
                                                  .flags = DF_OPF_GRAD_ONLY,
                                                  .shape = gn_bwd_gamma_shape,
                                                  .forward = gn_bwd_gamma_fwd,
                                                  .flops = gn_flops};

df_node *df_groupnorm_silu(df_graph *g, df_node *x, df_node *gamma, df_node *beta, int groups,
                           float eps) {
    int32_t ia = groups;
    df_node *in[3] = {x, gamma, beta};
    return df_node_new(g, DF_OP_GROUPNORM_SILU, in, (gamma || beta) ? 3 : 1, &ia, 1, &eps, 1);
}
df_node *df_groupnorm(df_graph *g, df_node *x, df_node *gamma, df_node *beta, int groups,
                      float eps) {
    int32_t ia = groups;
    df_node *in[3] = {x, gamma, beta};
    int n = (gamma || beta) ? 3 : 1;
    return df_node_new(g, DF_OP_GROUPNORM, in, n, &ia, 1, &eps, 1);
}
