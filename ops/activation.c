/* SiLU and ReLU with their gradient kernels. */
#include "util.h"
#include <math.h>

static df_status f32_same(df_node *n) {
    if (n->in[0]->dtype != DF_F32)
        return df_seterr(DF_EINVAL, "input must be float32, got %s",
                         df_dtype_name(n->in[0]->dtype));
    for (int k = 1; k < n->n_in; k++)
        if (!df_shape_eq(&n->in[k]->shape, &n->in[0]->shape) || n->in[k]->dtype != DF_F32) {
            char a[96], b[96];
            return df_seterr(DF_ESHAPE, "input %d is %s, expected float32 %s", k,
                             df_shape_str(&n->in[k]->shape, a, sizeof a),
                             df_shape_str(&n->in[0]->shape, b, sizeof b));
        }
    n->shape = n->in[0]->shape;
    n->dtype = DF_F32;
    return DF_OK;
}

#define ELEMENTWISE_LOOP(n, body)                                                                  \
    do {                                                                                           \
        int64_t k_ = df_shape_numel(&(n)->shape);                                                  \
        _Pragma("omp parallel for simd schedule(static) if (k_ > 32768)") for (int64_t i = 0;      \
                                                                               i < k_; i++) body;  \
    } while (0)

/* ---- silu: y = x * sigmoid(x) ---- */
static df_status silu_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    const float *x = df_inp(n, 0);
    float *y = df_out(n);
    ELEMENTWISE_LOOP(n, y[i] = x[i] / (1.0f + df_expf(-x[i])));
    return DF_OK;
}
/* dx = gy * s * (1 + x (1 - s)), s = sigmoid(x); inputs (x, gy) */
static df_status silu_bwd_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    const float *x = df_inp(n, 0), *gy = df_inp(n, 1);
    float *y = df_out(n);
    ELEMENTWISE_LOOP(n, {
        float s = 1.0f / (1.0f + df_expf(-x[i]));
        y[i] = gy[i] * s * (1.0f + x[i] * (1.0f - s));
    });
    return DF_OK;
}
static df_status silu_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    gin[0] = df_node_new(g, DF_OP_SILU_BWD, (df_node *[]){n->in[0], gy}, 2, NULL, 0, NULL, 0);
    return df_graph_status(g);
}
static double silu_flops(const df_node *n) {
    return 4.0 * df_shape_numel(&n->shape);
}
const df_op_desc df_opdesc_silu = {.name = "silu",
                                   .min_in = 1,
                                   .max_in = 1,
                                   .flags = DF_OPF_INPLACE,
                                   .shape = f32_same,
                                   .forward = silu_fwd,
                                   .backward = silu_bwd,
                                   .flops = silu_flops};
/* gy (input 1) may be overwritten, not x: not flagged in-place */
const df_op_desc df_opdesc_silu_bwd = {.name = "silu_bwd",
                                       .min_in = 2,
                                       .max_in = 2,
                                       .flags = DF_OPF_GRAD_ONLY,
                                       .shape = f32_same,
                                       .forward = silu_bwd_fwd,
                                       .flops = silu_flops};
df_node *df_silu(df_graph *g, df_node *x) {
    return df_node_new(g, DF_OP_SILU, &x, 1, NULL, 0, NULL, 0);
}

/* ---- relu ---- */
static df_status relu_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    const float *x = df_inp(n, 0);
    float *y = df_out(n);
    ELEMENTWISE_LOOP(n, y[i] = x[i] > 0 ? x[i] : 0.0f);
    return DF_OK;
}
static df_status relu_bwd_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    const float *x = df_inp(n, 0), *gy = df_inp(n, 1);
    float *y = df_out(n);
    ELEMENTWISE_LOOP(n, y[i] = x[i] > 0 ? gy[i] : 0.0f);
    return DF_OK;
}
static df_status relu_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    gin[0] = df_node_new(g, DF_OP_RELU_BWD, (df_node *[]){n->in[0], gy}, 2, NULL, 0, NULL, 0);
    return df_graph_status(g);
}
const df_op_desc df_opdesc_relu = {.name = "relu",
                                   .min_in = 1,
                                   .max_in = 1,
                                   .flags = DF_OPF_INPLACE,
                                   .shape = f32_same,
                                   .forward = relu_fwd,
                                   .backward = relu_bwd};
const df_op_desc df_opdesc_relu_bwd = {.name = "relu_bwd",
                                       .min_in = 2,
                                       .max_in = 2,
                                       .flags = DF_OPF_GRAD_ONLY,
                                       .shape = f32_same,
                                       .forward = relu_bwd_fwd};
df_node *df_relu(df_graph *g, df_node *x) {
    return df_node_new(g, DF_OP_RELU, &x, 1, NULL, 0, NULL, 0);
}
