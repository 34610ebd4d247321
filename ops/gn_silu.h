/* The rows of SiLU shared by silu, groupnorm, groupnorm_silu, their
 * gradient kernels and the convolutions a groupnorm_silu is fused into: one
 * arithmetic, so the fused ops equal the pairs they replace bitwise. With AVX-512, sixteen lanes at
 * a time with a masked tail (an element's result never depends on where a piece starts), e^x as
 * df_expf computes it (util.h) and the sigmoid's divide replaced by the
 * 14-bit reciprocal estimate and one Newton step (about 1 ulp; the divide
 * was half the time of groupnorm_silu). Without it, scalar loops the
 * compiler vectorises. Internal to ops/. */
#ifndef DFRUN_GN_SILU_H
#define DFRUN_GN_SILU_H
#include "util.h"
#include <stdint.h>

#if defined(__AVX512F__)
#include "simd16.h"

/* e^x per lane: x clamped to [-87, 88], x = n ln2 + r, a degree-7 Taylor
 * polynomial in r, times 2^n. NaN stays NaN (max and min return their
 * second operand when one is NaN). */
static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_set1_ps(88.0f), _mm512_max_ps(_mm512_set1_ps(-87.0f), x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  /* ln2 hi */
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), r); /* ln2 lo */
    static const float c[8] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24,
                               1.0f / 6,    0.5f,       1.0f,       1.0f};
    __m512 p = _mm512_set1_ps(c[0]);
    for (int k = 1; k < 8; k++) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c[k]));
    return _mm512_scalef_ps(p, n);
}
/* 1 / (1 + e^-t) */
static inline __m512 sigmoid16(__m512 t) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 d = _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), t)));
    __m512 r = _mm512_rcp14_ps(d);
    return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, one), r); /* r (2 - d r) */
}
/* gy silu'(t) = gy s (1 + t (1 - s)), s = sigmoid(t) */
static inline __m512 silu_grad16(__m512 t, __m512 gy) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 s = sigmoid16(t);
    return _mm512_mul_ps(_mm512_mul_ps(gy, s), _mm512_fmadd_ps(t, _mm512_sub_ps(one, s), one));
}
/* (x - m) a + b */
static inline __m512 affine16(__m512 x, __m512 m, __m512 a, __m512 b) {
    return _mm512_fmadd_ps(_mm512_sub_ps(x, m), a, b);
}

/* y = t (affine = 0: t = x) or act((x - m) a + b), act = silu or none, for n elements */
static inline void gn_row(const float *x, int affine, float m, float a, float b, int silu, float *y,
                          int64_t n) {
    __m512 M = _mm512_set1_ps(m), A = _mm512_set1_ps(a), B = _mm512_set1_ps(b);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = lanes(n - i);
        __m512 t = _mm512_maskz_loadu_ps(k, x + i);
        if (affine) t = affine16(t, M, A, B);
        if (silu) t = _mm512_mul_ps(t, sigmoid16(t));
        _mm512_mask_storeu_ps(y + i, k, t);
    }
}
/* dt = gy silu'(t), t = x (affine = 0) or (x - m) a + b, for n elements */
static inline void silu_grad_row(const float *x, int affine, float m, float a, float b,
                                 const float *gy, float *dt, int64_t n) {
    __m512 M = _mm512_set1_ps(m), A = _mm512_set1_ps(a), B = _mm512_set1_ps(b);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = lanes(n - i);
        __m512 t = _mm512_maskz_loadu_ps(k, x + i);
        if (affine) t = affine16(t, M, A, B);
        _mm512_mask_storeu_ps(dt + i, k, silu_grad16(t, _mm512_maskz_loadu_ps(k, gy + i)));
    }
}

#else /* portable: scalar loops */
static inline void gn_row(const float *x, int affine, float m, float a, float b, int silu, float *y,
                          int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float t = affine ? (x[i] - m) * a + b : x[i];
        y[i] = silu ? t / (1.0f + df_expf(-t)) : t;
    }
}
static inline void silu_grad_row(const float *x, int affine, float m, float a, float b,
                                 const float *gy, float *dt, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float t = affine ? (x[i] - m) * a + b : x[i], s = 1.0f / (1.0f + df_expf(-t));
        dt[i] = gy[i] * s * (1.0f + t * (1.0f - s));
    }
}
#endif

/* y = silu(x) for n elements */
static inline void silu_row(const float *x, float *y, int64_t n) {
    gn_row(x, 0, 0, 1, 0, 1, y, n);
}

/* stats[(b G + g) 2 + {0, 1}] = the mean and 1 / sqrt(var + eps) of each
 * image b and group g of x [B, C, S] (C / G channels each), summed in double
 * and rounded to float, as groupnorm uses them; in parallel (norm.c). */
void gn_stats(const float *x, int64_t B, int64_t C, int64_t S, int64_t G, double eps, float *stats);

/* A groupnorm_silu that the convolution reading it applies as it loads its
 * input (see fuse.c): silu((x - mean) rstd gamma[c] + beta[c]) with the
 * statistics of gn_stats; gamma, beta NULL: 1 and 0. */
struct gn_silu_pre {
    const float *stats, *gamma, *beta;
    int64_t C, G;
};
/* y[0 .. n) = that of x[0 .. n), elements of channel c of image b */
static inline void gn_silu_pre_row(const struct gn_silu_pre *p, int64_t b, int64_t c,
                                   const float *x, float *y, int64_t n) {
    const float *s = p->stats + 2 * (b * p->G + c / (p->C / p->G));
    gn_row(x, 1, s[0], s[1] * (p->gamma ? p->gamma[c] : 1.0f), p->beta ? p->beta[c] : 0.0f, 1, y,
           n);
}

#endif
