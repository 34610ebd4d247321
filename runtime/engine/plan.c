/* Memory planner: one arena per compiled graph. Buffers are assigned by
 * liveness (a buffer is freed after its last reader) from a best-fit free
 * list; an op flagged in-place writes over its first input when that input
 * dies there. Inputs are placed first (fed before the run), parameters and
 * their gradients live in the store, views alias their source. */
#include "internal.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 64
#define KEEP_FOREVER INT_MAX

typedef struct {
    size_t off, size;
} block;

typedef struct {
    block *b; /* free blocks sorted by offset */
    int n, cap;
    size_t top; /* arena high-water mark */
} freelist;

static size_t align_up(size_t x) {
    return (x + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

static int fl_insert(freelist *f, size_t off, size_t size) {
    int i = 0;
    while (i < f->n && f->b[i].off < off) i++;
    /* coalesce with neighbours */
    int merge_prev = i > 0 && f->b[i - 1].off + f->b[i - 1].size == off;
    int merge_next = i < f->n && off + size == f->b[i].off;
    if (merge_prev && merge_next) {
        f->b[i - 1].size += size + f->b[i].size;
        memmove(&f->b[i], &f->b[i + 1], (f->n - i - 1) * sizeof(block));
        f->n--;
    } else if (merge_prev) {
        f->b[i - 1].size += size;
    } else if (merge_next) {
        f->b[i].off = off;
        f->b[i].size += size;
    } else {
        if (f->n == f->cap) {
            int cap = f->cap ? 2 * f->cap : 64;
            block *nb = realloc(f->b, cap * sizeof *nb);
            if (!nb) return -1;
            f->b = nb;
            f->cap = cap;
        }
        memmove(&f->b[i + 1], &f->b[i], (f->n - i) * sizeof(block));
        f->b[i].off = off;
        f->b[i].size = size;
        f->n++;
    }
    /* a free block touching the top shrinks the arena's used part */
    if (f->n && f->b[f->n - 1].off + f->b[f->n - 1].size == f->top) {
        f->top = f->b[f->n - 1].off;
        f->n--;
    }
    return 0;
}

/* Best fit among free blocks, else grow the top. high = peak of top. */
static size_t fl_alloc(freelist *f, size_t size, size_t *high) {
    int best = -1;
    for (int i = 0; i < f->n; i++)
        if (f->b[i].size >= size && (best < 0 || f->b[i].size < f->b[best].size)) best = i;
    size_t off;
    if (best >= 0) {
        off = f->b[best].off;
        f->b[best].off += size;
        f->b[best].size -= size;
        if (f->b[best].size == 0) {
            memmove(&f->b[best], &f->b[best + 1], (f->n - best - 1) * sizeof(block));
            f->n--;
        }
    } else {
        off = f->top;
        f->top += size;
        if (f->top > *high) *high = f->top;
    }
    return off;
}

static int is_arena(const df_node *n) {
    return n->storage == DF_STORE_ARENA;
}

df_status df_compile(df_graph *g, const df_compile_opts *opts) {
    df_compile_opts o = {0};
    if (opts) o = *opts;
    if (!g) return df_seterr(DF_EINVAL, "df_compile: graph is NULL");
    if (g->status) return df_seterr(g->status, "%s", g->errmsg);
    if (g->compiled) return df_seterr(DF_ESTATE, "df_compile: already compiled");
    if (g->n == 0) return df_seterr(DF_EINVAL, "df_compile: the graph is empty");
    df_status st = df_params_alloc(g->ps);
    if (st) return st;
    if (o.precision != DF_PRECISION_FP32 && o.precision != DF_PRECISION_BF16)
        return df_seterr(DF_EINVAL,
                         "df_compile: precision %d (expected DF_PRECISION_FP32 or _BF16)",
                         o.precision);
    g->precision = o.precision;
    if (!o.no_fuse && (st = df_fuse(g))) return st;
    /* a graph without gradients keeps what its ops derive from the weights */
    if (!g->has_backward && !o.no_cache && !o.plan_only &&
        !(g->node_cache = calloc((size_t)g->n, sizeof *g->node_cache)))
        return df_seterr(DF_ENOMEM, "df_compile: out of memory");

    /* storage classes and roots */
    memset(&g->stats, 0, sizeof g->stats);
    for (int i = 0; i < g->n; i++) {
        df_node *n = g->nodes[i];
        const df_op_desc *d = df_op_table[n->op];
        n->inplace = NULL;
        n->last_use = -1;
        if (n->dead)
            n->storage = DF_STORE_NONE;
        else if (n->op == DF_OP_PARAM)
            n->storage = DF_STORE_PARAM;
        else if (d->flags & DF_OPF_VIEW) {
            n->storage = DF_STORE_VIEW;
            n->root = n->in[0]->root;
            g->stats.n_views++;
        } else if (n->storage != DF_STORE_GRAD)
            n->storage = DF_STORE_ARENA;
        if (n->is_backward) g->stats.n_backward++;
    }
    /* liveness: last reader of each storage root */
    for (int i = 0; i < g->n; i++) {
        df_node *n = g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_in; k++) {
            df_node *r = n->in[k]->root;
            if (r->last_use < i) r->last_use = i;
        }
    }
    for (int i = 0; i < g->n; i++) {
        df_node *n = g->nodes[i];
        if (n->dead) continue;
        if (n->keep || n->op == DF_OP_INPUT) n->root->last_use = KEEP_FOREVER;
        if (n->root == n && n->last_use < i) n->last_use = i; /* unread: dies at once */
    }

    freelist f = {0};
    size_t high = 0, naive = 0;
    /* inputs first: they are written before the run starts (and kept) */
    for (int i = 0; i < g->n; i++) {
        df_node *n = g->nodes[i];
        if (n->op != DF_OP_INPUT) continue;
        size_t sz = align_up(df_node_bytes(n));
        n->offset = fl_alloc(&f, sz, &high);
        naive += sz;
    }
    for (int i = 0; i < g->n; i++) {
        df_node *n = g->nodes[i];
        const df_op_desc *d = df_op_table[n->op];
        if (n->op == DF_OP_INPUT || n->op == DF_OP_PARAM || n->dead) continue;
        size_t sz = align_up(df_node_bytes(n));
        if (is_arena(n)) naive += sz;
        if (is_arena(n) && o.no_reuse) {
            n->offset = f.top;
            f.top += sz;
            high = f.top;
            continue;
        }
        if (o.no_reuse) continue;
        df_node *r0 = n->n_in ? n->in[0]->root : NULL;
        int can_inplace = is_arena(n) && !o.no_inplace && (d->flags & DF_OPF_INPLACE) && r0 &&
                          is_arena(r0) && r0->op != DF_OP_INPUT && r0->last_use == i &&
                          align_up(df_node_bytes(r0)) == sz &&
                          df_node_bytes(n->in[0]) == df_node_bytes(n);
        for (int k = 1; k < n->n_in && can_inplace; k++)
            if (n->in[k]->root == r0) can_inplace = 0;
        if (can_inplace) {
            n->offset = r0->offset;
            n->inplace = n->in[0];
            r0->last_use = -2; /* ownership moved to n: never freed through r0 */
            g->stats.n_inplace++;
        } else if (is_arena(n)) {
            n->offset = fl_alloc(&f, sz, &high);
        }
        /* free the inputs that die here (each root once) */
        for (int k = 0; k < n->n_in; k++) {
            df_node *r = n->in[k]->root;
            if (!is_arena(r) || r->last_use != i) continue;
            int dup = 0;
            for (int j = 0; j < k; j++) dup |= n->in[j]->root == r;
            if (dup) continue;
            if (fl_insert(&f, r->offset, align_up(df_node_bytes(r)))) goto oom;
        }
        if (is_arena(n) && n->last_use == i && fl_insert(&f, n->offset, sz))
            goto oom; /* unread output */
    }
    free(f.b);
    f.b = NULL;

    /* scratch: the largest workspace of any kernel */
    int nt = df_get_threads();
    size_t scratch = 0;
    for (int i = 0; i < g->n; i++) {
        const df_op_desc *d = df_op_table[g->nodes[i]->op];
        if (d->scratch && !g->nodes[i]->dead) {
            size_t s = d->scratch(g->nodes[i], nt);
            if (s > scratch) scratch = s;
        }
    }
    g->arena_bytes = high;
    g->naive_bytes = naive;
    if (o.plan_only) {
        g->stats.planned_bytes = high;
        g->stats.naive_bytes = naive;
        g->stats.scratch_bytes = align_up(scratch);
        g->stats.param_bytes = 2 * (size_t)df_params_block_numel(g->ps) * sizeof(float);
        g->stats.n_nodes = g->n;
        g->compiled = 1; /* frozen; df_run refuses: no arena */
        return DF_OK;
    }
    g->arena = aligned_alloc(ALIGN, high ? align_up(high) : ALIGN);
    if (!g->arena) return df_seterr(DF_ENOMEM, "df_compile: cannot allocate %zu bytes", high);
    memset(g->arena, 0, high);
    g->scratch_bytes = align_up(scratch);
    g->scratch_threads = nt;
    if (scratch) {
        g->scratch = aligned_alloc(ALIGN, g->scratch_bytes);
        if (!g->scratch)
            return df_seterr(DF_ENOMEM, "df_compile: cannot allocate %zu bytes of workspace",
                             scratch);
    }
    for (int i = 0; i < g->n; i++) {
        df_node *n = g->nodes[i];
        if (is_arena(n))
            n->data = g->arena + n->offset;
        else
            n->data = NULL; /* params, grads: resolved per run; views: below */
    }
    g->stats.planned_bytes = high;
    g->stats.naive_bytes = naive;
    g->stats.scratch_bytes = g->scratch_bytes;
    g->stats.param_bytes = 2 * (size_t)df_params_block_numel(g->ps) * sizeof(float);
    g->stats.n_nodes = g->n;
    g->compiled = 1;
    extern void df_exec_bind(df_graph * g);
    df_exec_bind(g);
    return DF_OK;
oom:
    free(f.b);
    return df_seterr(DF_ENOMEM, "df_compile: out of memory while planning");
}

df_status df_plan_get_stats(const df_graph *g, df_plan_stats *st) {
    if (!g || !st) return df_seterr(DF_EINVAL, "df_plan_get_stats: NULL argument");
    if (!g->compiled) return df_seterr(DF_ESTATE, "df_plan_get_stats: graph not compiled");
    *st = g->stats;
    return DF_OK;
}
