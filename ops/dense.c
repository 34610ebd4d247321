/* Dense algebra through OpenBLAS: batched matmul (with transposes) and
 * linear (x W^T + b). Their gradients are built from matmul itself. */
#include "util.h"
#include <cblas.h>
#include <string.h>
#include "parallel.h"

/* GEMM rows per task: fixed, so results don't depend on the thread count */
#define ROW_BLOCK 64

/* ---- matmul(a, b), ia[0] = ta, ia[1] = tb ---- */
typedef struct {
    int64_t M, N, K, batch, sa, sb; /* sa/sb: element stride between batch matrices (0: shared) */
} mm_dims;

static int mm_get(const df_node *n, mm_dims *d, df_shape *out) {
    const df_shape *A = &n->in[0]->shape, *B = &n->in[1]->shape;
    int ta = n->ia[0], tb = n->ia[1];
    if (A->nd < 2 || B->nd < 2) return -1;
    int64_t am = A->d[A->nd - 2], ak = A->d[A->nd - 1], bk = B->d[B->nd - 2], bn = B->d[B->nd - 1];
    if (ta) {
        int64_t t = am;
        am = ak;
        ak = t;
    }
    if (tb) {
        int64_t t = bk;
        bk = bn;
        bn = t;
    }
    if (ak != bk) return -2;
    const df_shape *L = A->nd >= B->nd ? A : B;
    if (A->nd > 2 && B->nd > 2) {
        if (A->nd != B->nd) return -3;
        for (int j = 0; j < A->nd - 2; j++)
            if (A->d[j] != B->d[j]) return -3;
    }
    d->M = am;
    d->K = ak;
    d->N = bn;
    d->batch = 1;
    for (int j = 0; j < L->nd - 2; j++) d->batch *= L->d[j];
    d->sa = A->nd > 2 ? am * ak : 0;
    d->sb = B->nd > 2 ? bk * bn : 0;
    if (out) {
        *out = *L;
        out->d[L->nd - 2] = am;
        out->d[L->nd - 1] = bn;
    }
    return 0;
}

static df_status mm_shape(df_node *n) {
    char a[96], b[96];
    if (n->in[0]->dtype != DF_F32 || n->in[1]->dtype != DF_F32)
        return df_seterr(DF_EINVAL, "operands must be float32");
    if ((n->ia[0] & ~1) || (n->ia[1] & ~1))
        return df_seterr(DF_EINVAL, "transpose flags must be 0 or 1");
    mm_dims d = {0};
    int r = mm_get(n, &d, &n->shape);
    if (r)
        return df_seterr(DF_ESHAPE, "cannot multiply %s%s by %s%s: %s",
                         df_shape_str(&n->in[0]->shape, a, sizeof a), n->ia[0] ? "^T" : "",
                         df_shape_str(&n->in[1]->shape, b, sizeof b), n->ia[1] ? "^T" : "",
                         r == -1   ? "both need at least 2 dimensions"
                         : r == -2 ? "inner dimensions differ"
                                   : "batch dimensions differ");
    n->dtype = DF_F32;
    return DF_OK;
}

/* batch 1: fixed row blocks [b0, b1) of ROW_BLOCK rows; else batch items
 * [b0, b1); each a single-threaded GEMM */
static void mm_piece(void *ctx, int64_t b0, int64_t b1, int worker) {
    const df_node *n = ctx;
    mm_dims d = {0};
    mm_get(n, &d, NULL);
    const float *A = df_inp(n, 0), *B = df_inp(n, 1);
    float *C = df_out(n); // [batch, M, N]
    int ta = n->ia[0], tb = n->ia[1];
    int lda = ta ? (int)d.M : (int)d.K, ldb = tb ? (int)d.K : (int)d.N;
    CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    (void)worker;
    for (int64_t b = b0; b < b1; b++) {
        if (d.batch == 1) {
            int64_t r0 = b * ROW_BLOCK, m = r0 + ROW_BLOCK <= d.M ? ROW_BLOCK : d.M - r0;
            cblas_sgemm(CblasRowMajor, TA, TB, (int)m, (int)d.N, (int)d.K, 1.0f,
                        ta ? A + r0 : A + r0 * d.K, lda, B, ldb, 0.0f, C + r0 * d.N, (int)d.N);
        } else {
            cblas_sgemm(CblasRowMajor, TA, TB, (int)d.M, (int)d.N, (int)d.K, 1.0f, A + b * d.sa,
                        lda, B + b * d.sb, ldb, 0.0f, C + b * d.M * d.N, (int)d.N);
        }
    }
}
static df_status mm_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    mm_dims d = {0};
    mm_get(n, &d, NULL);
    if (d.batch == 1)
        df_parallel_for((d.M + ROW_BLOCK - 1) / ROW_BLOCK, 1, mm_piece, (void *)n);
    else
        df_parallel_for(d.batch, DF_PIECE(d.batch), mm_piece, (void *)n);
    return DF_OK;
}

/* gradient of an operand that was shared (2-D) across a batch: sum over it */
static df_node *unbatch(df_graph *g, df_node *grad, const df_node *x) {
    if (!grad || df_shape_eq(&grad->shape, &x->shape)) return grad;
    return df_sum_to(g, grad, x->shape, -1);
}

static df_status mm_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    df_node *A = n->in[0], *B = n->in[1];
    int ta = n->ia[0], tb = n->ia[1];
    /* C = op(A) op(B) */
    if (A->requires_grad) {
        df_node *ga = ta ? df_matmul(g, B, gy, tb, 1) : df_matmul(g, gy, B, 0, !tb);
        gin[0] = unbatch(g, ga, A);
    }
    if (B->requires_grad) {
        df_node *gb = tb ? df_matmul(g, gy, A, 1, ta) : df_matmul(g, A, gy, !ta, 0);
        gin[1] = unbatch(g, gb, B);
    }
    return df_graph_status(g);
}
static double mm_flops(const df_node *n) {
    mm_dims d = {0};
    mm_get(n, &d, NULL);
    return 2.0 * d.batch * d.M * d.N * d.K;
}
const df_op_desc df_opdesc_matmul = {.name = "matmul",
                                     .min_in = 2,
                                     .max_in = 2,
                                     .shape = mm_shape,
                                     .forward = mm_fwd,
                                     .backward = mm_bwd,
                                     .flops = mm_flops};
df_node *df_matmul(df_graph *g, df_node *a, df_node *b, int ta, int tb) {
    int32_t ia[2] = {ta, tb};
    return df_node_new(g, DF_OP_MATMUL, (df_node *[]){a, b}, 2, ia, 2, NULL, 0);
}

/* ---- linear(x [..., in], w [out, in], b [out]) -> [..., out] ---- */
static df_status lin_shape(df_node *n) {
    char a[96], b[96];
    const df_node *x = n->in[0], *w = n->in[1];
    if (x->dtype != DF_F32 || w->dtype != DF_F32)
        return df_seterr(DF_EINVAL, "operands must be float32");
    if (w->shape.nd != 2) return df_shape_err(n, "weight [out, in]", &w->shape);
    if (x->shape.d[x->shape.nd - 1] != w->shape.d[1])
        return df_seterr(DF_ESHAPE, "input %s has %lld features, weight %s expects %lld",
                         df_shape_str(&x->shape, a, sizeof a),
                         (long long)x->shape.d[x->shape.nd - 1],
                         df_shape_str(&w->shape, b, sizeof b), (long long)w->shape.d[1]);
    if (n->n_in == 3) {
        const df_node *bi = n->in[2];
        if (bi->dtype != DF_F32 || bi->shape.nd != 1 || bi->shape.d[0] != w->shape.d[0])
            return df_seterr(DF_ESHAPE, "bias %s, expected [%lld]",
                             df_shape_str(&bi->shape, a, sizeof a), (long long)w->shape.d[0]);
    }
    n->shape = x->shape;
    n->shape.d[n->shape.nd - 1] = w->shape.d[0];
    n->dtype = DF_F32;
    return DF_OK;
}
/* fixed row blocks [b0, b1): same arithmetic for any thread count */
static void lin_piece(void *ctx, int64_t b0, int64_t b1, int worker) {
    const df_node *n = ctx;
    int64_t out = n->in[1]->shape.d[0], in = n->in[1]->shape.d[1];
    int64_t rows = df_shape_numel(&n->shape) / out;
    const float *x = df_inp(n, 0), *w = df_inp(n, 1), *bias = n->n_in == 3 ? df_inp(n, 2) : NULL;
    float *y = df_out(n); // [rows, out]
    (void)worker;
    for (int64_t b = b0; b < b1; b++) {
        int64_t r0 = b * ROW_BLOCK, m = r0 + ROW_BLOCK <= rows ? ROW_BLOCK : rows - r0;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)out, (int)in, 1.0f,
                    x + r0 * in, (int)in, w, (int)in, 0.0f, y + r0 * out, (int)out);
        if (bias)
            for (int64_t r = r0; r < r0 + m; r++)
                for (int64_t o = 0; o < out; o++) y[r * out + o] += bias[o];
    }
}
static df_status lin_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    int64_t rows = df_shape_numel(&n->shape) / n->in[1]->shape.d[0];
    df_parallel_for((rows + ROW_BLOCK - 1) / ROW_BLOCK, 1, lin_piece, (void *)n);
    return DF_OK;
}
static df_status lin_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    df_node *x = n->in[0], *w = n->in[1];
    int64_t out = w->shape.d[0], in = w->shape.d[1];
    df_node *g2 = df_reshape(g, gy, df_shape2(-1, out)); /* [rows, out] */
    if (x->requires_grad)                                /* gy W: [rows, in] */
        gin[0] = df_reshape(g, df_matmul(g, g2, w, 0, 0), x->shape);
    if (w->requires_grad) /* gy^T x: [out, in] */
        gin[1] = df_matmul(g, g2, df_reshape(g, x, df_shape2(-1, in)), 1, 0);
    if (n->n_in == 3 && n->in[2]->requires_grad) gin[2] = df_sum_to(g, g2, df_shape1(out), 1);
    return df_graph_status(g);
}
static double lin_flops(const df_node *n) {
    return 2.0 * df_shape_numel(&n->shape) * (double)n->in[1]->shape.d[1];
}
const df_op_desc df_opdesc_linear = {.name = "linear",
                                     .min_in = 2,
                                     .max_in = 3,
                                     .shape = lin_shape,
                                     .forward = lin_fwd,
                                     .backward = lin_bwd,
                                     .flops = lin_flops};
df_node *df_linear(df_graph *g, df_node *x, df_node *w, df_node *b) {
    return df_node_new(g, DF_OP_LINEAR, (df_node *[]){x, w, b}, b ? 3 : 2, NULL, 0, NULL, 0);
}
