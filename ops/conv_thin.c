/* Thin 3x3 convolutions (see conv_thin.h). A work item makes one image's
 * input planes with a border of zeros in a buffer of the thread's, P [Cin]
 * [H + 2][Wp] (through pre when x is read through a fused op), so that
 * every tap of a 16-pixel output vector is one plain load from P: the
 * output at (h, j) reads P[ci][h + kh][j + kw]. With few output channels
 * each vector of taps feeds every output channel's sum; with one input
 * channel the 9 tap vectors are loaded once and shared by all the output
 * channels. Both sum in (ci, kh, kw) order from zero. */
#include "conv_thin.h"

#if defined(__AVX512F__)
#include "conv_pre.h"
#include "parallel.h"
#include "simd16.h"
#include <string.h>

#define THIN_PLANES (1 << 20) /* floats of an image's padded planes at most */
#define THIN_CHUNKS 32        /* weight gradient: chunks of images at most */
#define THIN_ITEMS 16         /* forward: work items wanted at least */

typedef struct {
    int64_t Wp;    /* floats per padded row: the row's vectors and 16 more (taps at j + 2) */
    int64_t plane; /* floats per padded plane: (H + 2) Wp */
    int64_t per;   /* floats of a thread's planes, rounded to a cache line */
} tgeom;

static tgeom tgeom_of(const dconv_shape *c) {
    tgeom g;
    g.Wp = (c->W + 15) / 16 * 16 + 16;
    g.plane = (c->H + 2) * g.Wp;
    g.per = (c->Cin * g.plane + 15) & ~(int64_t)15;
    return g;
}

int thin_applies(const dconv_shape *c) {
    if (c->KH != 3 || c->KW != 3 || c->s != 1 || c->p != 1 || c->Ho != c->H || c->Wo != c->W ||
        (c->Cin > 1 && c->Cout > THIN_OUT))
        return 0;
    return c->Cin * tgeom_of(c).plane <= THIN_PLANES;
}

/* P [Cin][H + 2][Wp] = image b of x (through pre when not NULL) in the
 * input rows that output rows [r0, r1) read, zeros around: the border is
 * zeroed at a thread's first work item of a call (*fresh) and stays so, as
 * later items write only the inside */
static void fill_planes(const dconv_shape *c, const tgeom *g, const float *x, const conv_pre *pre,
                        int64_t b, int64_t r0, int64_t r1, float *P, int *fresh) {
    int64_t H = c->H, W = c->W;
    if (*fresh) memset(P, 0, (size_t)g->per * 4), *fresh = 0;
    for (int64_t ci = 0; ci < c->Cin; ci++)
        for (int64_t r = r0 > 0 ? r0 - 1 : 0; r < (r1 < H ? r1 + 1 : H); r++) {
            float *d = P + ci * g->plane + (r + 1) * g->Wp + 1;
            if (pre) {
                conv_pre_rows(pre, x, b, ci, r, r + 1, H, W, d);
                continue;
            }
            const float *src = x + ((b * c->Cin + ci) * H + r) * W;
            for (int64_t j0 = 0; j0 < W; j0 += 16) {
                __mmask16 m = lanes(W - j0);
                _mm512_mask_storeu_ps(d + j0, m, _mm512_maskz_loadu_ps(m, src + j0));
            }
        }
}

typedef struct {
    const dconv_shape *c;
    tgeom g;
    const float *x, *wk; /* wk [Cout][Cin][9]: the weights as this shape uses them */
    const conv_pre *pre;
    const dconv_epilogue *ep;
    float *y, *planes;
    int *fresh;         /* [nthreads]: the thread's planes are not zeroed yet */
    int64_t rows, nblk; /* output rows per work item, items per image */
} thin_job;

/* The sum a of output channel co at offset o (m: the lanes inside the row)
 * plus the epilogue, rounded as ((conv + bias) + add) */
static inline __m512 finish(const thin_job *j, __m512 a, int64_t b, int64_t co, int64_t o,
                            __mmask16 m) {
    const dconv_epilogue *ep = j->ep;
    int64_t Cout = j->c->Cout;
    if (!ep) return a;
    if (ep->bias) a = _mm512_add_ps(a, _mm512_set1_ps(ep->bias[co]));
    if (ep->add)
        a = _mm512_add_ps(
            a, ep->per_channel
                   ? _mm512_set1_ps(ep->add[b * Cout + co])
                   : _mm512_maskz_loadu_ps(m, ep->add + (b * Cout + co) * j->c->H * j->c->W + o));
    return a;
}

#define SLOTS 4 /* output vectors summed at once with few output channels */

/* Few output channels (Cout, a constant in each instance): SLOTS output
 * vectors at a time, so that their sums are independent chains; each tap
 * vector feeds every channel's sum */
static inline __attribute__((always_inline)) void few_out(const thin_job *j, const float *P,
                                                          int64_t b, int64_t r0, int64_t r1,
                                                          float *yb, const int Cout) {
    const tgeom *g = &j->g;
    int64_t Cin = j->c->Cin, H = j->c->H, W = j->c->W, nv = (W + 15) / 16, L = 9 * Cin;
    for (int64_t q = r0 * nv; q < r1 * nv; q += SLOTS) {
        int ns = r1 * nv - q < SLOTS ? (int)(r1 * nv - q) : SLOTS;
        const float *p0[SLOTS];
        int64_t o[SLOTS];
        __m512 acc[SLOTS][THIN_OUT];
        for (int s = 0; s < SLOTS; s++) { /* slots past the rows' end repeat the last */
            int64_t t = q + (s < ns ? s : ns - 1), h = t / nv, j0 = t % nv * 16;
            p0[s] = P + h * g->Wp + j0; /* tap (ci, kh, kw) at + ci plane + kh Wp + kw */
            o[s] = h * W + j0;
            for (int co = 0; co < Cout; co++) acc[s][co] = _mm512_setzero_ps();
        }
        for (int64_t ci = 0, l = 0; ci < Cin; ci++)
            for (int64_t kh = 0; kh < 3; kh++)
                for (int64_t kw = 0; kw < 3; kw++, l++) {
                    int64_t off = ci * g->plane + kh * g->Wp + kw;
                    for (int s = 0; s < SLOTS; s++) {
                        __m512 v = _mm512_loadu_ps(p0[s] + off);
                        for (int co = 0; co < Cout; co++)
                            acc[s][co] =
                                _mm512_fmadd_ps(_mm512_set1_ps(j->wk[co * L + l]), v, acc[s][co]);
                    }
                }
        for (int s = 0; s < ns; s++) {
            __mmask16 m = lanes(W - o[s] % W);
            for (int co = 0; co < Cout; co++)
                _mm512_mask_storeu_ps(yb + co * H * W + o[s], m,
                                      finish(j, acc[s][co], b, co, o[s], m));
        }
    }
}
/* One input channel: an output vector's 9 tap vectors loaded once and
 * shared by all the output channels */
static void one_in(const thin_job *j, const float *P, int64_t b, int64_t r0, int64_t r1,
                   float *yb) {
    const tgeom *g = &j->g;
    int64_t Cout = j->c->Cout, H = j->c->H, W = j->c->W;
    for (int64_t h = r0; h < r1; h++)
        for (int64_t j0 = 0; j0 < W; j0 += 16) {
            __mmask16 m = lanes(W - j0);
            int64_t o = h * W + j0;
            const float *p0 = P + h * g->Wp + j0;
            __m512 v[9];
            for (int k = 0; k < 9; k++) v[k] = _mm512_loadu_ps(p0 + k / 3 * g->Wp + k % 3);
            for (int64_t co = 0; co < Cout; co++) {
                __m512 a = _mm512_setzero_ps();
                for (int k = 0; k < 9; k++)
                    a = _mm512_fmadd_ps(_mm512_set1_ps(j->wk[co * 9 + k]), v[k], a);
                _mm512_mask_storeu_ps(yb + co * H * W + o, m, finish(j, a, b, co, o, m));
            }
        }
}

/* work items [i0, i1) (blocks of rows of an image): y of every channel */
static void thin_blocks(void *ctx, int64_t i0, int64_t i1, int worker) {
    const thin_job *j = ctx;
    const dconv_shape *c = j->c;
    float *P = j->planes + j->g.per * worker; // [Cin][H + 2][Wp]
    for (int64_t i = i0; i < i1; i++) {
        int64_t b = i / j->nblk, r0 = i % j->nblk * j->rows;
        int64_t r1 = r0 + j->rows < c->H ? r0 + j->rows : c->H;
        fill_planes(c, &j->g, j->x, j->pre, b, r0, r1, P, j->fresh + worker);
        float *yb = j->y + b * c->Cout * c->H * c->W; // [Cout][H][W]
        if (c->Cout == 1)
            few_out(j, P, b, r0, r1, yb, 1);
        else if (c->Cout == 2)
            few_out(j, P, b, r0, r1, yb, 2);
        else
            one_in(j, P, b, r0, r1, yb);
    }
}

/* floats of n values, rounded to a cache line */
static size_t line_floats(int64_t n) {
    return ((size_t)n + 15) & ~(size_t)15;
}
/* scratch: [head floats][nthreads flags][nthreads planes] */
static size_t scratch_of(const dconv_shape *c, size_t head, int nthreads) {
    return head + line_floats(nthreads) + (size_t)nthreads * (size_t)tgeom_of(c).per;
}
static int *fresh_flags(float *flags, int nthreads) {
    int *f = (int *)flags;
    for (int k = 0; k < nthreads; k++) f[k] = 1;
    return f;
}
size_t thin_scratch_floats(const dconv_shape *c, int nthreads) {
    return scratch_of(c, line_floats(c->Cout * c->Cin * 9), nthreads);
}

void thin_run(const dconv_shape *c, const float *x, const conv_pre *pre, const float *w, int flip,
              const dconv_epilogue *ep, float *y, float *scratch, int nthreads) {
    float *flags = scratch + line_floats(c->Cout * c->Cin * 9);
    /* whole images, or with fewer than THIN_ITEMS images blocks of rows: the
     * outputs are the same either way */
    int64_t want = c->B >= THIN_ITEMS ? 1 : (THIN_ITEMS + c->B - 1) / c->B;
    int64_t rows = (c->H + want - 1) / want;
    thin_job j = {c,
                  tgeom_of(c),
                  x,
                  w,
                  pre,
                  ep,
                  y,
                  flags + line_floats(nthreads),
                  fresh_flags(flags, nthreads),
                  rows,
                  (c->H + rows - 1) / rows};
    if (flip) { /* wk[co][ci][k] = w[ci][co][8 - k] */
        for (int64_t co = 0; co < c->Cout; co++)
            for (int64_t ci = 0; ci < c->Cin; ci++)
                for (int k = 0; k < 9; k++)
                    scratch[(co * c->Cin + ci) * 9 + k] = w[(ci * c->Cout + co) * 9 + 8 - k];
        j.wk = scratch;
    }
    df_parallel_for(c->B * j.nblk, 1, thin_blocks, &j);
}

/* ---- the weight gradient ---- */
typedef struct {
    const dconv_shape *c;
    tgeom g;
    const float *x, *gy;
    const conv_pre *pre;
    float *parts, *planes; /* parts [chunks][Cout][Cin][9] */
    int64_t per_chunk;
    int *fresh; /* as thin_job's */
} thin_bw_job;

static int64_t bw_chunks(const dconv_shape *c, int64_t *per_chunk) {
    int64_t want = c->B < THIN_CHUNKS ? c->B : THIN_CHUNKS;
    *per_chunk = (c->B + want - 1) / want;
    return (c->B + *per_chunk - 1) / *per_chunk;
}

/* chunks [c0, c1): each image's sums over its pixels added to the chunk's part in order */
static void thin_bw_chunks(void *ctx, int64_t c0, int64_t c1, int worker) {
    const thin_bw_job *j = ctx;
    const dconv_shape *c = j->c;
    const tgeom *g = &j->g;
    float *P = j->planes + g->per * worker; // [Cin][H + 2][Wp]
    int64_t Cin = c->Cin, Cout = c->Cout, H = c->H, W = c->W;
    for (int64_t ch = c0; ch < c1; ch++) {
        float *part = j->parts + ch * Cout * Cin * 9; // [Cout][Cin][9]
        memset(part, 0, (size_t)(Cout * Cin * 9) * 4);
        int64_t b1 = (ch + 1) * j->per_chunk < c->B ? (ch + 1) * j->per_chunk : c->B;
        for (int64_t b = ch * j->per_chunk; b < b1; b++) {
            fill_planes(c, g, j->x, j->pre, b, 0, c->H, P, j->fresh + worker);
            for (int64_t co = 0; co < Cout; co++) {
                const float *gp = j->gy + (b * Cout + co) * H * W; // [H][W]
                for (int64_t ci = 0; ci < Cin; ci++) {
                    __m512 acc[9];
                    for (int k = 0; k < 9; k++) acc[k] = _mm512_setzero_ps();
                    for (int64_t h = 0; h < H; h++)
                        for (int64_t j0 = 0; j0 < W; j0 += 16) {
                            __m512 gv = _mm512_maskz_loadu_ps(lanes(W - j0), gp + h * W + j0);
                            const float *p0 = P + ci * g->plane + h * g->Wp + j0;
                            for (int k = 0; k < 9; k++)
                                acc[k] = _mm512_fmadd_ps(
                                    gv, _mm512_loadu_ps(p0 + k / 3 * g->Wp + k % 3), acc[k]);
                        }
                    for (int k = 0; k < 9; k++)
                        part[(co * Cin + ci) * 9 + k] += _mm512_reduce_add_ps(acc[k]);
                }
            }
        }
    }
}

size_t thin_bw_scratch_floats(const dconv_shape *c, int nthreads) {
    int64_t per_chunk, chunks = bw_chunks(c, &per_chunk);
    return scratch_of(c, line_floats(chunks * c->Cout * c->Cin * 9), nthreads);
}

void thin_bw_run(const dconv_shape *c, const float *x, const conv_pre *pre, const float *gy,
                 float *dw, float *scratch, int nthreads) {
    int64_t per_chunk, chunks = bw_chunks(c, &per_chunk), n = c->Cout * c->Cin * 9;
    float *flags = scratch + line_floats(chunks * n);
    thin_bw_job j = {c,
                     tgeom_of(c),
                     x,
                     gy,
                     pre,
                     scratch,
                     flags + line_floats(nthreads),
                     per_chunk,
                     fresh_flags(flags, nthreads)};
    df_parallel_for(chunks, 1, thin_bw_chunks, &j);
    for (int64_t i = 0; i < n; i++) { /* the chunks' parts in chunk order */
        float s = 0;
        for (int64_t ch = 0; ch < chunks; ch++) s += j.parts[ch * n + i];
        dw[i] = s;
    }
}

#else /* no AVX-512: the direct kernel and the GEMM serve these shapes */
int thin_applies(const dconv_shape *c) {
    (void)c;
    return 0;
}
size_t thin_scratch_floats(const dconv_shape *c, int nthreads) {
    (void)c, (void)nthreads;
    return 0;
}
void thin_run(const dconv_shape *c, const float *x, const struct conv_pre *pre, const float *w,
              int flip, const dconv_epilogue *ep, float *y, float *scratch, int nthreads) {
    (void)c, (void)x, (void)pre, (void)w, (void)flip, (void)ep, (void)y, (void)scratch;
    (void)nthreads;
}
size_t thin_bw_scratch_floats(const dconv_shape *c, int nthreads) {
    (void)c, (void)nthreads;
    return 0;
}
void thin_bw_run(const dconv_shape *c, const float *x, const struct conv_pre *pre, const float *gy,
                 float *dw, float *scratch, int nthreads) {
    (void)c, (void)x, (void)pre, (void)gy, (void)dw, (void)scratch, (void)nthreads;
}
#endif
