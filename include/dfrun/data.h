/* Data sources: MNIST-style IDX files (gzip or raw), the 2-D toy
 * distributions, and a procedural digit set used when no MNIST is found. */
#ifndef DFRUN_DATA_H
#define DFRUN_DATA_H
#include "dfrun/error.h"
#include "dfrun/rng.h"
#include <stdint.h>

typedef struct {
    int ndim;        /* 1 (labels) or 3 (images) */
    int32_t dims[4]; /* e.g. [10000, 28, 28] */
    uint8_t *data;   /* unsigned bytes, row-major */
    int64_t n;       /* number of bytes */
} df_idx;

/* Read an IDX file of unsigned bytes (type 0x08), gzip-compressed or raw.
 * Truncated or corrupt files fail with a message naming the file and what is
 * wrong (magic, type, extents, size). */
df_status df_idx_load(const char *path, df_idx *out);
void df_idx_free(df_idx *x);

typedef struct {
    int64_t n;        /* examples */
    int h, w;         /* image size (0 for 2-D points) */
    float *x;         /* [n, 1, h, w] in [-1, 1], or [n, 2] points */
    int32_t *y;       /* [n] labels (0 for toy points) */
    char source[256]; /* where it came from */
} df_dataset;

/* MNIST from a directory holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]:
 * train files if present, else the t10k ones. Pixels scaled to [-1, 1]. */
df_status df_mnist_load(const char *dir, df_dataset *out);
/* 2-D toys: "moons" or "ring8", n points from the given seed. */
df_status df_toy_make(const char *kind, int64_t n, uint64_t seed, df_dataset *out);
/* Procedural 28x28 digits: strokes of each class under random affine maps
 * and thickness, in [-1, 1]. */
df_status df_digits_make(int64_t n, uint64_t seed, df_dataset *out);
void df_dataset_free(df_dataset *d);

#endif
