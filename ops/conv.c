/* 2-D convolution (NCHW, any kernel size, stride, zero padding, optional
 * bias) through OpenBLAS: im2col + GEMM, batched across images so small maps
 * (7x7) still make large GEMMs. Images are grouped into fixed chunks chosen
 * from the shapes alone (never from the thread count), so results are
 * bitwise identical for any number of threads. 3x3 stride-1 shapes run
 * faster kernels where they apply: the thin one (conv_thin.h: one input
 * channel or at most two output channels), Winograd (conv_winograd.h), or the direct one
 * (conv_direct.h).
 *
 *   conv2d            (x, w[, b])  ia: stride, pad (fuse.c adds an addend,
 *                                  and a groupnorm_silu or upsample of x:
 *                                  see conv_ins_of)
 *   conv2d_bwd_data   (gy, w)      ia: stride, pad, B, Cin, H, W  -> dx
 *   conv2d_bwd_weight (x, gy)      ia: stride, pad, KH, KW        -> dw (fuse.c may
 *                                  read x through the same op as its conv2d:
 *                                  (x, gy[, gamma, beta][, stats]), ia[4..7] as
 *                                  conv2d's) */
#include "util.h"
#include "conv_direct.h"
#include "conv_winograd.h"
#include "conv_thin.h"
#include "conv_pre.h"
#include <cblas.h>
#include <string.h>
#include "parallel.h"

#define TARGET_COLS 1024 /* GEMM columns per chunk (several images when maps are small) */

typedef struct {
    int64_t B, Cin, H, W, Cout, KH, KW, Ho, Wo, s, p;
    int64_t P;      /* Ho * Wo */
    int64_t CKK;    /* Cin * KH * KW: GEMM depth */
    int64_t nb;     /* images per chunk */
    int64_t chunks; /* ceil(B / nb) */
    int direct;     /* 1x1, stride 1, no padding: x is its own column matrix */
} conv_geom;

static void geom(conv_geom *g, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t Cout,
                 int64_t KH, int64_t KW, int64_t s, int64_t p) {
    g->B = B, g->Cin = Cin, g->H = H, g->W = W, g->Cout = Cout, g->KH = KH, g->KW = KW;
    g->s = s, g->p = p;
    g->Ho = (H + 2 * p - KH) / s + 1;
    g->Wo = (W + 2 * p - KW) / s + 1;
    g->P = g->Ho * g->Wo;
    g->CKK = Cin * KH * KW;
    /* about TARGET_COLS columns per chunk, and a chunk count that is a multiple
     * of 4 when the batch allows (balanced on 1, 2 or 4 threads) */
    int64_t want = (B * g->P + TARGET_COLS - 1) / TARGET_COLS;
    if (B >= 4) want = (want + 3) / 4 * 4;
    if (want > B) want = B;
    if (want < 1) want = 1;
    g->nb = (B + want - 1) / want;
    g->chunks = (B + g->nb - 1) / g->nb;
    g->direct = KH == 1 && KW == 1 && s == 1 && p == 0;
}

/* the factor of a nearest upsample read through (ia[6], see conv_ins_of), or 1 */
static int64_t up_of(const df_node *n) {
    return n->ia[6] > 1 ? n->ia[6] : 1;
}
static void geom_fwd(conv_geom *g, const df_node *n) {
    const df_shape *x = &n->in[0]->shape, *w = &n->in[1]->shape;
    int64_t u = up_of(n);
    geom(g, x->d[0], x->d[1], x->d[2] * u, x->d[3] * u, w->d[0], w->d[2], w->d[3], n->ia[0],
         n->ia[1]);
}
static void geom_bwd_data(conv_geom *g, const df_node *n) {
    const df_shape *w = &n->in[1]->shape;
    geom(g, n->ia[2], n->ia[3], n->ia[4], n->ia[5], w->d[0], w->d[2], w->d[3], n->ia[0], n->ia[1]);
}
static void geom_bwd_weight(conv_geom *g, const df_node *n) {
    const df_shape *x = &n->in[0]->shape, *gy = &n->in[1]->shape;
    int64_t u = up_of(n);
    geom(g, x->d[0], x->d[1], x->d[2] * u, x->d[3] * u, gy->d[1], n->ia[2], n->ia[3], n->ia[0],
         n->ia[1]);
}

/* A chunk's work in three phases: prep (im2col / gathers), the GEMM over
 * fixed column blocks, fin (scatter / col2im). The blocks depend only on the
 * shapes and every GEMM call runs single-threaded, so the arithmetic is the
 * same for any thread count. Many chunks: one chunk per thread at a time.
 * Few chunks: chunk by chunk, prep/fin parallel inside, blocks in parallel. */
typedef struct {
    void (*prep)(const conv_geom *g, const df_node *n, int64_t c, float *ws);
    void (*gemm)(const conv_geom *g, const df_node *n, int64_t c, float *ws, int64_t c0,
                 int64_t nc);
    void (*fin)(const conv_geom *g, const df_node *n, int64_t c, float *ws);
} chunk_ops;

#define COL_BLOCK 256
static int64_t chunk_imgs(const conv_geom *g, int64_t c);
static void col_blocks(int64_t cols, int64_t *nblk, int64_t *bs) {
    *nblk = (cols + COL_BLOCK - 1) / COL_BLOCK;
    *bs = ((cols + *nblk - 1) / *nblk + 15) & ~(int64_t)15;
    *nblk = (cols + *bs - 1) / *bs;
}

typedef struct {
    const conv_geom *g;
    const df_node *n;
    const chunk_ops *o;
    float *scratch;
    size_t per_thread;
    int64_t c, cols, bs; /* the current chunk (few chunks): its columns, block size */
} chunks_job;

/* whole chunks [c0, c1), each in the worker's workspace */
static void chunk_piece(void *ctx, int64_t c0, int64_t c1, int worker) {
    const chunks_job *j = ctx;
    float *ws = j->scratch + j->per_thread * (size_t)worker;
    for (int64_t c = c0; c < c1; c++) {
        int64_t cols = chunk_imgs(j->g, c) * j->g->P, nblk, bs;
        col_blocks(cols, &nblk, &bs);
        if (j->o->prep) j->o->prep(j->g, j->n, c, ws);
        for (int64_t b = 0; b < nblk; b++)
            j->o->gemm(j->g, j->n, c, ws, b * bs, b * bs + bs <= cols ? bs : cols - b * bs);
        if (j->o->fin) j->o->fin(j->g, j->n, c, ws);
    }
}
/* column blocks [b0, b1) of the current chunk */
static void block_piece(void *ctx, int64_t b0, int64_t b1, int worker) {
    const chunks_job *j = ctx;
    (void)worker;
    for (int64_t b = b0; b < b1; b++)
        j->o->gemm(j->g, j->n, j->c, j->scratch, b * j->bs,
                   b * j->bs + j->bs <= j->cols ? j->bs : j->cols - b * j->bs);
}

static void run_chunks(const conv_geom *g, const df_node *n, const chunk_ops *o, float *scratch,
                       size_t per_thread, int nthreads) {
    chunks_job j = {g, n, o, scratch, per_thread, 0, 0, 0};
    if (g->chunks >= 2 * nthreads && nthreads > 1) {
        df_parallel_for(g->chunks, 1, chunk_piece, &j);
        return;
    }
    for (int64_t c = 0; c < g->chunks; c++) {
        int64_t nblk;
        j.c = c, j.cols = chunk_imgs(g, c) * g->P;
        col_blocks(j.cols, &nblk, &j.bs);
        if (o->prep) o->prep(g, n, c, scratch);
        df_parallel_for(nblk, 1, block_piece, &j);
        if (o->fin) o->fin(g, n, c, scratch);
    }
}

typedef struct {
    const conv_geom *g;
    const float *src;
    float *dst;
    int64_t nimg;
} layout_job;

/* rows [r0, r1) of (ci, kh, kw) of the column matrix */
static void im2col_rows(void *ctx, int64_t r0, int64_t r1, int worker) {
    const layout_job *j = ctx;
    const conv_geom *g = j->g;
    const float *x = j->src;
    float *col = j->dst;
    int64_t nimg = j->nimg, cols = nimg * g->P;
    (void)worker;
    for (int64_t q = r0; q < r1; q++) {
        int64_t ci = q / (g->KH * g->KW), kk = q % (g->KH * g->KW);
        int64_t kh = kk / g->KW, kw = kk % g->KW;
        float *row = col + ((ci * g->KH + kh) * g->KW + kw) * cols;
        for (int64_t im = 0; im < nimg; im++) {
            const float *xp = x + (im * g->Cin + ci) * g->H * g->W;
            float *r = row + im * g->P;
            for (int64_t oh = 0; oh < g->Ho; oh++) {
                int64_t ih = oh * g->s - g->p + kh;
                float *ro = r + oh * g->Wo;
                if (ih < 0 || ih >= g->H) {
                    memset(ro, 0, (size_t)g->Wo * 4);
                    continue;
                }
                const float *xr = xp + ih * g->W;
                if (g->s == 1) {
                    int64_t lo = g->p - kw, hi = g->W + g->p - kw; /* valid ow: [lo, hi) */
                    if (lo < 0) lo = 0;
                    if (hi > g->Wo) hi = g->Wo;
                    if (hi < lo) hi = lo;
                    const float *src = xr - g->p + kw;
                    for (int64_t ow = 0; ow < lo; ow++) ro[ow] = 0;
                    for (int64_t ow = lo; ow < hi; ow++) ro[ow] = src[ow];
                    for (int64_t ow = hi; ow < g->Wo; ow++) ro[ow] = 0;
                } else {
                    for (int64_t ow = 0; ow < g->Wo; ow++) {
                        int64_t iw = ow * g->s - g->p + kw;
                        ro[ow] = (iw >= 0 && iw < g->W) ? xr[iw] : 0.0f;
                    }
                }
            }
        }
    }
}

/* col [CKK, nimg * P] from images x [nimg, Cin, H, W] */
static void im2col(const conv_geom *g, const float *x, int64_t nimg, float *col) {
    df_parallel_for(g->CKK, DF_PIECE(g->CKK), im2col_rows, &(layout_job){g, x, col, nimg});
}

/* dx [nimg, Cin, H, W] = col2im(col [CKK, nimg * P]) (overwrites dx) */
static void col2im_planes(void *ctx, int64_t p0, int64_t p1, int worker) {
    const layout_job *j = ctx;
    const conv_geom *g = j->g;
    const float *col = j->src;
    float *dx = j->dst;
    int64_t cols = j->nimg * g->P;
    (void)worker;
    for (int64_t pl = p0; pl < p1; pl++) {
        int64_t im = pl / g->Cin, ci = pl % g->Cin;
        float *xp = dx + (im * g->Cin + ci) * g->H * g->W;
        memset(xp, 0, (size_t)(g->H * g->W) * 4);
        for (int64_t kh = 0; kh < g->KH; kh++)
            for (int64_t kw = 0; kw < g->KW; kw++) {
                const float *r = col + ((ci * g->KH + kh) * g->KW + kw) * cols + im * g->P;
                for (int64_t oh = 0; oh < g->Ho; oh++) {
                    int64_t ih = oh * g->s - g->p + kh;
                    if (ih < 0 || ih >= g->H) continue;
                    float *xr = xp + ih * g->W;
                    const float *ro = r + oh * g->Wo;
                    if (g->s == 1) {
                        int64_t lo = g->p - kw, hi = g->W + g->p - kw;
                        if (lo < 0) lo = 0;
                        if (hi > g->Wo) hi = g->Wo;
                        float *dst = xr - g->p + kw;
                        for (int64_t ow = lo; ow < hi; ow++) dst[ow] += ro[ow];
                    } else {
                        for (int64_t ow = 0; ow < g->Wo; ow++) {
                            int64_t iw = ow * g->s - g->p + kw;
                            if (iw >= 0 && iw < g->W) xr[iw] += ro[ow];
                        }
                    }
                }
            }
    }
}
static void col2im(const conv_geom *g, const float *col, int64_t nimg, float *dx) {
    df_parallel_for(nimg * g->Cin, DF_PIECE(nimg * g->Cin), col2im_planes,
                    &(layout_job){g, col, dx, nimg});
}

/* [nimg, C, P] <-> [C, nimg * P] */
typedef struct {
    const float *src;
    float *dst;
    int64_t nimg, C, P, to_cm; /* to_cm: [nimg, C, P] -> [C, nimg * P], else back */
} cm_job;
static void cm_planes(void *ctx, int64_t p0, int64_t p1, int worker) {
    const cm_job *j = ctx;
    (void)worker;
    for (int64_t p = p0; p < p1; p++) {
        int64_t im = p / j->C, c = p % j->C, a = c * j->nimg * j->P + im * j->P, b = p * j->P;
        if (j->to_cm)
            memcpy(j->dst + a, j->src + b, (size_t)j->P * 4);
        else
            memcpy(j->dst + b, j->src + a, (size_t)j->P * 4);
    }
}
static void to_cm(const float *src, int64_t nimg, int64_t C, int64_t P, float *dst) {
    df_parallel_for(nimg * C, DF_PIECE(nimg * C), cm_planes, &(cm_job){src, dst, nimg, C, P, 1});
}
/* [C, nimg * P] -> [nimg, C, P] */
static void from_cm(const float *src, int64_t nimg, int64_t C, int64_t P, float *dst) {
    df_parallel_for(nimg * C, DF_PIECE(nimg * C), cm_planes, &(cm_job){src, dst, nimg, C, P, 0});
}

static int64_t chunk_imgs(const conv_geom *g, int64_t c) {
    int64_t b0 = c * g->nb;
    return b0 + g->nb <= g->B ? g->nb : g->B - b0;
}
static size_t ws_cols(const conv_geom *g) {
    return (size_t)(g->nb * g->P);
}

/* ---------------- forward ----------------
 * ws: [CKK, cols] column matrix, then [Cout, cols] GEMM result (several images) */
static const float *fwd_col(const conv_geom *g, const df_node *n, int64_t c, float *ws) {
    int64_t ni = chunk_imgs(g, c);
    const float *x = df_inp(n, 0) + c * g->nb * g->Cin * g->H * g->W;
    return g->direct && ni == 1 ? x : ws;
}
static void fwd_prep(const conv_geom *g, const df_node *n, int64_t c, float *ws) {
    int64_t ni = chunk_imgs(g, c);
    const float *x = df_inp(n, 0) + c * g->nb * g->Cin * g->H * g->W;
    if (g->direct && ni == 1) return;
    if (g->direct)
        to_cm(x, ni, g->Cin, g->P, ws);
    else
        im2col(g, x, ni, ws);
}
static void fwd_gemm(const conv_geom *g, const df_node *n, int64_t c, float *ws, int64_t c0,
                     int64_t nc) {
    int64_t ni = chunk_imgs(g, c), cols = ni * g->P;
    const float *col = fwd_col(g, n, c, ws), *w = df_inp(n, 1);
    /* one image: straight into its NCHW slice; else into the [Cout, cols] buffer */
    float *dst = ni == 1 ? df_out(n) + c * g->nb * g->Cout * g->P : ws + g->CKK * ws_cols(g);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->Cout, (int)nc, (int)g->CKK, 1.0f,
                w, (int)g->CKK, col + c0, (int)cols, 0.0f, dst + c0, (int)cols);
}
/* A conv2d node's inputs: x, w, [bias], [addend], [gamma, beta], [stats].
 * ia[2] = 1 when there is an addend (a fused add, see fuse.c), ia[3] = 1
 * when it is [B, Cout] (one value per image and channel). ia[4] = G > 0 when
 * x is read through a fused groupnorm_silu with G groups and eps fa[0],
 * ia[5] = 1 when it has gamma and beta, ia[7] = 1 when its statistics come
 * as an input (a groupnorm_stats node) instead of being taken here; ia[6] =
 * f > 1 when x is read through a nearest upsample by f (x is then the
 * upsample's input). The index of each optional input, or -1, and whether x
 * is read through an op (pre). */
typedef struct {
    int bias, add, gamma, stats, pre;
} conv_ins;
static conv_ins conv_ins_of(const df_node *n) {
    int gn = n->ia[4] > 0, aff = gn && n->ia[5] == 1, has_add = n->ia[2] == 1;
    int st = gn && n->ia[7] == 1, pre = gn || n->ia[6] > 1;
    int nconv = n->n_in - 2 * aff - st; /* x, w, [bias], [addend] */
    return (conv_ins){nconv - has_add == 3 ? 2 : -1, has_add ? nconv - 1 : -1, aff ? nconv : -1,
                      st ? n->n_in - 1 : -1, pre};
}
/* The forward's epilogue (dconv_epilogue) from its node */
static dconv_epilogue epilogue_of(const df_node *n) {
    conv_ins ci = conv_ins_of(n);
    dconv_epilogue e = {ci.bias >= 0 ? df_inp(n, ci.bias) : NULL,
                        ci.add >= 0 ? df_inp(n, ci.add) : NULL, ci.add >= 0 && n->ia[3] == 1};
    return e;
}
typedef struct {
    const conv_geom *g;
    float *y;
    const float *src;
    dconv_epilogue ep;
    int64_t cols, ni, img0; /* img0: the chunk's first image */
} fin_job;
/* planes [p0, p1) of y [ni, Cout, P] = src (y itself, or [Cout, cols]) + bias + addend */
static void fin_planes(void *ctx, int64_t p0, int64_t p1, int worker) {
    const fin_job *j = ctx;
    const conv_geom *g = j->g;
    const float *add = j->ep.add;
    (void)worker;
    for (int64_t p = p0; p < p1; p++) {
        int64_t im = p / g->Cout, co = p % g->Cout;
        float *yo = j->y + p * g->P, bv = j->ep.bias ? j->ep.bias[co] : 0.0f;
        const float *src = j->ni == 1 ? yo : j->src + co * j->cols + im * g->P;
        for (int64_t k = 0; k < g->P; k++) yo[k] = src[k] + bv;
        if (!add) continue;
        if (j->ep.per_channel) {
            float a = add[(j->img0 + im) * g->Cout + co];
            for (int64_t k = 0; k < g->P; k++) yo[k] += a;
        } else {
            const float *ao = add + (j->img0 * g->Cout + p) * g->P;
            for (int64_t k = 0; k < g->P; k++) yo[k] += ao[k];
        }
    }
}
static void fwd_fin(const conv_geom *g, const df_node *n, int64_t c, float *ws) {
    int64_t ni = chunk_imgs(g, c), cols = ni * g->P;
    float *y = df_out(n) + c * g->nb * g->Cout * g->P; // [ni, Cout, P]
    const float *tmp = ws + g->CKK * ws_cols(g);
    dconv_epilogue ep = epilogue_of(n);
    if (ni == 1 && !ep.bias && !ep.add) return;
    df_parallel_for(ni * g->Cout, DF_PIECE(ni * g->Cout), fin_planes,
                    &(fin_job){g, y, ni == 1 ? y : tmp, ep, cols, ni, c * g->nb});
}
static const chunk_ops fwd_ops = {fwd_prep, fwd_gemm, fwd_fin};

static size_t fwd_per_thread(const conv_geom *g) {
    return ((size_t)(g->CKK + g->Cout) * ws_cols(g) + 15) & ~(size_t)15;
}
/* Floats for the direct kernel's scratch, or Winograd's when the shape suits
 * it and that is larger (the switch may be turned on after planning). */
static size_t direct_scratch(const dconv_shape *d, int nt) {
    if (thin_applies(d)) return thin_scratch_floats(d, nt > 0 ? nt : 1);
    size_t a = dconv_scratch_floats(d, nt > 0 ? nt : 1);
    size_t b = wino_applies(d) ? wino_scratch_floats(d, nt > 0 ? nt : 1) : 0;
    return a > b ? a : b;
}
static size_t direct_bw_scratch(const dconv_shape *d, int nt) {
    if (thin_applies(d)) return thin_bw_scratch_floats(d, nt > 0 ? nt : 1);
    size_t a = dconv_bw_scratch_floats(d, nt > 0 ? nt : 1);
    size_t b = wino_bw_applies(d) ? wino_bw_scratch_floats(d, nt > 0 ? nt : 1) : 0;
    return a > b ? a : b;
}
/* the direct kernel's view of a forward conv */
static dconv_shape dshape_fwd(const conv_geom *g) {
    dconv_shape d = {g->B, g->Cin, g->H, g->W, g->Cout, g->KH, g->KW, g->s, g->p, g->Ho, g->Wo};
    return d;
}
/* A fused op's floats of scratch before the kernel's: a groupnorm_silu's
 * statistics [B, G, 2] */
static size_t pre_floats(const df_node *n) {
    return n->ia[4] > 0 ? ((size_t)(2 * n->in[0]->shape.d[0] * n->ia[4]) + 15) & ~(size_t)15 : 0;
}
/* The op node n (a conv2d, or its weight gradient) reads x (input 0)
 * through: its statistics are read from input kept (a groupnorm_stats
 * node), or with kept = -1 taken into stats [B, G, 2]; gamma: the index of
 * gamma (beta follows) or -1 */
static conv_pre pre_of(const df_node *n, const dconv_shape *d, int gamma, int kept, float *stats) {
    conv_pre pre = {{kept >= 0 ? df_inp(n, kept) : stats, gamma >= 0 ? df_inp(n, gamma) : NULL,
                     gamma >= 0 ? df_inp(n, gamma + 1) : NULL, d->Cin, n->ia[4]},
                    up_of(n) > 1 ? up_of(n) : 0};
    if (!pre.up && kept < 0)
        gn_stats(df_inp(n, 0), d->B, d->Cin, d->H * d->W, pre.gn.G, n->fa[0], stats);
    return pre;
}
/* t [B, Cin, H, W] = the virtual input pre makes from x */
static void pre_all(const conv_pre *pre, const float *x, const dconv_shape *d, float *t) {
    for (int64_t p = 0; p < d->B * d->Cin; p++)
        conv_pre_rows(pre, x, p / d->Cin, p % d->Cin, 0, d->H, d->H, d->W, t + p * d->H * d->W);
}
/* y of a conv2d reading x through a groupnorm_silu or a nearest upsample
 * (fuse.c, AVX-512 builds, 3x3 stride-1 shapes): the thin kernel and
 * Winograd apply it as they read x; else (Winograd switched off) the virtual
 * input is made in the scratch's end, which is touched only then, and the
 * direct kernel runs on that. */
static df_status conv_fwd_pre(const df_node *n, df_exec_ctx *ctx, const dconv_shape *d) {
    const float *x = df_inp(n, 0); // [B, Cin, H, W], or [B, Cin, H / up, W / up]
    float *stats = ctx->scratch, *ks = stats + pre_floats(n); // [B, G, 2]; the kernel's
    conv_pre pre = pre_of(n, d, conv_ins_of(n).gamma, conv_ins_of(n).stats, stats);
    dconv_epilogue ep = epilogue_of(n);
    if (thin_applies(d)) {
        thin_run(d, x, &pre, df_inp(n, 1), 0, &ep, df_out(n), ks, ctx->nthreads);
        return DF_OK;
    }
    if (wino_available(d)) {
        wino_run(d, x, &pre, df_inp(n, 1), 0, &ep, df_out(n), ks, ctx->nthreads, ctx->bf16,
                 ctx->cache);
        return DF_OK;
    }
    float *t = ks + direct_scratch(d, ctx->nthreads); // [B, Cin, H, W]
    pre_all(&pre, x, d, t);
    dconv_run(d, t, df_inp(n, 1), 0, &ep, df_out(n), ks, ctx->nthreads);
    return DF_OK;
}

static df_status conv_fwd(const df_node *n, df_exec_ctx *ctx) {
    conv_geom g;
    geom_fwd(&g, n);
    dconv_shape d = dshape_fwd(&g);
    if (conv_ins_of(n).pre) return conv_fwd_pre(n, ctx, &d);
    if (thin_applies(&d)) {
        dconv_epilogue ep = epilogue_of(n);
        thin_run(&d, df_inp(n, 0), NULL, df_inp(n, 1), 0, &ep, df_out(n), ctx->scratch,
                 ctx->nthreads);
        return DF_OK;
    }
    if (wino_available(&d)) {
        dconv_epilogue ep = epilogue_of(n);
        wino_run(&d, df_inp(n, 0), NULL, df_inp(n, 1), 0, &ep, df_out(n), ctx->scratch,
                 ctx->nthreads, ctx->bf16, ctx->cache);
        return DF_OK;
    }
    if (dconv_available(&d)) {
        dconv_epilogue ep = epilogue_of(n);
        dconv_run(&d, df_inp(n, 0), df_inp(n, 1), 0, &ep, df_out(n), ctx->scratch, ctx->nthreads);
        return DF_OK;
    }
    run_chunks(&g, n, &fwd_ops, ctx->scratch, fwd_per_thread(&g), ctx->nthreads);
    return DF_OK;
}
static size_t conv_scratch(const df_node *n, int nt) {
    conv_geom g;
    geom_fwd(&g, n);
    dconv_shape d = dshape_fwd(&g);
    if (conv_ins_of(n).pre) /* statistics, the kernel's, and the input's size for the switch off */
        return (pre_floats(n) + direct_scratch(&d, nt) + (size_t)(d.B * d.Cin * d.H * d.W)) * 4;
    if (dconv_available(&d)) return direct_scratch(&d, nt) * 4;
    return fwd_per_thread(&g) * (size_t)(nt > 0 ? nt : 1) * 4;
}

static df_status conv_shape(df_node *n) {
    char a[96], b[96];
    const df_node *x = n->in[0], *w = n->in[1];
    if (x->dtype != DF_F32 || x->shape.nd != 4)
        return df_shape_err(n, "input x as float32 [B, Cin, H, W]", &x->shape);
    if (w->dtype != DF_F32 || w->shape.nd != 4)
        return df_shape_err(n, "weight as float32 [Cout, Cin, KH, KW]", &w->shape);
    if (w->shape.d[1] != x->shape.d[1])
        return df_seterr(DF_ESHAPE, "input %s has %lld channels, weight %s expects %lld",
                         df_shape_str(&x->shape, a, sizeof a), (long long)x->shape.d[1],
                         df_shape_str(&w->shape, b, sizeof b), (long long)w->shape.d[1]);
    int s = n->ia[0], p = n->ia[1];
    if (s < 1 || p < 0 || s > 1024 || p > 1024)
        return df_seterr(DF_EINVAL, "stride %d must be >= 1 and padding %d >= 0", s, p);
    if (n->ia[6] < 0 || n->ia[6] > 64 || (n->ia[6] > 1 && n->ia[4] > 0))
        return df_seterr(DF_EINVAL, "conv2d: bad upsample attribute %d", n->ia[6]);
    int64_t u = up_of(n), H = x->shape.d[2] * u, W = x->shape.d[3] * u; /* what it reads */
    int64_t Ho = (H + 2 * p - w->shape.d[2]), Wo = (W + 2 * p - w->shape.d[3]);
    if (Ho < 0 || Wo < 0)
        return df_seterr(DF_ESHAPE,
                         "kernel %lldx%lld is larger than the padded input %s (padding %d)",
                         (long long)w->shape.d[2], (long long)w->shape.d[3],
                         df_shape_str(&x->shape, a, sizeof a), p);
    conv_ins ci = conv_ins_of(n);
    if (n->ia[2] < 0 || n->ia[2] > 1 || n->ia[3] < 0 || n->ia[3] > 1 ||
        n->n_in - (ci.add >= 0) - (ci.gamma >= 0 ? 2 : 0) - (ci.stats >= 0) < 2)
        return df_seterr(DF_EINVAL, "conv2d: bad addend attributes (%d, %d)", n->ia[2], n->ia[3]);
    if (ci.pre) { /* a fused groupnorm_silu or upsample (fuse.c) */
        dconv_shape d = {x->shape.d[0], x->shape.d[1], H, W, w->shape.d[0],
                         w->shape.d[2], w->shape.d[3], s, p, Ho / s + 1,
                         Wo / s + 1};
        if ((n->ia[4] > 0 &&
             (x->shape.d[1] % n->ia[4] || n->ia[5] < 0 || n->ia[5] > 1 || !(n->fa[0] > 0))) ||
            !dconv_available(&d))
            return df_seterr(DF_EINVAL,
                             "conv2d: bad groupnorm_silu attributes (groups %d, affine %d, eps %g)"
                             " for input %s",
                             n->ia[4], n->ia[5], n->fa[0], df_shape_str(&x->shape, a, sizeof a));
        for (int k = ci.gamma; k >= 0 && k < ci.gamma + 2; k++)
            if (n->in[k]->dtype != DF_F32 || n->in[k]->shape.nd != 1 ||
                n->in[k]->shape.d[0] != x->shape.d[1])
                return df_seterr(DF_ESHAPE, "%s %s, expected [%lld] (the input channels)",
                                 k == ci.gamma ? "gamma" : "beta",
                                 df_shape_str(&n->in[k]->shape, a, sizeof a),
                                 (long long)x->shape.d[1]);
        df_shape st = df_shape3(x->shape.d[0], n->ia[4], 2);
        if (ci.stats >= 0 &&
            (n->in[ci.stats]->dtype != DF_F32 || !df_shape_eq(&n->in[ci.stats]->shape, &st)))
            return df_seterr(DF_ESHAPE, "stats %s, expected [B, groups, 2]",
                             df_shape_str(&n->in[ci.stats]->shape, a, sizeof a));
    }
    if (ci.bias >= 0) {
        const df_node *bi = n->in[2];
        if (bi->dtype != DF_F32 || bi->shape.nd != 1 || bi->shape.d[0] != w->shape.d[0])
            return df_seterr(DF_ESHAPE, "bias %s, expected [%lld] (the output channels)",
                             df_shape_str(&bi->shape, a, sizeof a), (long long)w->shape.d[0]);
    }
    n->shape = df_shape4(x->shape.d[0], w->shape.d[0], Ho / s + 1, Wo / s + 1);
    n->dtype = DF_F32;
    if (ci.add >= 0) { /* [B, Cout, Ho, Wo], or [B, Cout] with ia[3] = 1 */
        const df_node *r = n->in[ci.add];
        int64_t want = n->ia[3] ? n->shape.d[0] * n->shape.d[1] : df_shape_numel(&n->shape);
        if (r->dtype != DF_F32 || df_shape_numel(&r->shape) != want ||
            (!n->ia[3] && !df_shape_eq(&r->shape, &n->shape)))
            return df_seterr(DF_ESHAPE, "addend %s, expected %s",
                             df_shape_str(&r->shape, a, sizeof a),
                             n->ia[3] ? "[B, Cout] values" : "the output's shape");
    }
    return DF_OK;
}

static df_status conv_bwd(df_graph *gr, df_node *n, df_node *gy, df_node **gin) {
    df_node *x = n->in[0], *w = n->in[1];
    if (conv_ins_of(n).pre) /* fused only after autodiff */
        return df_seterr(DF_EINVAL,
                         "conv2d %s: no gradient through a fused groupnorm_silu or upsample",
                         n->name ? n->name : "");
    if (x->requires_grad) {
        int32_t ia[6] = {n->ia[0],
                         n->ia[1],
                         (int32_t)x->shape.d[0],
                         (int32_t)x->shape.d[1],
                         (int32_t)x->shape.d[2],
                         (int32_t)x->shape.d[3]};
        gin[0] = df_node_new(gr, DF_OP_CONV2D_BWD_DATA, (df_node *[]){gy, w}, 2, ia, 6, NULL, 0);
    }
    if (w->requires_grad) {
        int32_t ia[4] = {n->ia[0], n->ia[1], (int32_t)w->shape.d[2], (int32_t)w->shape.d[3]};
        gin[1] = df_node_new(gr, DF_OP_CONV2D_BWD_WEIGHT, (df_node *[]){x, gy}, 2, ia, 4, NULL, 0);
    }
    int has_add = n->ia[2] == 1, nb = n->n_in - has_add; /* nb == 3: a bias */
    if (nb == 3 && n->in[2]->requires_grad) gin[2] = df_sum_to(gr, gy, n->in[2]->shape, 1);
    df_node *r = has_add ? n->in[n->n_in - 1] : NULL;
    if (r && r->requires_grad) /* the addend's gradient: gy, or its sum over the pixels */
        gin[n->n_in - 1] =
            n->ia[3]
                ? df_reshape(gr, df_sum_to(gr, gy, df_shape2(gy->shape.d[0], gy->shape.d[1]), 0),
                             r->shape)
                : gy;
    return df_graph_status(gr);
}
static double conv_flops(const df_node *n) {
    const df_shape *w = &n->in[1]->shape;
    return 2.0 * df_shape_numel(&n->shape) * (double)(w->d[1] * w->d[2] * w->d[3]);
}

const df_op_desc df_opdesc_conv2d = {.name = "conv2d",
                                     .min_in = 2,
                                     .max_in = 7,
                                     .shape = conv_shape,
                                     .forward = conv_fwd,
                                     .backward = conv_bwd,
                                     .scratch = conv_scratch,
                                     .flops = conv_flops};

df_node *df_conv2d(df_graph *g, df_node *x, df_node *w, df_node *b, int stride, int pad) {
    int32_t ia[2] = {stride, pad};
    return df_node_new(g, DF_OP_CONV2D, (df_node *[]){x, w, b}, b ? 3 : 2, ia, 2, NULL, 0);
}

/* ---------------- gradient w.r.t. the input ----------------
 * ws: [Cout, cols] gy of several images, then [CKK, cols] column gradient */
static void bd_prep(const conv_geom *g, const df_node *n, int64_t c, float *ws) {
    int64_t ni = chunk_imgs(g, c);
    if (ni > 1) to_cm(df_inp(n, 0) + c * g->nb * g->Cout * g->P, ni, g->Cout, g->P, ws);
}
static float *bd_colg(const conv_geom *g, const df_node *n, int64_t c, float *ws) {
    if (g->direct && chunk_imgs(g, c) == 1) return df_out(n) + c * g->nb * g->Cin * g->P;
    return ws + g->Cout * ws_cols(g);
}
static void bd_gemm(const conv_geom *g, const df_node *n, int64_t c, float *ws, int64_t c0,
                    int64_t nc) {
    int64_t ni = chunk_imgs(g, c), cols = ni * g->P;
    const float *gcm = ni > 1 ? ws : df_inp(n, 0) + c * g->nb * g->Cout * g->P, *w = df_inp(n, 1);
    float *colg = bd_colg(g, n, c, ws);
    /* colg [CKK, cols] = w^T [CKK, Cout] gy [Cout, cols] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g->CKK, (int)nc, (int)g->Cout, 1.0f,
                w, (int)g->CKK, gcm + c0, (int)cols, 0.0f, colg + c0, (int)cols);
}
static void bd_fin(const conv_geom *g, const df_node *n, int64_t c, float *ws) {
    int64_t ni = chunk_imgs(g, c);
    float *dx = df_out(n) + c * g->nb * g->Cin * g->H * g->W;
    const float *colg = bd_colg(g, n, c, ws);
    if (g->direct && ni == 1) return;
    if (g->direct) { /* [Cin, cols] -> [ni, Cin, P] */
        from_cm(colg, ni, g->Cin, g->P, dx);
        return;
    }
    col2im(g, colg, ni, dx);
}
static const chunk_ops bd_ops = {bd_prep, bd_gemm, bd_fin};
/* Stride 1, square kernel: dx is a conv of gy with the transposed, rotated
 * kernel and padding K-1-p, run by the direct kernel. 0 if not applicable. */
static int dshape_bwd_data(const conv_geom *g, dconv_shape *d) {
    if (g->s != 1 || g->KH != g->KW || g->p > g->KH - 1) return 0;
    dconv_shape e = {g->B, g->Cout,          g->Ho, g->Wo, g->Cin, g->KH, g->KW,
                     1,    g->KH - 1 - g->p, g->H,  g->W};
    *d = e;
    return dconv_available(d);
}
static df_status bwd_data_fwd(const df_node *n, df_exec_ctx *ctx) {
    conv_geom g;
    geom_bwd_data(&g, n);
    dconv_shape d, f = dshape_fwd(&g);
    if (dshape_bwd_data(&g, &d)) {
        if (thin_applies(&d))
            thin_run(&d, df_inp(n, 0), NULL, df_inp(n, 1), 1, NULL, df_out(n), ctx->scratch,
                     ctx->nthreads);
        else if (wino_available(&d))
            wino_run(&d, df_inp(n, 0), NULL, df_inp(n, 1), 1, NULL, df_out(n), ctx->scratch,
                     ctx->nthreads, ctx->bf16, ctx->cache);
        else
            dconv_run(&d, df_inp(n, 0), df_inp(n, 1), 1, NULL, df_out(n), ctx->scratch,
                      ctx->nthreads);
        return DF_OK;
    }
    if (dconv_bd_available(&f)) {
        dconv_bd_run(&f, df_inp(n, 0), df_inp(n, 1), df_out(n), ctx->scratch, ctx->nthreads);
        return DF_OK;
    }
    run_chunks(&g, n, &bd_ops, ctx->scratch, fwd_per_thread(&g), ctx->nthreads);
    return DF_OK;
}
static size_t bwd_data_scratch(const df_node *n, int nt) {
    conv_geom g;
    geom_bwd_data(&g, n);
    dconv_shape d, f = dshape_fwd(&g);
    if (dshape_bwd_data(&g, &d)) return direct_scratch(&d, nt) * 4;
    if (dconv_bd_available(&f)) return dconv_bd_scratch_floats(&f, nt > 0 ? nt : 1) * 4;
    return fwd_per_thread(&g) * (size_t)(nt > 0 ? nt : 1) * 4;
}
static df_status bwd_data_shape(df_node *n) {
    for (int k = 2; k < 6; k++)
        if (n->ia[k] < 1) return df_seterr(DF_EINVAL, "bad input shape attribute");
    n->shape = df_shape4(n->ia[2], n->ia[3], n->ia[4], n->ia[5]);
    n->dtype = DF_F32;
    return DF_OK;
}
static double bwd_data_flops(const df_node *n) {
    const df_shape *w = &n->in[1]->shape;
    return 2.0 * df_shape_numel(&n->in[0]->shape) * (double)(w->d[1] * w->d[2] * w->d[3]);
}
const df_op_desc df_opdesc_conv2d_bwd_data = {.name = "conv2d_bwd_data",
                                              .min_in = 2,
                                              .max_in = 2,
                                              .flags = DF_OPF_GRAD_ONLY,
                                              .shape = bwd_data_shape,
                                              .forward = bwd_data_fwd,
                                              .scratch = bwd_data_scratch,
                                              .flops = bwd_data_flops};

/* ---------------- gradient w.r.t. the weight ----------------
 * per chunk: part[c] = gy_c [Cout, cols] col_c^T [cols, CKK]; summed in chunk order */
static void bwd_weight_chunk(const conv_geom *g, const df_node *n, int64_t c, float *ws,
                             float *parts) {
    int64_t b0 = c * g->nb, ni = chunk_imgs(g, c), cols = ni * g->P;
    const float *x = df_inp(n, 0) + b0 * g->Cin * g->H * g->W;
    const float *gy = df_inp(n, 1) + b0 * g->Cout * g->P;
    const float *col = x, *gcm = gy;
    if (!(g->direct && ni == 1)) {
        if (g->direct)
            to_cm(x, ni, g->Cin, g->P, ws);
        else
            im2col(g, x, ni, ws);
        col = ws;
    }
    if (ni > 1) {
        float *p = ws + g->CKK * ws_cols(g);
        to_cm(gy, ni, g->Cout, g->P, p);
        gcm = p;
    }
    /* one chunk: straight into dw; else a partial product per chunk */
    float *dst = g->chunks == 1 ? df_out(n) : parts + c * g->Cout * g->CKK;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->Cout, (int)g->CKK, (int)cols, 1.0f,
                gcm, (int)cols, col, (int)cols, 0.0f, dst, (int)g->CKK);
}
static size_t bwd_weight_per_thread(const conv_geom *g) {
    return ((size_t)(g->CKK + g->Cout) * ws_cols(g) + 15) & ~(size_t)15;
}
typedef struct {
    const conv_geom *g;
    const df_node *n;
    float *scratch, *parts; /* parts [chunks][Cout * CKK] */
    size_t per;
} bw_job;
static void bw_chunk_piece(void *ctx, int64_t c0, int64_t c1, int worker) {
    const bw_job *j = ctx;
    for (int64_t c = c0; c < c1; c++)
        bwd_weight_chunk(j->g, j->n, c, j->scratch + j->per * (size_t)worker, j->parts);
}
/* dw[i] for i in [i0, i1) = sum of the chunks' parts in chunk order */
static void bw_sum_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const bw_job *j = ctx;
    int64_t m = j->g->Cout * j->g->CKK;
    float *dw = df_out(j->n);
    (void)worker;
    for (int64_t i = i0; i < i1; i++) {
        float s = 0;
        for (int64_t c = 0; c < j->g->chunks; c++) s += j->parts[c * m + i];
        dw[i] = s;
    }
}
/* dw of a conv2d reading x through a groupnorm_silu or a nearest upsample
 * (fuse.c: training graphs, where the conv2d reads it so too): the thin
 * kernel makes each image's input, Winograd the images' input as it
 * transforms their tiles; else (Winograd switched off) the input is made in
 * the scratch's end, as for the conv2d. */
static df_status bwd_weight_pre(const df_node *n, df_exec_ctx *ctx, const dconv_shape *d) {
    float *stats = ctx->scratch, *ks = stats + pre_floats(n); // [B, G, 2]; the kernel's
    conv_pre pre = pre_of(n, d, n->ia[5] == 1 ? 2 : -1, n->ia[7] == 1 ? n->n_in - 1 : -1, stats);
    if (thin_applies(d)) {
        thin_bw_run(d, df_inp(n, 0), &pre, df_inp(n, 1), df_out(n), ks, ctx->nthreads);
        return DF_OK;
    }
    if (wino_bw_available(d)) {
        wino_bw_run(d, df_inp(n, 0), &pre, df_inp(n, 1), df_out(n), ks, ctx->nthreads, ctx->bf16);
        return DF_OK;
    }
    float *t = ks + direct_bw_scratch(d, ctx->nthreads); // [B, Cin, H, W]
    pre_all(&pre, df_inp(n, 0), d, t);
    dconv_bw_run(d, t, df_inp(n, 1), df_out(n), ks, ctx->nthreads);
    return DF_OK;
}
static df_status bwd_weight_fwd(const df_node *n, df_exec_ctx *ctx) {
    conv_geom g;
    geom_bwd_weight(&g, n);
    dconv_shape d = dshape_fwd(&g);
    if (n->ia[4] > 0 || up_of(n) > 1) return bwd_weight_pre(n, ctx, &d);
    if (thin_applies(&d)) {
        thin_bw_run(&d, df_inp(n, 0), NULL, df_inp(n, 1), df_out(n), ctx->scratch, ctx->nthreads);
        return DF_OK;
    }
    if (wino_bw_available(&d)) {
        wino_bw_run(&d, df_inp(n, 0), NULL, df_inp(n, 1), df_out(n), ctx->scratch, ctx->nthreads,
                    ctx->bf16);
        return DF_OK;
    }
    if (dconv_bw_available(&d)) {
        dconv_bw_run(&d, df_inp(n, 0), df_inp(n, 1), df_out(n), ctx->scratch, ctx->nthreads);
        return DF_OK;
    }
    size_t per = bwd_weight_per_thread(&g);
    float *parts = (float *)ctx->scratch + per * (size_t)ctx->nthreads;
    bw_job j = {&g, n, ctx->scratch, parts, per};
    df_parallel_for(g.chunks, 1, bw_chunk_piece, &j);
    if (g.chunks == 1) return DF_OK;
    int64_t m = g.Cout * g.CKK;
    df_parallel_for(m, DF_PIECE_IF(m, m * g.chunks > 65536), bw_sum_piece, &j);
    return DF_OK;
}
static size_t bwd_weight_scratch(const df_node *n, int nt) {
    conv_geom g;
    geom_bwd_weight(&g, n);
    dconv_shape d = dshape_fwd(&g);
    if (n->ia[4] > 0 || up_of(n) > 1) /* statistics, the kernel's, the input for the switch off */
        return (pre_floats(n) + direct_bw_scratch(&d, nt) + (size_t)(d.B * d.Cin * d.H * d.W)) * 4;
    if (dconv_bw_available(&d)) return direct_bw_scratch(&d, nt) * 4;
    size_t parts = g.chunks > 1 ? (size_t)(g.chunks * g.Cout * g.CKK) : 0;
    return (bwd_weight_per_thread(&g) * (size_t)(nt > 0 ? nt : 1) + parts) * 4;
}
static df_status bwd_weight_shape(df_node *n) {
    const df_shape *x = &n->in[0]->shape, *gy = &n->in[1]->shape;
    if (n->ia[2] < 1 || n->ia[3] < 1) return df_seterr(DF_EINVAL, "bad kernel size attribute");
    n->shape = df_shape4(gy->d[1], x->d[1], n->ia[2], n->ia[3]);
    n->dtype = DF_F32;
    return DF_OK;
}
static double bwd_weight_flops(const df_node *n) {
    return 2.0 * df_shape_numel(&n->in[1]->shape) *
           (double)(n->in[0]->shape.d[1] * n->ia[2] * n->ia[3]);
}
const df_op_desc df_opdesc_conv2d_bwd_weight = {.name = "conv2d_bwd_weight",
                                                .min_in = 2,
                                                .max_in = 5,
                                                .flags = DF_OPF_GRAD_ONLY,
                                                .shape = bwd_weight_shape,
                                                .forward = bwd_weight_fwd,
                                                .scratch = bwd_weight_scratch,
                                                .flops = bwd_weight_flops};
