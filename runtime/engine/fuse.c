/* The fusion pass, run by df_compile after autodiff: graphs are built from
 * plain ops (clear, and what autodiff differentiates); here patterns are
 * rewritten into fused nodes that read memory fewer times and keep fewer
 * buffers alive. A fused-away node is marked dead: it is neither planned nor
 * run. Every rewrite computes bitwise the same values as the pattern.
 *
 *   silu(groupnorm(x)) -> groupnorm_silu(x), and each silu_bwd(t, gy) of it
 *   -> groupnorm_silu_bwd(x, gy): the normalised t is recomputed in the
 *   backward pass instead of being kept from the forward pass.
 *
 *   dt = groupnorm_silu_bwd(x, gamma, beta, gy) read by groupnorm_bwd_x
 *   (dx), groupnorm_bwd_gamma and the reduce to beta's gradient ->
 *   groupnorm_silu_bwd_all(x, gamma, beta, gy), one buffer [dx | dgamma |
 *   dbeta | dx's plane sums | dx's channel sums], with dx's reader turned
 *   into a part (a view) and the others into slices (copies of C values, so
 *   that the buffer is freed after dx's last reader, not at the end where
 *   the parameters' gradients are copied): dt never goes to memory, and x
 *   and gy are read once, not four times. Reduces of dx to [B, C, 1, 1] (a
 *   time embedding's gradient) and [1, C, 1, 1] (a bias's) become slices of
 *   the sums, which the op takes while dx is in cache: two passes over dx
 *   fewer. When dx's only reader adds it to another path's gradient (made
 *   earlier: a residual connection's), the op adds that as it writes dx,
 *   the add becomes the part, and the sums are of the total.
 *
 *   add(conv2d(x, w, b), r) -> conv2d(x, w, b, r): the convolution adds r
 *   (a tensor of its output's shape, or one value per image and channel, as
 *   a time embedding [B, C] over [B, C, H, W]) as it writes its output, so
 *   the sum is not a separate pass over memory. The convolution's gradients
 *   never read its output, so this holds in training graphs too.
 *
 *   Two reduces of one tensor to one shape (the biases of a residual
 *   block's second convolution and of its skip convolution both sum the
 *   block's output gradient) -> the first, and a copy of it in the second.
 *
 *   conv2d(groupnorm_silu(x), ...) -> conv2d(x, ..., gamma, beta) when the
 *   convolution and its weight gradients are the only readers and Winograd
 *   suits its shape: each piece of the convolution normalises and activates
 *   the rows of x it reads, one channel at a time, and the weight gradient
 *   makes the images of the tiles it transforms, so the activation never
 *   goes to memory (conv_winograd.c, conv_winograd_bw.c). The groupnorm's
 *   node becomes groupnorm_stats(x), one pass over x that they and x's fused
 *   groupnorm gradient read instead of each taking the statistics again. A
 *   nearest upsample read so is folded in the same way. */
#include "internal.h"
#include "conv_winograd.h"
#include "conv_thin.h"
#include "util.h"
#include <stdlib.h>

/* readers[i]: how many inputs (of live nodes) name node i */
static int *count_readers(const df_graph *g) {
    int *r = calloc((size_t)g->n + 1, sizeof *r);
    if (!r) return NULL;
    for (int i = 0; i < g->n; i++) {
        const df_node *n = g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_in; k++) r[n->in[k]->id]++;
    }
    return r;
}

/* t = groupnorm(...) read only by silu nodes and by silu_bwd nodes as their
 * first input, and not kept for the caller */
static int gn_silu_fusable(const df_graph *g, const df_node *t, const int *readers) {
    if (t->op != DF_OP_GROUPNORM || t->dead || t->keep) return 0;
    int uses = 0, silu = 0;
    for (int i = t->id + 1; i < g->n; i++) {
        const df_node *n = g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] != t) continue;
            if (k != 0 || (n->op != DF_OP_SILU && n->op != DF_OP_SILU_BWD)) return 0;
            silu += n->op == DF_OP_SILU;
            uses++;
        }
    }
    return silu > 0 && uses == readers[t->id];
}

static void fuse_gn_silu(df_graph *g, df_node *t) {
    for (int i = t->id + 1; i < g->n; i++) {
        df_node *n = g->nodes[i];
        if (n->dead || n->n_in < 1 || n->in[0] != t) continue;
        df_node *gy = n->op == DF_OP_SILU_BWD ? n->in[1] : NULL;
        n->op = gy ? DF_OP_GROUPNORM_SILU_BWD : DF_OP_GROUPNORM_SILU;
        for (int k = 0; k < t->n_in; k++) n->in[k] = t->in[k];
        n->n_in = t->n_in;
        if (gy) n->in[n->n_in++] = gy;
        n->ia[0] = t->ia[0];
        n->fa[0] = t->fa[0];
    }
    t->dead = 1;
}

/* Whether operand k of the 4-d add a is laid out over a's index space as a
 * whole tensor (1), as [B, C] broadcast over the pixels (2), or otherwise (0). */
static int operand_layout(const df_node *a, int k) {
    const df_shape *s = &a->shape;
    int64_t ext[DF_MAX_DIMS], st[DF_MAX_DIMS], full[DF_MAX_DIMS];
    for (int j = 0; j < s->nd; j++) ext[j] = s->d[j];
    df_bcast_strides(&a->in[k]->shape, a->ia[k], s->nd, ext, st);
    df_strides(s, full);
    int whole = 1;
    for (int j = 0; j < 4; j++) whole &= st[j] == full[j] || s->d[j] == 1;
    if (whole && df_shape_numel(&a->in[k]->shape) == df_shape_numel(s)) return 1;
    int bc = st[0] == s->d[1] || s->d[0] == 1;
    bc &= (st[1] == 1 || s->d[1] == 1) && (st[2] == 0 || s->d[2] == 1) &&
          (st[3] == 0 || s->d[3] == 1);
    return bc && df_shape_numel(&a->in[k]->shape) == s->d[0] * s->d[1] ? 2 : 0;
}

/* a = add(y, r) or add(r, y) with y = conv2d read by a alone: the index of
 * y in a (0 or 1) and r's layout, or -1 */
static int conv_add_fusable(const df_node *a, const int *readers, int *layout) {
    if (a->op != DF_OP_ADD || a->dead || a->shape.nd != 4 || a->dtype != DF_F32) return -1;
    for (int k = 0; k < 2; k++) {
        const df_node *y = a->in[k], *r = a->in[1 - k];
        if (y->op != DF_OP_CONV2D || y->dead || y->keep || y->ia[2] || readers[y->id] != 1 ||
            r == y || r->dtype != DF_F32 || !df_shape_eq(&y->shape, &a->shape) ||
            operand_layout(a, k) != 1 || !(*layout = operand_layout(a, 1 - k)))
            continue;
        return k;
    }
    return -1;
}

static void fuse_conv_add(df_node *a, int k, int layout) {
    df_node *y = a->in[k], *r = a->in[1 - k];
    a->op = DF_OP_CONV2D;
    for (int j = 0; j < y->n_in; j++) a->in[j] = y->in[j];
    a->in[y->n_in] = r;
    a->n_in = y->n_in + 1;
    a->ia[0] = y->ia[0], a->ia[1] = y->ia[1], a->ia[2] = 1, a->ia[3] = layout == 2;
    y->dead = 1;
}

/* whether every live reader of n is a reshape or a copy (it needs only n's elements) */
static int read_by_reshapes(const df_graph *g, const df_node *n) {
    for (int i = n->id + 1; i < g->n; i++) {
        const df_node *r = g->nodes[i];
        for (int k = 0; k < r->n_in && !r->dead; k++)
            if (r->in[k] == n && r->op != DF_OP_RESHAPE && r->op != DF_OP_COPY) return 0;
    }
    return 1;
}
#define GN_ROLES 6 /* dx, dgamma, dbeta, dx's plane sums, dx's channel sums, dx + acc */

/* r = reduce(dx) to [B, C, 1, 1] (3: dx's plane sums) or [1, C, 1, 1] (4:
 * its channel sums), read by reshapes alone (a slice is 1-d), else -1 */
static int gn_sums_role(const df_graph *g, const df_node *dx, const df_node *r) {
    const df_shape *x = &dx->shape;
    if (r->op != DF_OP_REDUCE || r->in[0] != dx || r->fa[0] != 1.0f || r->keep || x->nd != 4 ||
        !read_by_reshapes(g, r))
        return -1;
    const df_shape *s = &r->shape;
    if (s->d[1] != x->d[1] || s->d[2] != 1 || s->d[3] != 1) return -1;
    return s->d[0] == x->d[0] ? 3 : s->d[0] == 1 ? 4 : -1;
}
/* The role of node r reading dt = groupnorm_silu_bwd(x, gamma, beta, gy)
 * in a groupnorm_silu_bwd_all: 0 dx, 1 dgamma, 2 dbeta, or -1 */
static int gn_all_role(const df_graph *g, const df_node *dt, const df_node *r) {
    const df_node *x = dt->in[0];
    int64_t C = x->shape.d[1];
    if (r->op == DF_OP_GROUPNORM_BWD_X && r->n_in == 3 && r->in[0] == x && r->in[1] == dt->in[1] &&
        r->in[2] == dt && r->ia[0] == dt->ia[0] && r->fa[0] == dt->fa[0])
        return 0;
    if (r->op == DF_OP_GROUPNORM_BWD_GAMMA && r->in[0] == x && r->in[1] == dt &&
        r->ia[0] == dt->ia[0] && r->fa[0] == dt->fa[0])
        return 1;
    if (r->op == DF_OP_REDUCE && r->in[0] == dt && r->fa[0] == 1.0f &&
        df_shape_numel(&r->shape) == C && r->shape.nd == x->shape.nd && r->shape.d[1] == C &&
        !r->keep && read_by_reshapes(g, r))
        return 2;
    return -1;
}
/* The add that is dx's only reader, adding another path's gradient made
 * before dt (role 5: the op adds it as it writes dx), or NULL */
static df_node *acc_add_of(const df_graph *g, const df_node *dt, const df_node *dx,
                           const int *readers) {
    if (readers[dx->id] != 1) return NULL;
    for (int i = dx->id + 1; i < g->n; i++) {
        df_node *r = g->nodes[i];
        if (r->dead || r->n_in < 1 || (r->in[0] != dx && (r->n_in < 2 || r->in[1] != dx))) continue;
        const df_node *o = r->in[0] == dx ? r->in[1] : r->in[0];
        int ok = r->op == DF_OP_ADD && r->n_in == 2 && o != dx && o->id < dt->id && !r->keep &&
                 r->storage != DF_STORE_GRAD && o->dtype == DF_F32 &&
                 df_shape_eq(&o->shape, &dx->shape) && df_shape_eq(&r->shape, &dx->shape);
        return ok ? r : NULL;
    }
    return NULL;
}
/* dt's readers as roles (each at most once, dx among them), dx's add of
 * another gradient (role 5), and the reduces of dx (or of that sum) to its
 * sums (roles 3, 4), or 0 */
static int gn_all_fusable(const df_graph *g, const df_node *dt, const int *readers,
                          df_node *role[GN_ROLES]) {
    for (int q = 0; q < GN_ROLES; q++) role[q] = NULL;
    if (dt->op != DF_OP_GROUPNORM_SILU_BWD || dt->dead || dt->keep || dt->n_in != 4 ||
        dt->shape.nd < 2 ||
        df_shape_numel(&dt->shape) + (3 + dt->shape.d[0]) * dt->shape.d[1] > INT32_MAX)
        return 0;
    int uses = 0;
    for (int i = dt->id + 1; i < g->n; i++) {
        df_node *r = g->nodes[i];
        if (r->dead) continue;
        for (int k = 0; k < r->n_in; k++) {
            if (r->in[k] != dt) continue;
            int q = gn_all_role(g, dt, r);
            /* dx becomes a view: not when it holds a parameter's gradient */
            if (q < 0 || role[q] || (q == 0 && r->storage == DF_STORE_GRAD)) return 0;
            role[q] = r;
            uses++;
        }
    }
    if (!role[0] || uses != readers[dt->id]) return 0;
    role[5] = acc_add_of(g, dt, role[0], readers);
    const df_node *out = role[5] ? role[5] : role[0]; /* what the op's first part holds */
    for (int i = out->id + 1; i < g->n; i++) {        /* its reduces to its sums */
        df_node *r = g->nodes[i];
        if (r->dead || r->n_in != 1) continue;
        int q = gn_sums_role(g, out, r);
        if (q == 3 && role[3] && out->shape.d[0] == 1) q = 4; /* B = 1: the same sums */
        if (q > 0 && !role[q]) role[q] = r;
    }
    return 1;
}
static void fuse_gn_all(df_node *dt, df_node *role[GN_ROLES]) {
    const df_shape xs = dt->in[0]->shape;
    int64_t N = df_shape_numel(&xs), B = xs.d[0], C = xs.d[1];
    int64_t at[5] = {0, N, N + C, N + 2 * C, N + (2 + B) * C}; /* offsets in dt */
    int64_t len[5] = {N, C, C, B * C, C};
    dt->op = DF_OP_GROUPNORM_SILU_BWD_ALL;
    dt->shape = df_shape1(N + (3 + B) * C);
    df_node *dx = role[0];
    if (role[5]) { /* the op adds the other gradient: the add is the part, dx is gone */
        df_node *a = role[5];
        dt->in[dt->n_in++] = a->in[0] == dx ? a->in[1] : a->in[0];
        dx->dead = 1;
        dx = a;
    }
    dx->op = DF_OP_PART, dx->n_in = 1, dx->in[0] = dt, dx->ia[0] = 0;
    df_pack_shape(dx->ia, 1, &xs);
    for (int q = 1; q < 5; q++) { /* slices (copies: one may be a parameter's gradient) */
        df_node *r = role[q];
        if (!r) continue;
        r->op = DF_OP_SLICE, r->n_in = 1, r->in[0] = dt, r->shape = df_shape1(len[q]);
        r->ia[0] = 0, r->ia[1] = (int32_t)at[q], r->ia[2] = (int32_t)len[q];
    }
}

/* Whether r is c's weight gradient (conv2d_bwd_weight of c's geometry)
 * reading t as its x */
static int weight_grad_of(const df_node *r, const df_node *c, const df_node *t) {
    const df_shape *w = &c->in[1]->shape;
    return r->op == DF_OP_CONV2D_BWD_WEIGHT && r->n_in == 2 && r->in[0] == t && r->in[1] != t &&
           r->ia[0] == c->ia[0] && r->ia[1] == c->ia[1] && r->ia[2] == w->d[2] &&
           r->ia[3] == w->d[3] && df_shape_eq(&r->shape, w);
}
/* c = conv2d(t, ...) with t = groupnorm_silu or a nearest upsample read by
 * c and (training) c's weight gradients alone, Winograd's shape */
static int conv_pre_fusable(const df_graph *g, const df_node *c, const int *readers) {
    if (c->op != DF_OP_CONV2D || c->dead || c->ia[4] > 0 || c->ia[6] > 1) return 0;
    const df_node *t = c->in[0], *w = c->in[1];
    if ((t->op != DF_OP_GROUPNORM_SILU && (t->op != DF_OP_UPSAMPLE || t->ia[0] < 2)) || t->dead ||
        t->keep || t->shape.nd != 4 || t->in[0]->dtype != DF_F32)
        return 0;
    int uses = 0;
    for (int i = t->id + 1; i < g->n; i++) {
        const df_node *r = g->nodes[i];
        for (int k = 0; k < r->n_in && !r->dead; k++) {
            if (r->in[k] != t) continue;
            if (!(r == c && k == 0) && !(k == 0 && weight_grad_of(r, c, t))) return 0;
            uses++;
        }
    }
    if (uses != readers[t->id]) return 0;
    dconv_shape d = {t->shape.d[0], t->shape.d[1], t->shape.d[2], t->shape.d[3],
                     w->shape.d[0], w->shape.d[2], w->shape.d[3], c->ia[0],
                     c->ia[1],      c->shape.d[2], c->shape.d[3]};
    return wino_applies(&d) || thin_applies(&d);
}

/* n (c, or one of its weight gradients) reads t's input through t */
static void read_through(df_node *n, const df_node *t) {
    n->in[0] = t->in[0];
    if (t->op == DF_OP_UPSAMPLE) {
        n->ia[6] = t->ia[0];
        return;
    }
    for (int k = 1; k < t->n_in; k++) n->in[n->n_in++] = t->in[k]; /* gamma, beta */
    n->ia[4] = t->ia[0];
    n->ia[5] = t->n_in == 3;
    n->fa[0] = t->fa[0];
}
/* x's groupnorm_silu gradient fused (groupnorm_silu_bwd_all) for the
 * groupnorm t */
static int gn_all_of(const df_node *a, const df_node *t) {
    return a->op == DF_OP_GROUPNORM_SILU_BWD_ALL && !a->dead && a->in[0] == t->in[0] &&
           t->n_in == 3 && a->in[1] == t->in[1] && a->in[2] == t->in[2] && a->ia[0] == t->ia[0] &&
           a->fa[0] == t->fa[0] && a->ia[1] != 1;
}
/* n reads t (a groupnorm_silu about to become x's statistics) as its last input */
static void read_stats(df_node *n, df_node *t) {
    n->in[n->n_in++] = t;
    n->ia[7] = 1;
}
static void fuse_conv_pre(df_graph *g, df_node *c) {
    df_node *t = c->in[0];
    int gn = t->op == DF_OP_GROUPNORM_SILU;
    for (int i = c->id + 1; i < g->n; i++) { /* c's weight gradients read x through t too */
        df_node *r = g->nodes[i];
        if (r->dead || !weight_grad_of(r, c, t)) continue;
        read_through(r, t);
        if (gn) read_stats(r, t);
    }
    read_through(c, t);
    if (!gn) {
        t->dead = 1;
        return;
    }
    read_stats(c, t);
    for (int i = t->id + 1; i < g->n; i++) /* and x's fused groupnorm gradient */
        if (gn_all_of(g->nodes[i], t)) {
            g->nodes[i]->in[g->nodes[i]->n_in++] = t;
            g->nodes[i]->ia[1] = 1;
        }
    /* t becomes x's statistics, which they all read */
    t->op = DF_OP_GROUPNORM_STATS;
    t->shape = df_shape3(t->in[0]->shape.d[0], t->ia[0], 2);
    t->n_in = 1;
}

/* An earlier live reduce of r's input to r's target shape and scale, or NULL */
static df_node *same_reduce(const df_graph *g, const df_node *r) {
    if (r->op != DF_OP_REDUCE || r->dead || r->n_in != 1) return NULL;
    for (int i = r->in[0]->id + 1; i < r->id; i++) {
        df_node *q = g->nodes[i];
        if (q->op == DF_OP_REDUCE && !q->dead && q->in[0] == r->in[0] && q->fa[0] == r->fa[0] &&
            df_shape_eq(&q->shape, &r->shape))
            return q;
    }
    return NULL;
}

df_status df_fuse(df_graph *g) {
    int *readers = count_readers(g);
    if (!readers) return df_seterr(DF_ENOMEM, "df_compile: out of memory while fusing");
    for (int i = 0; i < g->n; i++)
        if (gn_silu_fusable(g, g->nodes[i], readers)) fuse_gn_silu(g, g->nodes[i]);
    for (int i = 0; i < g->n; i++) {
        int layout, k = conv_add_fusable(g->nodes[i], readers, &layout);
        if (k >= 0) fuse_conv_add(g->nodes[i], k, layout);
    }
    for (int i = 0; i < g->n; i++) { /* the same sum taken twice: once, and a copy */
        df_node *r = g->nodes[i], *q = same_reduce(g, r);
        if (q) r->op = DF_OP_COPY, r->in[0] = q; /* (the first may become a slice below) */
    }
    free(readers);
    if (!(readers = count_readers(g)))
        return df_seterr(DF_ENOMEM, "df_compile: out of memory while fusing");
    for (int i = 0; i < g->n; i++) {
        df_node *role[GN_ROLES];
        if (gn_all_fusable(g, g->nodes[i], readers, role)) fuse_gn_all(g->nodes[i], role);
    }
    for (int i = 0; i < g->n; i++)
        if (conv_pre_fusable(g, g->nodes[i], readers)) fuse_conv_pre(g, g->nodes[i]);
    free(readers);
    return DF_OK;
}
