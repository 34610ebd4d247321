/* Reverse-mode automatic differentiation, graph to graph: walks the forward
 * nodes from the loss back to the leaves and appends, through each op's
 * backward rule, ordinary nodes computing the gradients. */
#include "internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* grads[i] += gin, by an add node when a value has several readers. */
static df_status accumulate(df_graph *g, df_node **grads, df_node *x, df_node *gin,
                            const df_node *from) {
    char a[96], b[96];
    if (!df_shape_eq(&gin->shape, &x->shape)) {
        df_seterr(DF_ESHAPE, "internal: backward of '%s' gave a gradient %s for input '%s' %s",
                  from->name, df_shape_str(&gin->shape, a, sizeof a), x->name,
                  df_shape_str(&x->shape, b, sizeof b));
        return df_graph_fail(g, DF_ESHAPE, NULL, NULL);
    }
    if (!grads[x->id]) {
        grads[x->id] = gin;
        return DF_OK;
    }
    char name[256];
    snprintf(name, sizeof name, "grad(%s)", x->name);
    df_name_next(g, name);
    df_node *s = df_add(g, grads[x->id], gin);
    if (!s) return g->status ? g->status : DF_EINVAL;
    grads[x->id] = s;
    return DF_OK;
}

df_status df_backward(df_graph *g, df_node *loss, df_node **wrt, int nwrt) {
    char b[96];
    if (!g) return df_seterr(DF_EINVAL, "df_backward: graph is NULL");
    if (g->status) return df_seterr(g->status, "%s", g->errmsg);
    if (!loss) return df_seterr(DF_EINVAL, "df_backward: loss is NULL");
    if (g->compiled || g->has_backward)
        return df_seterr(DF_ESTATE, "df_backward: call it once, before df_compile");
    if (loss->id >= g->n || g->nodes[loss->id] != loss)
        return df_seterr(DF_EINVAL, "df_backward: loss '%s' is not in this graph", loss->name);
    if (df_shape_numel(&loss->shape) != 1 || loss->dtype != DF_F32)
        return df_seterr(DF_ESHAPE, "df_backward: loss '%s' must be a scalar float, got %s %s",
                         loss->name, df_dtype_name(loss->dtype),
                         df_shape_str(&loss->shape, b, sizeof b));
    if (nwrt < 0 || (nwrt > 0 && !wrt)) return df_seterr(DF_EINVAL, "df_backward: bad wrt list");
    for (int i = 0; i < nwrt; i++) {
        if (!wrt[i] || wrt[i]->id >= g->n || g->nodes[wrt[i]->id] != wrt[i])
            return df_seterr(DF_EINVAL, "df_backward: wrt[%d] is NULL or not in this graph", i);
        if (wrt[i]->dtype != DF_F32)
            return df_seterr(DF_EINVAL, "df_backward: wrt '%s' is %s (gradients need float32)",
                             wrt[i]->name, df_dtype_name(wrt[i]->dtype));
    }

    int n0 = g->n;
    char *iswrt = calloc(n0, 1), *reach = calloc(n0, 1);
    df_node **grads = calloc(n0, sizeof *grads);
    g->grad_of = calloc(n0, sizeof *g->grad_of);
    if (!iswrt || !reach || !grads || !g->grad_of) {
        free(iswrt);
        free(reach);
        free(grads);
        return df_seterr(DF_ENOMEM, "df_backward: out of memory");
    }
    for (int i = 0; i < nwrt; i++) iswrt[wrt[i]->id] = 1;
    /* requires_grad: depends on a parameter or a wrt node through float values */
    for (int i = 0; i < n0; i++) {
        df_node *n = g->nodes[i];
        int rg = n->op == DF_OP_PARAM || iswrt[i];
        const df_op_desc *d = df_op_table[n->op];
        if (!(d->flags & DF_OPF_LEAF))
            for (int k = 0; k < n->n_in; k++)
                if (n->in[k]->requires_grad && n->in[k]->dtype == DF_F32) rg = 1;
        n->requires_grad = rg && n->dtype == DF_F32;
    }
    reach[loss->id] = 1;
    for (int i = loss->id; i >= 0; i--)
        if (reach[i])
            for (int k = 0; k < g->nodes[i]->n_in; k++) reach[g->nodes[i]->in[k]->id] = 1;

    g->in_backward = 1;
    g->n_forward = n0;
    g->has_backward = 1;
    df_status st = DF_OK;
    char name[256];
    snprintf(name, sizeof name, "grad(%s)", loss->name);
    df_name_next(g, name);
    grads[loss->id] = df_fill(g, loss->shape, 1.0f);
    if (!grads[loss->id]) st = g->status ? g->status : DF_EINVAL;

    for (int i = loss->id; i >= 0 && st == DF_OK; i--) {
        df_node *n = g->nodes[i];
        df_node *gy = grads[i];
        const df_op_desc *d = df_op_table[n->op];
        if (!gy || !reach[i] || !n->requires_grad || (d->flags & DF_OPF_LEAF)) continue;
        if (!d->backward) {
            df_seterr(DF_EINVAL, "op '%s' has no gradient (needed for '%s')", d->name, n->name);
            st = df_graph_fail(g, DF_EINVAL, NULL, NULL);
            break;
        }
        df_node *gin[DF_MAX_IN] = {0};
        df_scope_push(g, n->name);
        df_scope_push(g, "bwd");
        df_clearerr();
        st = d->backward(g, n, gy, gin);
        df_scope_pop(g);
        df_scope_pop(g);
        if (st == DF_OK && g->status) st = g->status;
        if (st != DF_OK) {
            if (!g->status) df_graph_fail(g, st, n, d->name);
            break;
        }
        for (int k = 0; k < n->n_in && st == DF_OK; k++) {
            df_node *x = n->in[k];
            if (!gin[k] || !x->requires_grad) continue;
            st = accumulate(g, grads, x, gin[k], n);
        }
    }

    /* Parameter gradients go to the store's gradient block: each needs a node
     * of its own that writes a whole buffer (not a view, a leaf, a forward
     * value, or a node already holding another parameter's gradient). */
    for (int i = 0; i < n0 && st == DF_OK; i++) {
        df_node *x = g->nodes[i];
        df_node *gx = grads[i];
        if (!gx && iswrt[i]) { /* a requested input the loss doesn't depend on: zeros */
            snprintf(name, sizeof name, "grad(%s)", x->name);
            df_name_next(g, name);
            gx = df_fill(g, x->shape, 0.0f);
            if (!gx) {
                st = g->status ? g->status : DF_EINVAL;
                break;
            }
        }
        if (!gx) continue;
        if (x->op == DF_OP_PARAM) {
            const df_op_desc *d = df_op_table[gx->op];
            if ((d->flags & (DF_OPF_VIEW | DF_OPF_LEAF)) || gx->id < n0 ||
                gx->storage == DF_STORE_GRAD) {
                char nm[256];
                snprintf(nm, sizeof nm, "grad(%s)", x->name);
                df_name_next(g, nm);
                gx = df_copy(g, gx);
                if (!gx) {
                    st = g->status ? g->status : DF_EINVAL;
                    break;
                }
            }
            gx->storage = DF_STORE_GRAD;
            gx->param = x->param;
        } else if (iswrt[i]) {
            gx->keep = 1;
        }
        g->grad_of[i] = gx;
    }
    g->in_backward = 0;
    free(iswrt);
    free(reach);
    free(grads);
    if (st != DF_OK) {
        if (!g->errmsg[0]) df_graph_fail(g, st, NULL, NULL); /* copies df_errmsg() */
        return df_seterr(st, "%s", g->errmsg);
    }
    return DF_OK;
}
