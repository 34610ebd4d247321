/* Shapes and element types. Tensors are dense, row-major (NCHW for images). */
#ifndef DFRUN_TENSOR_H
#define DFRUN_TENSOR_H
#include <stddef.h>
#include <stdint.h>

#define DF_MAX_DIMS 6
/* The largest tensor: 2^36 elements (256 GiB of float32); every shape is
 * checked against it with overflow-safe products when a node is made. */
#define DF_MAX_NUMEL (1ll << 36)

typedef enum { DF_F32 = 0, DF_I32 = 1 } df_dtype;

typedef struct {
    int nd;                 /* number of dimensions, 1..DF_MAX_DIMS */
    int64_t d[DF_MAX_DIMS]; /* extents, each >= 1 */
} df_shape;

/* Build a shape from nd extents: df_shape_make(4, (int64_t[]){B, C, H, W}). */
df_shape df_shape_make(int nd, const int64_t *d);
/* Convenience constructors. */
df_shape df_shape1(int64_t a);
df_shape df_shape2(int64_t a, int64_t b);
df_shape df_shape3(int64_t a, int64_t b, int64_t c);
df_shape df_shape4(int64_t a, int64_t b, int64_t c, int64_t d);
/* Number of elements. */
int64_t df_shape_numel(const df_shape *s);
/* The element count if every extent is >= 1 and the product (computed
 * without overflow) is at most DF_MAX_NUMEL; else -1. */
int64_t df_shape_numel_checked(const df_shape *s);
/* 1 if equal. */
int df_shape_eq(const df_shape *a, const df_shape *b);
/* Write "[2, 3, 4]" into buf (always NUL-terminated); returns buf. */
char *df_shape_str(const df_shape *s, char *buf, size_t n);
/* Bytes per element of a dtype. */
size_t df_dtype_size(df_dtype t);
const char *df_dtype_name(df_dtype t);

#endif
