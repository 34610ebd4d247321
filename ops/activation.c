/* SiLU and ReLU with their gradient kernels. */
#include "gn_silu.h"
#include "util.h"
#include "parallel.h"
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

/* NAME: an element-wise op over its node's elements in pieces, ROW
 * computing elements [i0, i1) from x = input 0 and gy = input 1 (if any). */
#define ROW_KERNEL(NAME, ROW)                                                                      \
    static void NAME##_piece(void *ctx, int64_t i0, int64_t i1, int worker) {                      \
        const df_node *n = ctx;                                                                    \
        const float *x = df_inp(n, 0), *gy = n->n_in > 1 ? df_inp(n, 1) : NULL;                    \
        float *y = df_out(n);                                                                      \
        (void)gy, (void)worker;                                                                    \
        ROW;                                                                                       \
    }                                                                                              \
    static df_status NAME(const df_node *n, df_exec_ctx *c) {                                      \
        (void)c;                                                                                   \
        int64_t k = df_shape_numel(&n->shape);                                                     \
        df_parallel_for(k, DF_PIECE_IF(k, k > 32768), NAME##_piece, (void *)n);                    \
        return DF_OK;                                                                              \
    }

/* ROW_KERNEL with BODY computing element i into y */
#define ELEMENTWISE_KERNEL(NAME, BODY)                                                             \
    ROW_KERNEL(NAME, _Pragma("omp simd") for (int64_t i = i0; i < i1; i++) BODY)

/* ---- silu: y = x * sigmoid(x) (gn_silu.h) ---- */
ROW_KERNEL(silu_fwd, silu_row(x + i0, y + i0, i1 - i0))
/* dx = gy * s * (1 + x (1 - s)), s = sigmoid(x); inputs (x, gy) */
ROW_KERNEL(silu_bwd_fwd, silu_grad_row(x + i0, 0, 0, 1, 0, gy + i0, y + i0, i1 - i0))
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
ELEMENTWISE_KERNEL(relu_fwd, y[i] = x[i] > 0 ? x[i] : 0.0f)
ELEMENTWISE_KERNEL(relu_bwd_fwd, y[i] = x[i] > 0 ? gy[i] : 0.0f)
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
