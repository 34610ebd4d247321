/* How a convolution (and its weight gradient) reads its input when fuse.c
 * has folded the op before it into it: through a groupnorm_silu, or through
 * a nearest upsample. The convolution sees the virtual input of that op's
 * output shape; its kernels ask for rows of it (internal to ops/). */
#ifndef DFRUN_CONV_PRE_H
#define DFRUN_CONV_PRE_H
#include "gn_silu.h"
#include <stdint.h>
#include <string.h>

typedef struct conv_pre {
    struct gn_silu_pre gn; /* up == 0: silu(groupnorm(x)) with these statistics */
    int64_t up;            /* > 1: x is [B, C, H / up, W / up], repeated up x up */
} conv_pre;

/* dst[(r - r0) W + j] = rows [r0, r1) of channel c of image b of the virtual
 * input [B, C, H, W] made from x */
static inline void conv_pre_rows(const conv_pre *p, const float *x, int64_t b, int64_t c,
                                 int64_t r0, int64_t r1, int64_t H, int64_t W, float *dst) {
    if (!p->up) {
        gn_silu_pre_row(&p->gn, b, c, x + (b * p->gn.C + c) * H * W + r0 * W, dst, (r1 - r0) * W);
        return;
    }
    int64_t Hs = H / p->up, Ws = W / p->up, u = p->up;
    for (int64_t r = r0; r < r1; r++) {
        float *d = dst + (r - r0) * W;
        const float *s = x + ((b * p->gn.C + c) * Hs + r / u) * Ws;
#if defined(__AVX512F__)
        if (u == 2) { /* each source value twice, into this row and the next of its pair */
            int two = r % 2 == 0 && r + 1 < r1;
            const __m512i lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
            for (int64_t j = 0; j < Ws; j += 16) {
                int64_t n = 2 * (Ws - j < 16 ? Ws - j : 16); /* values out of these 16 */
                __m512 v = _mm512_maskz_loadu_ps(lanes(Ws - j), s + j);
                __m512 a = _mm512_permutexvar_ps(lo, v), e = _mm512_permutexvar_ps(hi, v);
                __mmask16 ma = lanes(n), me = n > 16 ? lanes(n - 16) : 0;
                _mm512_mask_storeu_ps(d + 2 * j, ma, a);
                _mm512_mask_storeu_ps(d + 2 * j + 16, me, e);
                if (two) {
                    _mm512_mask_storeu_ps(d + W + 2 * j, ma, a);
                    _mm512_mask_storeu_ps(d + W + 2 * j + 16, me, e);
                }
            }
            r += two;
            continue;
        }
#endif
        if (r > r0 && r % u) { /* the row above came from the same source row */
            memcpy(d, d - W, (size_t)W * 4);
            continue;
        }
        if (u == 2)
            for (int64_t j = 0; j < Ws; j++) d[2 * j] = d[2 * j + 1] = s[j];
        else
            for (int64_t j = 0; j < Ws; j++)
                for (int64_t k = 0; k < u; k++) d[j * u + k] = s[j];
    }
}

#endif
