/* Shared op helpers (see util.h). */
#include "util.h"
#include <string.h>

int df_pack_shape(int32_t *ia, int at, const df_shape *s) {
    ia[at] = s->nd;
    for (int i = 0; i < s->nd; i++) {
        if (s->d[i] > INT32_MAX || s->d[i] < -1) return -1;
        ia[at + 1 + i] = (int32_t)s->d[i];
    }
    return 0;
}

df_shape df_unpack_shape(const int32_t *ia, int at) {
    df_shape s;
    memset(&s, 0, sizeof s);
    s.nd = ia[at] < 0 ? 0 : ia[at] > DF_MAX_DIMS ? DF_MAX_DIMS : ia[at];
    for (int i = 0; i < s.nd; i++) s.d[i] = ia[at + 1 + i];
    return s;
}

void df_strides(const df_shape *s, int64_t *st) {
    int64_t k = 1;
    for (int i = s->nd - 1; i >= 0; i--) {
        st[i] = k;
        k *= s->d[i];
    }
}

void df_bcast_strides(const df_shape *s, int off, int nd, const int64_t *ext, int64_t *st) {
    int64_t own[DF_MAX_DIMS];
    df_strides(s, own);
    for (int j = 0; j < nd; j++) {
        int k = j - off;
        st[j] = (k >= 0 && k < s->nd && s->d[k] == ext[j] && ext[j] != 1) ? own[k] : 0;
    }
}

void df_iter_init(df_iter *it, int nd, const int64_t *ext, const int64_t st[][DF_MAX_DIMS],
                  int nops) {
    /* drop extent-1 dims, then merge neighbours contiguous for every operand */
    it->nd = 0;
    for (int j = 0; j < nd; j++) {
        if (ext[j] == 1) continue;
        int m = it->nd;
        if (m > 0) {
            int ok = 1;
            for (int k = 0; k < nops; k++)
                if (it->st[k][m - 1] != st[k][j] * ext[j]) ok = 0;
            if (ok) {
                it->ext[m - 1] *= ext[j];
                for (int k = 0; k < nops; k++) it->st[k][m - 1] = st[k][j];
                continue;
            }
        }
        it->ext[m] = ext[j];
        for (int k = 0; k < nops; k++) it->st[k][m] = st[k][j];
        it->nd++;
    }
    if (it->nd == 0) {
        it->nd = 1;
        it->ext[0] = 1;
        for (int k = 0; k < nops; k++) it->st[k][0] = 0;
    }
}
