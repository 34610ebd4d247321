/* Embedding lookup and learned Fourier time features, with gradient kernels. */
#include "util.h"
#include <math.h>
#include <string.h>
#include "parallel.h"

/* ---- embedding(idx int32 [...], table [V, D]) -> [..., D] ---- */
static df_status emb_shape(df_node *n) {
    char a[96];
    const df_node *idx = n->in[0], *tab = n->in[1];
    if (idx->dtype != DF_I32)
        return df_seterr(DF_EINVAL, "indices must be int32, got %s", df_dtype_name(idx->dtype));
    if (tab->dtype != DF_F32 || tab->shape.nd != 2)
        return df_seterr(DF_ESHAPE, "table must be float32 [V, D], got %s",
                         df_shape_str(&tab->shape, a, sizeof a));
    if (idx->shape.nd >= DF_MAX_DIMS) return df_shape_err(n, "indices of rank < 6", &idx->shape);
    n->shape = idx->shape;
    n->shape.d[n->shape.nd++] = tab->shape.d[1];
    n->dtype = DF_F32;
    return DF_OK;
}
static df_status check_idx(const int32_t *ix, int64_t n, int64_t V) {
    for (int64_t i = 0; i < n; i++)
        if (ix[i] < 0 || ix[i] >= V)
            return df_seterr(DF_ERANGE, "index %d at position %lld is outside [0, %lld)", ix[i],
                             (long long)i, (long long)V);
    return DF_OK;
}
static void emb_rows(void *ctx, int64_t i0, int64_t i1, int worker) {
    const df_node *n = ctx;
    const int32_t *ix = n->in[0]->data;
    const float *tab = df_inp(n, 1);
    int64_t D = n->in[1]->shape.d[1];
    float *y = df_out(n); // [N, D]
    (void)worker;
    for (int64_t i = i0; i < i1; i++) memcpy(y + i * D, tab + (int64_t)ix[i] * D, (size_t)D * 4);
}
static df_status emb_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    int64_t N = df_shape_numel(&n->in[0]->shape), V = n->in[1]->shape.d[0],
            D = n->in[1]->shape.d[1];
    df_status st = check_idx(n->in[0]->data, N, V);
    if (st) return st;
    df_parallel_for(N, DF_PIECE_IF(N, N * D > 32768), emb_rows, (void *)n);
    return DF_OK;
}
/* embedding_bwd(idx, gy) with ia[0] = V -> [V, D]: rows summed per index,
 * each row accumulated by one thread in index order */
static df_status emb_bwd_shape(df_node *n) {
    const df_shape *g = &n->in[1]->shape;
    if (n->ia[0] < 1) return df_seterr(DF_EINVAL, "vocabulary size %d < 1", n->ia[0]);
    n->shape = df_shape2(n->ia[0], g->d[g->nd - 1]);
    n->dtype = DF_F32;
    return DF_OK;
}
static void emb_bwd_rows(void *ctx, int64_t v0, int64_t v1, int worker) {
    const df_node *n = ctx;
    const int32_t *ix = n->in[0]->data;
    const float *gy = df_inp(n, 1);
    int64_t N = df_shape_numel(&n->in[0]->shape), D = n->shape.d[1];
    float *y = df_out(n); // [V, D]
    (void)worker;
    for (int64_t v = v0; v < v1; v++) {
        float *row = y + v * D;
        memset(row, 0, (size_t)D * 4);
        for (int64_t i = 0; i < N; i++)
            if (ix[i] == v)
                for (int64_t d = 0; d < D; d++) row[d] += gy[i * D + d];
    }
}
static df_status emb_bwd_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    int64_t N = df_shape_numel(&n->in[0]->shape), V = n->shape.d[0];
    df_status st = check_idx(n->in[0]->data, N, V);
    if (st) return st;
    df_parallel_for(V, DF_PIECE(V), emb_bwd_rows, (void *)n);
    return DF_OK;
}
static df_status emb_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    int32_t V = (int32_t)n->in[1]->shape.d[0];
    gin[1] = df_node_new(g, DF_OP_EMBEDDING_BWD, (df_node *[]){n->in[0], gy}, 2, &V, 1, NULL, 0);
    return df_graph_status(g);
}
static double zero_flops(const df_node *n) {
    (void)n;
    return 0;
}
const df_op_desc df_opdesc_embedding = {.name = "embedding",
                                        .min_in = 2,
                                        .max_in = 2,
                                        .shape = emb_shape,
                                        .forward = emb_fwd,
                                        .backward = emb_bwd,
                                        .flops = zero_flops};
const df_op_desc df_opdesc_embedding_bwd = {.name = "embedding_bwd",
                                            .min_in = 2,
                                            .max_in = 2,
                                            .flags = DF_OPF_GRAD_ONLY,
                                            .shape = emb_bwd_shape,
                                            .forward = emb_bwd_fwd};
df_node *df_embedding(df_graph *g, df_node *idx, df_node *table) {
    return df_node_new(g, DF_OP_EMBEDDING, (df_node *[]){idx, table}, 2, NULL, 0, NULL, 0);
}

/* ---- fourier(t [N], w [K]) -> [N, 2K] = sqrt2 [sin(2 pi t w), cos(2 pi t w)] ---- */
#define TWO_PI 6.283185307179586
#define SQRT2 1.4142135623730951
static df_status fourier_shape(df_node *n) {
    const df_node *t = n->in[0], *w = n->in[1];
    if (t->dtype != DF_F32 || t->shape.nd != 1)
        return df_shape_err(n, "float32 times [N]", &t->shape);
    if (w->dtype != DF_F32 || w->shape.nd != 1)
        return df_shape_err(n, "float32 frequencies [K]", &w->shape);
    n->shape = df_shape2(t->shape.d[0], 2 * w->shape.d[0]);
    n->dtype = DF_F32;
    return DF_OK;
}
static void fourier_rows(void *ctx, int64_t i0, int64_t i1, int worker) {
    const df_node *n = ctx;
    const float *t = df_inp(n, 0), *w = df_inp(n, 1);
    int64_t K = n->in[1]->shape.d[0];
    float *y = df_out(n); // [N, 2K]
    (void)worker;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t k = 0; k < K; k++) {
            double a = TWO_PI * (double)t[i] * (double)w[k];
            y[i * 2 * K + k] = (float)(SQRT2 * sin(a));
            y[i * 2 * K + K + k] = (float)(SQRT2 * cos(a));
        }
}
static df_status fourier_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    int64_t N = n->shape.d[0], K = n->in[1]->shape.d[0];
    df_parallel_for(N, DF_PIECE_IF(N, N * K > 8192), fourier_rows, (void *)n);
    return DF_OK;
}
/* fourier_bwd(t, w, gy), ia[0] = 0: d/dw [K]; 1: d/dt [N].
 * d y_sin / da = sqrt2 cos a, d y_cos / da = -sqrt2 sin a; da/dw = 2 pi t, da/dt = 2 pi w */
static df_status fourier_bwd_shape(df_node *n) {
    if (n->ia[0] != 0 && n->ia[0] != 1) return df_seterr(DF_EINVAL, "which must be 0 or 1");
    n->shape = n->in[n->ia[0] ? 0 : 1]->shape;
    n->dtype = DF_F32;
    return DF_OK;
}
static void fourier_bwd_rows(void *ctx, int64_t o0, int64_t o1, int worker) {
    const df_node *n = ctx;
    const float *t = df_inp(n, 0), *w = df_inp(n, 1), *gy = df_inp(n, 2);
    int64_t N = n->in[0]->shape.d[0], K = n->in[1]->shape.d[0];
    float *y = df_out(n);
    int wrt_t = n->ia[0];
    int64_t inner = wrt_t ? K : N;
    (void)worker;
    for (int64_t o = o0; o < o1; o++) {
        double s = 0;
        for (int64_t r = 0; r < inner; r++) {
            int64_t i = wrt_t ? o : r, k = wrt_t ? r : o;
            double a = TWO_PI * (double)t[i] * (double)w[k];
            double da = SQRT2 * (cos(a) * gy[i * 2 * K + k] - sin(a) * gy[i * 2 * K + K + k]);
            s += da * TWO_PI * (wrt_t ? w[k] : t[i]);
        }
        y[o] = (float)s;
    }
}
static df_status fourier_bwd_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    int64_t N = n->in[0]->shape.d[0], K = n->in[1]->shape.d[0];
    int64_t outer = n->ia[0] ? N : K;
    df_parallel_for(outer, DF_PIECE_IF(outer, N * K > 8192), fourier_bwd_rows, (void *)n);
    return DF_OK;
}
static df_status fourier_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    for (int which = 0; which < 2; which++) {
        int inp = which ? 0 : 1; /* which=0: w (input 1); which=1: t (input 0) */
        if (!n->in[inp]->requires_grad) continue;
        int32_t ia = which;
        gin[inp] = df_node_new(g, DF_OP_FOURIER_BWD, (df_node *[]){n->in[0], n->in[1], gy}, 3, &ia,
                               1, NULL, 0);
    }
    return df_graph_status(g);
}
static double fourier_flops(const df_node *n) {
    return 20.0 * df_shape_numel(&n->shape);
}
const df_op_desc df_opdesc_fourier = {.name = "fourier",
                                      .min_in = 2,
                                      .max_in = 2,
                                      .shape = fourier_shape,
                                      .forward = fourier_fwd,
                                      .backward = fourier_bwd,
                                      .flops = fourier_flops};
const df_op_desc df_opdesc_fourier_bwd = {.name = "fourier_bwd",
                                          .min_in = 3,
                                          .max_in = 3,
                                          .flags = DF_OPF_GRAD_ONLY,
                                          .shape = fourier_bwd_shape,
                                          .forward = fourier_bwd_fwd};
df_node *df_fourier(df_graph *g, df_node *t, df_node *w) {
    return df_node_new(g, DF_OP_FOURIER, (df_node *[]){t, w}, 2, NULL, 0, NULL, 0);
}
