/* A graph file's model built for one use: training (the DSM or
 * cross-entropy loss and its backward pass appended) or inference at a batch
 * size. Inputs are found by name: x (required), t (diffusion time; a model
 * without t is a classifier), y (class labels, optional); the first output is
 * the prediction, an output named 'features' is kept for evaluation. */
#ifndef DFRUN_MODEL_H
#define DFRUN_MODEL_H
#include "dfrun/dsl.h"
#include "dfrun/graph.h"
#include "dfrun/params.h"

typedef enum { DF_MODEL_INFER = 0, DF_MODEL_TRAIN } df_model_mode;

typedef struct {
    df_graph *g;
    df_model_io io;
    df_node *x, *t, *y;       /* inputs; t, y may be NULL */
    df_node *out, *features;  /* [B, ...] prediction; features may be NULL */
    df_node *target, *weight; /* DSM training: target like x, weight [B, 1, ...] */
    df_node *labels;          /* classifier training: [B] int32 */
    df_node *loss;            /* training: scalar */
    int classifier;           /* no input t: trained by cross-entropy on labels */
    int64_t batch, dim;       /* dim: values per example of x */
} df_model;

/* Build f's model into a new graph over ps and compile it. Errors name the
 * graph file and what the model lacks. */
df_status df_model_build(df_model *m, df_gfile *f, df_params *ps, int64_t batch,
                         df_model_mode mode);
void df_model_free(df_model *m);
/* Register f's parameters in ps (a throwaway build at batch 1), so that a
 * checkpoint's weights can be loaded before any graph is built. */
df_status df_model_params(df_gfile *f, df_params *ps);

/* Evaluate named values of f's model (outputs, inputs or node paths as
 * printed by dfrun check) on inputs given by name, at the batch size of the
 * inputs' first extent. grads = 1: the first output must be a scalar; the
 * parameters' gradients of it are left in ps. outs[i] receive pointers into
 * the graph (valid until df_graph_free(*g)); *g is returned for that.
 * Weights: a store without parameters is initialised from seed 0; otherwise
 * the store's values are used (load them first with df_model_params and
 * df_ckpt_load_params). */
typedef struct {
    const char *name;
    const float *data; /* int32 inputs are given as floats and rounded */
    int64_t n;
} df_named_input;
df_status df_model_values(df_gfile *f, df_params *ps, const df_named_input *in, int nin,
                          const char *const *names, int nout, int grads, int64_t batch,
                          df_graph **g, df_node **outs);

#endif
