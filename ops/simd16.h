/* AVX-512 helpers shared by the convolution kernels (internal to ops/). */
#ifndef DFRUN_SIMD16_H
#define DFRUN_SIMD16_H
#if defined(__AVX512F__)
#include <immintrin.h>
#include <stdint.h>

/* In-register transpose of a 16 x 16 block: r[i][j] <- r[j][i]. */
static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#define PD_(x) _mm512_castps_pd(x)
#define PS_(x) _mm512_castpd_ps(x)
    for (int i = 0; i < 4; i++) {
        r[4 * i] = PS_(_mm512_unpacklo_pd(PD_(t[4 * i]), PD_(t[4 * i + 2])));
        r[4 * i + 1] = PS_(_mm512_unpackhi_pd(PD_(t[4 * i]), PD_(t[4 * i + 2])));
        r[4 * i + 2] = PS_(_mm512_unpacklo_pd(PD_(t[4 * i + 1]), PD_(t[4 * i + 3])));
        r[4 * i + 3] = PS_(_mm512_unpackhi_pd(PD_(t[4 * i + 1]), PD_(t[4 * i + 3])));
    }
#undef PD_
#undef PS_
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++) {
            t[8 * h + i] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + i + 4], 0x88);
            t[8 * h + i + 4] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + i + 4], 0xdd);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
}
static inline __mmask16 lanes(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}
#endif
#endif
