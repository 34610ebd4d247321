/* The graph in Graphviz DOT: nodes nested in clusters by scope, edges
 * labelled with shapes. */
#include "dfrun/graph.h"
#include "dfrun/op.h"
#include "atomic.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dot_escape(FILE *fp, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', fp);
        fputc(*s, fp);
    }
}

/* scope of a node: its name without the last component */
static int scope_of(const char *name, char *out, int n) {
    snprintf(out, n, "%s", name);
    char *dot = strrchr(out, '.');
    if (!dot) return out[0] = 0, 0;
    *dot = 0;
    return 1;
}

/* every node, clustered by scope */
static df_status write_full(df_graph *g, FILE *fp, int backward) {
    int n = df_graph_size(g);
    /* large graphs: cap dot's crossing minimisation and ranking iterations */
    const char *limits =
        n > 300 ? "  mclimit=0.05; nslimit=1; nslimit1=1; remincross=false;\n" : "";
    fprintf(fp, "digraph dfrun {\n%s  rankdir=TB;\n  newrank=true;\n", limits);
    fprintf(fp, "  node [shape=box, style=\"rounded,filled\", "
                "fillcolor=\"#eef3fb\", fontname=\"Helvetica\", fontsize=10];\n"
                "  edge [fontname=\"Helvetica\", fontsize=8, color=\"#666666\"];\n");
    /* clusters: nodes grouped by scope, nested by prefix */
    char(*scopes)[256] = calloc(n, sizeof *scopes);
    for (int i = 0; i < n;
         i++) { /* backward nodes stay outside the clusters: dot lays out faster */
        df_node *nd = df_graph_node(g, i);
        if (nd->is_backward)
            scopes[i][0] = 0;
        else
            scope_of(nd->name, scopes[i], 256);
    }
    /* emit nodes in nested clusters: walk sorted unique scopes */
    char open[64][256];
    int depth = 0;
    int *order = malloc(n * sizeof *order), m = 0;
    for (int i = 0; i < n; i++) {
        df_node *nd = df_graph_node(g, i);
        if (nd->is_backward && !backward) continue;
        if (nd->op == DF_OP_PARAM || nd->dead) continue;
        order[m++] = i;
    }
    /* stable sort by scope so clusters are contiguous */
    for (int i = 1; i < m; i++)
        for (int j = i; j > 0 && strcmp(scopes[order[j - 1]], scopes[order[j]]) > 0; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    static int cid = 0;
    for (int k = 0; k < m; k++) {
        const char *sc = scopes[order[k]];
        /* close clusters that are not prefixes of sc */
        while (depth > 0) {
            size_t l = strlen(open[depth - 1]);
            if (!strncmp(sc, open[depth - 1], l) && (sc[l] == '.' || sc[l] == 0)) break;
            fprintf(fp, "%*s}\n", 2 * depth, "");
            depth--;
        }
        /* open the missing levels */
        while (strlen(sc) > (depth ? strlen(open[depth - 1]) : 0) && depth < 63) {
            const char *start = sc + (depth ? strlen(open[depth - 1]) + 1 : 0);
            const char *dot = strchr(start, '.');
            size_t l = dot ? (size_t)(dot - sc) : strlen(sc);
            snprintf(open[depth], 256, "%.*s", (int)l, sc);
            depth++;
            fprintf(fp, "%*ssubgraph cluster_%d {\n%*slabel=\"", 2 * depth, "", cid++,
                    2 * depth + 2, "");
            dot_escape(fp, open[depth - 1] + (depth > 1 ? strlen(open[depth - 2]) + 1 : 0));
            fprintf(fp, "\"; style=\"rounded\"; color=\"#99aacc\"; fontname=\"Helvetica\";\n");
        }
        df_node *nd = df_graph_node(g, order[k]);
        char shp[96];
        df_shape_str(&nd->shape, shp, sizeof shp);
        const char *fill = nd->op == DF_OP_INPUT ? "#fff3d6"
                           : nd->is_backward     ? "#fbe9e9"
                                                 : "#eef3fb";
        fprintf(fp, "%*sn%d [label=\"", 2 * depth + 2, "", nd->id);
        const char *last = strrchr(nd->name, '.');
        dot_escape(fp, last ? last + 1 : nd->name);
        fprintf(fp, "\\n%s %s\", fillcolor=\"%s\"];\n", df_op_table[nd->op]->name, shp, fill);
    }
    while (depth > 0) fprintf(fp, "%*s}\n", 2 * depth--, "");
    for (int k = 0; k < m; k++) {
        df_node *nd = df_graph_node(g, order[k]);
        for (int j = 0; j < nd->n_in; j++) {
            df_node *src = nd->in[j];
            if (src->op == DF_OP_PARAM || (src->is_backward && !backward)) continue;
            char shp[96];
            df_shape_str(&src->shape, shp, sizeof shp);
            fprintf(fp, "  n%d -> n%d [label=\"%s\"];\n", src->id, nd->id, shp);
        }
    }
    fprintf(fp, "}\n");
    free(order);
    free(scopes);
    return DF_OK;
}

/* the group of a node: the first `depth` components of its name (a node with
 * no more components than that is its own group) */
static void group_of(const char *name, int depth, char *out, int n) {
    const char *p = name;
    for (int k = 0; k < depth && p; k++) {
        p = strchr(p, '.');
        if (p && k + 1 < depth) p++;
    }
    snprintf(out, n, "%.*s", p ? (int)(p - name) : (int)strlen(name), name);
}

typedef struct {
    int a, b;
} edge;
static int edge_cmp(const void *x, const void *y) {
    const edge *e = x, *f = y;
    return e->a != f->a ? (e->a > f->a) - (e->a < f->a) : (e->b > f->b) - (e->b < f->b);
}

/* scopes deeper than depth collapsed: one node per group, edges deduplicated */
static df_status write_collapsed(df_graph *g, FILE *fp, int backward, int depth) {
    int n = df_graph_size(g), ng = 0, ne = 0;
    int *gid = malloc(n * sizeof *gid), *size = calloc(n, sizeof *size),
        *first = malloc(n * sizeof *first);
    char(*names)[256] = malloc((size_t)n * sizeof *names);
    edge *es = NULL;
    int64_t cap = 0;
    df_status st = DF_ENOMEM;
    if (!gid || !size || !first || !names) goto out;
    for (int i = 0; i < n; i++) { /* groups in order of first appearance */
        df_node *nd = df_graph_node(g, i);
        gid[i] = -1;
        if (nd->op == DF_OP_PARAM || nd->dead || (nd->is_backward && !backward)) continue;
        char grp[256];
        group_of(nd->name, depth, grp, sizeof grp);
        int k;
        for (k = ng - 1; k >= 0 && strcmp(names[k], grp); k--) /* recent groups first */
            ;
        if (k < 0) {
            k = ng++;
            snprintf(names[k], sizeof names[k], "%s", grp);
            first[k] = i;
        }
        gid[i] = k;
        size[k]++;
    }
    for (int i = 0; i < n; i++) {
        df_node *nd = df_graph_node(g, i);
        for (int j = 0; gid[i] >= 0 && j < nd->n_in; j++) {
            int a = gid[nd->in[j]->id], b = gid[i];
            if (a < 0 || a == b) continue;
            if (ne == cap) {
                edge *e2 = realloc(es, (size_t)(cap = cap ? 2 * cap : 256) * sizeof *e2);
                if (!e2) goto out;
                es = e2;
            }
            es[ne++] = (edge){a, b};
        }
    }
    qsort(es, ne, sizeof *es, edge_cmp);
    fprintf(fp, "digraph dfrun {\n  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", "
                "fillcolor=\"#eef3fb\", fontname=\"Helvetica\", fontsize=10];\n"
                "  edge [color=\"#666666\"];\n");
    for (int k = 0; k < ng; k++) {
        df_node *nd = df_graph_node(g, first[k]);
        fprintf(fp, "  g%d [label=\"", k);
        dot_escape(fp, names[k]);
        if (size[k] > 1)
            fprintf(fp, "\\n(%d nodes)\", fillcolor=\"%s\"];\n", size[k],
                    nd->is_backward ? "#fbe9e9" : "#dde7f7");
        else {
            char shp[96];
            df_shape_str(&nd->shape, shp, sizeof shp);
            fprintf(fp, "\\n%s %s\", fillcolor=\"%s\"];\n", df_op_table[nd->op]->name, shp,
                    nd->op == DF_OP_INPUT ? "#fff3d6"
                    : nd->is_backward     ? "#fbe9e9"
                                          : "#eef3fb");
        }
    }
    for (int i = 0; i < ne; i++)
        if (!i || es[i].a != es[i - 1].a || es[i].b != es[i - 1].b)
            fprintf(fp, "  g%d -> g%d;\n", es[i].a, es[i].b);
    fprintf(fp, "}\n");
    st = DF_OK;
out:
    if (st) df_seterr(st, "out of memory writing the DOT text");
    free(gid), free(size), free(first), free(names), free(es);
    return st;
}

df_status df_graph_write_dot(const df_graph *g, FILE *fp, const df_dot_opts *o) {
    if (!g || !fp) return df_seterr(DF_EINVAL, "df_graph_write_dot: bad arguments");
    df_dot_opts d = o ? *o : (df_dot_opts){0, 0};
    df_status st = d.depth > 0 ? write_collapsed((df_graph *)g, fp, d.backward, d.depth)
                               : write_full((df_graph *)g, fp, d.backward);
    if (!st && ferror(fp)) st = df_seterr(DF_EIO, "writing the DOT text failed");
    return st;
}

df_status df_graph_save_dot(const df_graph *g, const char *path, const df_dot_opts *o) {
    df_atomic a;
    df_status st = df_atomic_open(&a, path);
    if (st) return st;
    st = df_graph_write_dot(g, a.f, o);
    df_status st2 = df_atomic_close(&a, !st);
    return st ? st : st2;
}
