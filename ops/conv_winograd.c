/* Winograd convolution (see conv_winograd.h): the driver, and the
 * F(4x4, 3x3) tiles, points 0, +-1, +-2, infinity (Lavin & Gray 2015):
 *   BT = [4  0 -5  0 1 0]   G = [ 1/4     0    0 ]   AT = [1 1  1 1  1 0]
 *        [0 -4 -4  1 1 0]       [-1/6 -1/6  -1/6]        [0 1 -1 2 -2 0]
 *        [0  4 -4 -1 1 0]       [-1/6  1/6  -1/6]        [0 1  1 4  4 0]
 *        [0 -2 -1  2 1 0]       [1/24 1/12  1/6 ]        [0 1 -1 8 -8 1]
 *        [0  2 -1 -2 1 0]       [1/24 -1/12 1/6 ]
 *        [0  4  0 -5 0 1]       [ 0     0    1  ]
 * Sixteen tiles share a vector (lane = tile). A piece of T tiles (tiles
 * numbered image by image, row by row) is transformed into V, then for each
 * block of 8 output channels the n n products (36, or 81 for F(7x7, 3x3) in
 * conv_winograd7.c) go to M and are transformed back straight into y. V and
 * M of a piece stay in L2. */
#include "conv_winograd.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The switch (see df_conv_set_winograd): -1 until read from the environment */
static int wino_mode = -1;

void df_conv_set_winograd(int mode) {
    wino_mode = mode == 4 || mode == 7 ? mode : mode != 0;
}
int df_conv_winograd(void) {
    if (wino_mode < 0) {
        const char *e = getenv("DFRUN_WINOGRAD");
        df_conv_set_winograd(!e                ? 1
                             : !strcmp(e, "0") ? 0
                             : !strcmp(e, "4") ? 4
                             : !strcmp(e, "7") ? 7
                                               : 1);
    }
    return wino_mode;
}

#if defined(__AVX512F__) && defined(__AVX512VL__)
#include "conv_winograd_bf16.h"
#include "conv_winograd_impl.h"
#include "conv_pre.h"
#include "parallel.h"

#define PIECE_FLOATS 163840 /* V and M of a piece: 640 KiB (measured best of 384-1280) */
#define MIN_CIN 4           /* fewer input channels: the direct kernel is faster */
#define MAX_GROUPS (PIECE_FLOATS / (36 * (MIN_CIN + RB)) / NT + 1)

/* Coefficients of G for F(4x4, 3x3) (points 0, +-1, +-2, infinity) */
static const double G4[6][3] = {{0.25, 0, 0},
                                {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                {0, 0, 1}};

typedef struct {
    const wino_kind *k;
    int64_t nn;         /* positions per tile: n n */
    int64_t ntw, ntile; /* tiles per row, per image */
    int64_t tiles;      /* all tiles of the batch */
    int64_t T;          /* tiles per piece (a multiple of NT) */
    int64_t pieces, Coutp;
    int64_t vk, mk;  /* floats per position k of V and M: one cache line more than
                        Cin T and RB T, so the streams don't share L1 sets */
    int64_t Cin2;    /* bf16 pairs of input channels: ceil(Cin / 2) */
    int64_t vk2;     /* pairs per position k of V2 (bf16) */
    int64_t uk, uk2; /* floats per position k of U and U2: a cache line more than
                        Coutp Cin (Cin2), else the nn rows written per (cb, ci)
                        fall into one L1 set when that is a multiple of 4 KiB */
    int64_t act;     /* floats of one channel of a piece's images (a fused
                        groupnorm_silu's output goes there): T / ntile + 2 planes */
} wgeom;

/* Tiles of m x m outputs a plane needs */
static int64_t tiles_of(const dconv_shape *c, int m) {
    return ((c->Ho + m - 1) / m) * ((c->Wo + m - 1) / m);
}
/* The tile size: F(7x7, 3x3) takes 81 products per 49 outputs, F(4x4, 3x3)
 * 36 per 16, but F(7,3)'s larger transforms cost more per output and its
 * float32 error is about 30x F(4,3)'s (rms 3-7e-5 of the rms output). It is
 * chosen when its products are at most 0.6 of F(4,3)'s: sides 7, 14 and 21
 * give 0.56, where it was measured 1.3-1.5x faster; at 28 (0.73) single
 * convolutions gained 1.02-1.3x but the whole UNet only 1.01x, not worth
 * the error. With bf16 operands its error would
 * be 40%, so bf16 products are used with F(4,3) tiles only (wino_bf16_for);
 * F(7,3) convolutions stay float32 in bf16 graphs. */
const wino_kind *wino_kind_of(const dconv_shape *c) {
    int mode = df_conv_winograd();
    if (mode == 4) return &wino_f4;
    if (mode == 7) return &wino_f7;
    return 5 * 81 * tiles_of(c, 7) <= 3 * 36 * tiles_of(c, 4) ? &wino_f7 : &wino_f4;
}

static void wgeom_of(const dconv_shape *c, const wino_kind *k, wgeom *g) {
    g->k = k;
    g->nn = k->n * k->n;
    g->ntw = (c->Wo + k->m - 1) / k->m;
    g->ntile = g->ntw * ((c->Ho + k->m - 1) / k->m);
    g->tiles = c->B * g->ntile;
    int64_t T = PIECE_FLOATS / (g->nn * (c->Cin + RB)) / NT * NT;
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
    g->uk = ((g->Coutp * c->Cin + 15) & ~(int64_t)15) + 16;
    g->uk2 = ((g->Coutp * g->Cin2 + 15) & ~(int64_t)15) + 16;
    g->act = ((T / g->ntile + 2) * c->H * c->W + 15) & ~(int64_t)15;
}

int wino_bf16_for(const wino_kind *k, int bf16) {
    return bf16 && k == &wino_f4;
}
int wino_tile(const dconv_shape *c) {
    return wino_applies(c) && df_conv_winograd() ? wino_kind_of(c)->m : 0;
}

int wino_applies(const dconv_shape *c) {
    return c->KH == 3 && c->KW == 3 && c->s == 1 && c->p == 1 && c->Ho == c->H && c->Wo == c->W &&
           c->Cin >= MIN_CIN && c->B * c->Cin * c->H * c->W < INT32_MAX &&
           c->B * c->Cout * c->H * c->W < INT32_MAX;
}
int wino_available(const dconv_shape *c) {
    return wino_applies(c) && df_conv_winograd();
}

/* per thread: V [nn][vk], M [nn][mk], V2 [nn][vk2] (bf16 pairs), act */
static size_t per_thread(const wgeom *g) {
    return (size_t)(g->nn * (g->vk + g->mk + g->vk2) + g->act);
}
/* U [nn][uk] ([Coutp / RB][Cin][RB] each), then U2 [nn][uk2] ([Coutp / RB][Cin2][RB]
 * bf16 pairs) */
static size_t u_floats(const wgeom *g) {
    return (size_t)(g->nn * (g->uk + g->uk2));
}
size_t wino_scratch_floats(const dconv_shape *c, int nthreads) {
    size_t most = 0; /* either tile size */
    for (int i = 0; i < WINO_KINDS; i++) {
        wgeom g;
        wgeom_of(c, wino_kinds[i], &g);
        size_t n = u_floats(&g) + (size_t)nthreads * per_thread(&g) + 16;
        if (n > most) most = n;
    }
    return most;
}

/* U [nn][Coutp / RB][Cin][RB] = G g GT per (co, ci), zeros for co >= Cout,
 * in float64. g = w[co][ci] (flip = 0) or w[ci][co] rotated 180 degrees
 * (flip = 1). The RB output channels of a block are the vector lanes. */
typedef struct {
    const dconv_shape *c;
    const wgeom *g;
    const float *w;
    float *U;
    int flip;
} wt_job;
/* blocks [b0, b1) of RB output channels; the RB lanes in one __m512d */
static void transform_weight_blocks(void *ctx, int64_t b0, int64_t b1, int worker) {
    const wt_job *j = ctx;
    const double *G = j->g->k->G; /* [n][3] */
    int n = j->g->k->n;
    int64_t Cin = j->c->Cin, Cout = j->c->Cout;
    (void)worker;
    for (int64_t cb = b0; cb < b1; cb++)
        for (int64_t ci = 0; ci < Cin; ci++) {
            double gs[9][RB] __attribute__((aligned(64))); /* [kh * 3 + kw][r] */
            for (int r = 0; r < RB; r++) {
                int64_t co = cb * RB + r;
                for (int k = 0; k < 9; k++)
                    gs[k][r] = co >= Cout ? 0.0
                               : j->flip  ? j->w[(ci * Cout + co) * 9 + 8 - k]
                                          : j->w[(co * Cin + ci) * 9 + k];
            }
            __m512d g[9], t[3][9]; /* t[kw][a] = (G g)[a][kw] */
            for (int k = 0; k < 9; k++) g[k] = _mm512_load_pd(gs[k]);
            for (int a = 0; a < n; a++)
                for (int kw = 0; kw < 3; kw++)
                    t[kw][a] = _mm512_fmadd_pd(
                        _mm512_set1_pd(G[a * 3 + 2]), g[6 + kw],
                        _mm512_fmadd_pd(_mm512_set1_pd(G[a * 3 + 1]), g[3 + kw],
                                        _mm512_mul_pd(_mm512_set1_pd(G[a * 3]), g[kw])));
            for (int a = 0; a < n; a++)
                for (int b = 0; b < n; b++) {
                    __m512d u = _mm512_fmadd_pd(
                        _mm512_set1_pd(G[b * 3 + 2]), t[2][a],
                        _mm512_fmadd_pd(_mm512_set1_pd(G[b * 3 + 1]), t[1][a],
                                        _mm512_mul_pd(_mm512_set1_pd(G[b * 3]), t[0][a])));
                    _mm256_storeu_ps(j->U + (a * n + b) * j->g->uk + (cb * Cin + ci) * RB,
                                     _mm512_cvtpd_ps(u));
                }
        }
}

/* U2[k][cb][ci2][r] = the pair (U[k][cb][2 ci2][r], U[k][cb][2 ci2 + 1][r]),
 * zero past Cin; rows [q0, q1) of q = k * nblk + cb */
typedef struct {
    const wgeom *g;
    const float *U;
    uint32_t *U2;
    int64_t Cin;
} u2_job;
static void pair_weight_rows(void *ctx, int64_t q0, int64_t q1, int worker) {
    const u2_job *j = ctx;
    int64_t nblk = j->g->Coutp / RB, Cin2 = j->g->Cin2;
    (void)worker;
    for (int64_t q = q0; q < q1; q++) {
        const float *u = j->U + q / nblk * j->g->uk + q % nblk * j->Cin * RB;
        uint32_t *u2 = j->U2 + q / nblk * j->g->uk2 + q % nblk * Cin2 * RB;
        for (int64_t c2 = 0; c2 < Cin2; c2++) {
            const float *lo = u + 2 * c2 * RB;
            bf16_pack8(lo, 2 * c2 + 1 < j->Cin ? lo + RB : NULL, u2 + c2 * RB);
        }
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

/* The group of tiles t0 .. t0 + 15; patch offsets from channel 0 of image b0,
 * images istride floats apart */
static void group_of(const dconv_shape *c, const wgeom *g, int64_t t0, int64_t b0, int64_t istride,
                     tile_group *tg) {
    int m = g->k->m, n = g->k->n;
    for (int l = 0; l < NT; l++) {
        int64_t t = t0 + l, b = t / g->ntile, r = t % g->ntile;
        int64_t oh = r / g->ntw * m, ow = r % g->ntw * m;
        int ok = t < g->tiles;
        int64_t nr = c->Ho - oh, nc = c->Wo - ow;
        tg->rows[l] = (int8_t)(ok ? (nr < m ? nr : m) : 0);
        tg->cols[l] = (__mmask8)((1u << (nc < m ? nc : m)) - 1);
        tg->img[l] = ok ? (int32_t)b : 0;
        tg->in.off[l] = ok ? (int32_t)((b - b0) * istride + (oh - 1) * c->W + ow - 1) : 0;
        tg->out[l] = ok ? (int32_t)(b * c->Cout * c->Ho * c->Wo + oh * c->Wo + ow) : 0;
        unsigned cols = 0;
        for (int j = 0; j < n; j++) cols |= (unsigned)(ow - 1 + j >= 0 && ow - 1 + j < c->W) << j;
        for (int i = 0; i < n; i++)
            tg->in.mask[i][l] = ok && oh - 1 + i >= 0 && oh - 1 + i < c->H ? (__mmask16)cols : 0;
    }
}

/* F(4x4, 3x3): y of channel co for a group from its 36 products m[k] =
 * M[k * plane ..]: AT m A, plus bias, stored row by row per tile. */
static void output4(const dconv_shape *c, const float *M, int64_t plane, const tile_group *tg,
                    int64_t co, const dconv_epilogue *ep, float *y) {
    float bias = ep && ep->bias ? ep->bias[co] : 0.0f;
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
    wino_dst d = wino_dst_of(c, co, ep, y);
    for (int l = 0; l < NT && tg->rows[l]; l++) {
        __m256 a1 = wino_lane_addend(&d, tg, l);
        for (int p = 0; p < tg->rows[l]; p++)
            wino_put(&d, tg->out[l] + p * c->Wo, tg->cols[l],
                     _mm256_castps128_ps256(_mm_load_ps(out[l] + p * 4)), a1);
    }
}

static void input4(const float *base, int64_t W, const patch16 *p, int64_t plane, float *V) {
    transform_patches(base, W, p, plane, V);
}

const wino_kind wino_f4 = {4, 6, &G4[0][0], input4, output4, wino_gy4};
const wino_kind *const wino_kinds[WINO_KINDS] = {&wino_f4, &wino_f7};

/* act [images b0 ..][H][W] = pre of channel ci of x, in the rows that the
 * patches of tiles t0 .. t0 + n - 1 read */
static void pre_channel(const dconv_shape *c, const wgeom *g, const conv_pre *pre, const float *x,
                        int64_t ci, int64_t t0, int64_t n, float *act) {
    int64_t HW = c->H * c->W, b0 = t0 / g->ntile, r0, r1;
    for (int64_t b = b0; b <= (t0 + n - 1) / g->ntile; b++) {
        wino_tile_rows(b, t0, n, g->ntile, g->ntw, g->k->m, g->k->n, c->H, &r0, &r1);
        conv_pre_rows(pre, x, b, ci, r0, r1, c->H, c->W, act + (b - b0) * HW + r0 * c->W);
    }
}

/* One piece: tiles p T .. p T + T - 1. V [nn][Cin][T], M [nn][RB][T];
 * with U2 (bf16), V2 [nn][Cin2][T] pairs; with pre, act [g->act]. */
static void run_piece(const dconv_shape *c, const wgeom *g, const float *x, const conv_pre *pre,
                      const float *U, const uint32_t *U2, const dconv_epilogue *ep, float *y,
                      int64_t p, float *V, float *M, uint32_t *V2, float *act) {
    int64_t t0 = p * g->T, n = g->tiles - t0 < g->T ? g->tiles - t0 : g->T;
    int64_t ng = (n + NT - 1) / NT, nblk = g->Coutp / RB, nn = g->nn, HW = c->H * c->W;
    tile_group tg[MAX_GROUPS];
    for (int64_t q = 0; q < ng; q++) /* with pre, patches are read from act */
        group_of(c, g, t0 + q * NT, pre ? t0 / g->ntile : 0, pre ? HW : c->Cin * HW, &tg[q]);
    /* channel by channel: the piece's rows of x are read in order */
    for (int64_t ci = 0; ci < c->Cin; ci++) {
        if (pre) pre_channel(c, g, pre, x, ci, t0, n, act);
        const float *base = pre ? act : x + ci * HW;
        for (int64_t q = 0; q < ng; q++)
            g->k->input(base, c->W, &tg[q].in, g->vk, V + ci * g->T + q * NT);
    }
    bf16_products_fn bf = U2 ? wino_bf16_products() : NULL;
    if (U2) /* the piece's columns as bf16 pairs of channels */
        for (int64_t k = 0; k < nn; k++)
            for (int64_t c2 = 0; c2 < g->Cin2; c2++) {
                const float *lo = V + k * g->vk + 2 * c2 * g->T;
                bf16_pack(lo, 2 * c2 + 1 < c->Cin ? lo + g->T : NULL, ng * NT,
                          V2 + k * g->vk2 + c2 * g->T);
            }
    for (int64_t cb = 0; cb < nblk; cb++) {
        for (int64_t k = 0; k < nn; k++)
            if (U2)
                bf(U2 + k * g->uk2 + cb * g->Cin2 * RB, V2 + k * g->vk2, g->Cin2, g->T,
                   M + k * g->mk, g->T, ng, 0);
            else
                products_cols(U + k * g->uk + cb * c->Cin * RB, V + k * g->vk, c->Cin, g->T,
                              M + k * g->mk, g->T, ng, 0);
        for (int64_t r = 0; r < RB && cb * RB + r < c->Cout; r++) {
            int64_t co = cb * RB + r;
            for (int64_t q = 0; q < ng; q++)
                g->k->output(c, M + r * g->T + q * NT, g->mk, &tg[q], co, ep, y);
        }
    }
}

typedef struct {
    const dconv_shape *c;
    const wgeom *g;
    const float *x, *U;
    const conv_pre *pre;
    const uint32_t *U2; /* NULL: float32 products */
    const dconv_epilogue *ep;
    float *y, *base;
    size_t per;
} wino_job;
static void wino_pieces(void *ctx, int64_t p0, int64_t p1, int worker) {
    const wino_job *j = ctx;
    float *V = j->base + j->per * (size_t)worker;         // [nn][Cin][T]
    float *M = V + j->g->nn * j->g->vk;                   // [nn][RB][T]
    uint32_t *V2 = (uint32_t *)(M + j->g->nn * j->g->mk); // [nn][Cin2][T] pairs
    float *act = (float *)(V2 + j->g->nn * j->g->vk2);    // [T / ntile + 2][H][W]
    for (int64_t p = p0; p < p1; p++)
        run_piece(j->c, j->g, j->x, j->pre, j->U, j->U2, j->ep, j->y, p, V, M, V2, act);
}

static _Atomic long n_transforms;
long wino_weight_transforms(void) {
    return atomic_load(&n_transforms);
}

/* A cache slot's block: this header, the weights U came from, then U and U2 */
typedef struct {
    size_t nw, nu; /* floats of w and of U + U2 */
    const wino_kind *k;
    int flip, bf16;
} ucache;
#define UCACHE_HDR 64 /* bytes before w (U stays 64-aligned) */

/* U and U2 for w: kept in *cache when w is what they were made from (*fresh =
 * 0), else a new block there to make them in (*fresh = 1); NULL when there
 * is no slot or no memory (then they are made in the scratch). */
static float *kept_u(void **cache, const dconv_shape *c, const wgeom *g, const float *w, int flip,
                     int bf16, int *fresh) {
    size_t nw = (size_t)(c->Cout * c->Cin * 9), nu = u_floats(g), nwp = (nw + 15) & ~(size_t)15;
    *fresh = 1;
    if (!cache) return NULL;
    ucache *h = *cache;
    float *kw = h ? (float *)((char *)h + UCACHE_HDR) : NULL;
    if (h && h->nw == nw && h->nu == nu && h->k == g->k && h->flip == flip && h->bf16 == bf16 &&
        !memcmp(kw, w, nw * 4)) {
        *fresh = 0;
        return kw + nwp;
    }
    free(h);
    *cache = h = aligned_alloc(64, UCACHE_HDR + (nwp + nu) * 4);
    if (!h) return NULL;
    *h = (ucache){nw, nu, g->k, flip, bf16};
    kw = (float *)((char *)h + UCACHE_HDR);
    memcpy(kw, w, nw * 4);
    return kw + nwp;
}

void wino_run(const dconv_shape *c, const float *x, const conv_pre *pre, const float *w, int flip,
              const dconv_epilogue *ep, float *y, float *scratch, int nt, int bf16, void **cache) {
    (void)nt; /* the scratch holds a piece's buffers per worker */
    wgeom g;
    wgeom_of(c, wino_kind_of(c), &g);
    bf16 = wino_bf16_for(g.k, bf16);
    int fresh;
    float *U = kept_u(cache, c, &g, w, flip, bf16, &fresh); // [nn][uk]
    if (!U) U = scratch;
    uint32_t *U2 = (uint32_t *)(U + g.nn * g.uk);
    if (fresh) {
        atomic_fetch_add(&n_transforms, 1);
        df_parallel_for(g.Coutp / RB, 1, transform_weight_blocks, &(wt_job){c, &g, w, U, flip});
        if (bf16)
            df_parallel_for(g.nn * g.Coutp / RB, 1, pair_weight_rows, &(u2_job){&g, U, U2, c->Cin});
    }
    float *base = scratch + u_floats(&g);
    wino_job j = {c, &g, x, U, pre, bf16 ? U2 : NULL, ep, y, base, per_thread(&g)};
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
void wino_run(const dconv_shape *c, const float *x, const struct conv_pre *pre, const float *w,
              int flip, const dconv_epilogue *ep, float *y, float *scratch, int nt, int bf16,
              void **cache) {
    (void)c, (void)x, (void)w, (void)flip, (void)ep, (void)y, (void)scratch, (void)nt, (void)bf16;
    (void)cache, (void)pre;
}
long wino_weight_transforms(void) {
    return 0;
}
int wino_tile(const dconv_shape *c) {
    (void)c;
    return 0;
}
#endif
