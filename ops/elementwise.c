/* Elementwise ops: add, sub, mul with broadcasting; scale; copy; fill.
 * Binary attributes: ia[0], ia[1] = alignment offsets of a and b (leading
 * output dims before the operand's first dim). */
#include "util.h"
#include <stdio.h>
#include <string.h>
#include "parallel.h"

/* Output shape of a and b aligned at offsets oa, ob; -1 if incompatible. */
static int bcast_shape(const df_shape *a, int oa, const df_shape *b, int ob, df_shape *out) {
    int nd = oa + a->nd > ob + b->nd ? oa + a->nd : ob + b->nd;
    if (oa < 0 || ob < 0 || nd > DF_MAX_DIMS) return -1;
    out->nd = nd;
    for (int j = 0; j < nd; j++) {
        int ka = j - oa, kb = j - ob;
        int64_t ea = (ka >= 0 && ka < a->nd) ? a->d[ka] : 1;
        int64_t eb = (kb >= 0 && kb < b->nd) ? b->d[kb] : 1;
        if (ea != eb && ea != 1 && eb != 1) return -1;
        out->d[j] = ea > eb ? ea : eb;
    }
    return 0;
}

static df_status binary_shape(df_node *n) {
    char a[96], b[96];
    const df_node *x = n->in[0], *y = n->in[1];
    if (x->dtype != DF_F32 || y->dtype != DF_F32)
        return df_seterr(DF_EINVAL, "operands must be float32, got %s and %s",
                         df_dtype_name(x->dtype), df_dtype_name(y->dtype));
    if (bcast_shape(&x->shape, n->ia[0], &y->shape, n->ia[1], &n->shape))
        return df_seterr(DF_ESHAPE, "cannot broadcast %s with %s (offsets %d, %d)",
                         df_shape_str(&x->shape, a, sizeof a), df_shape_str(&y->shape, b, sizeof b),
                         n->ia[0], n->ia[1]);
    /* the output must have a's shape for in-place reuse; flags are per op, the
     * planner compares sizes */
    n->dtype = DF_F32;
    return DF_OK;
}

enum { BIN_ADD, BIN_SUB, BIN_MUL };

#define BIN_SPAN 16384 /* a long row is split into spans of this many elements */

typedef struct {
    df_iter it;
    float *y;
    const float *a, *b;
    int64_t inner, sy, sa, sb;
    int64_t spans; /* per row of the coalesced space */
    int kind;
} binary_job;

/* spans [o0, o1) of the rows of the coalesced iteration space (spans per row) */
static void binary_rows(void *ctx, int64_t o0, int64_t o1, int worker) {
    const binary_job *j = ctx;
    int64_t sy = j->sy, sa = j->sa, sb = j->sb;
    int kind = j->kind;
    (void)worker;
    for (int64_t o = o0; o < o1; o++) {
        int64_t off[3], i0 = o % j->spans * BIN_SPAN;
        int64_t inner = j->inner - i0 < BIN_SPAN || j->spans == 1 ? j->inner - i0 : BIN_SPAN;
        df_iter_offsets(&j->it, o / j->spans, 3, off);
        float *yy = j->y + off[0] + i0 * sy;
        const float *aa = j->a + off[1] + i0 * sa, *bb = j->b + off[2] + i0 * sb;
        if (sy == 1 && sa == 1 && sb == 1) {
            if (kind == BIN_ADD)
                for (int64_t i = 0; i < inner; i++) yy[i] = aa[i] + bb[i];
            else if (kind == BIN_SUB)
                for (int64_t i = 0; i < inner; i++) yy[i] = aa[i] - bb[i];
            else
                for (int64_t i = 0; i < inner; i++) yy[i] = aa[i] * bb[i];
        } else if (sy == 1 && sa == 1 && sb == 0) {
            float v = bb[0];
            if (kind == BIN_ADD)
                for (int64_t i = 0; i < inner; i++) yy[i] = aa[i] + v;
            else if (kind == BIN_SUB)
                for (int64_t i = 0; i < inner; i++) yy[i] = aa[i] - v;
            else
                for (int64_t i = 0; i < inner; i++) yy[i] = aa[i] * v;
        } else {
            for (int64_t i = 0; i < inner; i++) {
                float u = aa[i * sa], v = bb[i * sb];
                yy[i * sy] = kind == BIN_ADD ? u + v : kind == BIN_SUB ? u - v : u * v;
            }
        }
    }
}

static df_status binary_fwd(const df_node *n, int kind) {
    int64_t ext[DF_MAX_DIMS], st[3][DF_MAX_DIMS];
    int nd = n->shape.nd;
    for (int j = 0; j < nd; j++) ext[j] = n->shape.d[j];
    df_strides(&n->shape, st[0]);
    df_bcast_strides(&n->in[0]->shape, n->ia[0], nd, ext, st[1]);
    df_bcast_strides(&n->in[1]->shape, n->ia[1], nd, ext, st[2]);
    df_iter it;
    df_iter_init(&it, nd, ext, st, 3);
    int64_t inner = it.ext[it.nd - 1], outer = df_shape_numel(&n->shape) / inner;
    int64_t spans = inner >= 2 * BIN_SPAN ? (inner + BIN_SPAN - 1) / BIN_SPAN : 1;
    binary_job j = {it,
                    df_out(n),
                    df_inp(n, 0),
                    df_inp(n, 1),
                    inner,
                    it.st[0][it.nd - 1],
                    it.st[1][it.nd - 1],
                    it.st[2][it.nd - 1],
                    spans,
                    kind};
    int64_t m = outer * spans;
    df_parallel_for(m, DF_PIECE_IF(m, outer * inner > 32768), binary_rows, &j);
    return DF_OK;
}

static df_status add_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    return binary_fwd(n, BIN_ADD);
}
static df_status sub_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    return binary_fwd(n, BIN_SUB);
}
static df_status mul_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    return binary_fwd(n, BIN_MUL);
}

/* gradient flowing to operand k of a broadcast binary node */
static df_node *reduce_to_operand(df_graph *g, df_node *n, int k, df_node *gfull) {
    const df_node *x = n->in[k];
    if (df_shape_eq(&gfull->shape, &x->shape)) return gfull;
    return df_sum_to(g, gfull, x->shape, n->ia[k]);
}

static df_status addsub_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin, int sub) {
    if (n->in[0]->requires_grad) gin[0] = reduce_to_operand(g, n, 0, gy);
    if (n->in[1]->requires_grad) {
        df_node *gb = reduce_to_operand(g, n, 1, gy);
        gin[1] = sub ? df_scale(g, gb, -1.0f) : gb;
    }
    return df_graph_status(g);
}
static df_status add_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    return addsub_bwd(g, n, gy, gin, 0);
}
static df_status sub_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    return addsub_bwd(g, n, gy, gin, 1);
}
static df_status mul_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    if (n->in[0]->requires_grad)
        gin[0] =
            reduce_to_operand(g, n, 0, df_binary_aligned(g, DF_OP_MUL, gy, n->in[1], 0, n->ia[1]));
    if (n->in[1]->requires_grad)
        gin[1] =
            reduce_to_operand(g, n, 1, df_binary_aligned(g, DF_OP_MUL, gy, n->in[0], 0, n->ia[0]));
    return df_graph_status(g);
}

const df_op_desc df_opdesc_add = {.name = "add",
                                  .min_in = 2,
                                  .max_in = 2,
                                  .flags = DF_OPF_INPLACE,
                                  .shape = binary_shape,
                                  .forward = add_fwd,
                                  .backward = add_bwd};
const df_op_desc df_opdesc_sub = {.name = "sub",
                                  .min_in = 2,
                                  .max_in = 2,
                                  .flags = DF_OPF_INPLACE,
                                  .shape = binary_shape,
                                  .forward = sub_fwd,
                                  .backward = sub_bwd};
const df_op_desc df_opdesc_mul = {.name = "mul",
                                  .min_in = 2,
                                  .max_in = 2,
                                  .flags = DF_OPF_INPLACE,
                                  .shape = binary_shape,
                                  .forward = mul_fwd,
                                  .backward = mul_bwd};

/* Infer alignment: numpy (right-aligned) first, else leading-aligned. */
static int infer_offsets(const df_shape *a, const df_shape *b, int *oa, int *ob) {
    df_shape o;
    int nd = a->nd > b->nd ? a->nd : b->nd;
    *oa = nd - a->nd;
    *ob = nd - b->nd;
    if (!bcast_shape(a, *oa, b, *ob, &o)) return 0;
    *oa = *ob = 0;
    if (!bcast_shape(a, 0, b, 0, &o)) return 0;
    *oa = nd - a->nd;
    *ob = nd - b->nd;
    return -1;
}

df_node *df_binary_aligned(df_graph *g, int op, df_node *a, df_node *b, int off_a, int off_b) {
    if (a && b && (off_a < 0 || off_b < 0)) infer_offsets(&a->shape, &b->shape, &off_a, &off_b);
    int32_t ia[2] = {off_a, off_b};
    return df_node_new(g, op, (df_node *[]){a, b}, 2, ia, 2, NULL, 0);
}
df_node *df_add(df_graph *g, df_node *a, df_node *b) {
    return df_binary_aligned(g, DF_OP_ADD, a, b, -1, -1);
}
df_node *df_sub(df_graph *g, df_node *a, df_node *b) {
    return df_binary_aligned(g, DF_OP_SUB, a, b, -1, -1);
}
df_node *df_mul(df_graph *g, df_node *a, df_node *b) {
    return df_binary_aligned(g, DF_OP_MUL, a, b, -1, -1);
}

/* ---- scale: y = fa[0] * x ---- */
static df_status f32_same_shape(df_node *n) {
    if (n->in[0]->dtype != DF_F32)
        return df_seterr(DF_EINVAL, "input must be float32, got %s",
                         df_dtype_name(n->in[0]->dtype));
    n->shape = n->in[0]->shape;
    n->dtype = DF_F32;
    return DF_OK;
}
static void scale_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const df_node *n = ctx;
    const float *x = df_inp(n, 0);
    float *y = df_out(n), s = n->fa[0];
    (void)worker;
    for (int64_t i = i0; i < i1; i++) y[i] = s * x[i];
}
static df_status scale_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    int64_t k = df_shape_numel(&n->shape);
    df_parallel_for(k, DF_PIECE_IF(k, k > 32768), scale_piece, (void *)n);
    return DF_OK;
}
static df_status scale_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    gin[0] = df_scale(g, gy, n->fa[0]);
    return df_graph_status(g);
}
const df_op_desc df_opdesc_scale = {.name = "scale",
                                    .min_in = 1,
                                    .max_in = 1,
                                    .flags = DF_OPF_INPLACE,
                                    .shape = f32_same_shape,
                                    .forward = scale_fwd,
                                    .backward = scale_bwd};
df_node *df_scale(df_graph *g, df_node *x, float s) {
    return df_node_new(g, DF_OP_SCALE, &x, 1, NULL, 0, &s, 1);
}

/* ---- copy ---- */
static df_status copy_shape(df_node *n) {
    n->shape = n->in[0]->shape;
    n->dtype = n->in[0]->dtype;
    return DF_OK;
}
static df_status copy_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    memcpy(n->data, n->in[0]->data, df_node_bytes(n));
    return DF_OK;
}
static df_status copy_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    (void)n;
    gin[0] = gy;
    return df_graph_status(g);
}
const df_op_desc df_opdesc_copy = {.name = "copy",
                                   .min_in = 1,
                                   .max_in = 1,
                                   .shape = copy_shape,
                                   .forward = copy_fwd,
                                   .backward = copy_bwd};
df_node *df_copy(df_graph *g, df_node *x) {
    return df_node_new(g, DF_OP_COPY, &x, 1, NULL, 0, NULL, 0);
}

/* ---- fill: ia = packed shape, fa[0] = value ---- */
static df_status fill_shape(df_node *n) {
    char b[96];
    n->shape = df_unpack_shape(n->ia, 0);
    n->dtype = DF_F32;
    if (n->shape.nd < 1) return df_seterr(DF_ESHAPE, "fill needs a shape");
    for (int i = 0; i < n->shape.nd; i++)
        if (n->shape.d[i] < 1)
            return df_seterr(DF_ESHAPE, "bad fill shape %s", df_shape_str(&n->shape, b, sizeof b));
    return DF_OK;
}
static df_status fill_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    float *y = df_out(n), v = n->fa[0];
    int64_t k = df_shape_numel(&n->shape);
    for (int64_t i = 0; i < k; i++) y[i] = v;
    return DF_OK;
}
const df_op_desc df_opdesc_fill = {.name = "fill",
                                   .min_in = 0,
                                   .max_in = 0,
                                   .flags = DF_OPF_GRAD_ONLY,
                                   .shape = fill_shape,
                                   .forward = fill_fwd};
df_node *df_fill(df_graph *g, df_shape s, float v) {
    int32_t ia[DF_MAX_DIMS + 1] = {0};
    if (s.nd >= 1 && s.nd <= DF_MAX_DIMS && df_pack_shape(ia, 0, &s)) ia[0] = 0;
    return df_node_new(g, DF_OP_FILL, NULL, 0, ia, DF_MAX_DIMS + 1, &v, 1);
}
