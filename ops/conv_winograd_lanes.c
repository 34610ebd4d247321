/* Winograd F(4x4, 3x3) with images as the vector lanes (see conv_winograd.h).
 *
 * The tile path (conv_winograd.c) puts sixteen tiles of one image in the
 * lanes and must transpose every 6 x 6 patch it loads and every 4 x 4 block
 * it stores: at 32 channels those transposes take about half the time. Here
 * lane l holds image b0 + l: a piece (sixteen images, a band of tile rows)
 * first lays its input rows out as [Cin][row][column][16 images] (one 16 x 16
 * transpose per 16 columns, halo rows included), after which every patch
 * element of a tile is one aligned vector load, with no masks. Outputs of one
 * channel gather in [row][column][16] and are transposed back to NCHW as
 * they are stored, with the epilogue. The arithmetic (transforms, products
 * summed over the input channels in order, bias then addend) is the tile
 * path's, so both give bitwise equal results. */
#include "conv_winograd.h"

#if defined(__AVX512F__) && defined(__AVX512VL__)
#include "conv_winograd_impl.h"
#include "parallel.h"
#include <string.h>

#define LANE_FLOATS 163840 /* V and M of a piece, as the tile path */

static int lanes_on = 1;
void wino_set_lanes(int on) {
    lanes_on = on != 0;
}

typedef struct {
    int64_t nb;     /* blocks of 16 images */
    int64_t ntw;    /* tiles per row */
    int64_t nth;    /* tile rows */
    int64_t R;      /* tile rows per piece */
    int64_t bands;  /* pieces per block */
    int64_t npos;   /* tile positions per piece: R ntw */
    int64_t xw, xr; /* laid-out input: columns (W + 2, padded to 16 + 2), rows 4 R + 2 */
    int64_t sw;     /* output staging columns: 4 ntw rounded up to 16 */
    int64_t vk, mk; /* floats per position k of V and M (one cache line more) */
    int64_t Coutp;
} lgeom;

static void lgeom_of(const dconv_shape *c, lgeom *g) {
    g->nb = (c->B + NT - 1) / NT;
    g->ntw = (c->W + 3) / 4;
    g->nth = (c->H + 3) / 4;
    int64_t R = LANE_FLOATS / (36 * (c->Cin + RB) * g->ntw * NT);
    g->R = R < 1 ? 1 : R > g->nth ? g->nth : R;
    g->bands = (g->nth + g->R - 1) / g->R;
    g->npos = g->R * g->ntw;
    g->xw = (c->W + 15) / 16 * 16 + 2;
    g->xr = 4 * g->R + 2;
    g->sw = (4 * g->ntw + 15) / 16 * 16;
    g->vk = c->Cin * g->npos * NT + 16;
    g->mk = RB * g->npos * NT + 16;
    g->Coutp = (c->Cout + RB - 1) / RB * RB;
}

/* Sixteen images or more, with at most a quarter of the lanes idle, and
 * rows of 16 or more (measured on the UNet's shapes at batch 256, one
 * thread: 28 x 28 at 32 channels 1.17x the tile path, 64 -> 32 channels
 * 1.11x; 14 x 14 at 64 the same; 7 x 7 0.90-0.95x, where a row's layout
 * transposes 16 columns for 7). */
int wino_lanes_apply(const dconv_shape *c) {
    int64_t idle = (c->B + NT - 1) / NT * NT - c->B;
    return lanes_on && c->B >= NT && 4 * idle <= c->B && c->W >= 16;
}

size_t wino_lanes_per_thread(const dconv_shape *c) {
    lgeom g;
    lgeom_of(c, &g);
    return (size_t)(g.xr * g.xw * NT + 36 * (g.vk + g.mk) + 4 * g.R * g.sw * NT + 64);
}

/* X [xr][xw][16]: input rows 4 th0 - 1 .. 4 th0 + 4 R of channel ci of
 * images b0 .. b0 + nimg - 1; column j holds image column j - 1; zeros
 * outside. */
static void lay_out_channel(const dconv_shape *c, const lgeom *g, const float *x, int64_t ci,
                            int64_t b0, int nimg, int64_t th0, float *X) {
    int64_t HW = c->H * c->W;
    __m512 z = _mm512_setzero_ps();
    for (int64_t rr = 0; rr < g->xr; rr++) {
        float *row = X + rr * g->xw * NT;
        int64_t r = 4 * th0 - 1 + rr;
        if (r < 0 || r >= c->H) {
            for (int64_t j = 0; j < g->xw; j++) _mm512_store_ps(row + j * NT, z);
            continue;
        }
        _mm512_store_ps(row, z); /* column -1 */
        for (int64_t c0 = 0; c0 < g->xw - 2; c0 += 16) {
            __mmask16 m = lanes(c->W - c0);
            const float *src = x + (b0 * c->Cin + ci) * HW + r * c->W + c0;
            __m512 v[16];
            for (int l = 0; l < NT; l++)
                v[l] = l < nimg ? _mm512_maskz_loadu_ps(m, src + l * c->Cin * HW) : z;
            transpose16(v); /* v[j]: column c0 + j of the sixteen images */
            for (int j = 0; j < 16; j++) _mm512_store_ps(row + (1 + c0 + j) * NT, v[j]);
        }
        _mm512_store_ps(row + (g->xw - 1) * NT, z);
    }
}

/* V[k][ci][pos][16] = BT d B for channel ci of the piece's first `rows`
 * tile rows, from its laid-out input X. */
static void transform_channel(const lgeom *g, const float *X, int64_t ci, int64_t rows, float *V) {
    for (int64_t tr = 0; tr < rows; tr++)
        for (int64_t tw = 0; tw < g->ntw; tw++) {
            const float *p = X + (4 * tr * g->xw + 4 * tw) * NT;
            __m512 t[6][6]; /* [row of BT d][patch column] */
            for (int j = 0; j < 6; j++) {
                __m512 col[6], r[6];
                for (int i = 0; i < 6; i++) col[i] = _mm512_load_ps(p + (i * g->xw + j) * NT);
                bt6(col, r);
                for (int k = 0; k < 6; k++) t[k][j] = r[k];
            }
            float *v = V + (ci * g->npos + tr * g->ntw + tw) * NT;
            for (int k = 0; k < 6; k++) {
                __m512 r[6];
                bt6(t[k], r);
                for (int l = 0; l < 6; l++) _mm512_store_ps(v + (k * 6 + l) * g->vk, r[l]);
            }
        }
}

/* Channel co of the piece: AT m A plus bias into S [4 rows][sw][16], then
 * transposed back to the images' rows, plus the addend, and stored. */
static void output_channel(const dconv_shape *c, const lgeom *g, const float *M, int64_t co,
                           int64_t rows, int64_t b0, int nimg, int64_t th0,
                           const dconv_epilogue *ep, float *S, float *y) {
    __m512 bv = _mm512_set1_ps(ep && ep->bias ? ep->bias[co] : 0.0f);
    for (int64_t tr = 0; tr < rows; tr++)
        for (int64_t tw = 0; tw < g->ntw; tw++) {
            const float *m0 = M + (tr * g->ntw + tw) * NT;
            __m512 o[6][4];
            for (int k = 0; k < 6; k++) {
                __m512 m[6];
                for (int l = 0; l < 6; l++) m[l] = _mm512_load_ps(m0 + (k * 6 + l) * g->mk);
                at6(m, o[k]);
            }
            for (int q = 0; q < 4; q++) {
                __m512 col[6], r[4];
                for (int k = 0; k < 6; k++) col[k] = o[k][q];
                at6(col, r);
                for (int p = 0; p < 4; p++)
                    _mm512_store_ps(S + ((4 * tr + p) * g->sw + 4 * tw + q) * NT,
                                    _mm512_add_ps(r[p], bv));
            }
        }
    int64_t HW = c->Ho * c->Wo;
    const float *add = ep ? ep->add : NULL;
    for (int64_t pr = 0; pr < 4 * rows && 4 * th0 + pr < c->Ho; pr++)
        for (int64_t c0 = 0; c0 < c->Wo; c0 += 16) {
            __m512 v[16];
            for (int j = 0; j < 16; j++) v[j] = _mm512_load_ps(S + (pr * g->sw + c0 + j) * NT);
            transpose16(v); /* v[l]: image b0 + l's row, columns c0 .. c0 + 15 */
            __mmask16 m = lanes(c->Wo - c0);
            for (int l = 0; l < nimg; l++) {
                int64_t o = ((b0 + l) * c->Cout + co) * HW + (4 * th0 + pr) * c->Wo + c0;
                __m512 r = v[l];
                if (add)
                    r = _mm512_add_ps(r, ep->per_channel
                                             ? _mm512_set1_ps(add[(b0 + l) * c->Cout + co])
                                             : _mm512_maskz_loadu_ps(m, add + o));
                _mm512_mask_storeu_ps(y + o, m, r);
            }
        }
}

typedef struct {
    const dconv_shape *c;
    const lgeom *g;
    const float *x, *U;
    const dconv_epilogue *ep;
    float *y, *base;
    size_t per;
} lane_job;

static void lane_pieces(void *ctx, int64_t p0, int64_t p1, int worker) {
    const lane_job *j = ctx;
    const dconv_shape *c = j->c;
    const lgeom *g = j->g;
    float *X = j->base + j->per * (size_t)worker; // [xr][xw][16]
    float *V = X + g->xr * g->xw * NT;            // [36][Cin][npos][16] (vk apart)
    float *M = V + 36 * g->vk;                    // [36][RB][npos][16] (mk apart)
    float *S = M + 36 * g->mk;                    // [4 R][sw][16]
    int64_t nblk = g->Coutp / RB;
    for (int64_t p = p0; p < p1; p++) {
        int64_t blk = p / g->bands, th0 = p % g->bands * g->R, b0 = blk * NT;
        int64_t rows = g->nth - th0 < g->R ? g->nth - th0 : g->R;
        int nimg = c->B - b0 < NT ? (int)(c->B - b0) : NT;
        for (int64_t ci = 0; ci < c->Cin; ci++) {
            lay_out_channel(c, g, j->x, ci, b0, nimg, th0, X);
            transform_channel(g, X, ci, rows, V);
        }
        int64_t cols = rows * g->ntw; /* vectors of this piece */
        for (int64_t cb = 0; cb < nblk; cb++) {
            for (int64_t k = 0; k < 36; k++)
                products_cols(j->U + (k * nblk + cb) * c->Cin * RB, V + k * g->vk, c->Cin,
                              g->npos * NT, M + k * g->mk, g->npos * NT, cols, 0);
            for (int64_t r = 0; r < RB && cb * RB + r < c->Cout; r++)
                output_channel(c, g, M + r * g->npos * NT, cb * RB + r, rows, b0, nimg, th0, j->ep,
                               S, j->y);
        }
    }
}

void wino_lanes_run(const dconv_shape *c, const float *x, const float *U, const dconv_epilogue *ep,
                    float *y, float *base) {
    lgeom g;
    lgeom_of(c, &g);
    lane_job j = {c, &g, x, U, ep, y, base, wino_lanes_per_thread(c)};
    df_parallel_for(g.nb * g.bands, 1, lane_pieces, &j);
}

#else
void wino_set_lanes(int on) {
    (void)on;
}
#endif
