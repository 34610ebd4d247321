/* The static graph: nodes with an op, inputs, attributes, an inferred output
 * shape and a readable name path. Build once for a batch size, then
 * df_backward() appends the gradient nodes, df_compile() plans memory, and
 * df_run() executes as many times as wanted.
 *
 * Errors are sticky: a builder that fails returns NULL and records the error
 * in the graph; builders given a NULL input return NULL without a new
 * message, so a whole network can be built and checked once at the end with
 * df_graph_status(). */
#ifndef DFRUN_GRAPH_H
#define DFRUN_GRAPH_H
#include "dfrun/error.h"
#include "dfrun/params.h"
#include "dfrun/tensor.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DF_MAX_IN 8
#define DF_MAX_IATTR 16
#define DF_MAX_FATTR 4

typedef struct df_graph df_graph;

typedef struct df_node {
    int id; /* position in the graph (topological order) */
    int op; /* index into the op table (df_op) */
    int n_in;
    struct df_node *in[DF_MAX_IN];
    int32_t ia[DF_MAX_IATTR]; /* integer attributes, meaning per op */
    float fa[DF_MAX_FATTR];   /* float attributes, meaning per op */
    df_shape shape;           /* output shape */
    df_dtype dtype;           /* output element type */
    char *name;               /* name path, e.g. "down.1.res.0.conv1" */
    int param;                /* parameter index of a DF_OP_PARAM node or of a parameter's
                                 gradient node (storage DF_STORE_GRAD), else -1 */
    int is_backward;          /* appended by df_backward() */
    int requires_grad;        /* a parameter, or depends on one / on a wrt input */
    int dead;                 /* fused into another node by df_compile: not run, no buffer */
    /* Set by the planner: */
    void *data;              /* output buffer, valid after df_compile() */
    size_t offset;           /* byte offset in the arena (arena nodes) */
    int storage;             /* DF_STORE_* */
    struct df_node *root;    /* node owning the storage (self unless a view) */
    int last_use;            /* id of the last node reading this storage */
    int keep;                /* user output: kept alive until the end of a run */
    struct df_node *inplace; /* input whose buffer this output overwrites, or NULL */
} df_node;

enum { DF_STORE_NONE = 0, DF_STORE_ARENA, DF_STORE_PARAM, DF_STORE_GRAD, DF_STORE_VIEW };

/* New empty graph using parameter store ps (not owned; may be shared). */
df_graph *df_graph_new(df_params *ps);
void df_graph_free(df_graph *g);
df_params *df_graph_params(df_graph *g);

/* Status of the first error recorded on g (DF_OK if none); its message. */
df_status df_graph_status(const df_graph *g);
const char *df_graph_errmsg(const df_graph *g);

/* Name scopes: nodes and parameters created inside get "scope.name" paths. */
void df_scope_push(df_graph *g, const char *name);
void df_scope_pushf(df_graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void df_scope_pop(df_graph *g);
/* Give the next node created this (relative) name instead of the op name. */
void df_name_next(df_graph *g, const char *name);

int df_graph_size(const df_graph *g);
df_node *df_graph_node(df_graph *g, int i);
/* Find a node by its full name path (first match), or NULL. */
df_node *df_graph_find(df_graph *g, const char *name);

/* ---- leaves ---- */
/* A value fed by the caller before each run (images, times, labels). */
df_node *df_input(df_graph *g, const char *name, df_dtype t, df_shape s);
/* A trainable parameter, created in the store under scope.name. */
df_node *df_param(df_graph *g, const char *name, df_shape s, df_init init);

/* ---- ops (shapes in comments; B batch, C channels) ---- */
/* x [B,Cin,H,W], w [Cout,Cin,KH,KW], b [Cout] or NULL -> [B,Cout,H',W'] */
df_node *df_conv2d(df_graph *g, df_node *x, df_node *w, df_node *b, int stride, int pad);
/* x [B,C,H,W] -> [B,C,H*f,W*f], nearest neighbour */
df_node *df_upsample(df_graph *g, df_node *x, int factor);
/* x [B,C,H*f,W*f] -> [B,C,H,W], the sum of each f x f block (upsample's gradient) */
df_node *df_upsample_bwd(df_graph *g, df_node *x, int factor);
/* Concatenate n tensors along axis (other extents equal). */
df_node *df_concat(df_graph *g, df_node **xs, int n, int axis);
/* x[..., start:start+len, ...] along axis */
df_node *df_slice(df_graph *g, df_node *x, int axis, int64_t start, int64_t len);
/* zero padding of `before` and `after` elements along axis */
df_node *df_pad(df_graph *g, df_node *x, int axis, int64_t before, int64_t after);
/* Elementwise with broadcasting: numpy rules (right-aligned), or, when those
 * don't fit, a leading-aligned operand ([B,C] over [B,C,H,W]). */
df_node *df_add(df_graph *g, df_node *a, df_node *b);
df_node *df_sub(df_graph *g, df_node *a, df_node *b);
df_node *df_mul(df_graph *g, df_node *a, df_node *b);
/* Same, with explicit alignment offsets (leading dims prepended) of a and b. */
df_node *df_binary_aligned(df_graph *g, int op, df_node *a, df_node *b, int off_a, int off_b);
/* s * x */
df_node *df_scale(df_graph *g, df_node *x, float s);
/* x [..., in], w [out, in], b [out] or NULL -> [..., out] */
df_node *df_linear(df_graph *g, df_node *x, df_node *w, df_node *b);
/* a [..., M, K] (or [..., K, M] if ta), b [..., K, N] (or [..., N, K] if tb)
 * -> [..., M, N]. Leading dims equal, or one operand 2-D and shared. */
df_node *df_matmul(df_graph *g, df_node *a, df_node *b, int ta, int tb);
/* idx int32 [N], table [V, D] -> [N, D]; idx outside [0, V) fails the run */
df_node *df_embedding(df_graph *g, df_node *idx, df_node *table);
/* t [N], w [K] -> [N, 2K] = sqrt(2) * [sin(2 pi t w), cos(2 pi t w)] */
df_node *df_fourier(df_graph *g, df_node *t, df_node *w);
df_node *df_silu(df_graph *g, df_node *x);
df_node *df_relu(df_graph *g, df_node *x);
/* x [B, C, ...], gamma [C], beta [C] (or NULL for no affine) */
df_node *df_groupnorm(df_graph *g, df_node *x, df_node *gamma, df_node *beta, int groups,
                      float eps);
/* silu(groupnorm(x)) in one pass; its backward recomputes the normalised
 * values instead of storing them (what df_compile's fusion makes of the pair) */
df_node *df_groupnorm_silu(df_graph *g, df_node *x, df_node *gamma, df_node *beta, int groups,
                           float eps);
/* softmax over the last axis */
df_node *df_softmax(df_graph *g, df_node *x);
/* Same data, new shape (a view: no copy). One extent may be -1. */
df_node *df_reshape(df_graph *g, df_node *x, df_shape s);
/* out.d[i] = x.d[perm[i]] */
df_node *df_permute(df_graph *g, df_node *x, const int *perm);
/* Sum (mean if mean=1) over the axes whose bit is set in axes_mask; kept as 1. */
df_node *df_sum(df_graph *g, df_node *x, unsigned axes_mask);
df_node *df_mean(df_graph *g, df_node *x, unsigned axes_mask);
/* Sum of all elements -> [1] */
df_node *df_sum_all(df_graph *g, df_node *x);
/* x broadcast to shape s (alignment as df_add); times scale */
df_node *df_expand(df_graph *g, df_node *x, df_shape s);
/* x summed down to shape s (the inverse of df_expand) with alignment offset off
 * (leading dims of x before s's first dim; -1 = infer as df_add) */
df_node *df_sum_to(df_graph *g, df_node *x, df_shape s, int off);
/* mean((pred - target)^2) -> [1] */
df_node *df_mse_loss(df_graph *g, df_node *pred, df_node *target);
/* logits [N, C], labels int32 [N] in [0, C) -> mean cross-entropy [1] */
df_node *df_cross_entropy(df_graph *g, df_node *logits, df_node *labels);
/* A copy of x in a buffer of its own. */
df_node *df_copy(df_graph *g, df_node *x);
/* A view of x's elements [offset, offset + numel(s)) as shape s (fused nodes
 * that write several results into one buffer: see fuse.c). */
df_node *df_part(df_graph *g, df_node *x, int64_t offset, df_shape s);
/* A tensor of shape s filled with value v (written at every run). */
df_node *df_fill(df_graph *g, df_shape s, float v);

/* Generic builder used by the helpers above and by the DSL: op by table index,
 * attributes copied from ia/fa (may be NULL). Runs the op's shape rule. */
df_node *df_node_new(df_graph *g, int op, df_node **in, int n_in, const int32_t *ia, int nia,
                     const float *fa, int nfa);

/* ---- autodiff ---- */
/* Append the nodes computing d loss / d p for every parameter reachable from
 * the scalar (numel 1) node loss, and for the nodes in wrt[0..nwrt). Call once. */
df_status df_backward(df_graph *g, df_node *loss, df_node **wrt, int nwrt);
/* The gradient node of x (a parameter node or a wrt node) or NULL. */
df_node *df_grad_of(df_graph *g, df_node *x);

/* Keep x's value readable after df_run() (outputs, losses). */
df_status df_keep(df_graph *g, df_node *x);

/* ---- compile and run ---- */
typedef struct {
    int no_reuse;   /* give every node its own buffer (debugging, tests) */
    int no_inplace; /* never write an op's output over its input */
    int plan_only;  /* plan and report (df_plan_get_stats) without allocating: no df_run */
    int no_fuse;    /* keep the ops as built (no fused nodes; tests compare both) */
    int precision;  /* DF_PRECISION_FP32 (0) or DF_PRECISION_BF16 */
    int no_cache;   /* forward-only graphs: don't keep data between runs (the Winograd
                       convolutions' transformed weights, reused while the weights are
                       unchanged; the memory: about 9x the 3x3 weights) */
} df_compile_opts;

/* Precision of a graph's heavy products. BF16: the 3x3 stride-1
 * convolutions (forward, data and weight gradients: the Winograd path) multiply
 * operands rounded to bf16 and sum in float32 (vdpbf16ps with AVX512_BF16,
 * else emulated); everything else, and every stored value, stays float32. */
enum { DF_PRECISION_FP32 = 0, DF_PRECISION_BF16 = 1 };

/* Plan memory (liveness reuse, in-place where safe), allocate the arena and
 * the parameter store's blocks. The graph is frozen afterwards. */
df_status df_compile(df_graph *g, const df_compile_opts *opts);

typedef struct {
    size_t planned_bytes; /* arena size with reuse */
    size_t naive_bytes;   /* sum of all activation buffers without reuse */
    size_t scratch_bytes; /* kernel workspace (im2col, partial sums) */
    size_t param_bytes;   /* values + gradients */
    int n_nodes, n_backward, n_inplace, n_views;
} df_plan_stats;
df_status df_plan_get_stats(const df_graph *g, df_plan_stats *st);

/* Copy n elements into an input node (f32 or i32 by the node's dtype). */
df_status df_set_input(df_graph *g, df_node *x, const void *data, int64_t n);
/* Output buffer of a node after df_compile (valid across runs). */
void *df_data(df_node *x);
/* Execute all nodes in order. Fails (graph unchanged) on a run-time error:
 * class index out of range, non-finite loss; the message names the node. */
df_status df_run(df_graph *g);

/* Per-node timing: when on, df_run adds each node's wall time to
 * df_node_seconds(node) (reset by df_profile(g, 1)). */
void df_profile(df_graph *g, int on);
/* Call fn(ctx, node) on the calling thread after each node df_run executes
 * (e.g. to start communicating a gradient once its node has run); NULL: none. */
void df_on_node(df_graph *g, void (*fn)(void *ctx, df_node *n), void *ctx);
double df_node_seconds(const df_graph *g, const df_node *n);

/* Forward FLOPs (multiply-adds count 2) of the non-backward nodes. */
double df_graph_flops(const df_graph *g, int include_backward);

/* The graph in Graphviz DOT. depth 0: every node, blocks as nested
 * clusters, edges labelled with shapes; depth N: the nodes of each scope
 * deeper than N levels collapsed into one node ("down.1 (37 nodes)"), edges
 * between them once. backward = 1 adds the autodiff nodes. */
typedef struct {
    int backward;
    int depth;
} df_dot_opts;
df_status df_graph_write_dot(const df_graph *g, FILE *fp, const df_dot_opts *o);
/* The same into a file, atomically (a failed write keeps the old file). */
df_status df_graph_save_dot(const df_graph *g, const char *path, const df_dot_opts *o);

#endif
