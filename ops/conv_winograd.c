/* Winograd F(4x4, 3x3) convolution (see conv_winograd.h), points 0, +-1,
 * +-2, infinity (Lavin & Gray 2015):
 *   BT = [4  0 -5  0 1 0]   G = [ 1/4     0    0 ]   AT = [1 1  1 1  1 0]
 *        [0 -4 -4  1 1 0]       [-1/6 -1/6  -1/6]        [0 1 -1 2 -2 0]
 *        [0  4 -4 -1 1 0]       [-1/6  1/6  -1/6]        [0 1  1 4  4 0]
 *        [0 -2 -1  2 1 0]       [1/24 1/12  1/6 ]        [0 1 -1 8 -8 1]
 *        [0  2 -1 -2 1 0]       [1/24 -1/12 1/6 ]
 *        [0  4  0 -5 0 1]       [ 0     0    1  ]
 * Sixteen tiles share a vector (lane = tile). A piece of T tiles (tiles
 * numbered image by image, row by row) is transformed into V, then for each
 * block of 8 output channels the 36 products go to M and are transformed
 * back straight into y. V and M of a piece stay in L2. */
#include "conv_winograd.h"
#include <stdlib.h>
#include <string.h>

static int wino_on = -1; /* -1: not read from the environment yet */

void df_conv_set_winograd(int on) {
    wino_on = on != 0;
}
int df_conv_winograd(void) {
    if (wino_on < 0) {
        const char *e = getenv("DFRUN_WINOGRAD");
        wino_on = !(e && !strcmp(e, "0"));
    }
    return wino_on;
}

#if defined(__AVX512F__) && defined(__AVX512VL__)
#include "conv_winograd_bf16.h"
#include "conv_winograd_impl.h"
#include "parallel.h"

#define PIECE_FLOATS 163840 /* V and M of a piece: 640 KiB (measured best of 384-1280) */
#define MIN_CIN 4           /* fewer input channels: the direct kernel is faster */
#define MAX_GROUPS (PIECE_FLOATS / (36 * (MIN_CIN + RB)) / NT + 1)

typedef struct {
    int64_t ntw, ntile; /* tiles per row, per image */
    int64_t tiles;      /* all tiles of the batch */
    int64_t T;          /* tiles per piece (a multiple of NT) */
    int64_t pieces, Coutp;
    int64_t vk, mk; /* floats per position k of V and M: one cache line more than
                       Cin T and RB T, so the 36 streams don't share L1 sets */
    int64_t Cin2;   /* bf16 pairs of input channels: ceil(Cin / 2) */
    int64_t vk2;    /* pairs per position k of V2 (bf16) */
} wgeom;

static void wgeom_of(const dconv_shape *c, wgeom *g) {
    g->ntw = (c->Wo + 3) / 4;
    g->ntile = g->ntw * ((c->Ho + 3) / 4);
    g->tiles = c->B * g->ntile;
    int64_t T = PIECE_FLOATS / (36 * (c->Cin + RB)) / NT * NT;
    int64_t need = (g->tiles + NT - 1) / NT * NT;
    if (T < NT) T = NT;
    if (T > need) T = need;
    g->T = T;
    g->pieces = (g->tiles + T - 1) / T;
    g->Coutp = (c->Cout + RB - 1) / RB * RB;
    g->vk = c->Cin * T + 16;
    g->mk = RB * T + 16;
    g->Cin2 = (c->Cin + 1) / 2;
    g->vk2 = g->Cin2 * T + 16;
}

int wino_applies(const dconv_shape *c) {
    return c->KH == 3 && c->KW == 3 && c->s == 1 && c->p == 1 && c->Ho == c->H && c->Wo == c->W &&
           c->Cin >= MIN_CIN && c->B * c->Cin * c->H * c->W < INT32_MAX &&
           c->B * c->Cout * c->H * c->W < INT32_MAX;
}
int wino_available(const dconv_shape *c) {
    return wino_applies(c) && df_conv_winograd();
}

/* per thread: V [36][vk], M [36][mk], V2 [36][vk2] (bf16 pairs) */
static size_t per_thread(const wgeom *g) {
    return (size_t)(36 * (g->vk + g->mk + g->vk2));
}
/* U [36][Coutp / RB][Cin][RB], then U2 [36][Coutp / RB][Cin2][RB] (bf16 pairs) */
static size_t u_floats(const dconv_shape *c, const wgeom *g) {
    return (((size_t)(36 * g->Coutp * c->Cin) + 15) & ~(size_t)15) +
           (((size_t)(36 * g->Coutp * g->Cin2) + 15) & ~(size_t)15);
}
size_t wino_scratch_floats(const dconv_shape *c, int nthreads) {
    wgeom g;
    wgeom_of(c, &g);
    return u_floats(c, &g) + (size_t)nthreads * per_thread(&g) + 16;
}

/* u[a][r] = (G g)[a] for RB lanes r, g = (g0, g1, g2) */
static inline void g_cols(const float *g0, const float *g1, const float *g2, float u[6][RB]) {
    for (int r = 0; r < RB; r++) {
        u[0][r] = g0[r] * 0.25f;
        u[1][r] = -(g0[r] + g1[r] + g2[r]) * (1.0f / 6);
        u[2][r] = -(g0[r] - g1[r] + g2[r]) * (1.0f / 6);
        u[3][r] = g0[r] * (1.0f / 24) + g1[r] * (1.0f / 12) + g2[r] * (1.0f / 6);
        u[4][r] = g0[r] * (1.0f / 24) - g1[r] * (1.0f / 12) + g2[r] * (1.0f / 6);
        u[5][r] = g2[r];
    }
}

/* U [36][Coutp / RB][Cin][RB] = G g GT per (co, ci), zeros for co >= Cout.
 * g = w[co][ci] (flip = 0) or w[ci][co] rotated 180 degrees (flip = 1).
 * The RB output channels of a block are the vector lanes. */
typedef struct {
    const dconv_shape *c;
    const float *w;
    float *U;
    int64_t Coutp;
    int flip;
} wt_job;
/* blocks [b0, b1) of RB output channels */
static void transform_weight_blocks(void *ctx, int64_t b0, int64_t b1, int worker) {
    const wt_job *j = ctx;
    const float *w = j->w;
    float *U = j->U;
    int flip = j->flip;
    int64_t Cin = j->c->Cin, Cout = j->c->Cout, nblk = j->Coutp / RB;
    (void)worker;
    for (int64_t cb = b0; cb < b1; cb++)
        for (int64_t ci = 0; ci < Cin; ci++) {
            float g[9][RB], t[3][6][RB], u[6][RB]; /* g[kh * 3 + kw][r], t[kw][a][r] */
            for (int k = 0; k < 9; k++)
                for (int r = 0; r < RB; r++) {
                    int64_t co = cb * RB + r;
                    g[k][r] = co >= Cout ? 0.0f
                              : flip     ? w[(ci * Cout + co) * 9 + 8 - k]
                                         : w[(co * Cin + ci) * 9 + k];
                }
            for (int j = 0; j < 3; j++) g_cols(g[j], g[3 + j], g[6 + j], t[j]);
            for (int a = 0; a < 6; a++) {
                g_cols(t[0][a], t[1][a], t[2][a], u);
                for (int b = 0; b < 6; b++)
                    memcpy(U + (((a * 6 + b) * nblk + cb) * Cin + ci) * RB, u[b], sizeof u[b]);
            }
        }
}
static void transform_weights(const dconv_shape *c, const float *w, int flip, int64_t Coutp,
                              float *U) {
    df_parallel_for(Coutp / RB, 1, transform_weight_blocks, &(wt_job){c, w, U, Coutp, flip});
}

/* U2[k][cb][ci2][r] = the pair (U[k][cb][2 ci2][r], U[k][cb][2 ci2 + 1][r]),
 * zero past Cin; rows [k0, k1) of k * nblk + cb */
typedef struct {
    const float *U;
    uint32_t *U2;
    int64_t Cin, Cin2;
} u2_job;
static void pair_weight_rows(void *ctx, int64_t k0, int64_t k1, int worker) {
    const u2_job *j = ctx;
    (void)worker;
    for (int64_t k = k0; k < k1; k++)
        for (int64_t c2 = 0; c2 < j->Cin2; c2++) {
            const float *lo = j->U + (k * j->Cin + 2 * c2) * RB;
            bf16_pack8(lo, 2 * c2 + 1 < j->Cin ? lo + RB : NULL, j->U2 + (k * j->Cin2 + c2) * RB);
        }
}

/* r = AT m (6 -> 4 values) */
static inline void at6(const __m512 m[6], __m512 r[4]) {
    const __m512 two = _mm512_set1_ps(2), four = _mm512_set1_ps(4), eight = _mm512_set1_ps(8);
    __m512 s12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
    __m512 s34 = _mm512_add_ps(m[3], m[4]), d34 = _mm512_sub_ps(m[3], m[4]);
    r[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
    r[1] = _mm512_fmadd_ps(two, d34, d12);
    r[2] = _mm512_fmadd_ps(four, s34, s12);
    r[3] = _mm512_add_ps(_mm512_fmadd_ps(eight, d34, d12), m[5]);
}

/* Where the 16 tiles t0 .. t0 + 15 of a group are: their patches (offsets
 * from channel 0 of x: one row up, one column left of the first output),
 * per lane the offset of its first output in channel 0 of y and its top
 * output row (-64 for lanes beyond the last tile) and left column. */
typedef struct {
    patch16 in;
    int32_t out[NT], row[NT], col[NT];
} tile_group;

static void group_of(const dconv_shape *c, const wgeom *g, int64_t t0, tile_group *tg) {
    for (int l = 0; l < NT; l++) {
        int64_t t = t0 + l, b = t / g->ntile, r = t % g->ntile;
        int64_t oh = r / g->ntw * 4, ow = r % g->ntw * 4;
        int ok = t < g->tiles;
        tg->row[l] = ok ? (int32_t)oh : -64;
        tg->col[l] = (int32_t)ow;
        tg->in.off[l] = ok ? (int32_t)(b * c->Cin * c->H * c->W + (oh - 1) * c->W + ow - 1) : 0;
        tg->out[l] = ok ? (int32_t)(b * c->Cout * c->Ho * c->Wo + oh * c->Wo + ow) : 0;
        unsigned cols = 0;
        for (int j = 0; j < 6; j++) cols |= (unsigned)(ow - 1 + j >= 0 && ow - 1 + j < c->W) << j;
        for (int i = 0; i < 6; i++)
            tg->in.mask[i][l] = ok && oh - 1 + i >= 0 && oh - 1 + i < c->H ? (__mmask8)cols : 0;
    }
}

/* y of channel co for a group from its 36 products m[k] = M[k][r][v0 ..]
 * (M is [36][RB][T]): AT m A, plus bias, stored row by row per tile. */
static void output_group(const dconv_shape *c, const float *M, int64_t plane, const tile_group *tg,
                         int64_t co, const dconv_epilogue *ep, float *y) {
    float bias = ep && ep->bias ? ep->bias[co] : 0.0f;
    const float *add = ep ? ep->add : NULL;
    int64_t HW = c->Ho * c->Wo;
    __m512 o[6][4], v[16];
    for (int k = 0; k < 6; k++) {
        __m512 m[6];
        for (int l = 0; l < 6; l++) m[l] = _mm512_loadu_ps(M + (k * 6 + l) * plane);
        at6(m, o[k]);
    }
    __m512 bv = _mm512_set1_ps(bias);
    for (int q = 0; q < 4; q++) {
        __m512 col[6], r[4];
        for (int k = 0; k < 6; k++) col[k] = o[k][q];
        at6(col, r);
        for (int p = 0; p < 4; p++) v[p * 4 + q] = _mm512_add_ps(r[p], bv);
    }
    transpose16(v); /* v[lane] = that tile's 4 x 4 outputs, row-major */
    float out[NT][16] __attribute__((aligned(64)));
    for (int l = 0; l < NT; l++) _mm512_store_ps(out[l], v[l]);
    for (int l = 0; l < NT; l++) {
        if (tg->row[l] < 0) break;
        int64_t nr = c->Ho - tg->row[l], nc = c->Wo - tg->col[l];
        __mmask8 m = (__mmask8)((1u << (nc < 4 ? nc : 4)) - 1);
        /* the epilogue's addend: one value for the tile's image and channel, or a tensor */
        __m128 a1 = _mm_setzero_ps();
        if (add && ep->per_channel)
            a1 = _mm_set1_ps(add[tg->out[l] / (c->Cout * HW) * c->Cout + co]);
        for (int p = 0; p < 4 && p < nr; p++) {
            int64_t o = co * HW + tg->out[l] + p * c->Wo;
            __m128 v4 = _mm_load_ps(out[l] + p * 4);
            if (add) v4 = _mm_add_ps(v4, ep->per_channel ? a1 : _mm_maskz_loadu_ps(m, add + o));
            _mm_mask_storeu_ps(y + o, m, v4);
        }
    }
}

/* One piece: tiles p T .. p T + T - 1. V [36][Cin][T], M [36][RB][T];
 * with U2 (bf16), V2 [36][Cin2][T] pairs. */
static void run_piece(const dconv_shape *c, const wgeom *g, const float *x, const float *U,
                      const uint32_t *U2, const dconv_epilogue *ep, float *y, int64_t p, float *V,
                      float *M, uint32_t *V2) {
    int64_t t0 = p * g->T, n = g->tiles - t0 < g->T ? g->tiles - t0 : g->T;
    int64_t ng = (n + NT - 1) / NT, nblk = g->Coutp / RB;
    tile_group tg[MAX_GROUPS];
    for (int64_t q = 0; q < ng; q++) group_of(c, g, t0 + q * NT, &tg[q]);
    /* channel by channel: the piece's rows of x are read in order */
    for (int64_t ci = 0; ci < c->Cin; ci++)
        for (int64_t q = 0; q < ng; q++)
            transform_patches(x + ci * c->H * c->W, c->W, &tg[q].in, g->vk, V + ci * g->T + q * NT);
    bf16_products_fn bf = U2 ? wino_bf16_products() : NULL;
    if (U2) /* the piece's columns as bf16 pairs of channels */
        for (int64_t k = 0; k < 36; k++)
            for (int64_t c2 = 0; c2 < g->Cin2; c2++) {
                const float *lo = V + k * g->vk + 2 * c2 * g->T;
                bf16_pack(lo, 2 * c2 + 1 < c->Cin ? lo + g->T : NULL, ng * NT,
                          V2 + k * g->vk2 + c2 * g->T);
            }
    for (int64_t cb = 0; cb < nblk; cb++) {
        for (int64_t k = 0; k < 36; k++)
            if (U2)
                bf(U2 + (k * nblk + cb) * g->Cin2 * RB, V2 + k * g->vk2, g->Cin2, g->T,
                   M + k * g->mk, g->T, ng, 0);
            else
                products_cols(U + (k * nblk + cb) * c->Cin * RB, V + k * g->vk, c->Cin, g->T,
                              M + k * g->mk, g->T, ng, 0);
        for (int64_t r = 0; r < RB && cb * RB + r < c->Cout; r++) {
            int64_t co = cb * RB + r;
            for (int64_t q = 0; q < ng; q++)
                output_group(c, M + r * g->T + q * NT, g->mk, &tg[q], co, ep, y);
        }
    }
}

typedef struct {
    const dconv_shape *c;
    const wgeom *g;
    const float *x, *U;
    const uint32_t *U2; /* NULL: float32 products */
    const dconv_epilogue *ep;
    float *y, *base;
    size_t per;
} wino_job;
static void wino_pieces(void *ctx, int64_t p0, int64_t p1, int worker) {
    const wino_job *j = ctx;
    float *V = j->base + j->per * (size_t)worker;   // [36][Cin][T]
    float *M = V + 36 * j->g->vk;                   // [36][RB][T]
    uint32_t *V2 = (uint32_t *)(M + 36 * j->g->mk); // [36][Cin2][T] pairs
    for (int64_t p = p0; p < p1; p++)
        run_piece(j->c, j->g, j->x, j->U, j->U2, j->ep, j->y, p, V, M, V2);
}

void wino_run(const dconv_shape *c, const float *x, const float *w, int flip,
              const dconv_epilogue *ep, float *y, float *scratch, int nt, int bf16) {
    (void)nt; /* the scratch holds a piece's buffers per worker */
    wgeom g;
    wgeom_of(c, &g);
    float *U = scratch; // [36][Coutp / RB][Cin][RB]
    transform_weights(c, w, flip, g.Coutp, U);
    uint32_t *U2 = (uint32_t *)(U + (((size_t)(36 * g.Coutp * c->Cin) + 15) & ~(size_t)15));
    if (bf16)
        df_parallel_for(36 * g.Coutp / RB, 1, pair_weight_rows, &(u2_job){U, U2, c->Cin, g.Cin2});
    float *base = scratch + u_floats(c, &g);
    wino_job j = {c, &g, x, U, bf16 ? U2 : NULL, ep, y, base, per_thread(&g)};
    df_parallel_for(g.pieces, 1, wino_pieces, &j);
}

#else /* no AVX-512 (F and VL): the direct kernel's fallback (im2col + GEMM) is used */
int wino_applies(const dconv_shape *c) {
    (void)c;
    return 0;
}
int wino_available(const dconv_shape *c) {
    (void)c;
    return 0;
}
size_t wino_scratch_floats(const dconv_shape *c, int nthreads) {
    (void)c, (void)nthreads;
    return 0;
}
void wino_run(const dconv_shape *c, const float *x, const float *w, int flip,
              const dconv_epilogue *ep, float *y, float *scratch, int nt, int bf16) {
    (void)c, (void)x, (void)w, (void)flip, (void)ep, (void)y, (void)scratch, (void)nt, (void)bf16;
}
#endif
