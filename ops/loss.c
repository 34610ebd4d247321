/* Losses: mean squared error and cross-entropy, with their gradient kernels.
 * Reductions use fixed 4096-element chunks combined in order (bitwise
 * identical for any thread count). */
#include "util.h"
#include <math.h>
#include <stdlib.h>
#include "parallel.h"

#define CHUNK 4096

typedef struct {
    int64_t n;
    double (*f)(const df_node *, int64_t, int64_t);
    const df_node *nd;
    double *part;
} chunks_job;
static void chunk_parts(void *ctx, int64_t c0, int64_t c1, int worker) {
    const chunks_job *j = ctx;
    (void)worker;
    for (int64_t c = c0; c < c1; c++)
        j->part[c] = j->f(j->nd, c * CHUNK, c * CHUNK + CHUNK < j->n ? c * CHUNK + CHUNK : j->n);
}
/* sum over fixed chunks of f(i) in double */
static double chunked_sum(int64_t n, double (*f)(const df_node *, int64_t, int64_t),
                          const df_node *nd, double *part) {
    int64_t nc = (n + CHUNK - 1) / CHUNK;
    df_parallel_for(nc, DF_PIECE(nc), chunk_parts, &(chunks_job){n, f, nd, part});
    double s = 0;
    for (int64_t c = 0; c < nc; c++) s += part[c];
    return s;
}
static size_t chunk_scratch(int64_t n) {
    return (size_t)((n + CHUNK - 1) / CHUNK + 1) * sizeof(double);
}

/* ---- mse_loss(pred, target) -> [1] ---- */
static df_status mse_shape(df_node *n) {
    char a[96], b[96];
    const df_node *p = n->in[0], *t = n->in[1];
    if (p->dtype != DF_F32 || t->dtype != DF_F32)
        return df_seterr(DF_EINVAL, "prediction and target must be float32");
    if (!df_shape_eq(&p->shape, &t->shape))
        return df_seterr(DF_ESHAPE, "prediction %s and target %s differ",
                         df_shape_str(&p->shape, a, sizeof a),
                         df_shape_str(&t->shape, b, sizeof b));
    n->shape = df_shape1(1);
    n->dtype = DF_F32;
    return DF_OK;
}
static double mse_part(const df_node *n, int64_t a, int64_t b) {
    const float *p = df_inp(n, 0), *t = df_inp(n, 1);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = a; i < b; i++) {
        double d = (double)p[i] - t[i];
        s += d * d;
    }
    return s;
}
static df_status mse_fwd(const df_node *n, df_exec_ctx *c) {
    int64_t k = df_shape_numel(&n->in[0]->shape);
    df_out(n)[0] = (float)(chunked_sum(k, mse_part, n, c->scratch) / (double)k);
    return DF_OK;
}
static size_t mse_scratch(const df_node *n, int nt) {
    (void)nt;
    return chunk_scratch(df_shape_numel(&n->in[0]->shape));
}
/* mse_bwd(pred, target, gy) -> 2 (p - t) / n * gy */
static df_status mse_bwd_shape(df_node *n) {
    df_status st = mse_shape(n);
    n->shape = n->in[0]->shape;
    return st;
}
static void mse_bwd_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const df_node *n = ctx;
    const float *p = df_inp(n, 0), *t = df_inp(n, 1);
    int64_t k = df_shape_numel(&n->shape);
    float s = (float)(2.0 / (double)k) * df_inp(n, 2)[0], *y = df_out(n);
    (void)worker;
    for (int64_t i = i0; i < i1; i++) y[i] = s * (p[i] - t[i]);
}
static df_status mse_bwd_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    int64_t k = df_shape_numel(&n->shape);
    df_parallel_for(k, DF_PIECE_IF(k, k > 32768), mse_bwd_piece, (void *)n);
    return DF_OK;
}
static df_status mse_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    df_node *d =
        df_node_new(g, DF_OP_MSE_BWD, (df_node *[]){n->in[0], n->in[1], gy}, 3, NULL, 0, NULL, 0);
    if (n->in[0]->requires_grad) gin[0] = d;
    if (n->in[1]->requires_grad) gin[1] = df_scale(g, d, -1.0f);
    return df_graph_status(g);
}
static double mse_flops(const df_node *n) {
    return 3.0 * df_shape_numel(&n->in[0]->shape);
}
const df_op_desc df_opdesc_mse_loss = {.name = "mse_loss",
                                       .min_in = 2,
                                       .max_in = 2,
                                       .flags = DF_OPF_LOSS,
                                       .shape = mse_shape,
                                       .forward = mse_fwd,
                                       .backward = mse_bwd,
                                       .scratch = mse_scratch,
                                       .flops = mse_flops};
const df_op_desc df_opdesc_mse_bwd = {.name = "mse_bwd",
                                      .min_in = 3,
                                      .max_in = 3,
                                      .flags = DF_OPF_GRAD_ONLY,
                                      .shape = mse_bwd_shape,
                                      .forward = mse_bwd_fwd,
                                      .flops = mse_flops};
df_node *df_mse_loss(df_graph *g, df_node *pred, df_node *target) {
    return df_node_new(g, DF_OP_MSE_LOSS, (df_node *[]){pred, target}, 2, NULL, 0, NULL, 0);
}

/* ---- cross_entropy(logits [N, C], labels int32 [N]) -> [1] ---- */
static df_status ce_shape(df_node *n) {
    char a[96], b[96];
    const df_node *x = n->in[0], *l = n->in[1];
    if (x->dtype != DF_F32 || x->shape.nd != 2)
        return df_shape_err(n, "float32 logits [N, C]", &x->shape);
    if (l->dtype != DF_I32)
        return df_seterr(DF_EINVAL, "labels must be int32, got %s", df_dtype_name(l->dtype));
    if (l->shape.nd != 1 || l->shape.d[0] != x->shape.d[0])
        return df_seterr(DF_ESHAPE, "labels %s do not match logits %s (expected [%lld])",
                         df_shape_str(&l->shape, a, sizeof a), df_shape_str(&x->shape, b, sizeof b),
                         (long long)x->shape.d[0]);
    n->shape = df_shape1(1);
    n->dtype = DF_F32;
    return DF_OK;
}
static df_status check_labels(const df_node *n) {
    const int32_t *l = n->in[1]->data;
    int64_t N = n->in[0]->shape.d[0], C = n->in[0]->shape.d[1];
    for (int64_t i = 0; i < N; i++)
        if (l[i] < 0 || l[i] >= C)
            return df_seterr(DF_ERANGE, "label %d at position %lld is outside [0, %lld)", l[i],
                             (long long)i, (long long)C);
    return DF_OK;
}
/* -log softmax(x_i)[l_i] for rows a..b */
static double ce_part(const df_node *n, int64_t a, int64_t b) {
    const float *x = df_inp(n, 0);
    const int32_t *l = n->in[1]->data;
    int64_t C = n->in[0]->shape.d[1];
    double s = 0;
    for (int64_t i = a; i < b; i++) {
        const float *r = x + i * C;
        float m = r[0];
        for (int64_t j = 1; j < C; j++) m = r[j] > m ? r[j] : m;
        double z = 0;
        for (int64_t j = 0; j < C; j++) z += exp((double)r[j] - m);
        s += log(z) + m - r[l[i]];
    }
    return s;
}
static df_status ce_fwd(const df_node *n, df_exec_ctx *c) {
    df_status st = check_labels(n);
    if (st) return st;
    int64_t N = n->in[0]->shape.d[0];
    df_out(n)[0] = (float)(chunked_sum(N, ce_part, n, c->scratch) / (double)N);
    return DF_OK;
}
static size_t ce_scratch(const df_node *n, int nt) {
    (void)nt;
    return chunk_scratch(n->in[0]->shape.d[0]);
}
/* ce_bwd(logits, labels, gy) -> (softmax - onehot) / N * gy */
static df_status ce_bwd_shape(df_node *n) {
    df_status st = ce_shape(n);
    n->shape = n->in[0]->shape;
    return st;
}
static void ce_bwd_rows(void *ctx, int64_t i0, int64_t i1, int worker) {
    const df_node *n = ctx;
    const float *x = df_inp(n, 0);
    const int32_t *l = n->in[1]->data;
    int64_t N = n->shape.d[0], C = n->shape.d[1];
    float s = df_inp(n, 2)[0] / (float)N, *y = df_out(n);
    (void)worker;
    for (int64_t i = i0; i < i1; i++) {
        const float *r = x + i * C;
        float *o = y + i * C, m = r[0];
        for (int64_t j = 1; j < C; j++) m = r[j] > m ? r[j] : m;
        double z = 0;
        for (int64_t j = 0; j < C; j++) z += exp((double)r[j] - m);
        for (int64_t j = 0; j < C; j++) o[j] = (float)(exp((double)r[j] - m) / z) * s;
        o[l[i]] -= s;
    }
}
static df_status ce_bwd_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    df_status st = check_labels(n);
    if (st) return st;
    int64_t N = n->shape.d[0], C = n->shape.d[1];
    df_parallel_for(N, DF_PIECE_IF(N, N * C > 32768), ce_bwd_rows, (void *)n);
    return DF_OK;
}
static df_status ce_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    gin[0] = df_node_new(g, DF_OP_CROSS_ENTROPY_BWD, (df_node *[]){n->in[0], n->in[1], gy}, 3, NULL,
                         0, NULL, 0);
    return df_graph_status(g);
}
static double ce_flops(const df_node *n) {
    return 4.0 * df_shape_numel(&n->in[0]->shape);
}
const df_op_desc df_opdesc_cross_entropy = {.name = "cross_entropy",
                                            .min_in = 2,
                                            .max_in = 2,
                                            .flags = DF_OPF_LOSS,
                                            .shape = ce_shape,
                                            .forward = ce_fwd,
                                            .backward = ce_bwd,
                                            .scratch = ce_scratch,
                                            .flops = ce_flops};
const df_op_desc df_opdesc_cross_entropy_bwd = {.name = "cross_entropy_bwd",
                                                .min_in = 3,
                                                .max_in = 3,
                                                .flags = DF_OPF_GRAD_ONLY,
                                                .shape = ce_bwd_shape,
                                                .forward = ce_bwd_fwd,
                                                .flops = ce_flops};
df_node *df_cross_entropy(df_graph *g, df_node *logits, df_node *labels) {
    return df_node_new(g, DF_OP_CROSS_ENTROPY, (df_node *[]){logits, labels}, 2, NULL, 0, NULL, 0);
}
