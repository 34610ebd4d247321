/* Winograd F(7x7, 3x3) tiles (see conv_winograd.c and conv_winograd_bw.c),
 * points 0, +-1, +-2, +-1/2, 1/4 and infinity: a 9 x 9 patch gives 7 x 7
 * outputs from 81 products, against 144 for the four F(4x4, 3x3) tiles the
 * same outputs need on a 7 x 7 plane (wino_kind_of says where it is used).
 * AT and BT hold dyadic fractions only (exact in float); G is applied in
 * float64. Its float32 error is about 30x F(4,3)'s (test_winograd states
 * and bounds it). Here: the input, output and output-gradient transforms. */
#include "conv_winograd.h"

#if defined(__AVX512F__) && defined(__AVX512VL__)
#include "conv_winograd_impl.h"

/* Generated with the Cook-Toom construction (Lavin & Gray 2015): in 1D,
 * y = AT [(G g) . (BT d)] for 7 outputs y[i] = sum_k d[i + k] g[k]. */
static const double G7[9][3] = {
    {4, 0, 0},
    {-8.0 / 27, -8.0 / 27, -8.0 / 27},
    {8.0 / 45, -8.0 / 45, 8.0 / 45},
    {2.0 / 315, 4.0 / 315, 8.0 / 315},
    {-2.0 / 405, 4.0 / 405, -8.0 / 405},
    {128.0 / 45, 64.0 / 45, 32.0 / 45},
    {-128.0 / 135, 64.0 / 135, -32.0 / 135},
    {-16384.0 / 2835, -4096.0 / 2835, -1024.0 / 2835},
    {0, 0, 1},
};
static const float BT7[9][9] = {
    {0.25f, -1.0f, -1.3125f, 5.25f, 1.3125f, -5.25f, -0.25f, 1.0f, 0.0f},
    {0.0f, -0.25f, 0.75f, 2.0625f, -3.1875f, -4.5f, 0.75f, 1.0f, 0.0f},
    {0.0f, 0.25f, -1.25f, -0.0625f, 5.3125f, -4.0f, -1.25f, 1.0f, 0.0f},
    {0.0f, -0.125f, 0.4375f, 0.875f, -2.1875f, -1.75f, 1.75f, 1.0f, 0.0f},
    {0.0f, 0.125f, -0.5625f, -0.375f, 2.8125f, -0.75f, -2.25f, 1.0f, 0.0f},
    {0.0f, -0.5f, 1.0f, 4.625f, -1.25f, -5.125f, 0.25f, 1.0f, 0.0f},
    {0.0f, 0.5f, -3.0f, 3.375f, 3.75f, -4.875f, -0.75f, 1.0f, 0.0f},
    {0.0f, -1.0f, 0.0f, 5.25f, 0.0f, -5.25f, 0.0f, 1.0f, 0.0f},
    {0.0f, 0.25f, -1.0f, -1.3125f, 5.25f, 1.3125f, -5.25f, -0.25f, 1.0f},
};
static const float AT7[7][9] = {
    {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f},
    {0.0f, 1.0f, -1.0f, 2.0f, -2.0f, 0.5f, -0.5f, 0.25f, 0.0f},
    {0.0f, 1.0f, 1.0f, 4.0f, 4.0f, 0.25f, 0.25f, 0.0625f, 0.0f},
    {0.0f, 1.0f, -1.0f, 8.0f, -8.0f, 0.125f, -0.125f, 0.015625f, 0.0f},
    {0.0f, 1.0f, 1.0f, 16.0f, 16.0f, 0.0625f, 0.0625f, 0.00390625f, 0.0f},
    {0.0f, 1.0f, -1.0f, 32.0f, -32.0f, 0.03125f, -0.03125f, 0.0009765625f, 0.0f},
    {0.0f, 1.0f, 1.0f, 64.0f, 64.0f, 0.015625f, 0.015625f, 0.000244140625f, 1.0f},
};
/* AT transposed (9 x 7), padded to 9 columns of zeros */
static const float ATT7[9][9] = {
    {1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f},
    {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f, 0.0f},
    {1.0f, -1.0f, 1.0f, -1.0f, 1.0f, -1.0f, 1.0f, 0.0f, 0.0f},
    {1.0f, 2.0f, 4.0f, 8.0f, 16.0f, 32.0f, 64.0f, 0.0f, 0.0f},
    {1.0f, -2.0f, 4.0f, -8.0f, 16.0f, -32.0f, 64.0f, 0.0f, 0.0f},
    {1.0f, 0.5f, 0.25f, 0.125f, 0.0625f, 0.03125f, 0.015625f, 0.0f, 0.0f},
    {1.0f, -0.5f, 0.25f, -0.125f, 0.0625f, -0.03125f, 0.015625f, 0.0f, 0.0f},
    {1.0f, 0.25f, 0.0625f, 0.015625f, 0.00390625f, 0.0009765625f, 0.000244140625f, 0.0f, 0.0f},
    {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f, 0.0f},
};

/* r[k] = sum over i of C[k][i] d[i] for k < R: the table is constant and the
 * loops unrolled, so zero coefficients cost nothing and +-1 no multiply. */
#define WINO_MATVEC(NAME, C, R)                                                                    \
    static inline __attribute__((always_inline)) void NAME(const __m512 d[9], __m512 r[R]) {       \
        _Pragma("GCC unroll 9") for (int k = 0; k < R; k++) {                                      \
            __m512 acc = _mm512_setzero_ps();                                                      \
            int first = 1;                                                                         \
            _Pragma("GCC unroll 9") for (int i = 0; i < 9; i++) {                                  \
                float b = C[k][i];                                                                 \
                if (b == 0.0f) continue;                                                           \
                __m512 t =                                                                         \
                    b == 1.0f || b == -1.0f ? d[i] : _mm512_mul_ps(_mm512_set1_ps(b), d[i]);       \
                if (first)                                                                         \
                    acc = b == -1.0f ? _mm512_sub_ps(_mm512_setzero_ps(), t) : t;                  \
                else if (b == 1.0f)                                                                \
                    acc = _mm512_add_ps(acc, d[i]);                                                \
                else if (b == -1.0f)                                                               \
                    acc = _mm512_sub_ps(acc, d[i]);                                                \
                else                                                                               \
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(b), d[i], acc);                           \
                first = 0;                                                                         \
            }                                                                                      \
            r[k] = acc;                                                                            \
        }                                                                                          \
    }
WINO_MATVEC(bt9, BT7, 9)
WINO_MATVEC(at9, AT7, 7)
WINO_MATVEC(att9, ATT7, 9)
#undef WINO_MATVEC

/* V[k * plane .. + 15] for k < 81 = BT d B of the sixteen 9 x 9 patches, a
 * patch per lane: each patch row is loaded per lane and turned lane-per-patch
 * by a 16 x 16 transpose, transformed along the row, then down the columns. */
static void input9(const float *base, int64_t W, const patch16 *p, int64_t plane, float *V) {
    __m512 h[9][9]; /* [patch row][BT along the row] */
    for (int i = 0; i < 9; i++) {
        __m512 v[16];
        for (int l = 0; l < NT; l++)
            v[l] = _mm512_maskz_loadu_ps(p->mask[i][l], base + p->off[l] + i * W);
        transpose16(v); /* v[j] = column j of the patches' row i */
        bt9(v, h[i]);
    }
    for (int l = 0; l < 9; l++) {
        __m512 col[9], r[9];
        for (int i = 0; i < 9; i++) col[i] = h[i][l];
        bt9(col, r);
        for (int k = 0; k < 9; k++) _mm512_storeu_ps(V + (k * 9 + l) * plane, r[k]);
    }
}

/* y of channel co for a group from its 81 products M[k * plane ..]: AT m A,
 * plus bias and the epilogue, stored two rows of each tile at a time (row p
 * in the low, p + 1 in the high half of a vector after the transpose). */
static void output9(const dconv_shape *c, const float *M, int64_t plane, const tile_group *tg,
                    int64_t co, const dconv_epilogue *ep, float *y) {
    __m512 bv = _mm512_set1_ps(ep && ep->bias ? ep->bias[co] : 0.0f);
    wino_dst d = wino_dst_of(c, co, ep, y);
    __m512 t[9][7], o[8][7]; /* t: AT along the rows of m; o: outputs [row][column] */
    for (int a = 0; a < 9; a++) {
        __m512 m[9];
        for (int b = 0; b < 9; b++) m[b] = _mm512_loadu_ps(M + (a * 9 + b) * plane);
        at9(m, t[a]);
    }
    for (int q = 0; q < 7; q++) {
        __m512 col[9], r[7];
        for (int a = 0; a < 9; a++) col[a] = t[a][q];
        at9(col, r);
        for (int p = 0; p < 7; p++) o[p][q] = _mm512_add_ps(r[p], bv);
    }
    for (int q = 0; q < 7; q++) o[7][q] = _mm512_setzero_ps();
    for (int p = 0; p < 7; p += 2) {
        __m512 v[16];
        for (int q = 0; q < 7; q++) v[q] = o[p][q], v[8 + q] = o[p + 1][q];
        v[7] = v[15] = _mm512_setzero_ps();
        transpose16(v);
        for (int l = 0; l < NT && tg->rows[l]; l++) {
            if (tg->rows[l] <= p) continue; /* a tile at the bottom edge */
            __m256 a1 = wino_lane_addend(&d, tg, l);
            int64_t o0 = tg->out[l] + p * c->Wo;
            wino_put(&d, o0, tg->cols[l], _mm512_castps512_ps256(v[l]), a1);
            if (tg->rows[l] > p + 1)
                wino_put(&d, o0 + c->Wo, tg->cols[l],
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[l]), 1)), a1);
        }
    }
}

/* Z[k][co0 / RB + h][t][RB] (h = 0, 1) = AT^T gy AT (7 x 7 -> 9 x 9) of the
 * tile of gy at output (oh, ow) of image b, channels co0 .. co0 + 15 (a
 * channel per lane; zeros outside gy): rows loaded in pairs per lane and
 * turned lane-per-channel by 16 x 16 transposes. */
static void gy9(const dconv_shape *c, const float *gy, int64_t b, int64_t oh, int64_t ow,
                int64_t co0, int64_t T, int64_t zk, int64_t t, float *Z) {
    int64_t nr = c->Ho - oh < 7 ? c->Ho - oh : 7, nc = c->Wo - ow < 7 ? c->Wo - ow : 7;
    __mmask8 cm = (__mmask8)((1u << nc) - 1);
    __m512 f[7][9]; /* [row][column], a channel per lane (columns 7, 8 unused) */
    for (int i = 0; i < 7; i += 2) {
        __m512 v[16];
        for (int l = 0; l < NT; l++) {
            __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
            if (co0 + l < c->Cout) {
                const float *p = gy + ((b * c->Cout + co0 + l) * c->Ho + oh) * c->Wo + ow;
                if (i < nr) lo = _mm256_maskz_loadu_ps(cm, p + i * c->Wo);
                if (i + 1 < nr) hi = _mm256_maskz_loadu_ps(cm, p + (i + 1) * c->Wo);
            }
            v[l] = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)),
                                                       _mm256_castps_pd(hi), 1));
        }
        transpose16(v); /* v[j] = gy row i, column j; v[8 + j] = row i + 1 */
        for (int j = 0; j < 7; j++) {
            f[i][j] = v[j];
            if (i + 1 < 7) f[i + 1][j] = v[8 + j];
        }
    }
    __m512 a[9][9]; /* a[i][s] = (gy AT)[i][s] for rows i < 7 */
    for (int i = 0; i < 7; i++) att9(f[i], a[i]);
    for (int s = 0; s < 9; s++) {
        __m512 col[9], r[9];
        for (int i = 0; i < 7; i++) col[i] = a[i][s];
        att9(col, r);
        for (int m = 0; m < 9; m++)
            wino_store_z(Z + (m * 9 + s) * zk + (co0 / RB * T + t) * RB, T, r[m]);
    }
}

const wino_kind wino_f7 = {7, 9, &G7[0][0], input9, output9, gy9};
#endif
