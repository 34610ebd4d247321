/* Tensor files: safetensors and .npy.
 *
 * The safetensors format (8-byte little-endian header
 * length, a JSON header, raw little-endian data), written atomically:
 * temporary file, fsync, rename, fsync of the directory. A failed or
 * interrupted write never destroys the file it would replace. */
#ifndef DFRUN_IO_H
#define DFRUN_IO_H
#include "dfrun/error.h"
#include "dfrun/tensor.h"

typedef struct {
    const char *name;
    df_dtype dtype;
    df_shape shape;
    const void *data; /* numel * 4 bytes */
} df_st_tensor;

/* Write n tensors and nmeta "__metadata__" string pairs (meta[2k] = key,
 * meta[2k+1] = value; may be NULL) to path atomically. */
df_status df_st_save(const char *path, const df_st_tensor *t, int n, const char *const *meta,
                     int nmeta);

typedef struct df_st_file df_st_file;
/* Read and validate a whole file; NULL with df_errmsg() naming the file and
 * what is wrong (truncated, bad header, offsets outside the data, ...). */
df_st_file *df_st_load(const char *path);
void df_st_free(df_st_file *f);
int df_st_count(const df_st_file *f);
/* Tensor i (data points into the loaded file), or NULL. */
const df_st_tensor *df_st_at(const df_st_file *f, int i);
/* Tensor by name, or NULL. */
const df_st_tensor *df_st_find(const df_st_file *f, const char *name);
/* Metadata value by key, or NULL. */
const char *df_st_meta(const df_st_file *f, const char *key);

/* ---- .npy arrays (float32, C order) ---- */

/* Write a float32 .npy array of the given shape (nd 1..8), atomically. */
df_status df_npy_write(const char *path, const float *data, const int64_t *shape, int nd);

typedef struct {
    float *data; /* [n] */
    int nd;      /* 0 (a scalar) .. DF_MAX_DIMS */
    int64_t shape[DF_MAX_DIMS];
    int64_t n;
} df_npy;

/* Read a float32 .npy file (the header parsed as the Python dict literal it
 * is; the shape's size must match the data exactly). Errors name the file
 * and the offset. */
df_status df_npy_read(const char *path, df_npy *out);
void df_npy_free(df_npy *a);

#endif
