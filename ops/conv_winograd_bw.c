/* Winograd weight gradient of a 3x3, stride-1, padding-1 conv (see
 * conv_winograd.h). The forward computes a 4 x 4 output tile as
 * y = AT [(G g GT) . (BT d B)] A, so the gradient of sum(gy y) over that
 * tile is GT [(AT^T gy AT) . (BT d B)] G: F(3x3, 4x4) by transposition.
 * Summed over tiles, the 36 positions k are products over the tiles:
 *   P[k][co][ci] = sum over tiles of Z[k][co][t] V[k][ci][t],
 *   Z = AT^T gy AT (4x4 -> 6x6), V = BT d B (the forward's input transform),
 * and dw[co][ci] = GT P[.][co][ci] G (6x6 -> 3x3). With the forward's
 * F(7x7, 3x3) tiles (wino_kind_of) the same runs over 81 positions, 7x7 ->
 * 9x9 -> 3x3. Here the vector lanes are 16 channels of one tile (the sums run over the
 * tiles). Pieces of tiles are grouped into chunks fixed by the shape; a
 * thread sums a chunk's pieces in order into its P, transforms it into the
 * chunk's part of dw, and the parts are added in chunk order: the result
 * doesn't depend on the thread count.
 *
 * When every chunk would hold a single piece (few tiles, as with 7x7 and
 * 14x14 images at F(7,3)), each chunk's P (nn Cout Cin floats, 5.3 MB at
 * 128 channels) would be written and read for the products of only one
 * piece, and that traffic, which both threads share, is what limits the
 * speed. Such shapes run whole: the transforms of all tiles go to one V and
 * one Z (parallel over tiles), each position's products then sum over all
 * tiles at once into the one P (parallel over positions), and the output
 * transform reads P once (parallel over output channels). */
#include "conv_winograd.h"

#if defined(__AVX512F__) && defined(__AVX512VL__)
#include "conv_pre.h"
#include "conv_winograd_bf16.h"
#include "conv_winograd_impl.h"
#include "parallel.h"

#define BW_TILES 128    /* tiles per piece at most; at least 32 */
#define BW_PIECES 8     /* pieces wanted when that leaves 32 tiles or more */
#define BW_CHUNKS 16    /* at most; a thread's work item */
#define BW_WHOLE 512    /* tiles at most for running whole (above) */
#define BW_WHOLE_ITEM 2 /* tiles a thread transforms at a time when whole */

typedef struct {
    const wino_kind *k;        /* the tile size: the forward's for this shape */
    int64_t m, n, nn;          /* outputs per tile side, patch side, positions n n */
    int64_t ntw, ntile, tiles; /* tiles per row, per image, in all */
    int64_t T, pieces;         /* tiles per piece */
    int64_t per_chunk, chunks; /* pieces per chunk */
    int64_t Cinp, Coutp;       /* channels rounded up to 16 */
    int64_t pk, vk, zk;        /* floats per position k of P, V and Z (+ a cache line) */
    int64_t T2, vk2, zk2;      /* bf16: tile pairs per piece; pairs per position k of V2, Z2 */
    int whole;                 /* one piece of all tiles (T = tiles), run whole */
    int64_t act;               /* floats per thread for x read through a pre: the images
                                  of the tiles transformed at a time, [imgs][Cin][H][W] */
} bgeom;

static void bgeom_sizes(bgeom *g) {
    g->pk = g->Coutp * g->Cinp + 16;
    g->vk = g->T * g->Cinp + 16;
    g->zk = g->T * g->Coutp + 16;
    g->T2 = (g->T + 1) / 2;
    g->vk2 = g->T2 * g->Cinp + 16;
    g->zk2 = g->T2 * g->Coutp + 16;
}
/* The geometry for shape c with tiles k; bf16: whether the products are
 * bf16 (those run in chunks) */
static void bgeom_of(const dconv_shape *c, const wino_kind *k, int bf16, bgeom *g) {
    g->k = k;
    g->m = k->m, g->n = k->n, g->nn = k->n * k->n;
    g->ntw = (c->Wo + g->m - 1) / g->m;
    g->ntile = g->ntw * ((c->Ho + g->m - 1) / g->m);
    g->tiles = c->B * g->ntile;
    int64_t T = (g->tiles + BW_PIECES - 1) / BW_PIECES;
    T = T < 32 ? 32 : T > BW_TILES ? BW_TILES : T;
    g->T = g->tiles < T ? g->tiles : T;
    g->pieces = (g->tiles + g->T - 1) / g->T;
    int64_t want = g->pieces < BW_CHUNKS ? g->pieces : BW_CHUNKS;
    g->per_chunk = (g->pieces + want - 1) / want;
    g->chunks = (g->pieces + g->per_chunk - 1) / g->per_chunk;
    g->Cinp = (c->Cin + NT - 1) / NT * NT;
    g->Coutp = (c->Cout + NT - 1) / NT * NT;
    /* whole when the chunks' P would outweigh V and Z (written and read once either way) */
    g->whole = g->per_chunk == 1 && !bf16 && g->tiles <= BW_WHOLE &&
               g->chunks * c->Cout * c->Cin > g->tiles * (c->Cin + c->Cout);
    int64_t at_once = g->T; /* tiles transformed at a time: their images' pre made first */
    if (g->whole)
        g->T = g->tiles, g->pieces = g->per_chunk = g->chunks = 1, at_once = BW_WHOLE_ITEM;
    g->act = ((at_once + g->ntile - 1) / g->ntile + 1) * c->Cin * c->H * c->W;
    bgeom_sizes(g);
}

int wino_bw_applies(const dconv_shape *c) {
    return wino_applies(c);
}
int wino_bw_available(const dconv_shape *c) {
    return wino_bw_applies(c) && df_conv_winograd();
}

/* per thread (whole: once): P [nn][pk], V [nn][T][Cinp], Z [nn][Coutp / RB][T][RB],
 * and for bf16 V2 [nn][T2][Cinp], Z2 [nn][Coutp / RB][T2][RB] (tile pairs) */
static size_t bw_per_thread(const bgeom *g) {
    return (size_t)(g->nn * (g->pk + g->vk + g->zk + (g->whole ? 0 : g->vk2 + g->zk2)));
}
/* the above, the chunks' parts [chunks][Cout][9][Cinp], then act per thread */
static size_t bw_parts_end(const dconv_shape *c, const bgeom *g, int nthreads) {
    return (size_t)(g->whole ? 1 : nthreads) * bw_per_thread(g) +
           (size_t)(g->chunks * c->Cout * 9 * g->Cinp);
}
static size_t bw_scratch(const dconv_shape *c, const bgeom *g, int nthreads) {
    return bw_parts_end(c, g, nthreads) + (size_t)nthreads * (size_t)g->act + 16;
}
size_t wino_bw_scratch_floats(const dconv_shape *c, int nthreads) {
    size_t most = 0; /* either tile size, float32 or bf16 */
    for (int i = 0; i < WINO_KINDS; i++)
        for (int bf16 = 0; bf16 < 2; bf16++) {
            bgeom g;
            bgeom_of(c, wino_kinds[i], bf16, &g);
            size_t n = bw_scratch(c, &g, nthreads);
            if (n > most) most = n;
        }
    return most;
}

/* r = AT^T f (4 -> 6 values) */
static inline void a_t4(const __m512 f[4], __m512 r[6]) {
    const __m512 two = _mm512_set1_ps(2), four = _mm512_set1_ps(4), eight = _mm512_set1_ps(8);
    __m512 e = _mm512_add_ps(f[0], f[2]), o = _mm512_add_ps(f[1], f[3]);
    __m512 e2 = _mm512_fmadd_ps(four, f[2], f[0]),
           o2 = _mm512_fmadd_ps(eight, f[3], _mm512_mul_ps(two, f[1]));
    r[0] = f[0];
    r[1] = _mm512_add_ps(e, o);
    r[2] = _mm512_sub_ps(e, o);
    r[3] = _mm512_add_ps(e2, o2);
    r[4] = _mm512_sub_ps(e2, o2);
    r[5] = f[3];
}
/* Z[k][co0 / RB + h][t][RB] (h = 0, 1; zk floats per k) = AT^T gy AT of
 * the 4 x 4 tile of gy at output (oh, ow) of image b, channels co0 .. co0 + 15
 * (a channel per lane; zeros outside gy). */
void wino_gy4(const dconv_shape *c, const float *gy, int64_t b, int64_t oh, int64_t ow, int64_t co0,
              int64_t T, int64_t zk, int64_t t, float *Z) {
    int64_t nr = c->Ho - oh < 4 ? c->Ho - oh : 4, nc = c->Wo - ow < 4 ? c->Wo - ow : 4;
    __mmask8 rm[4]; /* per tile row: its columns inside gy, or none */
    for (int i = 0; i < 4; i++) rm[i] = i < nr ? (__mmask8)((1u << nc) - 1) : 0;
    __m512 v[16];
    for (int l = 0; l < NT; l++) {
        v[l] = _mm512_setzero_ps();
        if (co0 + l >= c->Cout) continue;
        const float *p = gy + ((b * c->Cout + co0 + l) * c->Ho + oh) * c->Wo + ow;
        int64_t W = c->Wo;
        v[l] = _mm512_castps128_ps512(_mm_maskz_loadu_ps(rm[0], p));
        v[l] = _mm512_insertf32x4(v[l], _mm_maskz_loadu_ps(rm[1], p + W), 1);
        v[l] = _mm512_insertf32x4(v[l], _mm_maskz_loadu_ps(rm[2], p + 2 * W), 2);
        v[l] = _mm512_insertf32x4(v[l], _mm_maskz_loadu_ps(rm[3], p + 3 * W), 3);
    }
    transpose16(v); /* v[i * 4 + j] = gy[i][j], a channel per lane */
    __m512 a[4][6];
    for (int i = 0; i < 4; i++) a_t4(&v[i * 4], a[i]);
    for (int s = 0; s < 6; s++) {
        __m512 col[4] = {a[0][s], a[1][s], a[2][s], a[3][s]}, r[6];
        a_t4(col, r);
        for (int m = 0; m < 6; m++)
            wino_store_z(Z + (m * 6 + s) * zk + (co0 / RB * T + t) * RB, T, r[m]);
    }
}

/* The n x n patches of tile (b, oh, ow) in channels ci0 .. ci0 + 15, a channel per lane */
static void channel_patches(const dconv_shape *c, int n, int64_t b, int64_t oh, int64_t ow,
                            int64_t ci0, patch16 *p) {
    unsigned cols = 0;
    for (int j = 0; j < n; j++) cols |= (unsigned)(ow - 1 + j >= 0 && ow - 1 + j < c->W) << j;
    for (int l = 0; l < NT; l++) {
        int ok = ci0 + l < c->Cin;
        p->off[l] = ok ? (int32_t)(((b * c->Cin + ci0 + l) * c->H + oh - 1) * c->W + ow - 1) : 0;
        for (int i = 0; i < n; i++)
            p->mask[i][l] = ok && oh - 1 + i >= 0 && oh - 1 + i < c->H ? (__mmask16)cols : 0;
    }
}

/* The piece's n tiles of V and Z as bf16 pairs of tiles (2 t2, 2 t2 + 1),
 * zeros past n. */
static void pair_tiles(const bgeom *g, int64_t n, const float *V, const float *Z, uint32_t *V2,
                       uint32_t *Z2) {
    int64_t nblk = g->Coutp / RB;
    for (int64_t k = 0; k < g->nn; k++)
        for (int64_t t2 = 0; t2 < (n + 1) / 2; t2++) {
            int full = 2 * t2 + 1 < n;
            const float *v = V + k * g->vk + 2 * t2 * g->Cinp;
            bf16_pack(v, full ? v + g->Cinp : NULL, g->Cinp, V2 + k * g->vk2 + t2 * g->Cinp);
            for (int64_t cb = 0; cb < nblk; cb++) {
                const float *lo = Z + k * g->zk + (cb * g->T + 2 * t2) * RB;
                bf16_pack8(lo, full ? lo + RB : NULL, Z2 + k * g->zk2 + (cb * g->T2 + t2) * RB);
            }
        }
}

/* Tiles [u0, u1) transformed into V and Z at places u - base. With pre, x
 * is read through it: the rows of the tiles' images that their patches read
 * are made in act first. */
static void bw_tiles(const dconv_shape *c, const bgeom *g, const float *x, const conv_pre *pre,
                     const float *gy, int64_t u0, int64_t u1, int64_t base, float *V, float *Z,
                     float *act) {
    int64_t b0 = 0, HW = c->H * c->W;
    if (pre) { /* act [images][Cin][H][W] */
        b0 = u0 / g->ntile;
        for (int64_t b = b0; b <= (u1 - 1) / g->ntile; b++) {
            int64_t r0, r1;
            wino_tile_rows(b, u0, u1 - u0, g->ntile, g->ntw, (int)g->m, (int)g->n, c->H, &r0, &r1);
            for (int64_t ci = 0; ci < c->Cin; ci++)
                conv_pre_rows(pre, x, b, ci, r0, r1, c->H, c->W,
                              act + ((b - b0) * c->Cin + ci) * HW + r0 * c->W);
        }
        x = act;
    }
    for (int64_t u = u0; u < u1; u++) {
        int64_t b = u / g->ntile, r = u % g->ntile, t = u - base;
        int64_t oh = r / g->ntw * g->m, ow = r % g->ntw * g->m;
        for (int64_t ci0 = 0; ci0 < g->Cinp; ci0 += NT) {
            patch16 pt;
            channel_patches(c, (int)g->n, b - b0, oh, ow, ci0, &pt);
            g->k->input(x, c->W, &pt, g->vk, V + t * g->Cinp + ci0);
        }
        for (int64_t co0 = 0; co0 < g->Coutp; co0 += NT)
            g->k->gy(c, gy, b, oh, ow, co0, g->T, g->zk, t, Z);
    }
}
/* Positions [k0, k1) of P (+)= the products of V and Z's first n tiles */
static void bw_products(const bgeom *g, int64_t n, int64_t k0, int64_t k1, int add, float *P,
                        const float *V, const float *Z) {
    for (int64_t k = k0; k < k1; k++)
        for (int64_t cb = 0; cb < g->Coutp / RB; cb++)
            products_cols(Z + k * g->zk + cb * g->T * RB, V + k * g->vk, n, g->Cinp,
                          P + k * g->pk + cb * RB * g->Cinp, g->Cinp, g->Cinp / NT, add);
}

/* One piece: P (+)= its tiles' products (add = 0: the chunk's first piece);
 * with V2 (bf16), from pairs of tiles. */
static void bw_piece(const dconv_shape *c, const bgeom *g, const float *x, const conv_pre *pre,
                     const float *gy, int64_t p, int add, float *P, float *V, float *Z,
                     uint32_t *V2, uint32_t *Z2, float *act) {
    int64_t t0 = p * g->T, n = g->tiles - t0 < g->T ? g->tiles - t0 : g->T;
    bw_tiles(c, g, x, pre, gy, t0, t0 + n, t0, V, Z, act);
    if (V2) {
        pair_tiles(g, n, V, Z, V2, Z2);
        bf16_products_fn bf = wino_bf16_products();
        for (int64_t k = 0; k < g->nn; k++)
            for (int64_t cb = 0; cb < g->Coutp / RB; cb++)
                bf(Z2 + k * g->zk2 + cb * g->T2 * RB, V2 + k * g->vk2, (n + 1) / 2, g->Cinp,
                   P + k * g->pk + cb * RB * g->Cinp, g->Cinp, g->Cinp / NT, add);
        return;
    }
    bw_products(g, n, 0, g->nn, add, P, V, Z);
}

/* part [Cout][9][Cinp] = GT P G per (co, ci), for co in [co0, co1) */
static void bw_output(const bgeom *g, const float *P, int64_t co0, int64_t co1, float *part) {
    int n = (int)g->n;
    __m512 G[9][3];
    for (int a = 0; a < n; a++)
        for (int k = 0; k < 3; k++) G[a][k] = _mm512_set1_ps((float)g->k->G[a * 3 + k]);
    for (int64_t co = co0; co < co1; co++)
        for (int64_t q = 0; q < g->Cinp; q += NT) {
            __m512 h[9][3]; /* h[s][kw] = sum over t of P[s][t] G[t][kw] */
            for (int s = 0; s < n; s++)
                for (int kw = 0; kw < 3; kw++) h[s][kw] = _mm512_setzero_ps();
            for (int s = 0; s < n; s++)
                for (int t = 0; t < n; t++) {
                    __m512 p = _mm512_loadu_ps(P + (s * n + t) * g->pk + co * g->Cinp + q);
                    for (int kw = 0; kw < 3; kw++)
                        h[s][kw] = _mm512_fmadd_ps(p, G[t][kw], h[s][kw]);
                }
            for (int kw = 0; kw < 3; kw++)
                for (int kh = 0; kh < 3; kh++) {
                    __m512 r = _mm512_setzero_ps();
                    for (int s = 0; s < n; s++) r = _mm512_fmadd_ps(h[s][kw], G[s][kh], r);
                    _mm512_storeu_ps(part + (co * 9 + kh * 3 + kw) * g->Cinp + q, r);
                }
        }
}

typedef struct {
    const dconv_shape *c;
    const bgeom *g;
    const float *x, *gy;
    float *dw, *scratch, *parts;
    size_t per;
    int64_t psz;
    int bf16;
    const conv_pre *pre; /* x read through it, or NULL */
    float *act;          /* per thread: g->act floats */
} wbw_job;

/* chunks [c0, c1): each sums its pieces in order into its part */
static void wbw_chunks(void *ctx, int64_t c0, int64_t c1, int worker) {
    const wbw_job *j = ctx;
    const bgeom *g = j->g;
    float *P = j->scratch + j->per * (size_t)worker; // [nn][pk]
    float *V = P + g->nn * g->pk;                    // [nn][T][Cinp]
    float *Z = V + g->nn * g->vk;                    // [nn][Coutp / RB][T][RB]
    uint32_t *V2 = (uint32_t *)(Z + g->nn * g->zk);  // [nn][T2][Cinp] pairs
    uint32_t *Z2 = V2 + g->nn * g->vk2;              // [nn][Coutp / RB][T2][RB] pairs
    if (!j->bf16) V2 = Z2 = NULL;
    for (int64_t ch = c0; ch < c1; ch++) {
        int64_t p0 = ch * g->per_chunk,
                p1 = p0 + g->per_chunk < g->pieces ? p0 + g->per_chunk : g->pieces;
        for (int64_t p = p0; p < p1; p++)
            bw_piece(j->c, g, j->x, j->pre, j->gy, p, p > p0, P, V, Z, V2, Z2,
                     j->act + g->act * worker);
        bw_output(g, P, 0, j->c->Cout, j->parts + ch * j->psz);
    }
}
/* Whole: tiles [u0, u1) into the one V and Z */
static void wbw_whole_tiles(void *ctx, int64_t u0, int64_t u1, int worker) {
    const wbw_job *j = ctx;
    const bgeom *g = j->g;
    float *V = j->scratch + g->nn * g->pk, *Z = V + g->nn * g->vk;
    bw_tiles(j->c, g, j->x, j->pre, j->gy, u0, u1, 0, V, Z, j->act + g->act * worker);
}
/* Whole: positions [k0, k1) of P, summed over all tiles */
static void wbw_whole_products(void *ctx, int64_t k0, int64_t k1, int worker) {
    const wbw_job *j = ctx;
    const bgeom *g = j->g;
    float *P = j->scratch, *V = P + g->nn * g->pk, *Z = V + g->nn * g->vk;
    (void)worker;
    bw_products(g, g->tiles, k0, k1, 0, P, V, Z);
}
/* Whole: the output transform of channels [co0, co1) */
static void wbw_whole_output(void *ctx, int64_t co0, int64_t co1, int worker) {
    const wbw_job *j = ctx;
    (void)worker;
    bw_output(j->g, j->scratch, co0, co1, j->parts);
}
/* dw[co][ci][kk] for co in [o0, o1) = the parts' sum in chunk order */
static void wbw_sum(void *ctx, int64_t o0, int64_t o1, int worker) {
    const wbw_job *j = ctx;
    const dconv_shape *c = j->c;
    (void)worker;
    for (int64_t co = o0; co < o1; co++)
        for (int64_t kk = 0; kk < 9; kk++)
            for (int64_t ci0 = 0; ci0 < c->Cin; ci0 += NT) { /* 16 channels a vector */
                const float *p = j->parts + (co * 9 + kk) * j->g->Cinp + ci0;
                __m512 s = _mm512_setzero_ps();
                for (int64_t ch = 0; ch < j->g->chunks; ch++)
                    s = _mm512_add_ps(s, _mm512_loadu_ps(p + ch * j->psz));
                float r[NT];
                _mm512_storeu_ps(r, s);
                for (int64_t ci = ci0; ci < c->Cin && ci < ci0 + NT; ci++)
                    j->dw[(co * c->Cin + ci) * 9 + kk] = r[ci - ci0];
            }
}

void wino_bw_run(const dconv_shape *c, const float *x, const conv_pre *pre, const float *gy,
                 float *dw, float *scratch, int nt, int bf16) {
    bgeom g;
    const wino_kind *k = wino_kind_of(c);
    bf16 = wino_bf16_for(k, bf16);
    bgeom_of(c, k, bf16, &g);
    size_t per = bw_per_thread(&g);
    wbw_job j = {c,
                 &g,
                 x,
                 gy,
                 dw,
                 scratch,
                 scratch + per * (size_t)(g.whole ? 1 : nt), /* [chunks][Cout][9][Cinp] */
                 per,
                 c->Cout * 9 * g.Cinp,
                 bf16,
                 pre,
                 scratch + bw_parts_end(c, &g, nt)};
    if (g.whole) {
        df_parallel_for(g.tiles, BW_WHOLE_ITEM, wbw_whole_tiles, &j);
        df_parallel_for(g.nn, 1, wbw_whole_products, &j);
        df_parallel_for(c->Cout, 1, wbw_whole_output, &j);
    } else
        df_parallel_for(g.chunks, 1, wbw_chunks, &j);
    df_parallel_for(c->Cout, 1, wbw_sum, &j);
}

#else /* no AVX-512 (F and VL): the direct kernel's fallback is used */
int wino_bw_applies(const dconv_shape *c) {
    (void)c;
    return 0;
}
int wino_bw_available(const dconv_shape *c) {
    (void)c;
    return 0;
}
size_t wino_bw_scratch_floats(const dconv_shape *c, int nthreads) {
    (void)c, (void)nthreads;
    return 0;
}
void wino_bw_run(const dconv_shape *c, const float *x, const struct conv_pre *pre, const float *gy,
                 float *dw, float *scratch, int nt, int bf16) {
    (void)c, (void)x, (void)pre, (void)gy, (void)dw, (void)scratch, (void)nt, (void)bf16;
}
#endif
