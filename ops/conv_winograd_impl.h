/* The AVX-512 pieces shared by the Winograd forward (conv_winograd.c) and
 * weight gradient (conv_winograd_bw.c): the input transform of sixteen 6 x 6
 * patches at once and the register-tile product kernel. Internal to ops/. */
#ifndef DFRUN_CONV_WINOGRAD_IMPL_H
#define DFRUN_CONV_WINOGRAD_IMPL_H
#include "conv_direct.h"
#include "simd16.h"
#include <stdint.h>

#define NT 16   /* lanes of a vector */
#define RB 8    /* rows (channels) of the product kernel's register tile */
#define NVMAX 3 /* column vectors of the product kernel's register tile */

/* r = BT d (6 values) */
static inline void bt6(const __m512 d[6], __m512 r[6]) {
    const __m512 two = _mm512_set1_ps(2), four = _mm512_set1_ps(4), five = _mm512_set1_ps(5);
    __m512 a = _mm512_fnmadd_ps(four, d[2], d[4]); /* d4 - 4 d2 */
    __m512 b = _mm512_fnmadd_ps(four, d[1], d[3]); /* d3 - 4 d1 */
    __m512 e = _mm512_sub_ps(d[4], d[2]), f = _mm512_sub_ps(d[3], d[1]);
    r[0] = _mm512_fnmadd_ps(five, d[2], _mm512_fmadd_ps(four, d[0], d[4]));
    r[1] = _mm512_add_ps(a, b);
    r[2] = _mm512_sub_ps(a, b);
    r[3] = _mm512_fmadd_ps(two, f, e);
    r[4] = _mm512_fnmadd_ps(two, f, e);
    r[5] = _mm512_fnmadd_ps(five, d[3], _mm512_fmadd_ps(four, d[1], d[5]));
}

/* Sixteen n x n patches (n = 6, or 9 for F(7x7, 3x3)) of planes with rows W
 * floats apart, one per lane: each patch's top-left corner (an offset from a
 * base pointer) and, per patch row, its columns inside the plane (0: the row
 * is outside or the lane unused). Masked loads never touch what a mask
 * leaves out. */
typedef struct {
    int32_t off[NT];
    __mmask16 mask[9][NT];
} patch16;

/* Patch rows i and i + 1 of lane l as the low and high halves of a vector
 * (columns 0 .. 5, zeros outside). */
static inline __m512 row_pair(const float *base, const patch16 *p, int l, int i, int64_t W) {
    const float *r = base + p->off[l] + i * W;
    __m256 lo = _mm256_maskz_loadu_ps((__mmask8)p->mask[i][l], r);
    __m256 hi = _mm256_maskz_loadu_ps((__mmask8)p->mask[i + 1][l], r + W);
    return _mm512_castpd_ps(
        _mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
}

/* V[k * plane .. + 15] for k < 36 = BT d B of the sixteen patches, a patch
 * per lane: loaded row pair by row pair and turned patch-per-lane by 16 x 16
 * transposes (gathers are much slower). */
static inline void transform_patches(const float *base, int64_t W, const patch16 *p, int64_t plane,
                                     float *V) {
    __m512 d[6][6]; /* [patch row][patch column] */
    for (int i = 0; i < 6; i += 2) {
        __m512 v[16];
        for (int l = 0; l < NT; l++) v[l] = row_pair(base, p, l, i, W);
        transpose16(v);
        for (int j = 0; j < 6; j++) d[i][j] = v[j], d[i + 1][j] = v[8 + j];
    }
    __m512 t[6][6]; /* [row of BT d][patch column] */
    for (int j = 0; j < 6; j++) {
        __m512 col[6], r[6];
        for (int i = 0; i < 6; i++) col[i] = d[i][j];
        bt6(col, r);
        for (int k = 0; k < 6; k++) t[k][j] = r[k];
    }
    for (int k = 0; k < 6; k++) {
        __m512 r[6];
        bt6(t[k], r);
        for (int l = 0; l < 6; l++) _mm512_storeu_ps(V + (k * 6 + l) * plane, r[l]);
    }
}

/* C[r][16 nv columns] = (C +) sum over k < K of A[k][r] B[k][16 nv columns]
 * for r < RB: A [K][RB] is broadcast, B's rows are ldb floats apart, C's
 * ldc. The sum runs in k order. */
static inline __attribute__((always_inline)) void products(const float *A, const float *B,
                                                           int64_t K, int64_t ldb, float *C,
                                                           int64_t ldc, const int nv,
                                                           const int add) {
    __m512 acc[RB][NVMAX];
    for (int r = 0; r < RB; r++)
        for (int q = 0; q < nv; q++) acc[r][q] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        __m512 v[NVMAX];
        for (int q = 0; q < nv; q++) v[q] = _mm512_loadu_ps(B + k * ldb + q * NT);
        for (int r = 0; r < RB; r++) {
            __m512 u = _mm512_set1_ps(A[k * RB + r]);
            for (int q = 0; q < nv; q++) acc[r][q] = _mm512_fmadd_ps(u, v[q], acc[r][q]);
        }
    }
    for (int r = 0; r < RB; r++)
        for (int q = 0; q < nv; q++) {
            float *c = C + r * ldc + q * NT;
            _mm512_storeu_ps(c, add ? _mm512_add_ps(_mm512_loadu_ps(c), acc[r][q]) : acc[r][q]);
        }
}
#define WINO_PRODUCTS(NV, ADD)                                                                     \
    static inline void products_##NV##_##ADD(const float *A, const float *B, int64_t K,            \
                                             int64_t ldb, float *C, int64_t ldc) {                 \
        products(A, B, K, ldb, C, ldc, NV, ADD);                                                   \
    }
WINO_PRODUCTS(1, 0)
WINO_PRODUCTS(2, 0)
WINO_PRODUCTS(3, 0)
WINO_PRODUCTS(1, 1)
WINO_PRODUCTS(2, 1)
WINO_PRODUCTS(3, 1)
#undef WINO_PRODUCTS

/* products over nvec column vectors, NVMAX at a time */
static inline void products_cols(const float *A, const float *B, int64_t K, int64_t ldb, float *C,
                                 int64_t ldc, int64_t nvec, int add) {
    int64_t q = 0;
    for (; q + 3 <= nvec; q += 3)
        (add ? products_3_1 : products_3_0)(A, B + q * NT, K, ldb, C + q * NT, ldc);
    if (nvec - q == 2) (add ? products_2_1 : products_2_0)(A, B + q * NT, K, ldb, C + q * NT, ldc);
    if (nvec - q == 1) (add ? products_1_1 : products_1_0)(A, B + q * NT, K, ldb, C + q * NT, ldc);
}

/* The forward's tiles: sixteen tiles (one per lane) of m x m outputs, their
 * patches, and per lane the offset of the first output in channel 0 of y,
 * the image, the output rows inside the plane (0 for lanes beyond the last
 * tile, which are all at the end) and the mask of its columns inside. */
typedef struct {
    patch16 in;
    int32_t out[NT], img[NT];
    int8_t rows[NT];
    __mmask8 cols[NT];
} tile_group;

/* A tile size: F(4x4, 3x3) (conv_winograd.c) or F(7x7, 3x3)
 * (conv_winograd7.c). input writes the n x n transformed values of 16
 * patches (sixteen tiles of a channel, or one tile of sixteen channels) to
 * V[k * plane], k < n n; output turns the n n products M[k * plane] of one
 * output channel into the group's outputs, adds the epilogue and stores
 * them; gy writes Z = AT^T gy AT (m x m -> n x n) of one tile of the output
 * gradient in channels co0 .. co0 + 15 to Z[k][co0 / RB + h][t][RB] (h = 0, 1;
 * zk floats per k, T tiles per block) for the weight gradient. G [n][3] is
 * the weight transform. */
typedef struct {
    int m, n;
    const double *G;
    void (*input)(const float *base, int64_t W, const patch16 *p, int64_t plane, float *V);
    void (*output)(const dconv_shape *c, const float *M, int64_t plane, const tile_group *tg,
                   int64_t co, const dconv_epilogue *ep, float *y);
    void (*gy)(const dconv_shape *c, const float *gy, int64_t b, int64_t oh, int64_t ow,
               int64_t co0, int64_t T, int64_t zk, int64_t t, float *Z);
} wino_kind;
extern const wino_kind wino_f4, wino_f7;
/* Both, for sizing scratch: the switch may change the choice after planning */
#define WINO_KINDS 2
/* The rows [*r0, *r1) of image b that the n x n patches of tiles [t0, t0 + cnt)
 * read (tiles of m x m outputs, numbered image by image and row by row: ntile
 * an image, ntw a row; a patch starts a row above its tile) */
static inline void wino_tile_rows(int64_t b, int64_t t0, int64_t cnt, int64_t ntile, int64_t ntw,
                                  int m, int n, int64_t H, int64_t *r0, int64_t *r1) {
    int64_t lo = t0 > b * ntile ? t0 - b * ntile : 0;
    int64_t hi = t0 + cnt < (b + 1) * ntile ? t0 + cnt - b * ntile : ntile;
    *r0 = lo / ntw * m - 1, *r1 = (hi - 1) / ntw * m - 1 + n;
    if (*r0 < 0) *r0 = 0;
    if (*r1 > H) *r1 = H;
}
extern const wino_kind *const wino_kinds[WINO_KINDS];
/* The tile size for shape c (the forward's: the weight gradient uses the same) */
const wino_kind *wino_kind_of(const dconv_shape *c);
/* Whether a convolution with tiles k runs bf16 products when the graph
 * asks for bf16: with F(4,3) only (F(7,3)'s error would be 40%) */
int wino_bf16_for(const wino_kind *k, int bf16);
/* The 16 channel lanes of r to z[0 .. RB) and z[T RB ..) (two blocks of Z) */
static inline void wino_store_z(float *z, int64_t T, __m512 r) {
    _mm256_storeu_ps(z, _mm512_castps512_ps256(r));
    _mm256_storeu_ps(z + T * RB, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(r), 1)));
}
/* F(4x4, 3x3)'s gy (conv_winograd_bw.c) */
void wino_gy4(const dconv_shape *c, const float *gy, int64_t b, int64_t oh, int64_t ow, int64_t co0,
              int64_t T, int64_t zk, int64_t t, float *Z);

/* Where a group's outputs of one channel go: y and the epilogue's addend,
 * a tensor (add) or one value per image and channel (per, Cout apart). */
typedef struct {
    float *y;
    const float *add, *per;
    int64_t Cout;
} wino_dst;
static inline wino_dst wino_dst_of(const dconv_shape *c, int64_t co, const dconv_epilogue *ep,
                                   float *y) {
    int64_t HW = c->Ho * c->Wo;
    int has = ep && ep->add;
    return (wino_dst){y + co * HW, has && !ep->per_channel ? ep->add + co * HW : NULL,
                      has && ep->per_channel ? ep->add + co : NULL, c->Cout};
}
/* The per-image value of lane l's tile (zeros without one) */
static inline __m256 wino_lane_addend(const wino_dst *d, const tile_group *tg, int l) {
    return d->per ? _mm256_set1_ps(d->per[tg->img[l] * d->Cout]) : _mm256_setzero_ps();
}
/* Stores columns m of one output row v, plus a1 and the tensor addend, at offset o */
static inline void wino_put(const wino_dst *d, int64_t o, __mmask8 m, __m256 v, __m256 a1) {
    v = _mm256_add_ps(v, a1);
    if (d->add) v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(m, d->add + o));
    _mm256_mask_storeu_ps(d->y + o, m, v);
}

#endif
