/* Parameter store: named parameters with their values and gradients in two
 * contiguous blocks of identical layout. Several graphs (a training graph at
 * batch 128, a sampling graph at batch 256) can share one store. */
#ifndef DFRUN_PARAMS_H
#define DFRUN_PARAMS_H
#include "dfrun/error.h"
#include "dfrun/tensor.h"
#include <stdint.h>

typedef enum {
    DF_INIT_ZEROS = 0,
    DF_INIT_ONES,
    DF_INIT_NORMAL,  /* N(0, a^2) */
    DF_INIT_UNIFORM, /* U(-a, a) */
    DF_INIT_KAIMING /* PyTorch's default for conv/linear: U(-1/sqrt(fan_in), +); fan_in = numel/d[0]
                       (a = fan_in override if > 0) */
} df_init_kind;

typedef struct {
    df_init_kind kind;
    float a;
} df_init;

typedef struct {
    char *name; /* "down.1.res.0.conv1.weight" */
    df_shape shape;
    df_init init;
    int decay;     /* 1 if weight decay applies (matrices and kernels) */
    size_t offset; /* element offset in the blocks */
    int64_t numel;
} df_param_info;

typedef struct df_params df_params;

/* New empty store. */
df_params *df_params_new(void);
void df_params_free(df_params *ps);

/* Find a parameter by name, or create it. An existing name with another shape
 * is an error (DF_ESHAPE). Returns the index, or -1 with df_errmsg() set.
 * Creating after df_params_alloc() is an error (DF_ESTATE). */
int df_params_get(df_params *ps, const char *name, df_shape shape, df_init init);

/* Number of parameters (tensors) and of scalar values. */
int df_params_count(const df_params *ps);
int64_t df_params_numel(const df_params *ps);
const df_param_info *df_params_info(const df_params *ps, int i);
/* Index of a name, or -1. */
int df_params_find(const df_params *ps, const char *name);

/* Allocate the value and gradient blocks (idempotent) and zero them. */
df_status df_params_alloc(df_params *ps);
/* Initialise every value from its df_init with a counter-based RNG keyed on
 * (seed, parameter name): independent of creation order and thread count. */
df_status df_params_init(df_params *ps, uint64_t seed);

/* The contiguous blocks (NULL before df_params_alloc). */
float *df_params_data(df_params *ps);
float *df_params_grad(df_params *ps);
/* One parameter's value / gradient. */
float *df_param_data(df_params *ps, int i);
float *df_param_grad(df_params *ps, int i);
/* Length of the value/gradient blocks including alignment padding between
 * tensors (padding stays zero): optimizers run over the whole block. */
int64_t df_params_block_numel(const df_params *ps);
/* Zero the gradient block. */
void df_params_zero_grad(df_params *ps);

#endif
