/* Small helpers shared by op files: shapes packed into int attributes, and
 * strided index iteration for broadcasting / reductions. */
#ifndef DFRUN_OPS_UTIL_H
#define DFRUN_OPS_UTIL_H
#include "dfrun/op.h"

/* ia[at] = nd, ia[at+1 .. at+nd] = extents (each must fit int32). */
int df_pack_shape(int32_t *ia, int at, const df_shape *s);
df_shape df_unpack_shape(const int32_t *ia, int at);

/* Row-major strides of a shape. */
void df_strides(const df_shape *s, int64_t *st);

/* Coalesced iteration space for up to 3 operands over the same index space:
 * dims merged where every operand is contiguous (or broadcast) across them. */
typedef struct {
    int nd;
    int64_t ext[DF_MAX_DIMS];
    int64_t st[3][DF_MAX_DIMS];
} df_iter;

/* ext: the index space; st[k]: strides of operand k in it (0 = broadcast). */
void df_iter_init(df_iter *it, int nd, const int64_t *ext, const int64_t st[][DF_MAX_DIMS],
                  int nops);
/* Offsets of operands for outer index o (all dims but the last). */
static inline void df_iter_offsets(const df_iter *it, int64_t o, int nops, int64_t *off) {
    for (int k = 0; k < nops; k++) off[k] = 0;
    for (int j = it->nd - 2; j >= 0; j--) {
        int64_t e = it->ext[j], q = o % e;
        o /= e;
        for (int k = 0; k < nops; k++) off[k] += q * it->st[k][j];
    }
}

/* Strides of a broadcast operand of shape s placed at dim offset off in an
 * index space of nd dims with extents ext: 0 where s doesn't cover or is 1. */
void df_bcast_strides(const df_shape *s, int off, int nd, const int64_t *ext, int64_t *st);

/* The sum of n contiguous floats as the reduce op adds a row (reduce.c) */
float df_sum_row(const float *p, int64_t n);

/* expf for vectorised loops (libm's expf is a scalar call): Cody-Waite range
 * reduction x = n ln2 + r, |r| <= ln2/2, a degree-7 Taylor polynomial, and
 * 2^n put in the exponent bits. Relative error ~2e-7 over [-87, 88];
 * saturates to 0 / +huge outside (and for -Inf / +Inf); NaN gives NaN. */
static inline float df_expf(float x) {
    float in = x;
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    x = x == x ? x : 0.0f; /* NaN: no shift of an undefined integer; NaN returned below */
    float n = __builtin_rintf(x * 1.44269504088896341f);
    float r = x - n * 0.693145751953125f;   /* ln2 hi */
    r = r - n * 1.42860682030941723212e-6f; /* ln2 lo */
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union {
        float f;
        int32_t i;
    } u = {.i = ((int32_t)n + 127) << 23};
    return in == in ? p * u.f : in;
}

#endif
