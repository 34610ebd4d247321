/* Graph construction: nodes, names, scopes, leaves, the generic builder. */
#include "internal.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

df_graph *df_graph_new(df_params *ps) {
    if (!ps) {
        df_seterr(DF_EINVAL, "df_graph_new: parameter store is NULL");
        return NULL;
    }
    df_graph *g = calloc(1, sizeof *g);
    if (!g) {
        df_seterr(DF_ENOMEM, "df_graph_new: out of memory");
        return NULL;
    }
    g->ps = ps;
    return g;
}

void df_graph_free(df_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n; i++) {
        free(g->nodes[i]->name);
        free(g->nodes[i]);
    }
    free(g->nodes);
    free(g->grad_of);
    free(g->param_node);
    free(g->arena);
    free(g->scratch);
    free(g->node_sec);
    for (int i = 0; g->node_cache && i < g->n; i++) free(g->node_cache[i]);
    free(g->node_cache);
    free(g);
}

df_params *df_graph_params(df_graph *g) {
    return g ? g->ps : NULL;
}
df_status df_graph_status(const df_graph *g) {
    return g ? g->status : DF_EINVAL;
}
const char *df_graph_errmsg(const df_graph *g) {
    return g ? g->errmsg : "graph is NULL";
}
int df_graph_size(const df_graph *g) {
    return g ? g->n : 0;
}
df_node *df_graph_node(df_graph *g, int i) {
    return (g && i >= 0 && i < g->n) ? g->nodes[i] : NULL;
}

df_node *df_graph_find(df_graph *g, const char *name) {
    if (!g || !name) return NULL;
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->nodes[i]->name, name)) return g->nodes[i];
    return NULL;
}

df_status df_graph_fail(df_graph *g, df_status code, const df_node *n, const char *opname) {
    char msg[768];
    snprintf(msg, sizeof msg, "%s", df_errmsg());
    if (g && g->status == DF_OK) {
        g->status = code;
        if (n && n->name)
            snprintf(g->errmsg, sizeof g->errmsg, "node '%.200s' (%.40s): %s", n->name,
                     opname ? opname : "?", msg);
        else if (opname)
            snprintf(g->errmsg, sizeof g->errmsg, "%.40s: %s", opname, msg);
        else
            snprintf(g->errmsg, sizeof g->errmsg, "%s", msg);
        df_seterr(code, "%s", g->errmsg);
    }
    return code;
}

void df_scope_push(df_graph *g, const char *name) {
    if (!g || !name) return;
    if (g->nscope >= 64) return;
    size_t len = strlen(g->scope);
    g->scope_len[g->nscope++] = (int)len;
    snprintf(g->scope + len, sizeof g->scope - len, "%s%s", len ? "." : "", name);
}

void df_scope_pushf(df_graph *g, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    df_scope_push(g, buf);
}

void df_scope_pop(df_graph *g) {
    if (!g || g->nscope == 0) return;
    g->scope[g->scope_len[--g->nscope]] = 0;
}

void df_name_next(df_graph *g, const char *name) {
    if (!g) return;
    snprintf(g->next_name, sizeof g->next_name, "%s", name ? name : "");
}

static char *make_name(df_graph *g, const char *base, int id, int numbered) {
    char buf[DF_MAX_SCOPE + 192];
    const char *sep = g->scope[0] ? "." : "";
    if (g->next_name[0]) {
        snprintf(buf, sizeof buf, "%s%s%s", g->scope, sep, g->next_name);
        g->next_name[0] = 0;
    } else if (numbered) {
        snprintf(buf, sizeof buf, "%s%s%s#%d", g->scope, sep, base, id);
    } else {
        snprintf(buf, sizeof buf, "%s%s%s", g->scope, sep, base);
    }
    return strdup(buf);
}

size_t df_node_bytes(const df_node *n) {
    return (size_t)df_shape_numel(&n->shape) * df_dtype_size(n->dtype);
}

static df_node *alloc_node(df_graph *g, int op, const char *base, int numbered) {
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 256;
        df_node **nn = realloc(g->nodes, cap * sizeof *nn);
        if (!nn) {
            df_seterr(DF_ENOMEM, "out of memory growing the graph");
            df_graph_fail(g, DF_ENOMEM, NULL, NULL);
            return NULL;
        }
        g->nodes = nn;
        g->cap = cap;
    }
    df_node *n = calloc(1, sizeof *n);
    if (!n) {
        df_seterr(DF_ENOMEM, "out of memory adding a node");
        df_graph_fail(g, DF_ENOMEM, NULL, NULL);
        return NULL;
    }
    n->id = g->n;
    n->op = op;
    n->param = -1;
    n->root = n;
    n->is_backward = g->in_backward;
    n->name = make_name(g, base, n->id, numbered);
    if (!n->name) {
        free(n);
        df_seterr(DF_ENOMEM, "out of memory naming a node");
        df_graph_fail(g, DF_ENOMEM, NULL, NULL);
        return NULL;
    }
    return n;
}

static int check_open(df_graph *g, const char *what) {
    if (!g) {
        df_seterr(DF_EINVAL, "%s: graph is NULL", what);
        return 0;
    }
    if (g->status) return 0;
    if (g->compiled) {
        df_seterr(DF_ESTATE, "%s: the graph is compiled; build a new graph to add nodes", what);
        df_graph_fail(g, DF_ESTATE, NULL, NULL);
        return 0;
    }
    return 1;
}

static int check_shape(df_graph *g, const char *what, const char *name, df_shape s) {
    char b[96];
    if (s.nd < 1 || s.nd > DF_MAX_DIMS) {
        df_seterr(DF_ESHAPE, "%s '%s': %d dimensions (expected 1..%d)", what, name, s.nd,
                  DF_MAX_DIMS);
        df_graph_fail(g, DF_ESHAPE, NULL, NULL);
        return 0;
    }
    if (df_shape_numel_checked(&s) < 0) {
        df_seterr(DF_ESHAPE,
                  "%s '%s': shape %s has an extent below 1 or more than %lld elements in all", what,
                  name, df_shape_str(&s, b, sizeof b), (long long)DF_MAX_NUMEL);
        df_graph_fail(g, DF_ESHAPE, NULL, NULL);
        return 0;
    }
    return 1;
}

static void push_node(df_graph *g, df_node *n) {
    g->nodes[g->n++] = n;
}

df_node *df_input(df_graph *g, const char *name, df_dtype t, df_shape s) {
    if (!check_open(g, "df_input")) return NULL;
    if (!name || !*name) {
        df_seterr(DF_EINVAL, "df_input: a name is required");
        df_graph_fail(g, DF_EINVAL, NULL, NULL);
        return NULL;
    }
    if (t != DF_F32 && t != DF_I32) {
        df_seterr(DF_EINVAL, "input '%s': unknown dtype %d", name, (int)t);
        df_graph_fail(g, DF_EINVAL, NULL, NULL);
        return NULL;
    }
    if (!check_shape(g, "input", name, s)) return NULL;
    df_name_next(g, name);
    df_node *n = alloc_node(g, DF_OP_INPUT, name, 0);
    if (!n) return NULL;
    n->shape = s;
    n->dtype = t;
    push_node(g, n);
    return n;
}

df_node *df_param(df_graph *g, const char *name, df_shape s, df_init init) {
    if (!check_open(g, "df_param")) return NULL;
    if (!name || !*name) {
        df_seterr(DF_EINVAL, "df_param: a name is required");
        df_graph_fail(g, DF_EINVAL, NULL, NULL);
        return NULL;
    }
    if (!check_shape(g, "parameter", name, s)) return NULL;
    char full[DF_MAX_SCOPE + 192];
    snprintf(full, sizeof full, "%s%s%s", g->scope, g->scope[0] ? "." : "", name);
    int idx = df_params_get(g->ps, full, s, init);
    if (idx < 0) {
        df_graph_fail(g, DF_ESHAPE, NULL, NULL);
        return NULL;
    }
    if (idx < g->n_param_node && g->param_node[idx]) return g->param_node[idx];
    if (idx >= g->n_param_node) {
        int nn = idx + 64;
        df_node **p = realloc(g->param_node, nn * sizeof *p);
        if (!p) {
            df_seterr(DF_ENOMEM, "out of memory");
            df_graph_fail(g, DF_ENOMEM, NULL, NULL);
            return NULL;
        }
        for (int i = g->n_param_node; i < nn; i++) p[i] = NULL;
        g->param_node = p;
        g->n_param_node = nn;
    }
    df_name_next(g, name);
    df_node *n = alloc_node(g, DF_OP_PARAM, name, 0);
    if (!n) return NULL;
    n->shape = s;
    n->dtype = DF_F32;
    n->param = idx;
    n->requires_grad = 1;
    n->storage = DF_STORE_PARAM;
    g->param_node[idx] = n;
    push_node(g, n);
    return n;
}

df_node *df_node_new(df_graph *g, int op, df_node **in, int n_in, const int32_t *ia, int nia,
                     const float *fa, int nfa) {
    if (!g) {
        df_seterr(DF_EINVAL, "graph is NULL");
        return NULL;
    }
    if (op < 0 || op >= DF_OP_COUNT) {
        if (g->status) return NULL;
        df_seterr(DF_EINVAL, "unknown op index %d", op);
        df_graph_fail(g, DF_EINVAL, NULL, NULL);
        return NULL;
    }
    const df_op_desc *d = df_op_table[op];
    for (int i = 0; i < n_in; i++)
        if (!in || !in[i]) {
            if (g->status) return NULL; /* an earlier failure, already reported */
            df_seterr(DF_EINVAL, "input %d is NULL", i);
            df_graph_fail(g, DF_EINVAL, NULL, d->name);
            return NULL;
        }
    if (!check_open(g, d->name)) return NULL;
    if (d->flags & DF_OPF_LEAF) {
        df_seterr(DF_EINVAL, "'%s' nodes are made with df_input/df_param", d->name);
        df_graph_fail(g, DF_EINVAL, NULL, d->name);
        return NULL;
    }
    if (n_in < d->min_in || n_in > d->max_in || n_in > DF_MAX_IN) {
        df_seterr(DF_EINVAL, "%d inputs given, expected %d..%d", n_in, d->min_in, d->max_in);
        df_graph_fail(g, DF_EINVAL, NULL, d->name);
        return NULL;
    }
    if (nia > DF_MAX_IATTR || nfa > DF_MAX_FATTR || nia < 0 || nfa < 0) {
        df_seterr(DF_EINVAL, "too many attributes (%d int, %d float)", nia, nfa);
        df_graph_fail(g, DF_EINVAL, NULL, d->name);
        return NULL;
    }
    for (int i = 0; i < n_in; i++)
        if (in[i]->id >= g->n || g->nodes[in[i]->id] != in[i]) {
            df_seterr(DF_EINVAL, "input %d ('%s') belongs to another graph", i,
                      in[i]->name ? in[i]->name : "?");
            df_graph_fail(g, DF_EINVAL, NULL, d->name);
            return NULL;
        }
    df_node *n = alloc_node(g, op, d->name, 1);
    if (!n) return NULL;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        n->in[i] = in[i];
        if (in[i]->requires_grad && in[i]->dtype == DF_F32) n->requires_grad = 1;
    }
    if (ia && nia) memcpy(n->ia, ia, nia * sizeof *ia);
    if (fa && nfa) memcpy(n->fa, fa, nfa * sizeof *fa);
    n->dtype = DF_F32;
    df_clearerr();
    df_status st = d->shape ? d->shape(n) : DF_OK;
    if (st == DF_OK && !d->shape && n_in) {
        n->shape = in[0]->shape;
        n->dtype = in[0]->dtype;
    }
    if (st == DF_OK && (n->shape.nd < 1 || n->shape.nd > DF_MAX_DIMS)) {
        df_seterr(DF_ESHAPE, "shape rule produced %d dimensions", n->shape.nd);
        st = DF_ESHAPE;
    }
    if (st == DF_OK && df_shape_numel_checked(&n->shape) < 0) {
        char b[96];
        df_seterr(DF_ESHAPE, "the output %s has an extent below 1 or more than %lld elements",
                  df_shape_str(&n->shape, b, sizeof b), (long long)DF_MAX_NUMEL);
        st = DF_ESHAPE;
    }
    if (st != DF_OK) {
        df_graph_fail(g, st, n, d->name);
        free(n->name);
        free(n);
        return NULL;
    }
    if (d->flags & DF_OPF_VIEW) n->root = in[0]->root;
    push_node(g, n);
    return n;
}

df_status df_keep(df_graph *g, df_node *x) {
    if (!g || !x) return df_seterr(DF_EINVAL, "df_keep: NULL argument");
    if (g->compiled) return df_seterr(DF_ESTATE, "df_keep: graph already compiled");
    x->keep = 1;
    return DF_OK;
}

void *df_data(df_node *x) {
    return x ? x->data : NULL;
}

df_status df_set_input(df_graph *g, df_node *x, const void *data, int64_t n) {
    char b[96];
    if (!g || !x || !data) return df_seterr(DF_EINVAL, "df_set_input: NULL argument");
    if (!g->compiled) return df_seterr(DF_ESTATE, "df_set_input: compile the graph first");
    if (x->op != DF_OP_INPUT)
        return df_seterr(DF_EINVAL, "df_set_input: node '%s' is not an input", x->name);
    int64_t want = df_shape_numel(&x->shape);
    if (n != want)
        return df_seterr(DF_ESHAPE,
                         "df_set_input: input '%s' has shape %s (%lld elements), got %lld", x->name,
                         df_shape_str(&x->shape, b, sizeof b), (long long)want, (long long)n);
    memcpy(x->data, data, (size_t)n * df_dtype_size(x->dtype));
    return DF_OK;
}

double df_node_flops(const df_node *n) {
    const df_op_desc *d = df_op_table[n->op];
    if (d->flags & (DF_OPF_LEAF | DF_OPF_VIEW)) return 0;
    return d->flops ? d->flops(n) : (double)df_shape_numel(&n->shape);
}

double df_graph_flops(const df_graph *g, int include_backward) {
    double f = 0;
    for (int i = 0; g && i < g->n; i++) {
        const df_node *n = g->nodes[i];
        if (!n->dead && (!n->is_backward || include_backward)) f += df_node_flops(n);
    }
    return f;
}

df_node *df_grad_of(df_graph *g, df_node *x) {
    if (!g || !x || !g->grad_of || x->id >= g->n_forward) return NULL;
    return g->grad_of[x->id];
}
