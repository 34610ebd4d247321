/* Shapes and dtypes. */
#include "dfrun/tensor.h"
#include <stdio.h>
#include <string.h>

df_shape df_shape_make(int nd, const int64_t *d) {
    df_shape s;
    memset(&s, 0, sizeof s);
    if (nd < 0) nd = 0;
    if (nd > DF_MAX_DIMS) nd = DF_MAX_DIMS;
    s.nd = nd;
    for (int i = 0; i < nd; i++) s.d[i] = d[i];
    return s;
}
df_shape df_shape1(int64_t a) {
    return df_shape_make(1, (int64_t[]){a});
}
df_shape df_shape2(int64_t a, int64_t b) {
    return df_shape_make(2, (int64_t[]){a, b});
}
df_shape df_shape3(int64_t a, int64_t b, int64_t c) {
    return df_shape_make(3, (int64_t[]){a, b, c});
}
df_shape df_shape4(int64_t a, int64_t b, int64_t c, int64_t d) {
    return df_shape_make(4, (int64_t[]){a, b, c, d});
}

int64_t df_shape_numel(const df_shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->nd; i++) n *= s->d[i];
    return n;
}

int64_t df_shape_numel_checked(const df_shape *s) {
    if (!s || s->nd < 0 || s->nd > DF_MAX_DIMS) return -1;
    int64_t n = 1;
    for (int i = 0; i < s->nd; i++)
        if (s->d[i] < 1 || __builtin_mul_overflow(n, s->d[i], &n) || n > DF_MAX_NUMEL) return -1;
    return n;
}

int df_shape_eq(const df_shape *a, const df_shape *b) {
    if (a->nd != b->nd) return 0;
    for (int i = 0; i < a->nd; i++)
        if (a->d[i] != b->d[i]) return 0;
    return 1;
}

char *df_shape_str(const df_shape *s, char *buf, size_t n) {
    size_t k = 0;
    if (!n) return buf;
    buf[0] = 0;
    k += snprintf(buf + k, k < n ? n - k : 0, "[");
    for (int i = 0; i < s->nd && k < n; i++)
        k += snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)s->d[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

size_t df_dtype_size(df_dtype t) {
    return t == DF_I32 ? 4 : 4;
}
const char *df_dtype_name(df_dtype t) {
    return t == DF_I32 ? "int32" : "float32";
}
