/* Reductions and broadcasts: reduce (sum times a scale down to a keepdims
 * shape) and expand (broadcast up, times a scale), each the other's
 * gradient; the builders df_sum, df_mean, df_sum_all, df_sum_to, df_expand.
 * Attributes: ia = packed target shape (same nd as the input), fa[0] = scale. */
#include "util.h"
#include <string.h>
#include "parallel.h"

static df_status target_shape(df_node *n, int reduce) {
    char a[96], b[96];
    const df_shape *x = &n->in[0]->shape;
    df_shape t = df_unpack_shape(n->ia, 0);
    if (n->in[0]->dtype != DF_F32)
        return df_seterr(DF_EINVAL, "input must be float32, got %s",
                         df_dtype_name(n->in[0]->dtype));
    if (t.nd != x->nd)
        return df_seterr(DF_ESHAPE, "target %s and input %s differ in rank",
                         df_shape_str(&t, a, sizeof a), df_shape_str(x, b, sizeof b));
    for (int j = 0; j < t.nd; j++) {
        int64_t small = reduce ? t.d[j] : x->d[j], big = reduce ? x->d[j] : t.d[j];
        if (small != big && small != 1)
            return df_seterr(DF_ESHAPE, "cannot %s %s to %s", reduce ? "reduce" : "expand",
                             df_shape_str(x, a, sizeof a), df_shape_str(&t, b, sizeof b));
    }
    n->shape = t;
    n->dtype = DF_F32;
    return DF_OK;
}
static df_status reduce_shape(df_node *n) {
    return target_shape(n, 1);
}
static df_status expand_shape(df_node *n) {
    return target_shape(n, 0);
}

/* big: the larger shape; small: same rank with 1s. Builds an iteration over
 * big with operand 0 = big's strides, operand 1 = small's (0 where reduced). */
/* dims j, j + 1 of (ext, st0, st1) merged where both strides nest (st[j] =
 * ext[j + 1] st[j + 1]); the new count */
static int merge_dims(int n, int64_t *ext, int64_t *st0, int64_t *st1) {
    int m = 0;
    for (int j = 0; j < n; j++) {
        if (m && st0[m - 1] == ext[j] * st0[j] && st1[m - 1] == ext[j] * st1[j]) {
            ext[m - 1] *= ext[j];
            st0[m - 1] = st0[j];
            st1[m - 1] = st1[j];
            continue;
        }
        ext[m] = ext[j], st0[m] = st0[j], st1[m] = st1[j];
        m++;
    }
    return m;
}

static void big_small_iter(const df_shape *big, const df_shape *small, df_iter *kept,
                           df_iter *red) {
    int64_t sb[DF_MAX_DIMS], ss[DF_MAX_DIMS];
    df_strides(big, sb);
    df_strides(small, ss);
    int64_t ek[DF_MAX_DIMS], er[DF_MAX_DIMS], stk[2][DF_MAX_DIMS], str[2][DF_MAX_DIMS];
    int nk = 0, nr = 0;
    for (int j = 0; j < big->nd; j++) {
        if (small->d[j] == big->d[j] || big->d[j] == 1) {
            ek[nk] = big->d[j];
            stk[0][nk] = sb[j];
            stk[1][nk++] = ss[j];
        } else {
            er[nr] = big->d[j];
            str[0][nr] = sb[j];
            str[1][nr++] = 0;
        }
    }
    /* adjacent dims that are contiguous in x (a bias gradient's H and W) as
     * one: long inner loops and fewer index computations */
    nr = merge_dims(nr, er, str[0], str[1]);
    nk = merge_dims(nk, ek, stk[0], stk[1]);
    if (!nk) {
        ek[0] = 1;
        stk[0][0] = stk[1][0] = 0;
        nk = 1;
    }
    if (!nr) {
        er[0] = 1;
        str[0][0] = str[1][0] = 0;
        nr = 1;
    }
    df_iter_init(kept, nk, ek, stk, 2);
    df_iter_init(red, nr, er, str, 1);
}

/* The sum of n contiguous floats, in float: in order for a few (an
 * upsample's gradient), else vectorised. Not inlined, so that every caller
 * (the fused groupnorm gradient too) gets bitwise the same sum. */
__attribute__((noinline)) float df_sum_row(const float *p, int64_t n) {
    float part = 0;
    if (n <= 8)
        for (int64_t q = 0; q < n; q++) part += p[q];
    else {
#pragma omp simd reduction(+ : part)
        for (int64_t q = 0; q < n; q++) part += p[q];
    }
    return part;
}

#define ROW_OFFSETS 256 /* reductions of at most this many rows get their offsets up front */

typedef struct {
    df_iter kept, red;
    const float *x;
    float *y;
    double scale;
    int64_t rin, rst, rout, kin;
    const int64_t *roff; /* [rout] x offsets of the reduced rows, or NULL */
} reduce_job;

/* outputs [o0, o1), walking the kept innermost dim by strides */
static void reduce_outputs(void *ctx, int64_t o0, int64_t o1, int worker) {
    const reduce_job *j = ctx;
    const df_iter kept = j->kept, red = j->red;
    const float *x = j->x;
    float *y = j->y;
    int64_t rin = j->rin, rst = j->rst, rout = j->rout, kin = j->kin;
    int64_t kx = kept.st[0][kept.nd - 1], ky = kept.st[1][kept.nd - 1];
    (void)worker;
    for (int64_t o = o0; o < o1;) {
        int64_t ko[2];
        df_iter_offsets(&kept, o / kin, 2, ko);
        for (int64_t i = o % kin; i < kin && o < o1; i++, o++) {
            int64_t xb = ko[0] + i * kx;
            double s = 0;
            for (int64_t r = 0; r < rout; r++) {
                int64_t ro;
                if (j->roff)
                    ro = j->roff[r];
                else
                    df_iter_offsets(&red, r, 1, &ro);
                const float *p = x + xb + ro;
                float part = 0;
                if (rst == 1)
                    part = df_sum_row(p, rin);
                else
                    for (int64_t q = 0; q < rin; q++) part += p[q * rst];
                s += part;
            }
            y[ko[1] + i * ky] = (float)(s * j->scale);
        }
    }
}

static df_status reduce_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    reduce_job j;
    big_small_iter(&n->in[0]->shape, &n->shape, &j.kept, &j.red);
    j.x = df_inp(n, 0), j.y = df_out(n), j.scale = n->fa[0];
    int64_t nout = df_shape_numel(&n->shape);
    j.rin = j.red.ext[j.red.nd - 1], j.rst = j.red.st[0][j.red.nd - 1];
    j.rout = df_shape_numel(&n->in[0]->shape) / nout / j.rin;
    j.kin = j.kept.ext[j.kept.nd - 1];
    int64_t roff[ROW_OFFSETS];
    j.roff = NULL;
    if (j.rout <= ROW_OFFSETS) { /* few rows (an upsample's gradient): no index math per output */
        for (int64_t r = 0; r < j.rout; r++) df_iter_offsets(&j.red, r, 1, &roff[r]);
        j.roff = roff;
    }
    df_parallel_for(nout, DF_PIECE_IF(nout, nout * j.rin * j.rout > 32768), reduce_outputs, &j);
    return DF_OK;
}

typedef struct {
    df_iter it;
    const float *x;
    float *y;
    float s;
    int64_t inner;
} expand_job;
static void expand_rows(void *ctx, int64_t o0, int64_t o1, int worker) {
    const expand_job *j = ctx;
    int64_t sy = j->it.st[0][j->it.nd - 1], sx = j->it.st[1][j->it.nd - 1];
    (void)worker;
    for (int64_t o = o0; o < o1; o++) {
        int64_t off[2];
        df_iter_offsets(&j->it, o, 2, off);
        for (int64_t i = 0; i < j->inner; i++) j->y[off[0] + i * sy] = j->s * j->x[off[1] + i * sx];
    }
}
static df_status expand_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    int nd = n->shape.nd;
    int64_t ext[DF_MAX_DIMS], st[2][DF_MAX_DIMS];
    for (int j = 0; j < nd; j++) ext[j] = n->shape.d[j];
    df_strides(&n->shape, st[0]);
    df_bcast_strides(&n->in[0]->shape, 0, nd, ext, st[1]);
    df_iter it;
    df_iter_init(&it, nd, ext, st, 2);
    int64_t inner = it.ext[it.nd - 1], outer = df_shape_numel(&n->shape) / inner;
    expand_job j = {it, df_inp(n, 0), df_out(n), n->fa[0], inner};
    df_parallel_for(outer, DF_PIECE_IF(outer, outer * inner > 32768), expand_rows, &j);
    return DF_OK;
}

static df_node *reduce_node(df_graph *g, int op, df_node *x, const df_shape *t, float scale) {
    int32_t ia[DF_MAX_IATTR] = {0};
    if (df_pack_shape(ia, 0, t)) ia[0] = 0;
    return df_node_new(g, op, &x, 1, ia, DF_MAX_DIMS + 1, &scale, 1);
}

static df_status reduce_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    gin[0] = reduce_node(g, DF_OP_EXPAND, gy, &n->in[0]->shape, n->fa[0]);
    return df_graph_status(g);
}
static df_status expand_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    gin[0] = reduce_node(g, DF_OP_REDUCE, gy, &n->in[0]->shape, n->fa[0]);
    return df_graph_status(g);
}

const df_op_desc df_opdesc_reduce = {.name = "reduce",
                                     .min_in = 1,
                                     .max_in = 1,
                                     .shape = reduce_shape,
                                     .forward = reduce_fwd,
                                     .backward = reduce_bwd};
const df_op_desc df_opdesc_expand = {.name = "expand",
                                     .min_in = 1,
                                     .max_in = 1,
                                     .shape = expand_shape,
                                     .forward = expand_fwd,
                                     .backward = expand_bwd};

static df_node *sum_mask(df_graph *g, df_node *x, unsigned mask, int mean) {
    if (!x) return df_node_new(g, DF_OP_REDUCE, &x, 1, NULL, 0, NULL, 0); /* reports */
    df_shape t = x->shape;
    double cnt = 1;
    for (int j = 0; j < t.nd; j++)
        if (mask & (1u << j)) {
            cnt *= (double)t.d[j];
            t.d[j] = 1;
        }
    return reduce_node(g, DF_OP_REDUCE, x, &t, mean ? (float)(1.0 / cnt) : 1.0f);
}
df_node *df_sum(df_graph *g, df_node *x, unsigned m) {
    return sum_mask(g, x, m, 0);
}
df_node *df_mean(df_graph *g, df_node *x, unsigned m) {
    return sum_mask(g, x, m, 1);
}
df_node *df_sum_all(df_graph *g, df_node *x) {
    return df_reshape(g, sum_mask(g, x, ~0u, 0), df_shape1(1));
}

/* Place s at offset off inside x's rank (1s elsewhere); off < 0: infer. */
static int keepdims_of(const df_shape *x, const df_shape *s, int off, df_shape *t, int reduce) {
    int tries[2], nt = 0;
    if (off >= 0)
        tries[nt++] = off;
    else {
        tries[nt++] = x->nd - s->nd; /* numpy: right-aligned */
        tries[nt++] = 0;             /* leading-aligned: [B,C] in [B,C,H,W] */
    }
    for (int k = 0; k < nt; k++) {
        int o = tries[k];
        if (o < 0 || o + s->nd > x->nd) continue;
        int ok = 1;
        t->nd = x->nd;
        for (int j = 0; j < x->nd; j++) t->d[j] = 1;
        for (int j = 0; j < s->nd; j++) {
            int64_t small = s->d[j], big = x->d[o + j];
            if (!reduce) {
                int64_t tmp = small;
                small = big;
                big = tmp;
            }
            if (small != big && small != 1) ok = 0;
            t->d[o + j] = s->d[j];
        }
        if (ok) return 0;
    }
    return -1;
}

df_node *df_sum_to(df_graph *g, df_node *x, df_shape s, int off) {
    if (!x) return df_node_new(g, DF_OP_REDUCE, &x, 1, NULL, 0, NULL, 0);
    df_shape t;
    if (keepdims_of(&x->shape, &s, off, &t, 1)) {
        t = s; /* let the shape rule report the mismatch */
        return reduce_node(g, DF_OP_REDUCE, x, &t, 1.0f);
    }
    df_node *r = df_shape_eq(&t, &x->shape) ? x : reduce_node(g, DF_OP_REDUCE, x, &t, 1.0f);
    return df_shape_eq(&t, &s) ? r : df_reshape(g, r, s);
}

df_node *df_expand(df_graph *g, df_node *x, df_shape s) {
    if (!x) return df_node_new(g, DF_OP_EXPAND, &x, 1, NULL, 0, NULL, 0);
    df_shape t;
    /* x's shape placed inside s's rank */
    if (keepdims_of(&s, &x->shape, -1, &t, 1)) return reduce_node(g, DF_OP_EXPAND, x, &s, 1.0f);
    df_node *xr = df_shape_eq(&t, &x->shape) ? x : df_reshape(g, x, t);
    return reduce_node(g, DF_OP_EXPAND, xr, &s, 1.0f);
}
