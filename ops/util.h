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

#endif
