/* Executor: runs the planned nodes in order; kernels are parallel
 * inside. Parameter and gradient pointers are re-resolved at every run so a
 * store shared by several graphs may grow between compilations. */
#define _GNU_SOURCE
#include "internal.h"
#include "parallel.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double df_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

void df_profile(df_graph *g, int on) {
    if (!g) return;
    free(g->node_sec);
    g->node_sec = on ? calloc(g->n ? g->n : 1, sizeof(double)) : NULL;
}

double df_node_seconds(const df_graph *g, const df_node *n) {
    return (g && n && g->node_sec && n->id < g->n) ? g->node_sec[n->id] : 0.0;
}

void df_on_node(df_graph *g, void (*fn)(void *ctx, df_node *n), void *ctx) {
    if (!g) return;
    g->on_node = fn;
    g->on_node_ctx = ctx;
}

void df_exec_bind(df_graph *g) {
    for (int i = 0; i < g->n; i++) {
        df_node *n = g->nodes[i];
        if (n->storage == DF_STORE_PARAM)
            n->data = df_param_data(g->ps, n->param);
        else if (n->storage == DF_STORE_GRAD)
            n->data = df_param_grad(g->ps, n->param);
        else if (n->storage == DF_STORE_VIEW) /* a part starts ia[0] elements in */
            n->data = (char *)n->in[0]->data +
                      (n->op == DF_OP_PART ? (size_t)n->ia[0] * df_dtype_size(n->dtype) : 0);
    }
}

static df_status run_nodes(df_graph *g, int nt);

df_status df_run(df_graph *g) {
    if (!g) return df_seterr(DF_EINVAL, "df_run: graph is NULL");
    if (!g->compiled) return df_seterr(DF_ESTATE, "df_run: compile the graph first");
    if (!g->arena) return df_seterr(DF_ESTATE, "df_run: the graph was only planned (plan_only)");
    df_status st = df_params_alloc(g->ps);
    if (st) return st;
    df_exec_bind(g);
    int nt = df_get_threads();
    if (nt > g->scratch_threads) { /* more threads than planned: grow the workspace */
        size_t need = 0;
        for (int i = 0; i < g->n; i++) {
            const df_op_desc *d = df_op_table[g->nodes[i]->op];
            if (d->scratch) {
                size_t s = d->scratch(g->nodes[i], nt);
                if (s > need) need = s;
            }
        }
        need = (need + 63) & ~(size_t)63;
        if (need > g->scratch_bytes) {
            void *p = aligned_alloc(64, need);
            if (!p) return df_seterr(DF_ENOMEM, "df_run: cannot allocate %zu bytes", need);
            free(g->scratch);
            g->scratch = p;
            g->scratch_bytes = need;
        }
        g->scratch_threads = nt;
    }
    df_pool_binding pb;
    df_pool_bind(&pb);
    st = run_nodes(g, nt);
    df_pool_unbind(&pb);
    return st;
}

/* the nodes in order (df_run's loop) */
static df_status run_nodes(df_graph *g, int nt) {
    df_status st;
    df_exec_ctx ctx = {g->scratch, g->scratch_bytes, nt, g->precision == DF_PRECISION_BF16, NULL};
    for (int i = 0; i < g->n; i++) {
        df_node *n = g->nodes[i];
        const df_op_desc *d = df_op_table[n->op];
        if (d->flags & (DF_OPF_LEAF | DF_OPF_VIEW) || n->dead) continue;
        ctx.cache = g->node_cache ? &g->node_cache[i] : NULL;
        df_clearerr();
        double t0 = g->node_sec ? df_seconds() : 0;
        st = d->forward(n, &ctx);
        if (g->node_sec) g->node_sec[i] += df_seconds() - t0;
        if (st != DF_OK) {
            char m[768];
            snprintf(m, sizeof m, "%s", df_errmsg()[0] ? df_errmsg() : df_status_str(st));
            return df_seterr(st, "node '%.200s' (%s): %s", n->name, d->name, m);
        }
        if (d->flags & DF_OPF_LOSS) {
            const float *y = df_out(n);
            int64_t k = df_shape_numel(&n->shape);
            for (int64_t j = 0; j < k; j++)
                if (!isfinite(y[j]))
                    return df_seterr(DF_ENONFINITE,
                                     "node '%s' (%s): the loss is %s; check the inputs and the "
                                     "learning rate",
                                     n->name, d->name, isnan(y[j]) ? "NaN" : "infinite");
        }
        if (g->on_node) g->on_node(g->on_node_ctx, n);
    }
    return DF_OK;
}
