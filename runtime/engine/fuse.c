/* The fusion pass, run by df_compile after autodiff: graphs are built from
 * plain ops (clear, and what autodiff differentiates); here patterns are
 * rewritten into fused nodes that read memory fewer times and keep fewer
 * buffers alive. A fused-away node is marked dead: it is neither planned nor
 * run. Every rewrite computes bitwise the same values as the pattern.
 *
 *   silu(groupnorm(x)) -> groupnorm_silu(x), and each silu_bwd(t, gy) of it
 *   -> groupnorm_silu_bwd(x, gy): the normalised t is recomputed in the
 *   backward pass instead of being kept from the forward pass. */
#include "internal.h"
#include <stdlib.h>

/* readers[i]: how many inputs (of live nodes) name node i */
static int *count_readers(const df_graph *g) {
    int *r = calloc((size_t)g->n + 1, sizeof *r);
    if (!r) return NULL;
    for (int i = 0; i < g->n; i++) {
        const df_node *n = g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_in; k++) r[n->in[k]->id]++;
    }
    return r;
}

/* t = groupnorm(...) read only by silu nodes and by silu_bwd nodes as their
 * first input, and not kept for the caller */
static int gn_silu_fusable(const df_graph *g, const df_node *t, const int *readers) {
    if (t->op != DF_OP_GROUPNORM || t->dead || t->keep) return 0;
    int uses = 0, silu = 0;
    for (int i = t->id + 1; i < g->n; i++) {
        const df_node *n = g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] != t) continue;
            if (k != 0 || (n->op != DF_OP_SILU && n->op != DF_OP_SILU_BWD)) return 0;
            silu += n->op == DF_OP_SILU;
            uses++;
        }
    }
    return silu > 0 && uses == readers[t->id];
}

static void fuse_gn_silu(df_graph *g, df_node *t) {
    for (int i = t->id + 1; i < g->n; i++) {
        df_node *n = g->nodes[i];
        if (n->dead || n->n_in < 1 || n->in[0] != t) continue;
        df_node *gy = n->op == DF_OP_SILU_BWD ? n->in[1] : NULL;
        n->op = gy ? DF_OP_GROUPNORM_SILU_BWD : DF_OP_GROUPNORM_SILU;
        for (int k = 0; k < t->n_in; k++) n->in[k] = t->in[k];
        n->n_in = t->n_in;
        if (gy) n->in[n->n_in++] = gy;
        n->ia[0] = t->ia[0];
        n->fa[0] = t->fa[0];
    }
    t->dead = 1;
}

df_status df_fuse(df_graph *g) {
    int *readers = count_readers(g);
    if (!readers) return df_seterr(DF_ENOMEM, "df_compile: out of memory while fusing");
    for (int i = 0; i < g->n; i++)
        if (gn_silu_fusable(g, g->nodes[i], readers)) fuse_gn_silu(g, g->nodes[i]);
    free(readers);
    return DF_OK;
}
