/* Runtime internals shared by graph.c, autodiff.c, plan.c and exec.c. */
#ifndef DFRUN_INTERNAL_H
#define DFRUN_INTERNAL_H
#include "dfrun/graph.h"
#include "dfrun/op.h"
#include "dfrun/runtime.h"

#define DF_MAX_SCOPE 512

struct df_graph {
    df_params *ps;
    df_node **nodes; /* [n] in creation (= topological) order */
    int n, cap;
    df_status status; /* first error (sticky) */
    char errmsg[1024];
    char scope[DF_MAX_SCOPE]; /* "down.1.res.0" */
    int scope_len[64];        /* scope length before each push */
    int nscope;
    char next_name[128];
    int in_backward; /* nodes being created are backward nodes */
    int has_backward;
    int n_forward;        /* nodes before df_backward() */
    df_node **grad_of;    /* [n_forward]: gradient node of params / wrt nodes */
    df_node **param_node; /* [ps count at creation]: the PARAM node of each parameter */
    int n_param_node;
    int compiled;
    int precision; /* DF_PRECISION_*, from df_compile_opts */
    /* plan */
    unsigned char *arena;
    size_t arena_bytes, naive_bytes;
    void *scratch;
    size_t scratch_bytes;
    int scratch_threads;
    df_plan_stats stats;
    double *node_sec;  /* [n] when profiling */
    void **node_cache; /* [n]: what ops keep between runs (forward-only graphs), or NULL */
    void (*on_node)(void *ctx, df_node *n); /* after each executed node (df_on_node) */
    void *on_node_ctx;
};

/* Record the first error of the graph (message taken from df_errmsg()),
 * prefixed with the node path and op name if n is given. Returns code. */
df_status df_graph_fail(df_graph *g, df_status code, const df_node *n, const char *opname);

/* The fusion pass (fuse.c): rewrite patterns into fused nodes, marking the
 * nodes they replace dead. */
df_status df_fuse(df_graph *g);

#endif
