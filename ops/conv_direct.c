/* Direct convolution with AVX-512 register tiles (see conv_direct.h).
 * A tile is 1 or 2 groups of 16 output channels x RB output pixels of one
 * row; for each tap l = (ci, kh, kw) of the reduction it loads the weight
 * vectors once and broadcasts RB input values at x + off[l] + r * s:
 * 2 RB FMAs for RB + 2 loads. The tap offsets come from a table built once
 * per call, so the reduction is one flat loop. */
#include "conv_direct.h"
#include <string.h>

#if defined(__AVX512F__)
#include "parallel.h"
#include "simd16.h"

#define MAX_RB 14
#define GROUP 32

int dconv_available(const dconv_shape *c) {
    return c->KH * c->KW > 1 && c->Wo >= 1 && c->Ho >= 1;
}

static int64_t groups_of_n(int64_t n) {
    return (n + GROUP - 1) / GROUP;
}
static int64_t groups_of(const dconv_shape *c) {
    return groups_of_n(c->Cout);
}
static int64_t slab_width(int64_t Wo, int64_t KW, int64_t s) {
    return (Wo - 1) * s + KW;
}
/* A thread's slab holds the input rows of a block of output rows: at most
 * SLAB_BUDGET floats (or the rows of one output row when even that is larger). */
#define SLAB_BUDGET (96 * 1024)
static int64_t block_cap(int64_t per_row, int64_t fixed, int64_t rows) {
    int64_t cap = (SLAB_BUDGET / per_row - fixed);
    if (cap > rows) cap = rows;
    return cap < 1 ? 1 : cap;
}
/* output rows per block in the forward slabs (input rows (hb - 1) s + KH) */
static int64_t max_block_rows(int64_t Cin, int64_t KH, int64_t Ho, int64_t Wn, int64_t s) {
    return block_cap(Cin * Wn * s, KH - s, Ho);
}
static size_t slab_floats(int64_t Cin, int64_t KH, int64_t Ho, int64_t Wo, int64_t KW, int64_t s) {
    int64_t Wn = slab_width(Wo, KW, s), hb = max_block_rows(Cin, KH, Ho, Wn, s);
    return (size_t)(Cin * ((hb - 1) * s + KH) * Wn) + 64;
}
/* floats of an int32 table of n entries, rounded to 64 bytes */
static size_t table_floats(int64_t n) {
    return ((size_t)n + 15) & ~(size_t)15;
}

size_t dconv_scratch_floats(const dconv_shape *c, int nthreads) {
    return (size_t)(groups_of(c) * GROUP * c->Cin * c->KH * c->KW) /* packed weights */
           + table_floats(c->Cin * c->KH * c->KW)                  /* tap offsets */
           + (size_t)nthreads * slab_floats(c->Cin, c->KH, c->Ho, c->Wo, c->KW, c->s) + 64;
}

/* acc[g][r] += w[l][g] * x[off[l] + r * S] over the L taps; tmp[r][NB * 16].
 * S = 0: the stride s given at run time. */
#define DEFINE_TILE(NB, RB, S)                                                                     \
    static void tile_##NB##_##RB##_##S(const float *xp, const int32_t *off, int64_t L, int64_t s,  \
                                       const float *wp, float *tmp) {                              \
        __m512 acc[NB][RB];                                                                        \
        const int64_t st = S ? S : s;                                                              \
        for (int g = 0; g < NB; g++)                                                               \
            for (int r = 0; r < RB; r++) acc[g][r] = _mm512_setzero_ps();                          \
        for (int64_t l = 0; l < L; l++) {                                                          \
            const float *xr = xp + off[l];                                                         \
            __m512 w0 = _mm512_loadu_ps(wp + l * GROUP);                                           \
            __m512 w1 = NB > 1 ? _mm512_loadu_ps(wp + l * GROUP + 16) : w0;                        \
            _Pragma("GCC unroll 16") for (int r = 0; r < RB; r++) {                                \
                __m512 xv = _mm512_set1_ps(xr[r * st]);                                            \
                acc[0][r] = _mm512_fmadd_ps(w0, xv, acc[0][r]);                                    \
                if (NB > 1) acc[NB - 1][r] = _mm512_fmadd_ps(w1, xv, acc[NB - 1][r]);              \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < RB; r++)                                                               \
            for (int g = 0; g < NB; g++) _mm512_storeu_ps(tmp + r * NB * 16 + g * 16, acc[g][r]);  \
    }

#define DEFINE_TILES(NB, S)                                                                        \
    DEFINE_TILE(NB, 1, S)                                                                          \
    DEFINE_TILE(NB, 2, S)                                                                          \
    DEFINE_TILE(NB, 3, S)                                                                          \
    DEFINE_TILE(NB, 4, S)                                                                          \
    DEFINE_TILE(NB, 5, S)                                                                          \
    DEFINE_TILE(NB, 6, S)                                                                          \
    DEFINE_TILE(NB, 7, S)                                                                          \
    DEFINE_TILE(NB, 8, S)                                                                          \
    DEFINE_TILE(NB, 9, S)                                                                          \
    DEFINE_TILE(NB, 10, S)                                                                         \
    DEFINE_TILE(NB, 11, S)                                                                         \
    DEFINE_TILE(NB, 12, S)                                                                         \
    DEFINE_TILE(NB, 13, S)                                                                         \
    DEFINE_TILE(NB, 14, S)
DEFINE_TILES(1, 1)
DEFINE_TILES(2, 1)
DEFINE_TILES(1, 2)
DEFINE_TILES(2, 2)
DEFINE_TILES(1, 0)
DEFINE_TILES(2, 0)

typedef void (*tile_fn)(const float *, const int32_t *, int64_t, int64_t, const float *, float *);
#define TILE_ROW(NB, S)                                                                            \
    {                                                                                              \
        NULL, tile_##NB##_1_##S, tile_##NB##_2_##S, tile_##NB##_3_##S, tile_##NB##_4_##S,          \
            tile_##NB##_5_##S, tile_##NB##_6_##S, tile_##NB##_7_##S, tile_##NB##_8_##S,            \
            tile_##NB##_9_##S, tile_##NB##_10_##S, tile_##NB##_11_##S, tile_##NB##_12_##S,         \
            tile_##NB##_13_##S, tile_##NB##_14_##S                                                 \
    }
/* [stride 1, stride 2, any stride][NB - 1][RB] */
static const tile_fn tile_table[3][2][MAX_RB + 1] = {
    {TILE_ROW(1, 1), TILE_ROW(2, 1)},
    {TILE_ROW(1, 2), TILE_ROW(2, 2)},
    {TILE_ROW(1, 0), TILE_ROW(2, 0)},
};
static const tile_fn *tiles_for(int64_t s, int nb) {
    return tile_table[s == 1 ? 0 : s == 2 ? 1 : 2][nb - 1];
}

/* off[(ci * KH + kh) * KW + kw] = ci * RS + kh * Wn + kw */
static void tap_offsets(int64_t Cin, int64_t KH, int64_t KW, int64_t RS, int64_t Wn, int32_t *off) {
    for (int64_t ci = 0; ci < Cin; ci++)
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++)
                off[(ci * KH + kh) * KW + kw] = (int32_t)(ci * RS + kh * Wn + kw);
}

/* d[0, Wn) = zeros, then x row [0, W) placed at column pl (clipped to Wn) */
static inline void fill_row(float *d, int64_t Wn, const float *xr, int64_t W, int64_t pl) {
    for (int64_t k = 0; k < Wn; k += 16)
        _mm512_mask_storeu_ps(d + k, lanes(Wn - k), _mm512_setzero_ps());
    if (!xr) return;
    int64_t lo = pl < Wn ? pl : Wn, n = W < Wn - lo ? W : Wn - lo;
    for (int64_t k = 0; k < n; k += 16) {
        __mmask16 m = lanes(n - k);
        _mm512_mask_storeu_ps(d + lo + k, m, _mm512_maskz_loadu_ps(m, xr + k));
    }
}

/* Output placement: y[b][co][oh * ys + ya][ow * ys + yb] in planes of YH x YW. */
typedef struct {
    int64_t YH, YW, ys, ya, yb;
} placement;

/* The input of the tiles: x [B][Cin][H][W] read through slabs
 * [Cin][rows][Wn] zero-padded by pt rows above and pl columns on the left
 * (and zeros wherever a window leaves x), built per block of output rows in
 * a thread's scratch: the padding never touches the whole tensor. */
typedef struct {
    const float *x;
    int64_t B, Cin, H, W, pt, pl;
} tile_src;

/* slab [Cin][rows] rows of Wn (channel stride RS): input rows r0 + k */
static void fill_slab(const tile_src *src, int64_t b, int64_t r0, int64_t rows, int64_t RS,
                      int64_t Wn, float *slab) {
    for (int64_t ci = 0; ci < src->Cin; ci++)
        for (int64_t k = 0; k < rows; k++) {
            int64_t ih = r0 + k;
            const float *xr = ih >= 0 && ih < src->H
                                  ? src->x + ((b * src->Cin + ci) * src->H + ih) * src->W
                                  : NULL;
            fill_row(slab + ci * RS + k * Wn, Wn, xr, src->W, src->pl);
        }
}

/* tmp [n][nb * 16] (pixel-major) -> nco channel rows of n pixels, channel j
 * at y0 + j * plane, pixel r at r * ys; plus bias[j] when bias is given,
 * then add0[j * plane + r] (ys = 1) or, per_channel, add0[j] when add0 is */
static inline void store_tile(const float *tmp, int nb, int64_t n, int64_t nco, const float *bias,
                              const float *add0, int per_channel, float *y0, int64_t plane,
                              int64_t ys) {
    __mmask16 mk = lanes(n);
    for (int g = 0; g < nb; g++) {
        __m512 v[16];
        for (int r = 0; r < 16; r++)
            v[r] = r < n ? _mm512_loadu_ps(tmp + r * nb * 16 + g * 16) : _mm512_setzero_ps();
        transpose16(v);
        int64_t m = nco - g * 16 < 16 ? nco - g * 16 : 16;
        for (int j = 0; j < m; j++) {
            float *yo = y0 + (g * 16 + j) * plane;
            __m512 o = bias ? _mm512_add_ps(v[j], _mm512_set1_ps(bias[g * 16 + j])) : v[j];
            if (add0)
                o = _mm512_add_ps(o, per_channel
                                         ? _mm512_set1_ps(add0[g * 16 + j])
                                         : _mm512_maskz_loadu_ps(mk, add0 + (g * 16 + j) * plane));
            if (ys == 1) {
                _mm512_mask_storeu_ps(yo, mk, o);
            } else {
                float t[16];
                _mm512_storeu_ps(t, o);
                for (int64_t r = 0; r < n; r++) yo[r * ys] = t[r];
            }
        }
    }
}

typedef struct {
    const tile_src *src;
    const float *wp;
    const dconv_epilogue *ep; /* NULL: none */
    float *y, *slabs;
    const placement *pl;
    const int32_t *off;
    size_t per;
    int64_t Cout, KH, s, Ho, Wo, G, L, rb, plane, Wn, hb, nrb, RS;
} tiles_job;

/* work items [i0, i1): blocks of hb output rows of one image */
static void tiles_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const tiles_job *j = ctx;
    const tile_src *src = j->src;
    const placement *pl = j->pl;
    float *slab = j->slabs + j->per * (size_t)worker;
    for (int64_t it = i0; it < i1; it++) {
        int64_t b = it / j->nrb, oh0 = it % j->nrb * j->hb;
        int64_t nh = j->Ho - oh0 < j->hb ? j->Ho - oh0 : j->hb;
        fill_slab(src, b, oh0 * j->s - src->pt, (nh - 1) * j->s + j->KH, j->RS, j->Wn, slab);
        for (int64_t g = 0; g < j->G; g++) {
            int64_t nco = j->Cout - g * GROUP < GROUP ? j->Cout - g * GROUP : GROUP;
            int nb = nco > 16 ? 2 : 1;
            const tile_fn *tl = tiles_for(j->s, nb);
            const float *wg = j->wp + g * GROUP * j->L;
            for (int64_t oh = oh0; oh < oh0 + nh; oh++)
                for (int64_t ow0 = 0; ow0 < j->Wo; ow0 += j->rb) {
                    float tmp[MAX_RB * GROUP] __attribute__((aligned(64)));
                    int64_t n = ow0 + j->rb <= j->Wo ? j->rb : j->Wo - ow0;
                    tl[n](slab + (oh - oh0) * j->s * j->Wn + ow0 * j->s, j->off, j->L, j->s, wg,
                          tmp);
                    float *y0 = j->y + (b * j->Cout + g * GROUP) * j->plane +
                                (oh * pl->ys + pl->ya) * pl->YW + ow0 * pl->ys + pl->yb;
                    const dconv_epilogue *ep = j->ep;
                    const float *a0 = !ep || !ep->add   ? NULL
                                      : ep->per_channel ? ep->add + b * j->Cout + g * GROUP
                                                        : ep->add + (y0 - j->y);
                    store_tile(tmp, nb, n, nco, ep && ep->bias ? ep->bias + g * GROUP : NULL, a0,
                               ep && ep->per_channel, y0, j->plane, pl->ys);
                }
        }
    }
}

/* y = tiles with packed weights wp [G][Cin][KH][KW][32]; Ho x Wo outputs per
 * plane. Work items are blocks of output rows of one image; each builds the
 * slab of its input rows once and runs every group's tiles over it. off:
 * scratch for the tap table; slabs: per floats a worker, at least
 * Cin * KH * slab_width + 64. */
static void run_tiles(const tile_src *src, const float *wp, int64_t Cout, int64_t KH, int64_t KW,
                      int64_t s, int64_t Ho, int64_t Wo, const dconv_epilogue *ep, float *y,
                      const placement *pl, int32_t *off, float *slabs, size_t per) {
    tiles_job j = {.src = src,
                   .wp = wp,
                   .ep = ep,
                   .y = y,
                   .slabs = slabs,
                   .pl = pl,
                   .off = off,
                   .per = per,
                   .Cout = Cout,
                   .KH = KH,
                   .s = s,
                   .Ho = Ho,
                   .Wo = Wo};
    j.G = (Cout + GROUP - 1) / GROUP, j.L = src->Cin * KH * KW;
    int64_t nblk = (Wo + MAX_RB - 1) / MAX_RB;
    j.rb = (Wo + nblk - 1) / nblk;
    j.plane = pl->YH * pl->YW, j.Wn = slab_width(Wo, KW, s);
    /* rows per block: at least DF_PIECES blocks in all, as many rows as a
     * slab of per floats holds */
    int64_t want = (DF_PIECES + src->B - 1) / src->B; /* blocks per image */
    int64_t hb = (Ho + want - 1) / want;
    int64_t hmax = ((int64_t)((per - 64) / (size_t)(src->Cin * j.Wn)) - KH) / s + 1;
    if (hb > hmax) hb = hmax;
    if (hb < 1) hb = 1;
    j.hb = hb, j.nrb = (Ho + hb - 1) / hb, j.RS = ((hb - 1) * s + KH) * j.Wn;
    tap_offsets(src->Cin, KH, KW, j.RS, j.Wn, off);
    df_parallel_for(src->B * j.nrb, 1, tiles_piece, &j);
}

typedef struct {
    const dconv_shape *c;
    const float *w;
    float *wp;
    int flip;
} pack_job;

/* rows [i0, i1) of (g, ci) of wp [G][Cin][KH][KW][32]; flip: w is
 * [Cin_as_out, Cout_as_in, KH, KW] of the forward conv */
static void pack_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const pack_job *p = ctx;
    const dconv_shape *c = p->c;
    int64_t KK = c->KH * c->KW;
    (void)worker;
    for (int64_t gi = i0; gi < i1; gi++) {
        int64_t g = gi / c->Cin, ci = gi % c->Cin;
        for (int64_t k = 0; k < KK; k++)
            for (int64_t j = 0; j < GROUP; j++) {
                int64_t co = g * GROUP + j;
                float v = 0;
                if (co < c->Cout)
                    v = p->flip ? p->w[(ci * c->Cout + co) * KK + (KK - 1 - k)]
                                : p->w[(co * c->Cin + ci) * KK + k];
                p->wp[(gi * KK + k) * GROUP + j] = v;
            }
    }
}

void dconv_run(const dconv_shape *c, const float *x, const float *w, int flip,
               const dconv_epilogue *ep, float *y, float *scratch, int nt) {
    (void)nt; /* the scratch holds a slab per worker */
    int64_t G = groups_of(c), KK = c->KH * c->KW;
    float *wp = scratch;                                      // [G][Cin][KH][KW][32]
    int32_t *off = (int32_t *)(wp + G * GROUP * c->Cin * KK); // [Cin * KH * KW]
    float *slabs = (float *)off + table_floats(c->Cin * KK);  // per worker
    df_parallel_for(G * c->Cin, DF_PIECE(G * c->Cin), pack_piece, &(pack_job){c, w, wp, flip});
    tile_src src = {x, c->B, c->Cin, c->H, c->W, c->p, c->p};
    placement pl = {c->Ho, c->Wo, 1, 0, 0};
    run_tiles(&src, wp, c->Cout, c->KH, c->KW, c->s, c->Ho, c->Wo, ep, y, &pl, off, slabs,
              slab_floats(c->Cin, c->KH, c->Ho, c->Wo, c->KW, c->s));
}

/* ---- data gradient of a strided conv, by output phase ----
 * With ih = s*i + a, dx[ih] = sum_m W[kh_m] gy[i + q - m], kh_m = r + s*m,
 * r = (a + p) mod s, q = (a + p) div s, m < M = ceil((K - r) / s): for each
 * phase (a, b) a stride-1 correlation of gy with an M_a x M_b sub-kernel,
 * top/left padding M - 1 - q (must be >= 0), written to every s-th pixel. */
typedef struct {
    int64_t r, q, M, pad_lo, cnt; /* cnt: outputs of this phase */
} phase;
static int phase_of(int64_t a, int64_t s, int64_t p, int64_t K, int64_t X, phase *ph) {
    ph->r = (a + p) % s;
    ph->q = (a + p) / s;
    ph->M = K > ph->r ? (K - ph->r + s - 1) / s : 0;
    ph->pad_lo = ph->M - 1 - ph->q;
    ph->cnt = X > a ? (X - a + s - 1) / s : 0;
    return ph->M > 0 && ph->pad_lo >= 0;
}
/* c: the forward conv (x -> y); computes dx from gy */
int dconv_bd_available(const dconv_shape *c) {
    if (c->s < 2 || c->s > 4) return 0;
    for (int64_t a = 0; a < c->s; a++) {
        phase ph, pw;
        if (!phase_of(a, c->s, c->p, c->KH, c->H, &ph) ||
            !phase_of(a, c->s, c->p, c->KW, c->W, &pw))
            return 0;
        if (ph.M > MAX_RB) return 0;
    }
    return 1;
}
/* The s = 2, even-size path: one slab of gy rows serves all four phases.
 * Phase row i of phase a reads gy rows i - pad_lo(a) .. i + q(a); the slab of
 * a block of nh phase rows from i0 holds gy rows i0 - PT .. i0 + nh - 1 + EB
 * and columns -PL .. w2 - 1 + EW. */
typedef struct {
    phase ph[2], pw[2];
    int64_t PT, EB, PL, EW, Wn, hmax;
} bd2_geom;
static int bd2_applies(const dconv_shape *c) {
    return c->s == 2 && c->H % 2 == 0 && c->W % 2 == 0;
}
static void bd2_geometry(const dconv_shape *c, bd2_geom *q) {
    for (int a = 0; a < 2; a++) {
        phase_of(a, 2, c->p, c->KH, c->H, &q->ph[a]);
        phase_of(a, 2, c->p, c->KW, c->W, &q->pw[a]);
    }
#define MAX2(u, v) ((u) > (v) ? (u) : (v))
    q->PT = MAX2(q->ph[0].pad_lo, q->ph[1].pad_lo);
    q->EB = MAX2(q->ph[0].q, q->ph[1].q);
    q->PL = MAX2(q->pw[0].pad_lo, q->pw[1].pad_lo);
    q->EW = MAX2(q->pw[0].q, q->pw[1].q);
#undef MAX2
    q->Wn = c->W / 2 + q->PL + q->EW;
    q->hmax = block_cap(c->Cout * q->Wn, q->PT + q->EB, c->H / 2);
}
static size_t bd2_slab_floats(const dconv_shape *c) {
    bd2_geom q;
    bd2_geometry(c, &q);
    return (size_t)(c->Cout * (q.hmax + q.PT + q.EB) * q.Wn) + 64;
}
size_t dconv_bd_scratch_floats(const dconv_shape *c, int nthreads) {
    /* packed sub-kernels and their tap tables (the phases' taps add up to
     * K x K) + per-thread slabs */
    int64_t taps = c->Cout * c->KH * c->KW;
    size_t slab =
        bd2_applies(c) ? bd2_slab_floats(c) : slab_floats(c->Cout, c->KH, c->H, c->W, c->KW, 1);
    return (size_t)(groups_of_n(c->Cin) * GROUP * taps) + table_floats(taps) + 64 +
           (size_t)nthreads * slab;
}

/* Pack the sub-kernel of phase (ph, pw) as [G][Cout][MH][MW][32]: out
 * channel = forward input channel ci, in channel = co. Serial: a phase holds
 * about a quarter of the weights, packed in well under a millisecond. */
static void pack_phase(const dconv_shape *c, const float *w, const phase *ph, const phase *pw,
                       float *wp) {
    int64_t G = groups_of_n(c->Cin), MH = ph->M, MW = pw->M, Mk = MH * MW, s = c->s;
    for (int64_t g = 0; g < G; g++)
        for (int64_t co = 0; co < c->Cout; co++)
            for (int64_t t = 0; t < MH; t++)
                for (int64_t u = 0; u < MW; u++)
                    for (int64_t j = 0; j < GROUP; j++) {
                        int64_t ci = g * GROUP + j;
                        int64_t kh = ph->r + s * (MH - 1 - t), kw = pw->r + s * (MW - 1 - u);
                        wp[((g * c->Cout + co) * Mk + t * MW + u) * GROUP + j] =
                            ci < c->Cin ? w[((co * c->Cin + ci) * c->KH + kh) * c->KW + kw] : 0;
                    }
}

/* Two column phases of one dx row: t0, t1 [n][nb * 16] (pixel-major) ->
 * channel j's row d0 + j * plane, pixels 2r (from t0) and 2r + 1 (from t1). */
static inline void store_pair(const float *t0, const float *t1, int nb, int64_t n, int64_t nco,
                              float *d0, int64_t plane) {
    const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ih =
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    __mmask16 m0 = lanes(2 * n), m1 = 2 * n > 16 ? lanes(2 * n - 16) : 0;
    for (int g = 0; g < nb; g++) {
        float T[2][16][16] __attribute__((aligned(64)));
        for (int q = 0; q < 2; q++) {
            const float *t = q ? t1 : t0;
            __m512 v[16];
            for (int r = 0; r < 16; r++)
                v[r] = r < n ? _mm512_loadu_ps(t + r * nb * 16 + g * 16) : _mm512_setzero_ps();
            transpose16(v);
            for (int r = 0; r < 16; r++) _mm512_store_ps(T[q][r], v[r]);
        }
        int64_t m = nco - g * 16 < 16 ? nco - g * 16 : 16;
        for (int j = 0; j < m; j++) {
            __m512 a = _mm512_load_ps(T[0][j]), b = _mm512_load_ps(T[1][j]);
            float *d = d0 + (g * 16 + j) * plane;
            _mm512_mask_storeu_ps(d, m0, _mm512_permutex2var_ps(a, il, b));
            if (m1) _mm512_mask_storeu_ps(d + 16, m1, _mm512_permutex2var_ps(a, ih, b));
        }
    }
}

typedef struct {
    const dconv_shape *c;
    const bd2_geom *q;
    const tile_src *src;
    const float *const (*wq)[2];
    const int32_t *const (*offs)[2];
    float *dx, *slabs;
    size_t per;
    int64_t hb, nrb, RS, rb;
} bd2_job;

/* work items [i0, i1): blocks of hb phase rows of one image */
static void bd2_piece(void *ctx, int64_t i0_, int64_t i1_, int worker) {
    const bd2_job *j = ctx;
    const dconv_shape *c = j->c;
    const bd2_geom *q = j->q;
    int64_t G = groups_of_n(c->Cin), Co = c->Cout, h2 = c->H / 2, w2 = c->W / 2, rb = j->rb;
    float *slab = j->slabs + j->per * (size_t)worker;
    for (int64_t it = i0_; it < i1_; it++) {
        int64_t b = it / j->nrb, i0 = it % j->nrb * j->hb, nh = h2 - i0 < j->hb ? h2 - i0 : j->hb;
        fill_slab(j->src, b, i0 - q->PT, nh + q->PT + q->EB, j->RS, q->Wn, slab);
        for (int64_t g = 0; g < G; g++) {
            int64_t nci = c->Cin - g * GROUP < GROUP ? c->Cin - g * GROUP : GROUP;
            int nb = nci > 16 ? 2 : 1;
            const tile_fn *tl = tiles_for(1, nb);
            for (int64_t i = i0; i < i0 + nh; i++)
                for (int a = 0; a < 2; a++)
                    for (int64_t j0 = 0; j0 < w2; j0 += rb) {
                        float t[2][MAX_RB * GROUP] __attribute__((aligned(64)));
                        int64_t n = j0 + rb <= w2 ? rb : w2 - j0;
                        for (int bb = 0; bb < 2; bb++) {
                            int64_t L = Co * q->ph[a].M * q->pw[bb].M;
                            const float *x0 = slab + (i - i0 + q->PT - q->ph[a].pad_lo) * q->Wn +
                                              j0 + q->PL - q->pw[bb].pad_lo;
                            tl[n](x0, j->offs[a][bb], L, 1, j->wq[a][bb] + g * GROUP * L, t[bb]);
                        }
                        store_pair(t[0], t[1], nb, n, nci,
                                   j->dx + ((b * c->Cin + g * GROUP) * c->H + 2 * i + a) * c->W +
                                       2 * j0,
                                   c->H * c->W);
                    }
        }
    }
}

static void bd2_run(const dconv_shape *c, const float *gy, const float *w, float *dx,
                    float *scratch) {
    int64_t G = groups_of_n(c->Cin), Co = c->Cout, h2 = c->H / 2, w2 = c->W / 2;
    bd2_geom q;
    bd2_geometry(c, &q);
    int64_t want = (DF_PIECES + c->B - 1) / c->B; /* blocks per image */
    int64_t hb = (h2 + want - 1) / want;
    if (hb > q.hmax) hb = q.hmax;
    int64_t nrb = (h2 + hb - 1) / hb, RS = (hb + q.PT + q.EB) * q.Wn;
    float *wq[2][2], *p = scratch;
    int32_t *offs[2][2], *o = (int32_t *)(scratch + G * GROUP * Co * c->KH * c->KW);
    for (int a = 0; a < 2; a++)
        for (int bb = 0; bb < 2; bb++) {
            int64_t MH = q.ph[a].M, MW = q.pw[bb].M;
            wq[a][bb] = p;
            pack_phase(c, w, &q.ph[a], &q.pw[bb], p);
            p += G * GROUP * Co * MH * MW;
            offs[a][bb] = o;
            tap_offsets(Co, MH, MW, RS, q.Wn, o);
            o += Co * MH * MW;
        }
    float *slabs =
        (float *)(scratch + G * GROUP * Co * c->KH * c->KW) + table_floats(Co * c->KH * c->KW) + 64;
    int64_t nblk = (w2 + MAX_RB - 1) / MAX_RB;
    tile_src src = {gy, c->B, Co, c->Ho, c->Wo, 0, q.PL};
    bd2_job j = {c,
                 &q,
                 &src,
                 (const float *const(*)[2])wq,
                 (const int32_t *const(*)[2])offs,
                 dx,
                 slabs,
                 bd2_slab_floats(c),
                 hb,
                 nrb,
                 RS,
                 (w2 + nblk - 1) / nblk};
    df_parallel_for(c->B * nrb, 1, bd2_piece, &j);
}

void dconv_bd_run(const dconv_shape *c, const float *gy, const float *w, float *dx, float *scratch,
                  int nt) {
    (void)nt; /* the scratch holds a slab per worker */
    if (bd2_applies(c)) {
        bd2_run(c, gy, w, dx, scratch);
        return;
    }
    int64_t G = groups_of_n(c->Cin), KK = c->KH * c->KW, s = c->s;
    float *wp = scratch;
    int32_t *off = (int32_t *)(scratch + G * GROUP * c->Cout * KK);
    float *gp = (float *)off + table_floats(c->Cout * KK) + 64;
    for (int64_t a = 0; a < s; a++)
        for (int64_t bb = 0; bb < s; bb++) {
            phase ph, pw;
            phase_of(a, s, c->p, c->KH, c->H, &ph);
            phase_of(bb, s, c->p, c->KW, c->W, &pw);
            if (!ph.cnt || !pw.cnt) continue;
            pack_phase(c, w, &ph, &pw, wp);
            /* gy read at rows i + t - pad_lo (t < M), zeros outside */
            tile_src src = {gy, c->B, c->Cout, c->Ho, c->Wo, ph.pad_lo, pw.pad_lo};
            placement pl = {c->H, c->W, s, a, bb};
            run_tiles(&src, wp, c->Cin, ph.M, pw.M, 1, ph.cnt, pw.cnt, NULL, dx, &pl, off, gp,
                      slab_floats(c->Cout, c->KH, c->H, c->W, c->KW, 1));
        }
}

/* ---- weight gradient, 3x3 ---- */
/* Images per chunk: about 1024 pixels, but at least 8 chunks when the batch
 * allows (a chunk is one thread's work item). The chunking depends on the
 * shape only, so the sums (in chunk order) don't depend on the thread count. */
static int64_t bw_nb(const dconv_shape *c) {
    int64_t P = c->Ho * c->Wo, nb = (1024 + P - 1) / P;
    if ((c->B + nb - 1) / nb < 8) nb = (c->B + 7) / 8;
    return nb > c->B ? c->B : nb;
}
int dconv_bw_available(const dconv_shape *c) {
    return c->KH == 3 && c->KW == 3;
}
/* per thread: the chunk's padded x [nb][Cin][Hp][Wp] and its gy, pixel-major [nb * P][32] */
static size_t bw_per_thread(const dconv_shape *c) {
    int64_t Hp = c->H + 2 * c->p, Wp = c->W + 2 * c->p, nb = bw_nb(c);
    return (((size_t)(nb * c->Cin * Hp * Wp) + (size_t)(nb * c->Ho * c->Wo * GROUP)) + 15) &
           ~(size_t)15;
}
size_t dconv_bw_scratch_floats(const dconv_shape *c, int nthreads) {
    int64_t nb = bw_nb(c), chunks = (c->B + nb - 1) / nb, G = groups_of(c);
    return (size_t)nthreads * bw_per_thread(c) + (size_t)(chunks * G * c->Cin * 9 * GROUP) + 64;
}

/* out[9][32] = sum over the chunk's pixels of gyT[pix][32] * x(ci, pix shifted) */
static void bw_tile(const float *xp, int64_t Wp, int64_t s, int64_t ni, int64_t Ho, int64_t Wo,
                    int64_t CinHpWp, const float *gyT, float *out) {
    __m512 acc[9][2];
    for (int k = 0; k < 9; k++) acc[k][0] = acc[k][1] = _mm512_setzero_ps();
    for (int64_t im = 0; im < ni; im++)
        for (int64_t oh = 0; oh < Ho; oh++) {
            const float *xr = xp + im * CinHpWp + oh * s * Wp;
            const float *gr = gyT + ((im * Ho + oh) * Wo) * GROUP;
            for (int64_t ow = 0; ow < Wo; ow++) {
                __m512 g0 = _mm512_loadu_ps(gr + ow * GROUP),
                       g1 = _mm512_loadu_ps(gr + ow * GROUP + 16);
                const float *xc = xr + ow * s;
#pragma GCC unroll 9
                for (int k = 0; k < 9; k++) {
                    __m512 xv = _mm512_set1_ps(xc[(k / 3) * Wp + k % 3]);
                    acc[k][0] = _mm512_fmadd_ps(g0, xv, acc[k][0]);
                    acc[k][1] = _mm512_fmadd_ps(g1, xv, acc[k][1]);
                }
            }
        }
    for (int k = 0; k < 9; k++) {
        _mm512_storeu_ps(out + k * GROUP, acc[k][0]);
        _mm512_storeu_ps(out + k * GROUP + 16, acc[k][1]);
    }
}

/* gt [P][32] = channels co0 .. co0 + 31 of one image's gy [Cout][P], zeros
 * beyond Cout; by 16 x 16 register transposes */
static void bw_gather(const float *gy, int64_t Cout, int64_t co0, int64_t P, float *gt) {
    for (int64_t q0 = 0; q0 < P; q0 += 16) {
        int64_t n = P - q0 < 16 ? P - q0 : 16;
        __mmask16 m = lanes(n);
        for (int h = 0; h < 2; h++) {
            __m512 v[16];
            for (int j = 0; j < 16; j++) {
                int64_t co = co0 + h * 16 + j;
                v[j] = co < Cout ? _mm512_maskz_loadu_ps(m, gy + co * P + q0) : _mm512_setzero_ps();
            }
            transpose16(v);
            for (int r = 0; r < n; r++) _mm512_storeu_ps(gt + (q0 + r) * GROUP + h * 16, v[r]);
        }
    }
}

typedef struct {
    const dconv_shape *c;
    const float *x, *gy;
    float *dw, *scratch, *part;
    size_t per;
    int64_t nb, chunks;
} bw_job;

/* chunks [c0, c1) of nb images: partial sums part [chunks][G][Cin][9][32] */
static void bw_chunks(void *ctx, int64_t c0, int64_t c1, int worker) {
    const bw_job *j = ctx;
    const dconv_shape *c = j->c;
    int64_t Hp = c->H + 2 * c->p, Wp = c->W + 2 * c->p, P = c->Ho * c->Wo, G = groups_of(c);
    float *xp = j->scratch + j->per * (size_t)worker; // [nb][Cin][Hp][Wp]
    float *gt = xp + j->nb * c->Cin * Hp * Wp;        // [nb * P][32]
    for (int64_t ch = c0; ch < c1; ch++) {
        int64_t b0 = ch * j->nb, ni = b0 + j->nb <= c->B ? j->nb : c->B - b0;
        for (int64_t k = 0; k < ni * c->Cin * Hp; k++) {
            int64_t ih = k % Hp - c->p, pl = k / Hp;
            fill_row(xp + k * Wp, Wp,
                     ih >= 0 && ih < c->H ? j->x + (b0 * c->Cin + pl) * c->H * c->W + ih * c->W
                                          : NULL,
                     c->W, c->p);
        }
        for (int64_t g = 0; g < G; g++) {
            for (int64_t im = 0; im < ni; im++)
                bw_gather(j->gy + (b0 + im) * c->Cout * P, c->Cout, g * GROUP, P,
                          gt + im * P * GROUP);
            for (int64_t ci = 0; ci < c->Cin; ci++)
                bw_tile(xp + ci * Hp * Wp, Wp, c->s, ni, c->Ho, c->Wo, c->Cin * Hp * Wp, gt,
                        j->part + (((ch * G + g) * c->Cin + ci) * 9) * GROUP);
        }
    }
}

/* dw[co][ci][k] for (co, ci) in [i0, i1) = sum over chunks in order */
static void bw_sum(void *ctx, int64_t i0, int64_t i1, int worker) {
    const bw_job *j = ctx;
    const dconv_shape *c = j->c;
    int64_t G = groups_of(c);
    (void)worker;
    for (int64_t i = i0; i < i1; i++) {
        int64_t co = i / c->Cin, ci = i % c->Cin, g = co / GROUP, jj = co % GROUP;
        for (int64_t k = 0; k < 9; k++) {
            float s = 0;
            for (int64_t ch = 0; ch < j->chunks; ch++)
                s += j->part[(((ch * G + g) * c->Cin + ci) * 9 + k) * GROUP + jj];
            j->dw[(co * c->Cin + ci) * 9 + k] = s;
        }
    }
}

void dconv_bw_run(const dconv_shape *c, const float *x, const float *gy, float *dw, float *scratch,
                  int nthreads) {
    int64_t nb = bw_nb(c);
    size_t per = bw_per_thread(c);
    bw_job j = {
        c, x, gy, dw, scratch, scratch + (size_t)nthreads * per, per, nb, (c->B + nb - 1) / nb};
    df_parallel_for(j.chunks, 1, bw_chunks, &j);
    df_parallel_for(c->Cout * c->Cin, DF_PIECE(c->Cout * c->Cin), bw_sum, &j);
}

#else /* no AVX-512: the GEMM path is used */
int dconv_available(const dconv_shape *c) {
    (void)c;
    return 0;
}
size_t dconv_scratch_floats(const dconv_shape *c, int nthreads) {
    (void)c, (void)nthreads;
    return 0;
}
void dconv_run(const dconv_shape *c, const float *x, const float *w, int flip,
               const dconv_epilogue *ep, float *y, float *scratch, int nt) {
    (void)c, (void)x, (void)w, (void)flip, (void)ep, (void)y, (void)scratch, (void)nt;
}
int dconv_bw_available(const dconv_shape *c) {
    (void)c;
    return 0;
}
size_t dconv_bw_scratch_floats(const dconv_shape *c, int nthreads) {
    (void)c, (void)nthreads;
    return 0;
}
void dconv_bw_run(const dconv_shape *c, const float *x, const float *gy, float *dw, float *scratch,
                  int nthreads) {
    (void)c, (void)x, (void)gy, (void)dw, (void)scratch, (void)nthreads;
}
int dconv_bd_available(const dconv_shape *c) {
    (void)c;
    return 0;
}
size_t dconv_bd_scratch_floats(const dconv_shape *c, int nthreads) {
    (void)c, (void)nthreads;
    return 0;
}
void dconv_bd_run(const dconv_shape *c, const float *gy, const float *w, float *dx, float *scratch,
                  int nt) {
    (void)c, (void)gy, (void)w, (void)dx, (void)scratch, (void)nt;
}
#endif
