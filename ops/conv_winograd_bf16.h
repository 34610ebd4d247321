/* bf16 products for the Winograd kernels (precision bf16; internal to ops/).
 *
 * The operands of the 36 products per tile (transformed weights U and
 * transformed inputs V, or in the weight gradient Z and V) are rounded to
 * bf16 (round to nearest even) and stored as pairs along the summed index
 * k: one 32-bit lane holds (k = 2i in the low half, 2i + 1 in the high half).
 * The sums accumulate in float32. With AVX512_BF16 (checked at run time) a
 * pair is one vdpbf16ps; without it the pairs are widened back to float32
 * and summed by two FMAs (the same rounded operands, so nearly the same
 * result, only slower). */
#ifndef DFRUN_CONV_WINOGRAD_BF16_H
#define DFRUN_CONV_WINOGRAD_BF16_H
#include "conv_winograd_impl.h"

/* bf16 bits of x (round to nearest even; NaN stays a quiet NaN) in the low
 * 16 bits of each lane */
static inline __m512i bf16_bits(__m512 x) {
    __m512i b = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(b, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0x7fc0));
}
/* lane j: bf16(lo[j]) | bf16(hi[j]) << 16 */
static inline __m512i bf16_pair(__m512 lo, __m512 hi) {
    return _mm512_or_si512(bf16_bits(lo), _mm512_slli_epi32(bf16_bits(hi), 16));
}
/* 8 floats of lo and hi (NULL: zeros) as 8 pairs into out */
static inline void bf16_pack8(const float *lo, const float *hi, uint32_t *out) {
    __m256i l = _mm512_castsi512_si256(bf16_bits(_mm512_castps256_ps512(_mm256_loadu_ps(lo))));
    __m256i h = hi ? _mm512_castsi512_si256(bf16_bits(_mm512_castps256_ps512(_mm256_loadu_ps(hi))))
                   : _mm256_setzero_si256();
    _mm256_storeu_si256((__m256i *)out, _mm256_or_si256(l, _mm256_slli_epi32(h, 16)));
}
/* n floats of lo and hi (n a multiple of 16) as n pairs into out */
static inline void bf16_pack(const float *lo, const float *hi, int64_t n, uint32_t *out) {
    for (int64_t i = 0; i < n; i += NT) {
        __m512 h = hi ? _mm512_loadu_ps(hi + i) : _mm512_setzero_ps();
        _mm512_storeu_si512(out + i, bf16_pair(_mm512_loadu_ps(lo + i), h));
    }
}

/* C[r][16 nvec columns] (+)= sum over k2 < K2 of the pair dot products of
 * A[k2][r] (a pair, broadcast) and B[k2][columns] (pairs, rows ldb lanes
 * apart), for r < RB; C's rows are ldc floats apart. The same contract as
 * products_cols over 2 K2 terms. */
typedef void (*bf16_products_fn)(const uint32_t *A, const uint32_t *B, int64_t K2, int64_t ldb,
                                 float *C, int64_t ldc, int64_t nvec, int add);

/* The kernel for this CPU: vdpbf16ps when it has AVX512_BF16, else the
 * widening one (wino_bf16_native, wino_bf16_force_emulation: conv_winograd.h). */
bf16_products_fn wino_bf16_products(void);

#endif
