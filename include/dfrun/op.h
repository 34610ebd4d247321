/* The op descriptor table: everything about an op in one place (name, arity,
 * shape rule, forward kernel, backward builder, in-place/view ability, FLOPs,
 * workspace). Each ops/<family>.c defines the descriptors of its ops. */
#ifndef DFRUN_OP_H
#define DFRUN_OP_H
#include "dfrun/graph.h"

typedef enum {
#define DF_OPDEF(E, s) DF_OP_##E,
#include "dfrun/oplist.h"
#undef DF_OPDEF
    DF_OP_COUNT
} df_op;

/* Run-time context handed to kernels. */
typedef struct {
    void *scratch; /* workspace of at least desc->scratch(n) bytes, 64-aligned */
    size_t scratch_bytes;
    int nthreads;
    int bf16;     /* the graph's precision is DF_PRECISION_BF16 (see df_compile_opts) */
    void **cache; /* the node's slot for data kept between runs (forward-only graphs; else
                     NULL): one block from malloc or aligned_alloc, freed with the graph */
} df_exec_ctx;

enum {
    DF_OPF_LEAF = 1 << 0,     /* input / param: no kernel */
    DF_OPF_INPLACE = 1 << 1,  /* output may overwrite input 0 (same size, elementwise-safe) */
    DF_OPF_VIEW = 1 << 2,     /* output aliases input 0 (reshape): no kernel */
    DF_OPF_LOSS = 1 << 3,     /* scalar loss: non-finite output fails the run */
    DF_OPF_GRAD_ONLY = 1 << 4 /* built by backward rules; has no backward itself */
};

typedef struct df_op_desc {
    const char *name;
    int min_in, max_in;
    int flags;
    /* Set n->shape and n->dtype from n->in and attributes; on error return
     * df_seterr(...) naming what is wrong (the graph adds the node path). */
    df_status (*shape)(df_node *n);
    /* Compute n->data from n->in[i]->data. Run-time errors via df_seterr. */
    df_status (*forward)(const df_node *n, df_exec_ctx *ctx);
    /* Append nodes computing the gradient of each input given gy (the
     * gradient of n's output); gin[i] = NULL where none flows. */
    df_status (*backward)(df_graph *g, df_node *n, df_node *gy, df_node **gin);
    /* Workspace bytes the forward needs with nthreads threads (NULL: none). */
    size_t (*scratch)(const df_node *n, int nthreads);
    /* FLOPs of the forward (NULL: numel of the output). */
    double (*flops)(const df_node *n);
} df_op_desc;

/* The table, indexed by df_op. */
extern const df_op_desc *const df_op_table[DF_OP_COUNT];
/* Look an op up by name; -1 if unknown. */
int df_op_by_name(const char *name);

#define DF_OPDEF(E, s) extern const df_op_desc df_opdesc_##s;
#include "dfrun/oplist.h"
#undef DF_OPDEF

/* Shape-rule helper: fail with "expected ..., got [..]". */
df_status df_shape_err(const df_node *n, const char *what, const df_shape *got);

/* FLOPs of one node (its op's count, or its output size). */
double df_node_flops(const df_node *n);

/* Byte size of a node's output. */
size_t df_node_bytes(const df_node *n);

/* Pointer helpers for kernels. */
static inline float *df_out(const df_node *n) {
    return (float *)n->data;
}
static inline const float *df_inp(const df_node *n, int i) {
    return (const float *)n->in[i]->data;
}

#endif
