/* Layout ops: reshape (a view), permute, slice, pad, concat, nearest upsample and its
 * gradient. */
#include "util.h"
#include <string.h>
#include "parallel.h"
#include "simd16.h"

/* ---- reshape: ia = packed shape (one extent may be -1) ---- */
static df_status reshape_shape(df_node *n) {
    char a[96], b[96];
    df_shape t = df_unpack_shape(n->ia, 0);
    const df_shape *x = &n->in[0]->shape;
    int64_t known = 1, numel = df_shape_numel(x);
    int infer = -1;
    if (t.nd < 1) return df_seterr(DF_ESHAPE, "reshape needs 1..%d dimensions", DF_MAX_DIMS);
    for (int j = 0; j < t.nd; j++) {
        if (t.d[j] == -1 && infer < 0)
            infer = j;
        else if (t.d[j] < 1)
            return df_seterr(DF_ESHAPE, "bad target extent %lld at dim %d", (long long)t.d[j], j);
        else
            known *= t.d[j];
    }
    if (infer >= 0) {
        if (numel % known)
            return df_seterr(DF_ESHAPE, "cannot reshape %s (%lld elements) to %s",
                             df_shape_str(x, a, sizeof a), (long long)numel,
                             df_shape_str(&t, b, sizeof b));
        t.d[infer] = numel / known;
        known = numel;
    }
    if (known != numel)
        return df_seterr(DF_ESHAPE, "cannot reshape %s (%lld elements) to %s (%lld elements)",
                         df_shape_str(x, a, sizeof a), (long long)numel,
                         df_shape_str(&t, b, sizeof b), (long long)known);
    n->shape = t;
    n->dtype = n->in[0]->dtype;
    return DF_OK;
}
static df_status reshape_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    gin[0] = df_reshape(g, gy, n->in[0]->shape);
    return df_graph_status(g);
}
const df_op_desc df_opdesc_reshape = {.name = "reshape",
                                      .min_in = 1,
                                      .max_in = 1,
                                      .flags = DF_OPF_VIEW,
                                      .shape = reshape_shape,
                                      .backward = reshape_bwd};
df_node *df_reshape(df_graph *g, df_node *x, df_shape s) {
    int32_t ia[DF_MAX_IATTR] = {0};
    if (s.nd >= 1 && s.nd <= DF_MAX_DIMS && df_pack_shape(ia, 0, &s)) ia[0] = 0;
    return df_node_new(g, DF_OP_RESHAPE, &x, 1, ia, DF_MAX_DIMS + 1, NULL, 0);
}

/* ---- part: a view of elements [ia[0], ia[0] + numel) of x as shape
 * ia[1..] (packed): one of several results a fused node writes into one
 * buffer (fuse.c). Made after autodiff: no gradient. ---- */
static df_status part_shape(df_node *n) {
    char a[96], b[96];
    const df_node *x = n->in[0];
    df_shape t = df_unpack_shape(n->ia, 1);
    if (t.nd < 1 || n->ia[0] < 0 || n->ia[0] + df_shape_numel(&t) > df_shape_numel(&x->shape))
        return df_seterr(DF_ESHAPE, "part %s at element %d does not fit in %s",
                         df_shape_str(&t, a, sizeof a), n->ia[0],
                         df_shape_str(&x->shape, b, sizeof b));
    n->shape = t;
    n->dtype = x->dtype;
    return DF_OK;
}
const df_op_desc df_opdesc_part = {.name = "part",
                                   .min_in = 1,
                                   .max_in = 1,
                                   .flags = DF_OPF_VIEW | DF_OPF_GRAD_ONLY,
                                   .shape = part_shape};
df_node *df_part(df_graph *g, df_node *x, int64_t offset, df_shape s) {
    int32_t ia[DF_MAX_IATTR] = {(int32_t)(offset > INT32_MAX ? -1 : offset)};
    if (s.nd < 1 || s.nd > DF_MAX_DIMS || df_pack_shape(ia, 1, &s)) ia[1] = 0;
    return df_node_new(g, DF_OP_PART, &x, 1, ia, DF_MAX_DIMS + 2, NULL, 0);
}

/* ---- permute: ia[0] = nd, ia[1..nd] = perm ---- */
static df_status permute_shape(df_node *n) {
    char a[96];
    const df_shape *x = &n->in[0]->shape;
    int seen[DF_MAX_DIMS] = {0};
    if (n->ia[0] != x->nd)
        return df_seterr(DF_ESHAPE, "permutation of %d axes for input %s", n->ia[0],
                         df_shape_str(x, a, sizeof a));
    n->shape.nd = x->nd;
    for (int j = 0; j < x->nd; j++) {
        int p = n->ia[1 + j];
        if (p < 0 || p >= x->nd || seen[p]++)
            return df_seterr(DF_EINVAL, "axis list is not a permutation of 0..%d", x->nd - 1);
        n->shape.d[j] = x->d[p];
    }
    n->dtype = n->in[0]->dtype;
    return DF_OK;
}
typedef struct {
    df_iter it;
    const int32_t *x; /* 4-byte elements of either dtype */
    int32_t *y;
    int64_t inner;
} permute_job;
static void permute_rows(void *ctx, int64_t o0, int64_t o1, int worker) {
    const permute_job *j = ctx;
    int64_t sy = j->it.st[0][j->it.nd - 1], s1 = j->it.st[1][j->it.nd - 1];
    (void)worker;
    for (int64_t o = o0; o < o1; o++) {
        int64_t off[2];
        df_iter_offsets(&j->it, o, 2, off);
        for (int64_t i = 0; i < j->inner; i++) j->y[off[0] + i * sy] = j->x[off[1] + i * s1];
    }
}
static df_status permute_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    int nd = n->shape.nd;
    int64_t ext[DF_MAX_DIMS], st[2][DF_MAX_DIMS], sx[DF_MAX_DIMS];
    df_strides(&n->in[0]->shape, sx);
    df_strides(&n->shape, st[0]);
    for (int j = 0; j < nd; j++) {
        ext[j] = n->shape.d[j];
        st[1][j] = sx[n->ia[1 + j]];
    }
    df_iter it;
    df_iter_init(&it, nd, ext, st, 2);
    int64_t inner = it.ext[it.nd - 1], outer = df_shape_numel(&n->shape) / inner;
    permute_job j = {it, n->in[0]->data, n->data, inner};
    df_parallel_for(outer, DF_PIECE_IF(outer, outer * inner > 32768), permute_rows, &j);
    return DF_OK;
}
static df_status permute_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    int inv[DF_MAX_DIMS];
    for (int j = 0; j < n->shape.nd; j++) inv[n->ia[1 + j]] = j;
    gin[0] = df_permute(g, gy, inv);
    return df_graph_status(g);
}
const df_op_desc df_opdesc_permute = {.name = "permute",
                                      .min_in = 1,
                                      .max_in = 1,
                                      .shape = permute_shape,
                                      .forward = permute_fwd,
                                      .backward = permute_bwd};
df_node *df_permute(df_graph *g, df_node *x, const int *perm) {
    int32_t ia[DF_MAX_IATTR] = {0};
    int nd = x ? x->shape.nd : 0;
    ia[0] = perm ? nd : -1;
    for (int j = 0; perm && j < nd; j++) ia[1 + j] = perm[j];
    return df_node_new(g, DF_OP_PERMUTE, &x, 1, ia, DF_MAX_DIMS + 1, NULL, 0);
}

/* Split shape s around axis: outer = prod(d[<axis]), inner = prod(d[>axis]). */
static void around(const df_shape *s, int axis, int64_t *outer, int64_t *inner) {
    *outer = *inner = 1;
    for (int j = 0; j < axis; j++) *outer *= s->d[j];
    for (int j = axis + 1; j < s->nd; j++) *inner *= s->d[j];
}

/* Copy rows: for each outer index, len*inner elements from src (row length
 * slen*inner, starting at sstart*inner) to dst (row dlen*inner at dstart). */
typedef struct {
    char *dst;
    const char *src;
    int64_t dlen, dstart, slen, sstart, len, inner;
    size_t es;
} copy_job;
static void copy_piece(void *ctx, int64_t o0, int64_t o1, int worker) {
    const copy_job *j = ctx;
    (void)worker;
    for (int64_t o = o0; o < o1; o++)
        memcpy(j->dst + ((o * j->dlen + j->dstart) * j->inner) * j->es,
               j->src + ((o * j->slen + j->sstart) * j->inner) * j->es,
               (size_t)(j->len * j->inner) * j->es);
}
static void copy_rows(char *dst, int64_t dlen, int64_t dstart, const char *src, int64_t slen,
                      int64_t sstart, int64_t len, int64_t outer, int64_t inner, size_t es) {
    copy_job j = {dst, src, dlen, dstart, slen, sstart, len, inner, es};
    df_parallel_for(outer, DF_PIECE_IF(outer, outer * len * inner > 32768), copy_piece, &j);
}

/* ---- slice: ia[0] = axis, ia[1] = start, ia[2] = len ---- */
static df_status slice_shape(df_node *n) {
    char a[96];
    const df_shape *x = &n->in[0]->shape;
    int ax = n->ia[0];
    if (ax < 0 || ax >= x->nd)
        return df_seterr(DF_EINVAL, "axis %d out of range for %s", ax,
                         df_shape_str(x, a, sizeof a));
    if (n->ia[1] < 0 || n->ia[2] < 1 || (int64_t)n->ia[1] + n->ia[2] > x->d[ax])
        return df_seterr(DF_EINVAL, "slice [%d, %d) out of range 0..%lld of axis %d of %s",
                         n->ia[1], n->ia[1] + n->ia[2], (long long)x->d[ax], ax,
                         df_shape_str(x, a, sizeof a));
    n->shape = *x;
    n->shape.d[ax] = n->ia[2];
    n->dtype = n->in[0]->dtype;
    return DF_OK;
}
static df_status slice_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    int64_t outer, inner;
    int ax = n->ia[0];
    around(&n->shape, ax, &outer, &inner);
    copy_rows(n->data, n->ia[2], 0, n->in[0]->data, n->in[0]->shape.d[ax], n->ia[1], n->ia[2],
              outer, inner, 4);
    return DF_OK;
}
static df_status slice_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    int ax = n->ia[0];
    gin[0] = df_pad(g, gy, ax, n->ia[1], n->in[0]->shape.d[ax] - n->ia[1] - n->ia[2]);
    return df_graph_status(g);
}
const df_op_desc df_opdesc_slice = {.name = "slice",
                                    .min_in = 1,
                                    .max_in = 1,
                                    .shape = slice_shape,
                                    .forward = slice_fwd,
                                    .backward = slice_bwd};
df_node *df_slice(df_graph *g, df_node *x, int axis, int64_t start, int64_t len) {
    int32_t ia[3] = {axis, start > INT32_MAX ? -1 : (int32_t)start,
                     len > INT32_MAX ? -1 : (int32_t)len};
    return df_node_new(g, DF_OP_SLICE, &x, 1, ia, 3, NULL, 0);
}

/* ---- pad: ia[0] = axis, ia[1] = before, ia[2] = after (zeros) ---- */
static df_status pad_shape(df_node *n) {
    char a[96];
    const df_shape *x = &n->in[0]->shape;
    int ax = n->ia[0];
    if (ax < 0 || ax >= x->nd)
        return df_seterr(DF_EINVAL, "axis %d out of range for %s", ax,
                         df_shape_str(x, a, sizeof a));
    if (n->in[0]->dtype != DF_F32) return df_seterr(DF_EINVAL, "pad needs float32");
    if (n->ia[1] < 0 || n->ia[2] < 0)
        return df_seterr(DF_EINVAL, "negative padding (%d, %d)", n->ia[1], n->ia[2]);
    n->shape = *x;
    n->shape.d[ax] += (int64_t)n->ia[1] + n->ia[2];
    n->dtype = DF_F32;
    return DF_OK;
}
/* the padding of rows [o0, o1) */
static void pad_zeros(void *ctx, int64_t o0, int64_t o1, int worker) {
    const df_node *n = ctx;
    int ax = n->ia[0];
    int64_t outer, inner, len = n->in[0]->shape.d[ax], tot = n->shape.d[ax];
    around(&n->shape, ax, &outer, &inner);
    float *y = df_out(n);
    (void)worker;
    for (int64_t o = o0; o < o1; o++) {
        memset(y + o * tot * inner, 0, (size_t)(n->ia[1] * inner) * 4);
        memset(y + (o * tot + n->ia[1] + len) * inner, 0, (size_t)(n->ia[2] * inner) * 4);
    }
}
static df_status pad_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    int ax = n->ia[0];
    int64_t outer, inner, len = n->in[0]->shape.d[ax], tot = n->shape.d[ax];
    around(&n->shape, ax, &outer, &inner);
    df_parallel_for(outer, DF_PIECE_IF(outer, outer * tot * inner > 32768), pad_zeros, (void *)n);
    copy_rows(n->data, tot, n->ia[1], n->in[0]->data, len, 0, len, outer, inner, 4);
    return DF_OK;
}
static df_status pad_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    gin[0] = df_slice(g, gy, n->ia[0], n->ia[1], n->in[0]->shape.d[n->ia[0]]);
    return df_graph_status(g);
}
const df_op_desc df_opdesc_pad = {.name = "pad",
                                  .min_in = 1,
                                  .max_in = 1,
                                  .shape = pad_shape,
                                  .forward = pad_fwd,
                                  .backward = pad_bwd};
df_node *df_pad(df_graph *g, df_node *x, int axis, int64_t before, int64_t after) {
    int32_t ia[3] = {axis, before > INT32_MAX ? -1 : (int32_t)before,
                     after > INT32_MAX ? -1 : (int32_t)after};
    return df_node_new(g, DF_OP_PAD, &x, 1, ia, 3, NULL, 0);
}

/* ---- concat: ia[0] = axis ---- */
static df_status concat_shape(df_node *n) {
    char a[96], b[96];
    int ax = n->ia[0];
    const df_shape *x0 = &n->in[0]->shape;
    if (ax < 0 || ax >= x0->nd)
        return df_seterr(DF_EINVAL, "axis %d out of range for %s", ax,
                         df_shape_str(x0, a, sizeof a));
    n->shape = *x0;
    for (int k = 1; k < n->n_in; k++) {
        const df_shape *xk = &n->in[k]->shape;
        int ok = xk->nd == x0->nd && n->in[k]->dtype == n->in[0]->dtype;
        for (int j = 0; ok && j < x0->nd; j++)
            if (j != ax && xk->d[j] != x0->d[j]) ok = 0;
        if (!ok)
            return df_seterr(DF_ESHAPE,
                             "input %d has shape %s, incompatible with input 0's %s "
                             "(all extents but axis %d must match)",
                             k, df_shape_str(xk, a, sizeof a), df_shape_str(x0, b, sizeof b), ax);
        n->shape.d[ax] += xk->d[ax];
    }
    n->dtype = n->in[0]->dtype;
    return DF_OK;
}
static df_status concat_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    int ax = n->ia[0];
    int64_t outer, inner, at = 0, tot = n->shape.d[ax];
    around(&n->shape, ax, &outer, &inner);
    for (int k = 0; k < n->n_in; k++) {
        int64_t len = n->in[k]->shape.d[ax];
        copy_rows(n->data, tot, at, n->in[k]->data, len, 0, len, outer, inner, 4);
        at += len;
    }
    return DF_OK;
}
static df_status concat_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    int ax = n->ia[0];
    int64_t at = 0;
    for (int k = 0; k < n->n_in; k++) {
        int64_t len = n->in[k]->shape.d[ax];
        if (n->in[k]->requires_grad) gin[k] = df_slice(g, gy, ax, at, len);
        at += len;
    }
    return df_graph_status(g);
}
const df_op_desc df_opdesc_concat = {.name = "concat",
                                     .min_in = 1,
                                     .max_in = DF_MAX_IN,
                                     .shape = concat_shape,
                                     .forward = concat_fwd,
                                     .backward = concat_bwd};
df_node *df_concat(df_graph *g, df_node **xs, int n, int axis) {
    int32_t ia[1] = {axis};
    return df_node_new(g, DF_OP_CONCAT, xs, n, ia, 1, NULL, 0);
}

/* ---- upsample (nearest): ia[0] = factor; x [B, C, H, W] -> [B, C, H*f, W*f] ---- */
static df_status upsample_shape(df_node *n) {
    char a[96];
    const df_shape *x = &n->in[0]->shape;
    int f = n->ia[0];
    if (x->nd != 4 || n->in[0]->dtype != DF_F32) return df_shape_err(n, "float32 [B, C, H, W]", x);
    if (f < 1 || f > 64)
        return df_seterr(DF_EINVAL, "factor %d out of range 1..64 (input %s)", f,
                         df_shape_str(x, a, sizeof a));
    n->shape = *x;
    n->shape.d[2] *= f;
    n->shape.d[3] *= f;
    n->dtype = DF_F32;
    return DF_OK;
}
static void upsample_planes(void *ctx, int64_t p0, int64_t p1, int worker) {
    const df_node *n = ctx;
    const df_shape *s = &n->in[0]->shape;
    int64_t H = s->d[2], W = s->d[3], f = n->ia[0];
    const float *x = df_inp(n, 0); // [B, C, H, W]
    float *y = df_out(n);          // [B, C, H*f, W*f]
    (void)worker;
    for (int64_t p = p0; p < p1; p++)
        for (int64_t h = 0; h < H; h++) {
            const float *xr = x + (p * H + h) * W;
            float *yr = y + (p * H * f + h * f) * W * f;
            for (int64_t w = 0; w < W; w++)
                for (int64_t k = 0; k < f; k++) yr[w * f + k] = xr[w];
            for (int64_t r = 1; r < f; r++) memcpy(yr + r * W * f, yr, (size_t)(W * f) * 4);
        }
}
/* fn over the B C planes of node n (an upsample or its gradient) */
static df_status over_planes(const df_node *n, df_loop_fn fn) {
    int64_t planes = n->shape.d[0] * n->shape.d[1];
    df_parallel_for(planes, DF_PIECE(planes), fn, (void *)n);
    return DF_OK;
}
static df_status upsample_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    return over_planes(n, upsample_planes);
}
/* gradient: the sum over each f x f block */
static df_status upsample_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    gin[0] = df_upsample_bwd(g, gy, n->ia[0]);
    return df_graph_status(g);
}
static double upsample_flops(const df_node *n) {
    (void)n;
    return 0;
}
const df_op_desc df_opdesc_upsample = {.name = "upsample",
                                       .min_in = 1,
                                       .max_in = 1,
                                       .shape = upsample_shape,
                                       .forward = upsample_fwd,
                                       .backward = upsample_bwd,
                                       .flops = upsample_flops};
df_node *df_upsample(df_graph *g, df_node *x, int factor) {
    int32_t ia[1] = {factor};
    return df_node_new(g, DF_OP_UPSAMPLE, &x, 1, ia, 1, NULL, 0);
}

/* ---- upsample_bwd: ia[0] = factor; x [B, C, H*f, W*f] -> [B, C, H, W], the sum
 * of each f x f block (row by row: each row's f values, then the f rows) ---- */
static df_status upsample_bwd_shape(df_node *n) {
    char a[96];
    const df_shape *x = &n->in[0]->shape;
    int f = n->ia[0];
    if (x->nd != 4 || n->in[0]->dtype != DF_F32) return df_shape_err(n, "float32 [B, C, H, W]", x);
    if (f < 1 || f > 64 || x->d[2] % f || x->d[3] % f)
        return df_seterr(DF_EINVAL, "factor %d out of range 1..64 or not dividing H and W of %s", f,
                         df_shape_str(x, a, sizeof a));
    n->shape = *x;
    n->shape.d[2] /= f;
    n->shape.d[3] /= f;
    n->dtype = DF_F32;
    return DF_OK;
}
/* yr[w] = (xr[2w] + xr[2w + 1]) + (xr[X + 2w] + xr[X + 2w + 1]) for w < W */
static void block_sum2(const float *xr, int64_t X, float *yr, int64_t W) {
    int64_t w = 0;
#if defined(__AVX512F__)
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    for (; w < W; w += 16) {
        int64_t n = W - w < 16 ? W - w : 16; /* outputs; 2 n inputs per row */
        __mmask16 m0 = lanes(2 * n), m1 = lanes(2 * n - 16 > 0 ? 2 * n - 16 : 0), mo = lanes(n);
        __m512 s[2];
        for (int r = 0; r < 2; r++) {
            const float *p = xr + r * X + 2 * w;
            __m512 a = _mm512_maskz_loadu_ps(m0, p), b = _mm512_maskz_loadu_ps(m1, p + 16);
            s[r] =
                _mm512_add_ps(_mm512_permutex2var_ps(a, ev, b), _mm512_permutex2var_ps(a, od, b));
        }
        _mm512_mask_storeu_ps(yr + w, mo, _mm512_add_ps(s[0], s[1]));
    }
#endif
    for (; w < W; w++) yr[w] = (xr[2 * w] + xr[2 * w + 1]) + (xr[X + 2 * w] + xr[X + 2 * w + 1]);
}
static void upsample_bwd_planes(void *ctx, int64_t p0, int64_t p1, int worker) {
    const df_node *n = ctx;
    int64_t H = n->shape.d[2], W = n->shape.d[3], f = n->ia[0], X = W * f;
    const float *x = df_inp(n, 0); // [B, C, H*f, W*f]
    float *y = df_out(n);          // [B, C, H, W]
    (void)worker;
    for (int64_t p = p0; p < p1; p++)
        for (int64_t h = 0; h < H; h++) {
            const float *xr = x + (p * H + h) * f * X;
            float *yr = y + (p * H + h) * W;
            if (f == 2) {
                block_sum2(xr, X, yr, W);
                continue;
            }
            for (int64_t w = 0; w < W; w++) {
                float s = 0;
                for (int64_t r = 0; r < f; r++) {
                    float row = 0;
                    for (int64_t k = 0; k < f; k++) row += xr[r * X + w * f + k];
                    s += row;
                }
                yr[w] = s;
            }
        }
}
static df_status upsample_bwd_fwd(const df_node *n, df_exec_ctx *c) {
    (void)c;
    return over_planes(n, upsample_bwd_planes);
}
/* its gradient: each block gets the block's gy, a nearest upsample */
static df_status upsample_bwd_bwd(df_graph *g, df_node *n, df_node *gy, df_node **gin) {
    gin[0] = df_upsample(g, gy, n->ia[0]);
    return df_graph_status(g);
}
static double upsample_bwd_flops(const df_node *n) {
    return (double)df_shape_numel(&n->in[0]->shape);
}
const df_op_desc df_opdesc_upsample_bwd = {.name = "upsample_bwd",
                                           .min_in = 1,
                                           .max_in = 1,
                                           .shape = upsample_bwd_shape,
                                           .forward = upsample_bwd_fwd,
                                           .backward = upsample_bwd_bwd,
                                           .flops = upsample_bwd_flops};
df_node *df_upsample_bwd(df_graph *g, df_node *x, int factor) {
    int32_t ia[1] = {factor};
    return df_node_new(g, DF_OP_UPSAMPLE_BWD, &x, 1, ia, 1, NULL, 0);
}
