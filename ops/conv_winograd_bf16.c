/* The bf16 pair-product kernels (see conv_winograd_bf16.h). */
#include "conv_winograd.h"
#include "dfrun/runtime.h"

#if defined(__AVX512F__) && defined(__AVX512VL__)
#include "conv_winograd_bf16.h"
#include "dfrun/runtime.h"

/* vdpbf16ps: compiled for AVX512_BF16 whatever the build's -march, and only
 * called when the CPU has it. */
#define BF16_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16")))

BF16_TARGET static inline __attribute__((always_inline)) void
native_tile(const uint32_t *A, const uint32_t *B, int64_t K2, int64_t ldb, float *C, int64_t ldc,
            const int nv, const int add) {
    __m512 acc[RB][NVMAX];
    for (int r = 0; r < RB; r++)
        for (int q = 0; q < nv; q++) acc[r][q] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K2; k++) {
        __m512bh v[NVMAX];
        for (int q = 0; q < nv; q++) v[q] = (__m512bh)_mm512_loadu_si512(B + k * ldb + q * NT);
        for (int r = 0; r < RB; r++) {
            __m512bh u = (__m512bh)_mm512_set1_epi32((int)A[k * RB + r]);
            for (int q = 0; q < nv; q++) acc[r][q] = _mm512_dpbf16_ps(acc[r][q], u, v[q]);
        }
    }
    for (int r = 0; r < RB; r++)
        for (int q = 0; q < nv; q++) {
            float *c = C + r * ldc + q * NT;
            _mm512_storeu_ps(c, add ? _mm512_add_ps(_mm512_loadu_ps(c), acc[r][q]) : acc[r][q]);
        }
}

/* the same sums from the pairs widened to float32: two FMAs a pair */
static inline __attribute__((always_inline)) void emulated_tile(const uint32_t *A,
                                                                const uint32_t *B, int64_t K2,
                                                                int64_t ldb, float *C, int64_t ldc,
                                                                const int nv, const int add) {
    const __m512i himask = _mm512_set1_epi32((int)0xffff0000u);
    __m512 acc[RB][NVMAX];
    for (int r = 0; r < RB; r++)
        for (int q = 0; q < nv; q++) acc[r][q] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K2; k++) {
        __m512 lo[NVMAX], hi[NVMAX];
        for (int q = 0; q < nv; q++) {
            __m512i p = _mm512_loadu_si512(B + k * ldb + q * NT);
            lo[q] = _mm512_castsi512_ps(_mm512_slli_epi32(p, 16));
            hi[q] = _mm512_castsi512_ps(_mm512_and_si512(p, himask));
        }
        for (int r = 0; r < RB; r++) {
            uint32_t a = A[k * RB + r];
            union {
                uint32_t u;
                float f;
            } al = {a << 16}, ah = {a & 0xffff0000u};
            __m512 ul = _mm512_set1_ps(al.f), uh = _mm512_set1_ps(ah.f);
            for (int q = 0; q < nv; q++)
                acc[r][q] = _mm512_fmadd_ps(uh, hi[q], _mm512_fmadd_ps(ul, lo[q], acc[r][q]));
        }
    }
    for (int r = 0; r < RB; r++)
        for (int q = 0; q < nv; q++) {
            float *c = C + r * ldc + q * NT;
            _mm512_storeu_ps(c, add ? _mm512_add_ps(_mm512_loadu_ps(c), acc[r][q]) : acc[r][q]);
        }
}

/* nvec columns, NVMAX at a time */
#define COLS_FN(NAME, TILE, ATTR)                                                                  \
    ATTR static void NAME(const uint32_t *A, const uint32_t *B, int64_t K2, int64_t ldb, float *C, \
                          int64_t ldc, int64_t nvec, int add) {                                    \
        int64_t q = 0;                                                                             \
        for (; q + 3 <= nvec; q += 3)                                                              \
            if (add)                                                                               \
                TILE(A, B + q * NT, K2, ldb, C + q * NT, ldc, 3, 1);                               \
            else                                                                                   \
                TILE(A, B + q * NT, K2, ldb, C + q * NT, ldc, 3, 0);                               \
        if (nvec - q == 2) {                                                                       \
            if (add)                                                                               \
                TILE(A, B + q * NT, K2, ldb, C + q * NT, ldc, 2, 1);                               \
            else                                                                                   \
                TILE(A, B + q * NT, K2, ldb, C + q * NT, ldc, 2, 0);                               \
        } else if (nvec - q == 1) {                                                                \
            if (add)                                                                               \
                TILE(A, B + q * NT, K2, ldb, C + q * NT, ldc, 1, 1);                               \
            else                                                                                   \
                TILE(A, B + q * NT, K2, ldb, C + q * NT, ldc, 1, 0);                               \
        }                                                                                          \
    }
COLS_FN(native_cols, native_tile, BF16_TARGET)
COLS_FN(emulated_cols, emulated_tile, )
#undef COLS_FN

static int force_emulation;
void wino_bf16_force_emulation(int on) {
    force_emulation = on != 0;
}
int wino_bf16_native(void) {
    return !force_emulation && df_cpu_has_bf16();
}
bf16_products_fn wino_bf16_products(void) {
    return wino_bf16_native() ? native_cols : emulated_cols;
}
const char *df_bf16_mode(void) {
    return wino_bf16_native() ? "vdpbf16ps" : "emulated";
}

#else
void wino_bf16_force_emulation(int on) {
    (void)on;
}
int wino_bf16_native(void) {
    return 0;
}
const char *df_bf16_mode(void) {
    return "no effect";
}
#endif
