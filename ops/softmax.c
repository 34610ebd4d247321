/* Softmax over the last axis and its gradient kernel. */
#include "util.h"
#include <math.h>
#include "parallel.h"

static df_status softmax_shape(df_node *n) {
    if (n->in[0]->dtype != DF_F32)
        return df_seterr(DF_EINVAL, "input must be float32, got %s",
                         df_dtype_name(n->in[0]->dtype));
    for (int k = 1; k < n->n_in; k++)
        if (!df_shape_eq(&n->in[k]->shape, &n->in[0]->shape))
            return df_shape_err(n, "the gradient in the output's shape", &n->in[k]->shape);
    n->shape = n->in[0]->shape;
    n->dtype = DF_F32;
    return DF_OK;
}
/* runs fn over the rows of n in pieces */
static df_status over_rows(const df_node *n, df_loop_fn fn) {
    int64_t L = n->shape.d[n->shape.nd - 1], rows = df_shape_numel(&n->shape) / L;
    df_parallel_for(rows, DF_PIECE_IF(rows, rows * L > 16384), fn, (void *)n);
    return DF_OK;
}

static void softmax_rows(void *ctx, int64_t r0, int64_t r1, int worker) {
    const df_node *n = ctx;
    int64_t L = n->shape.d[n->shape.nd - 1];
    const float *x = df_inp(n, 0);
    float *y = df_out(n);
    (void)worker;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * L;
        float *yr = y + r * L, m = xr[0], s = 0;
        for (int64_t j = 1; j < L; j++) m = xr[j] > m ? xr[j] : m;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < L; j++) {
            yr[j] = df_expf(xr[j] - m);
            s += yr[j];
        }
        float inv = 1.0f / s;
        for (int64_t j = 0; j < L; j++) yr[j] *= inv;
    }
}
static df_status softmax_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    return over_rows(n, softmax_rows);
}
/* softmax_bwd(y, gy) = y * (gy - sum(gy * y)) per row */
static void softmax_bwd_rows(void *ctx, int64_t r0, int64_t r1, int worker) {
    const df_node *n = ctx;
    int64_t L = n->shape.d[n->shape.nd - 1];
    const float *y = df_inp(n, 0), *gy = df_inp(n, 1);
    float *dx = df_out(n);
    (void)worker;
    for (int64_t r = r0; r < r1; r++) {
        const float *yr = y + r * L, *gr = gy + r * L;
        float *o = dx + r * L, dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < L; j++) dot += yr[j] * gr[j];
        for (int64_t j = 0; j < L; j++) o[j] = yr[j] * (gr[j] - dot);
    }
}
static df_status softmax_bwd_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    return over_rows(n, softmax_bwd_rows);
}
static df_status softmax_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    gin[0] = df_node_new(g, DF_OP_SOFTMAX_BWD, (df_node *[]){n, gy}, 2, NULL, 0, NULL, 0);
    return df_graph_status(g);
}
static double softmax_flops(const df_node *n) {
    return 5.0 * df_shape_numel(&n->shape);
}
const df_op_desc df_opdesc_softmax = {.name = "softmax",
                                      .min_in = 1,
                                      .max_in = 1,
                                      .shape = softmax_shape,
                                      .forward = softmax_fwd,
                                      .backward = softmax_bwd,
                                      .flops = softmax_flops};
const df_op_desc df_opdesc_softmax_bwd = {.name = "softmax_bwd",
                                          .min_in = 2,
                                          .max_in = 2,
                                          .flags = DF_OPF_GRAD_ONLY,
                                          .shape = softmax_shape,
                                          .forward = softmax_bwd_fwd,
                                          .flops = softmax_flops};
df_node *df_softmax(df_graph *g, df_node *x) {
    return df_node_new(g, DF_OP_SOFTMAX, &x, 1, NULL, 0, NULL, 0);
}
