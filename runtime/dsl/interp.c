/* The graph DSL compiler: loads a graph file (with includes and --set
 * overrides), validates its sections, and builds the model section into a
 * df_graph. Every error names file:line:col and the node path. */
#include "dfrun/dsl.h"
#include "dfrun/op.h"
#include "config_dval.h"
#include "expr.h"
#include "yaml.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CALL_DEPTH 32
#define MAX_INCLUDES 16
#define MAX_STEPS 200000

struct df_gfile {
    char *path;
    ydoc *doc; /* the main file */
    ydoc *inc[MAX_INCLUDES];
    int ninc;
    const yn *vars;                     /* merged view: main file's */
    const yn *blocks[MAX_INCLUDES + 1]; /* block maps: main first, then includes */
    int nblocks;
    const yn *model;
    df_config cfg; /* the data, diffusion, sampler and train sections, typed */
};

/* ---------------- small helpers ---------------- */

static int lev(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 40 || lb > 40) return 99;
    int d[41][41];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1; /* transposition */
            d[i][j] = c;
        }
    return d[la][lb];
}

/* " (did you mean 'x'?)" for the closest candidate within a small distance */
static void suggest(const char *name, const char *const *cands, int n, char *buf, int bn) {
    int best = -1, bd = 99;
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        if (!cands[i]) continue;
        int d = lev(name, cands[i]);
        if (d < bd) bd = d, best = i;
    }
    int lim = (int)strlen(name) <= 4 ? 1 : 2;
    if (best >= 0 && bd <= lim) snprintf(buf, bn, " (did you mean '%s'?)", cands[best]);
}

/* ---------------- a string -> integer hash map (names in use) ---------------- */

typedef struct {
    char **keys; /* [cap], NULL = free slot */
    int64_t *vals;
    int64_t n, cap;
} strmap;

static uint64_t strhash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* the slot of key: its own, or the free one where it would go */
static int64_t sm_slot(const strmap *m, const char *key) {
    int64_t i = (int64_t)(strhash(key) & (uint64_t)(m->cap - 1));
    while (m->keys[i] && strcmp(m->keys[i], key)) i = (i + 1) & (m->cap - 1);
    return i;
}

static int64_t *sm_get(const strmap *m, const char *key) {
    if (!m->cap) return NULL;
    int64_t i = sm_slot(m, key);
    return m->keys[i] ? &m->vals[i] : NULL;
}

static int sm_put(strmap *m, const char *key, int64_t v) {
    if (2 * (m->n + 1) > m->cap) { /* grow: load factor at most 1/2 */
        strmap g = {calloc(m->cap ? 2 * m->cap : 64, sizeof(char *)),
                    calloc(m->cap ? 2 * m->cap : 64, sizeof(int64_t)), 0, m->cap ? 2 * m->cap : 64};
        if (!g.keys || !g.vals) return free(g.keys), free(g.vals), -1;
        for (int64_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                int64_t j = sm_slot(&g, m->keys[i]);
                g.keys[j] = m->keys[i], g.vals[j] = m->vals[i], g.n++;
            }
        free(m->keys), free(m->vals);
        *m = g;
    }
    int64_t i = sm_slot(m, key);
    if (!m->keys[i]) {
        if (!(m->keys[i] = strdup(key))) return -1;
        m->n++;
    }
    m->vals[i] = v;
    return 0;
}

static void sm_free(strmap *m) {
    for (int64_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys), free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---------------- the build context ---------------- */

typedef struct {
    char *name;
    dval v;
} var_t;
typedef struct {
    char *name;
    df_node *node;
} val_t;

typedef struct env {
    struct env *vparent; /* variable lookup continues here */
    var_t *vars;
    int nvars;
    val_t *vals;
    int nvals;
    df_node *cur;
} env;

typedef struct {
    df_gfile *f;
    df_graph *g;
    int64_t batch;
    env *genv; /* file-level variables */
    env *e;    /* for expression callbacks */
    const char *calls[MAX_CALL_DEPTH];
    int ncall;
    strmap used; /* full paths of named steps -> next free suffix for that base */
    long steps;
} bctx;

static char g_scope[1024]; /* the DSL's view of the graph scope (one build at a time) */
static int g_scope_len[128], g_nscope;
static df_status berr(bctx *b, const yn *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static df_status berr(bctx *b, const yn *at, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char where[300] = "", path[300] = "";
    if (at)
        snprintf(where, sizeof where, "%s:%d:%d: ", at->file ? at->file : "?", at->line, at->col);
    /* the node path of the step being built (graph errors carry their own) */
    if (b && b->g && g_scope[0] && !strstr(msg, "node '"))
        snprintf(path, sizeof path, "in %.250s: ", g_scope);
    return df_seterr(DF_EINVAL, "%s%s%s", where, path, msg);
}

static void env_free(env *e) {
    for (int i = 0; i < e->nvars; i++) {
        free(e->vars[i].name);
        dval_free(&e->vars[i].v);
    }
    for (int i = 0; i < e->nvals; i++) free(e->vals[i].name);
    free(e->vars);
    free(e->vals);
}

static int env_setvar(env *e, const char *name, dval v) {
    for (int i = 0; i < e->nvars; i++)
        if (!strcmp(e->vars[i].name, name)) {
            dval_free(&e->vars[i].v);
            e->vars[i].v = v;
            return 0;
        }
    var_t *nv = realloc(e->vars, (e->nvars + 1) * sizeof *nv);
    if (!nv) return -1;
    e->vars = nv;
    e->vars[e->nvars].name = strdup(name);
    e->vars[e->nvars].v = v;
    e->nvars++;
    return 0;
}

static int env_setval(env *e, const char *name, df_node *n) {
    for (int i = 0; i < e->nvals; i++)
        if (!strcmp(e->vals[i].name, name)) {
            e->vals[i].node = n;
            return 0;
        }
    val_t *nv = realloc(e->vals, (e->nvals + 1) * sizeof *nv);
    if (!nv) return -1;
    e->vals = nv;
    e->vals[e->nvals].name = strdup(name);
    e->vals[e->nvals].node = n;
    e->nvals++;
    return 0;
}

static df_node *env_getval(env *e, const char *name) {
    if (!strcmp(name, "_")) return e->cur;
    for (int i = 0; i < e->nvals; i++)
        if (!strcmp(e->vals[i].name, name)) return e->vals[i].node;
    return NULL;
}

static int cb_var(void *ctx, const char *name, dval *out) {
    bctx *b = ctx;
    if (!strcmp(name, "B")) return *out = dval_int(b->batch), 1;
    for (env *e = b->e; e; e = e->vparent)
        for (int i = 0; i < e->nvars; i++)
            if (!strcmp(e->vars[i].name, name)) return *out = dval_copy(&e->vars[i].v), 1;
    return 0;
}
static int cb_shape(void *ctx, const char *name, dval *out) {
    bctx *b = ctx;
    df_node *n = env_getval(b->e, name);
    if (!n) return 0;
    out->kind = DV_LIST;
    out->n = n->shape.nd;
    out->items = calloc(n->shape.nd, sizeof *out->items);
    for (int i = 0; i < n->shape.nd; i++) out->items[i] = dval_int(n->shape.d[i]);
    return 1;
}
static void cb_suggest(void *ctx, const char *name, char *buf, int n) {
    bctx *b = ctx;
    const char *c[256];
    int k = 0;
    for (env *e = b->e; e && k < 250; e = e->vparent)
        for (int i = 0; i < e->nvars && k < 250; i++) c[k++] = e->vars[i].name;
    suggest(name, c, k, buf, n);
}

/* ---------------- values of YAML nodes ---------------- */

/* A YAML scalar's own value: int, float, bool, or string. */
static dval scalar_value(const yn *n) {
    const char *s = n->s;
    if (n->plain) {
        char *e;
        if (*s && (isdigit((unsigned char)*s) || *s == '-' || *s == '+' || *s == '.')) {
            long long v = strtoll(s, &e, 10);
            if (!*e && e != s) return dval_int(v);
            double d = strtod(s, &e);
            if (!*e && e != s) return dval_float(d);
        }
        if (!strcmp(s, "true") || !strcmp(s, "yes")) return dval_int(1);
        if (!strcmp(s, "false") || !strcmp(s, "no")) return dval_int(0);
    }
    return dval_str(s);
}

/* Evaluate a node: "$expr" scalars are expressions, sequences lists. */
static int eval_node(bctx *b, env *e, const yn *n, dval *out) {
    memset(out, 0, sizeof *out);
    if (!n) return berr(b, NULL, "missing value"), -1;
    if (n->kind == YN_MAP) return berr(b, n, "expected a value or a list, found a map"), -1;
    if (n->kind == YN_SEQ) {
        out->kind = DV_LIST;
        out->n = n->n;
        out->items = calloc(n->n ? n->n : 1, sizeof *out->items);
        for (int i = 0; i < n->n; i++)
            if (eval_node(b, e, n->items[i], &out->items[i])) return dval_free(out), -1;
        return 0;
    }
    if (n->s[0] == '$') {
        char err[600];
        env *saved = b->e;
        b->e = e;
        expr_env ee = {cb_var, cb_shape, cb_suggest, b};
        int r = expr_eval(n->s + 1, &ee, out, err, sizeof err);
        b->e = saved;
        if (r) return berr(b, n, "%s", err), -1;
        return 0;
    }
    *out = scalar_value(n);
    return 0;
}

/* Expand "{expr}" parts of a name. */
static int interp(bctx *b, env *e, const yn *n, char *out, int on) {
    if (!n || n->kind != YN_SCALAR) return berr(b, n, "expected a name"), -1;
    const char *s = n->s;
    if (s[0] == '$') {
        dval v;
        if (eval_node(b, e, n, &v)) return -1;
        if (v.kind == DV_STR)
            snprintf(out, on, "%s", v.s);
        else
            dval_print(&v, out, on);
        dval_free(&v);
        return 0;
    }
    int k = 0;
    while (*s && k < on - 1) {
        if (*s == '{') {
            const char *c = strchr(s, '}');
            if (!c) return berr(b, n, "unclosed '{' in name '%s'", n->s), -1;
            char ex[256];
            snprintf(ex, sizeof ex, "%.*s", (int)(c - s - 1), s + 1);
            yn tmp = *n;
            char buf[260];
            snprintf(buf, sizeof buf, "$%s", ex);
            tmp.s = buf;
            tmp.plain = 1;
            dval v;
            if (eval_node(b, e, &tmp, &v)) return -1;
            char pv[128];
            if (v.kind == DV_STR)
                snprintf(pv, sizeof pv, "%s", v.s);
            else
                dval_print(&v, pv, sizeof pv);
            dval_free(&v);
            k += snprintf(out + k, on - k, "%s", pv);
            s = c + 1;
        } else
            out[k++] = *s++;
    }
    out[k < on ? k : on - 1] = 0;
    for (char *p = out; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-'))
            return berr(b, n, "name '%s' has a '%c' (use letters, digits, '_', '.', '-')", out, *p),
                   -1;
    return 0;
}

/* ---------------- attributes of a step ---------------- */

typedef struct {
    bctx *b;
    env *e;
    const yn *map; /* may be NULL (no attributes) */
    const yn *at;  /* where to point errors */
    const char *op;
    const char *known[32];
    int nknown;
} attrs;

static const yn *at_get(attrs *a, const char *key) {
    if (a->nknown < 32) a->known[a->nknown++] = key;
    return a->map ? yn_get(a->map, key) : NULL;
}

static int at_int(attrs *a, const char *key, int required, int64_t def, int64_t lo, int64_t hi,
                  int64_t *out) {
    const yn *n = at_get(a, key);
    if (!n) {
        if (required) return berr(a->b, a->at, "%s: missing attribute '%s'", a->op, key), -1;
        *out = def;
        return 0;
    }
    dval v;
    if (eval_node(a->b, a->e, n, &v)) return -1;
    if (v.kind != DV_INT) {
        char p[128];
        dval_print(&v, p, sizeof p);
        dval_free(&v);
        return berr(a->b, n, "%s: '%s' must be an integer, found %s", a->op, key, p), -1;
    }
    if (v.i < lo || v.i > hi)
        return berr(a->b, n, "%s: '%s' = %lld is out of range [%lld, %lld]", a->op, key,
                    (long long)v.i, (long long)lo, (long long)hi),
               -1;
    *out = v.i;
    return 0;
}

static int at_num(attrs *a, const char *key, double def, double lo, double hi, double *out) {
    const yn *n = at_get(a, key);
    if (!n) return *out = def, 0;
    dval v;
    if (eval_node(a->b, a->e, n, &v)) return -1;
    double d;
    if (v.kind == DV_INT)
        d = (double)v.i;
    else if (v.kind == DV_FLOAT)
        d = v.f;
    else {
        dval_free(&v);
        return berr(a->b, n, "%s: '%s' must be a number, found %s", a->op, key,
                    dval_kind_name(v.kind)),
               -1;
    }
    if (!(d >= lo && d <= hi))
        return berr(a->b, n, "%s: '%s' = %g is out of range [%g, %g]", a->op, key, d, lo, hi), -1;
    *out = d;
    return 0;
}

static int at_bool(attrs *a, const char *key, int def, int *out) {
    int64_t v;
    const yn *n = at_get(a, key);
    if (!n) return *out = def, 0;
    a->nknown--;
    if (at_int(a, key, 1, 0, 0, 1, &v)) return -1;
    *out = (int)v;
    return 0;
}

static int at_ints(attrs *a, const char *key, int required, int64_t *out, int max, int *n) {
    const yn *y = at_get(a, key);
    if (!y) {
        if (required) return berr(a->b, a->at, "%s: missing attribute '%s'", a->op, key), -1;
        *n = 0;
        return 0;
    }
    dval v;
    if (eval_node(a->b, a->e, y, &v)) return -1;
    if (v.kind != DV_LIST || v.n > max) {
        dval_free(&v);
        return berr(a->b, y, "%s: '%s' must be a list of at most %d integers", a->op, key, max), -1;
    }
    for (int i = 0; i < v.n; i++) {
        if (v.items[i].kind != DV_INT) {
            dval_free(&v);
            return berr(a->b, y, "%s: '%s' must hold integers", a->op, key), -1;
        }
        out[i] = v.items[i].i;
    }
    *n = v.n;
    dval_free(&v);
    return 0;
}

/* Unknown attribute keys are errors. */
static int at_finish(attrs *a) {
    if (!a->map) return 0;
    static const char *common[] = {"in", "as", "name"};
    for (int i = 0; i < a->map->n; i++) {
        const char *k = a->map->keys[i]->s;
        int ok = 0;
        for (int j = 0; j < 3; j++) ok |= !strcmp(k, common[j]);
        for (int j = 0; j < a->nknown; j++) ok |= !strcmp(k, a->known[j]);
        if (ok) continue;
        const char *c[40];
        int nc = 0;
        for (int j = 0; j < 3; j++) c[nc++] = common[j];
        for (int j = 0; j < a->nknown; j++) c[nc++] = a->known[j];
        char sug[128];
        suggest(k, c, nc, sug, sizeof sug);
        char list[400] = "";
        int l = 0;
        for (int j = 0; j < nc && l < 380; j++)
            l += snprintf(list + l, sizeof list - l, "%s%s", j ? ", " : "", c[j]);
        return berr(a->b, a->map->keys[i], "%s: unknown attribute '%s'%s; expected one of: %s",
                    a->op, k, sug, list),
               -1;
    }
    return 0;
}

/* ---------------- steps ---------------- */

typedef struct {
    bctx *b;
    env *e;
    attrs a;
    const yn *at;
    df_node *in[DF_MAX_IN];
    int nin;
    char name[160];
} step;

static void scope_push(bctx *b, const char *name) {
    size_t l = strlen(g_scope);
    if (g_nscope < 128) g_scope_len[g_nscope++] = (int)l;
    snprintf(g_scope + l, sizeof g_scope - l, "%s%s", l ? "." : "", name);
    df_scope_push(b->g, name);
}
static void scope_pop(bctx *b) {
    if (g_nscope) g_scope[g_scope_len[--g_nscope]] = 0;
    df_scope_pop(b->g);
}

/* claim scope.name for a step: explicit names must be unique; default names
 * get _1, _2, ... */
/* Claim a step's name in the current scope: an explicit name must be free;
 * an op's default name gets the next free suffix (relu, relu_1, ...), found
 * in constant time from the suffix recorded for that base. */
static int claim_name(bctx *b, const yn *at, char *name, int n, int explicit) {
    char full[1300], base[1300];
    snprintf(base, sizeof base, "%s%s%.120s", g_scope, g_scope[0] ? "." : "", name);
    int64_t *next = sm_get(&b->used, base);
    if (next && explicit)
        return berr(b, at, "name '%s' is already used in '%s'; give this step another name", name,
                    g_scope[0] ? g_scope : "model"),
               -1;
    char stem[140];
    snprintf(stem, sizeof stem, "%.120s", name);
    for (int64_t k = next ? *next : 0;; k++) {
        if (k) snprintf(name, n, "%s_%lld", stem, (long long)k);
        snprintf(full, sizeof full, "%s%s%s", g_scope, g_scope[0] ? "." : "", name);
        if (k && sm_get(&b->used, full)) continue; /* taken by an explicit name */
        if (sm_put(&b->used, base, k + 1) || (k && sm_put(&b->used, full, 1)))
            return berr(b, at, "out of memory"), -1;
        return 0;
    }
}

static df_node *param(step *s, const char *what, df_shape sh, df_init init) {
    scope_push(s->b, s->name);
    df_node *p = df_param(s->b->g, what, sh, init);
    scope_pop(s->b);
    return p;
}

static int need_inputs(step *s, int lo, int hi) {
    if (s->nin < lo || s->nin > hi) {
        if (lo == hi)
            return berr(s->b, s->at, "%s takes %d input%s, got %d (set them with 'in: [...]')",
                        s->a.op, lo, lo > 1 ? "s" : "", s->nin),
                   -1;
        return berr(s->b, s->at, "%s takes %d to %d inputs, got %d", s->a.op, lo, hi, s->nin), -1;
    }
    return 0;
}

static int need_rank(step *s, int k, int nd, const char *what) {
    char b[96];
    if (s->in[k]->shape.nd != nd)
        return berr(s->b, s->at, "%s expects %s, got %s", s->a.op, what,
                    df_shape_str(&s->in[k]->shape, b, sizeof b)),
               -1;
    return 0;
}

#define ATTRS_DONE(s)                                                                              \
    if (at_finish(&(s)->a)) return -1

static int op_conv2d(step *s, df_node **out) {
    int64_t co, k, st, pad;
    int bias;
    if (need_inputs(s, 1, 1) || need_rank(s, 0, 4, "[B, C, H, W]")) return -1;
    if (at_int(&s->a, "out", 1, 0, 1, 1 << 16, &co) || at_int(&s->a, "k", 0, 3, 1, 63, &k) ||
        at_int(&s->a, "stride", 0, 1, 1, 64, &st) || at_int(&s->a, "pad", 0, k / 2, 0, 63, &pad) ||
        at_bool(&s->a, "bias", 1, &bias))
        return -1;
    ATTRS_DONE(s);
    int64_t ci = s->in[0]->shape.d[1];
    df_node *w = param(s, "weight", df_shape4(co, ci, k, k), (df_init){DF_INIT_KAIMING, 0});
    df_node *bb =
        bias ? param(s, "bias", df_shape1(co), (df_init){DF_INIT_KAIMING, (float)(ci * k * k)})
             : NULL;
    df_name_next(s->b->g, s->name);
    *out = df_conv2d(s->b->g, s->in[0], w, bb, (int)st, (int)pad);
    return 0;
}
static int op_linear(step *s, df_node **out) {
    int64_t o;
    int bias;
    if (need_inputs(s, 1, 1)) return -1;
    if (at_int(&s->a, "out", 1, 0, 1, 1 << 24, &o) || at_bool(&s->a, "bias", 1, &bias)) return -1;
    ATTRS_DONE(s);
    int64_t i = s->in[0]->shape.d[s->in[0]->shape.nd - 1];
    df_node *w = param(s, "weight", df_shape2(o, i), (df_init){DF_INIT_KAIMING, 0});
    df_node *bb =
        bias ? param(s, "bias", df_shape1(o), (df_init){DF_INIT_KAIMING, (float)i}) : NULL;
    df_name_next(s->b->g, s->name);
    *out = df_linear(s->b->g, s->in[0], w, bb);
    return 0;
}
static int op_groupnorm(step *s, df_node **out) {
    int64_t gr;
    double eps;
    int affine;
    if (need_inputs(s, 1, 1)) return -1;
    if (at_int(&s->a, "groups", 1, 0, 1, 1 << 20, &gr) ||
        at_num(&s->a, "eps", 1e-5, 1e-12, 1, &eps) || at_bool(&s->a, "affine", 1, &affine))
        return -1;
    ATTRS_DONE(s);
    int64_t c = s->in[0]->shape.nd >= 2 ? s->in[0]->shape.d[1] : 1;
    df_node *w = affine ? param(s, "weight", df_shape1(c), (df_init){DF_INIT_ONES, 0}) : NULL;
    df_node *bb = affine ? param(s, "bias", df_shape1(c), (df_init){DF_INIT_ZEROS, 0}) : NULL;
    df_name_next(s->b->g, s->name);
    *out = df_groupnorm(s->b->g, s->in[0], w, bb, (int)gr, (float)eps);
    return 0;
}
static int op_embedding(step *s, df_node **out) {
    int64_t num, dim;
    double std;
    if (need_inputs(s, 1, 1)) return -1;
    if (at_int(&s->a, "num", 1, 0, 1, 1 << 24, &num) ||
        at_int(&s->a, "dim", 1, 0, 1, 1 << 20, &dim) || at_num(&s->a, "std", 1.0, 0, 1e6, &std))
        return -1;
    ATTRS_DONE(s);
    df_node *w = param(s, "weight", df_shape2(num, dim), (df_init){DF_INIT_NORMAL, (float)std});
    df_name_next(s->b->g, s->name);
    *out = df_embedding(s->b->g, s->in[0], w);
    return 0;
}
static int op_fourier(step *s, df_node **out) {
    int64_t dim;
    double std;
    if (need_inputs(s, 1, 1)) return -1;
    if (at_int(&s->a, "dim", 1, 0, 2, 1 << 20, &dim) || at_num(&s->a, "std", 1.0, 0, 1e6, &std))
        return -1;
    ATTRS_DONE(s);
    if (dim % 2)
        return berr(s->b, s->at, "fourier: 'dim' = %lld must be even (sin and cos halves)",
                    (long long)dim),
               -1;
    df_node *w = param(s, "freq", df_shape1(dim / 2), (df_init){DF_INIT_NORMAL, (float)std});
    df_name_next(s->b->g, s->name);
    *out = df_fourier(s->b->g, s->in[0], w);
    return 0;
}
static int op_unary(step *s, df_node **out) {
    if (need_inputs(s, 1, 1)) return -1;
    ATTRS_DONE(s);
    df_graph *g = s->b->g;
    df_name_next(g, s->name);
    const char *o = s->a.op;
    *out = !strcmp(o, "silu")      ? df_silu(g, s->in[0])
           : !strcmp(o, "relu")    ? df_relu(g, s->in[0])
           : !strcmp(o, "softmax") ? df_softmax(g, s->in[0])
                                   : df_copy(g, s->in[0]);
    return 0;
}
static int op_binary(step *s, df_node **out) {
    if (need_inputs(s, 2, 2)) return -1;
    ATTRS_DONE(s);
    df_graph *g = s->b->g;
    df_name_next(g, s->name);
    const char *o = s->a.op;
    *out = !strcmp(o, "add")        ? df_add(g, s->in[0], s->in[1])
           : !strcmp(o, "sub")      ? df_sub(g, s->in[0], s->in[1])
           : !strcmp(o, "mul")      ? df_mul(g, s->in[0], s->in[1])
           : !strcmp(o, "mse_loss") ? df_mse_loss(g, s->in[0], s->in[1])
                                    : df_cross_entropy(g, s->in[0], s->in[1]);
    return 0;
}
static int op_scale(step *s, df_node **out) {
    double by;
    if (need_inputs(s, 1, 1)) return -1;
    if (!at_get(&s->a, "by")) return berr(s->b, s->at, "scale: missing attribute 'by'"), -1;
    s->a.nknown--;
    if (at_num(&s->a, "by", 1, -1e30, 1e30, &by)) return -1;
    ATTRS_DONE(s);
    df_name_next(s->b->g, s->name);
    *out = df_scale(s->b->g, s->in[0], (float)by);
    return 0;
}
static int op_concat(step *s, df_node **out) {
    int64_t ax;
    if (need_inputs(s, 1, DF_MAX_IN)) return -1;
    if (at_int(&s->a, "axis", 0, 1, 0, DF_MAX_DIMS - 1, &ax)) return -1;
    ATTRS_DONE(s);
    df_name_next(s->b->g, s->name);
    *out = df_concat(s->b->g, s->in, s->nin, (int)ax);
    return 0;
}
static int op_upsample(step *s, df_node **out) {
    int64_t f;
    if (need_inputs(s, 1, 1)) return -1;
    if (at_int(&s->a, "factor", 0, 2, 1, 64, &f)) return -1;
    ATTRS_DONE(s);
    df_name_next(s->b->g, s->name);
    *out = df_upsample(s->b->g, s->in[0], (int)f);
    return 0;
}
static int op_reshape(step *s, df_node **out) {
    int64_t d[DF_MAX_DIMS];
    int n;
    if (need_inputs(s, 1, 1) || at_ints(&s->a, "shape", 1, d, DF_MAX_DIMS, &n)) return -1;
    ATTRS_DONE(s);
    if (n < 1) return berr(s->b, s->at, "reshape: 'shape' is empty"), -1;
    df_name_next(s->b->g, s->name);
    *out = df_reshape(s->b->g, s->in[0], df_shape_make(n, d));
    return 0;
}
static int op_permute(step *s, df_node **out) {
    int64_t d[DF_MAX_DIMS];
    int n, perm[DF_MAX_DIMS];
    if (need_inputs(s, 1, 1) || at_ints(&s->a, "perm", 1, d, DF_MAX_DIMS, &n)) return -1;
    ATTRS_DONE(s);
    if (n != s->in[0]->shape.nd)
        return berr(s->b, s->at, "permute: 'perm' has %d axes, the input has %d", n,
                    s->in[0]->shape.nd),
               -1;
    for (int i = 0; i < n; i++) perm[i] = (int)d[i];
    df_name_next(s->b->g, s->name);
    *out = df_permute(s->b->g, s->in[0], perm);
    return 0;
}
static int op_slice(step *s, df_node **out) {
    int64_t ax, st, len;
    if (need_inputs(s, 1, 1)) return -1;
    if (at_int(&s->a, "axis", 1, 0, 0, DF_MAX_DIMS - 1, &ax) ||
        at_int(&s->a, "start", 1, 0, 0, INT32_MAX, &st) ||
        at_int(&s->a, "len", 1, 0, 1, INT32_MAX, &len))
        return -1;
    ATTRS_DONE(s);
    df_name_next(s->b->g, s->name);
    *out = df_slice(s->b->g, s->in[0], (int)ax, st, len);
    return 0;
}
static int op_pad(step *s, df_node **out) {
    int64_t ax, be, af;
    if (need_inputs(s, 1, 1)) return -1;
    if (at_int(&s->a, "axis", 1, 0, 0, DF_MAX_DIMS - 1, &ax) ||
        at_int(&s->a, "before", 0, 0, 0, INT32_MAX, &be) ||
        at_int(&s->a, "after", 0, 0, 0, INT32_MAX, &af))
        return -1;
    ATTRS_DONE(s);
    df_name_next(s->b->g, s->name);
    *out = df_pad(s->b->g, s->in[0], (int)ax, be, af);
    return 0;
}
static int op_matmul(step *s, df_node **out) {
    int ta, tb;
    if (need_inputs(s, 2, 2) || at_bool(&s->a, "ta", 0, &ta) || at_bool(&s->a, "tb", 0, &tb))
        return -1;
    ATTRS_DONE(s);
    df_name_next(s->b->g, s->name);
    *out = df_matmul(s->b->g, s->in[0], s->in[1], ta, tb);
    return 0;
}
static int op_reduce(step *s, df_node **out) {
    int64_t ax[DF_MAX_DIMS];
    int n;
    if (need_inputs(s, 1, 1) || at_ints(&s->a, "axes", 0, ax, DF_MAX_DIMS, &n)) return -1;
    ATTRS_DONE(s);
    unsigned mask = n ? 0 : ~0u;
    for (int i = 0; i < n; i++) {
        if (ax[i] < 0 || ax[i] >= s->in[0]->shape.nd)
            return berr(s->b, s->at, "%s: axis %lld out of range for %d dimensions", s->a.op,
                        (long long)ax[i], s->in[0]->shape.nd),
                   -1;
        mask |= 1u << ax[i];
    }
    df_name_next(s->b->g, s->name);
    *out = !strcmp(s->a.op, "sum") ? df_sum(s->b->g, s->in[0], mask)
                                   : df_mean(s->b->g, s->in[0], mask);
    return 0;
}

typedef int (*op_fn)(step *s, df_node **out);
static const struct {
    const char *name;
    op_fn fn;
} dsl_ops[] = {
    {"conv2d", op_conv2d},       {"linear", op_linear},        {"groupnorm", op_groupnorm},
    {"embedding", op_embedding}, {"fourier", op_fourier},      {"silu", op_unary},
    {"relu", op_unary},          {"softmax", op_unary},        {"copy", op_unary},
    {"add", op_binary},          {"sub", op_binary},           {"mul", op_binary},
    {"mse_loss", op_binary},     {"cross_entropy", op_binary}, {"scale", op_scale},
    {"concat", op_concat},       {"upsample", op_upsample},    {"reshape", op_reshape},
    {"permute", op_permute},     {"slice", op_slice},          {"pad", op_pad},
    {"matmul", op_matmul},       {"sum", op_reduce},           {"mean", op_reduce},
};
#define N_DSL_OPS ((int)(sizeof dsl_ops / sizeof dsl_ops[0]))

/* ---------------- running steps ---------------- */

static int run_steps(bctx *b, env *e, const yn *steps);

static const yn *find_block(bctx *b, const char *name) {
    for (int i = 0; i < b->f->nblocks; i++) {
        const yn *d = yn_get(b->f->blocks[i], name);
        if (d) return d;
    }
    return NULL;
}

static int unknown_step(bctx *b, const yn *at, const char *name) {
    const char *c[128];
    int n = 0;
    for (int i = 0; i < N_DSL_OPS; i++) c[n++] = dsl_ops[i].name;
    for (int i = 0; i < b->f->nblocks && n < 120; i++)
        for (int k = 0; k < b->f->blocks[i]->n && n < 120; k++)
            c[n++] = b->f->blocks[i]->keys[k]->s;
    static const char *ctl[] = {"for", "if", "scope", "use", "as", "set"};
    for (int i = 0; i < 6; i++) c[n++] = ctl[i];
    char sug[128];
    suggest(name, c, n, sug, sizeof sug);
    return berr(b, at, "unknown op or block '%s'%s", name, sug), -1;
}

/* inputs of a step from its 'in' attribute (default: the current value) */
static int resolve_inputs(bctx *b, env *e, const yn *innode, int two_default, df_node **in,
                          int *nin, const yn *at) {
    *nin = 0;
    if (!innode) {
        if (!e->cur) return berr(b, at, "no current value to use as input; set 'in:'"), -1;
        in[(*nin)++] = e->cur;
        return 0;
    }
    const yn *items[DF_MAX_IN];
    int n = 0;
    if (innode->kind == YN_SCALAR)
        items[n++] = innode;
    else if (innode->kind == YN_SEQ) {
        if (innode->n > DF_MAX_IN) return berr(b, innode, "at most %d inputs", DF_MAX_IN), -1;
        for (int i = 0; i < innode->n; i++) items[n++] = innode->items[i];
    } else
        return berr(b, innode, "'in' must be a value name or a list of names"), -1;
    if (two_default && n == 1) { /* 'in: emb' on a binary op: [_, emb] */
        if (!e->cur) return berr(b, at, "no current value for the first input"), -1;
        in[(*nin)++] = e->cur;
    }
    for (int i = 0; i < n; i++) {
        char name[160];
        if (interp(b, e, items[i], name, sizeof name)) return -1;
        df_node *v = env_getval(e, name);
        if (!v) {
            const char *c[256];
            int k = 0;
            for (int j = 0; j < e->nvals && k < 255; j++) c[k++] = e->vals[j].name;
            char sug[128];
            suggest(name, c, k, sug, sizeof sug);
            return berr(b, items[i], "undefined value '%s'%s", name, sug), -1;
        }
        in[(*nin)++] = v;
    }
    return 0;
}

static int graph_failed(bctx *b, const yn *at) {
    if (df_graph_status(b->g) == DF_OK) return 0;
    return berr(b, at, "%s", df_graph_errmsg(b->g)), -1;
}

static int bind_as(bctx *b, env *e, const yn *asnode) {
    if (!asnode) return 0;
    char name[160];
    if (interp(b, e, asnode, name, sizeof name)) return -1;
    if (!strcmp(name, "_"))
        return berr(b, asnode, "'_' is the current value; pick another name"), -1;
    return env_setval(e, name, e->cur);
}

static int call_block(bctx *b, env *e, const yn *at, const char *bname, const yn *def,
                      const yn *am);

static int run_op(bctx *b, env *e, const yn *at, const char *opname, const yn *am) {
    int k;
    for (k = 0; k < N_DSL_OPS; k++)
        if (!strcmp(dsl_ops[k].name, opname)) break;
    if (k == N_DSL_OPS) {
        const yn *def = find_block(b, opname);
        if (def) return call_block(b, e, at, opname, def, am);
        return unknown_step(b, at, opname);
    }
    if (am && am->kind != YN_MAP)
        return berr(b, am, "attributes of '%s' must be a map (key: value), found %s", opname,
                    am->kind == YN_SEQ ? "a list" : "a scalar"),
               -1;
    step s = {.b = b, .e = e, .at = at};
    s.a = (attrs){.b = b, .e = e, .map = am, .at = at, .op = opname};
    int binary = !strcmp(opname, "add") || !strcmp(opname, "sub") || !strcmp(opname, "mul") ||
                 !strcmp(opname, "mse_loss") || !strcmp(opname, "cross_entropy") ||
                 !strcmp(opname, "matmul");
    if (resolve_inputs(b, e, am ? yn_get(am, "in") : NULL, binary, s.in, &s.nin, at)) return -1;
    const yn *nm = am ? yn_get(am, "name") : NULL;
    if (nm) {
        if (interp(b, e, nm, s.name, sizeof s.name)) return -1;
    } else
        snprintf(s.name, sizeof s.name, "%s", opname);
    if (claim_name(b, nm ? nm : at, s.name, sizeof s.name, nm != NULL)) return -1;
    df_node *out = NULL;
    if (dsl_ops[k].fn(&s, &out)) return -1;
    if (graph_failed(b, at)) return -1;
    e->cur = out;
    return bind_as(b, e, am ? yn_get(am, "as") : NULL);
}

static int check_keys(bctx *b, const yn *m, const char *what, const char *const *ok, int n) {
    for (int i = 0; i < m->n; i++) {
        int good = 0;
        for (int j = 0; j < n; j++) good |= !strcmp(m->keys[i]->s, ok[j]);
        if (good) continue;
        char sug[128], list[300] = "";
        suggest(m->keys[i]->s, ok, n, sug, sizeof sug);
        for (int j = 0, l = 0; j < n; j++)
            l += snprintf(list + l, sizeof list - l, "%s%s", j ? ", " : "", ok[j]);
        return berr(b, m->keys[i], "%s: unknown key '%s'%s; expected: %s", what, m->keys[i]->s, sug,
                    list),
               -1;
    }
    return 0;
}

static int run_step(bctx *b, env *e, const yn *st) {
    if (++b->steps > MAX_STEPS)
        return berr(b, st, "more than %d steps: a loop too long?", MAX_STEPS), -1;
    if (st->kind == YN_SCALAR) return run_op(b, e, st, st->s, NULL);
    if (st->kind != YN_MAP || st->n == 0)
        return berr(b, st, "a step is an op name or a map like '{conv2d: {out: 32}}'"), -1;
    if (yn_get(st, "for")) {
        static const char *ok[] = {"for", "in", "do"};
        if (check_keys(b, st, "for", ok, 3)) return -1;
        const yn *var = yn_get(st, "for"), *over = yn_get(st, "in"), *body = yn_get(st, "do");
        if (!over || !body)
            return berr(b, st, "a 'for' step needs 'in:' (a list) and 'do:' (steps)"), -1;
        if (var->kind != YN_SCALAR || !isalpha((unsigned char)var->s[0]))
            return berr(b, var, "'for' takes a variable name"), -1;
        dval list;
        if (eval_node(b, e, over, &list)) return -1;
        if (list.kind == DV_INT) { /* 'in: 3' means range(3) */
            int64_t k = list.i;
            if (k < 0 || k > 100000)
                return berr(b, over, "loop count %lld out of range", (long long)k), -1;
            list.kind = DV_LIST;
            list.n = (int)k;
            list.items = calloc(k ? k : 1, sizeof *list.items);
            for (int i = 0; i < k; i++) list.items[i] = dval_int(i);
        }
        if (list.kind != DV_LIST) {
            dval_free(&list);
            return berr(b, over, "'in' must be a list or a count"), -1;
        }
        int r = 0;
        for (int i = 0; i < list.n && !r; i++) {
            env_setvar(e, var->s, dval_copy(&list.items[i]));
            r = run_steps(b, e, body);
        }
        dval_free(&list);
        return r;
    }
    if (yn_get(st, "if")) {
        static const char *ok[] = {"if", "then", "else"};
        if (check_keys(b, st, "if", ok, 3)) return -1;
        dval c;
        if (eval_node(b, e, yn_get(st, "if"), &c)) return -1;
        if (c.kind != DV_INT && c.kind != DV_FLOAT) {
            dval_free(&c);
            return berr(b, yn_get(st, "if"), "'if' needs a condition (a number), found %s",
                        dval_kind_name(c.kind)),
                   -1;
        }
        int t = c.kind == DV_INT ? c.i != 0 : c.f != 0;
        const yn *body = yn_get(st, t ? "then" : "else");
        if (!yn_get(st, "then")) return berr(b, st, "an 'if' step needs 'then:'"), -1;
        return body ? run_steps(b, e, body) : 0;
    }
    if (yn_get(st, "scope")) {
        static const char *ok[] = {"scope", "do"};
        if (check_keys(b, st, "scope", ok, 2)) return -1;
        char name[160];
        if (interp(b, e, yn_get(st, "scope"), name, sizeof name)) return -1;
        if (!yn_get(st, "do")) return berr(b, st, "a 'scope' step needs 'do:'"), -1;
        scope_push(b, name);
        int r = run_steps(b, e, yn_get(st, "do"));
        scope_pop(b);
        return r;
    }
    if (yn_get(st, "set")) { /* set variables: {name: value, ...} */
        static const char *ok[] = {"set"};
        if (check_keys(b, st, "set", ok, 1)) return -1;
        const yn *m = yn_get(st, "set");
        if (m->kind != YN_MAP) return berr(b, m, "'set' maps variable names to values"), -1;
        for (int i = 0; i < m->n; i++) {
            const char *k = m->keys[i]->s;
            if (!isalpha((unsigned char)k[0]) || !strcmp(k, "B"))
                return berr(b, m->keys[i], "bad variable name '%s'", k), -1;
            dval v;
            if (eval_node(b, e, m->items[i], &v)) return -1;
            env_setvar(e, k, v);
        }
        return 0;
    }
    if (yn_get(st, "use")) {
        static const char *ok[] = {"use", "as"};
        if (check_keys(b, st, "use", ok, 2)) return -1;
        df_node *in[DF_MAX_IN];
        int n;
        if (resolve_inputs(b, e, yn_get(st, "use"), 0, in, &n, st)) return -1;
        if (n != 1) return berr(b, st, "'use' takes one value name"), -1;
        e->cur = in[0];
        return bind_as(b, e, yn_get(st, "as"));
    }
    if (st->n == 1 && !strcmp(st->keys[0]->s, "as")) {
        if (!e->cur) return berr(b, st, "nothing to name yet"), -1;
        return bind_as(b, e, st->items[0]);
    }
    if (st->n != 1)
        return berr(b, st,
                    "a step has one key (the op or block) with its attributes below it; "
                    "found %d keys (indentation?)",
                    st->n),
               -1;
    return run_op(b, e, st->keys[0], st->keys[0]->s, st->items[0]);
}

static int run_steps(bctx *b, env *e, const yn *steps) {
    if (!steps) return 0;
    if (steps->kind != YN_SEQ) return berr(b, steps, "expected a list of steps ('- op: ...')"), -1;
    for (int i = 0; i < steps->n; i++)
        if (run_step(b, e, steps->items[i])) return -1;
    return 0;
}

static int call_block(bctx *b, env *e, const yn *at, const char *bname, const yn *def,
                      const yn *am) {
    static const char *ok[] = {"args", "inputs", "body", "output"};
    if (def->kind != YN_MAP)
        return berr(b, def, "block '%s' must be a map with args, inputs, body", bname), -1;
    if (check_keys(b, def, "block definition", ok, 4)) return -1;
    for (int i = 0; i < b->ncall; i++)
        if (!strcmp(b->calls[i], bname)) {
            char chain[600] = "";
            for (int j = i, l = 0; j < b->ncall; j++)
                l += snprintf(chain + l, sizeof chain - l, "%s -> ", b->calls[j]);
            return berr(b, at, "recursion between blocks: %s%s", chain, bname), -1;
        }
    if (b->ncall >= MAX_CALL_DEPTH)
        return berr(b, at, "blocks nested deeper than %d", MAX_CALL_DEPTH), -1;
    if (am && am->kind != YN_MAP)
        return berr(b, am, "arguments of block '%s' must be a map", bname), -1;
    const yn *args = yn_get(def, "args"), *inputs = yn_get(def, "inputs"),
             *body = yn_get(def, "body");
    if (!body) return berr(b, def, "block '%s' has no 'body'", bname), -1;
    if (args && args->kind != YN_MAP)
        return berr(b, args, "'args' must map names to defaults (null: required)"), -1;
    if (inputs && inputs->kind != YN_SEQ)
        return berr(b, inputs, "'inputs' must be a list of names"), -1;
    /* arguments */
    env ne = {.vparent = b->genv};
    int r = -1;
    for (int i = 0; am && i < am->n; i++) {
        const char *k = am->keys[i]->s;
        if (!strcmp(k, "in") || !strcmp(k, "as") || !strcmp(k, "name")) continue;
        if (!args || !yn_get(args, k)) {
            const char *c[64];
            int n = 0;
            for (int j = 0; args && j < args->n && n < 64; j++) c[n++] = args->keys[j]->s;
            char sug[128];
            suggest(k, c, n, sug, sizeof sug);
            berr(b, am->keys[i], "block '%s' has no argument '%s'%s", bname, k, sug);
            goto out;
        }
    }
    for (int i = 0; args && i < args->n; i++) {
        const char *k = args->keys[i]->s;
        const yn *given = am ? yn_get(am, k) : NULL;
        dval v;
        if (given) {
            if (eval_node(b, e, given, &v)) goto out;
        } else if (args->items[i]->kind == YN_SCALAR &&
                   (!strcmp(args->items[i]->s, "null") || !strcmp(args->items[i]->s, "~") ||
                    !args->items[i]->s[0]) &&
                   args->items[i]->plain) {
            berr(b, at, "block '%s' needs argument '%s'", bname, k);
            goto out;
        } else {
            b->e = &ne; /* defaults may use earlier arguments */
            if (eval_node(b, &ne, args->items[i], &v)) goto out;
        }
        env_setvar(&ne, k, v);
    }
    /* inputs */
    df_node *in[DF_MAX_IN];
    int nin = 0;
    const yn *inn = am ? yn_get(am, "in") : NULL;
    if (inn) {
        if (resolve_inputs(b, e, inn, 0, in, &nin, at)) goto out;
    }
    int want = inputs ? inputs->n : 1;
    if (want > DF_MAX_IN) {
        berr(b, inputs, "at most %d inputs", DF_MAX_IN);
        goto out;
    }
    if (nin > want) {
        berr(b, inn, "block '%s' takes %d input%s, %d given", bname, want, want > 1 ? "s" : "",
             nin);
        goto out;
    }
    for (int i = nin; i < want; i++) { /* defaults: the current value, then same-named values */
        const char *nm = inputs ? inputs->items[i]->s : "x";
        df_node *v = i == 0 ? e->cur : env_getval(e, nm);
        if (!v) {
            berr(b, at, "block '%s' needs input '%s': pass it with 'in:' or name a value '%s'",
                 bname, nm, nm);
            goto out;
        }
        in[i] = v;
    }
    for (int i = 0; i < want; i++) env_setval(&ne, inputs ? inputs->items[i]->s : "x", in[i]);
    ne.cur = in[0];
    /* scope */
    char name[160];
    const yn *nm = am ? yn_get(am, "name") : NULL;
    if (nm) {
        if (interp(b, e, nm, name, sizeof name)) goto out;
    } else
        snprintf(name, sizeof name, "%s", bname);
    if (claim_name(b, nm ? nm : at, name, sizeof name, nm != NULL)) goto out;
    b->calls[b->ncall++] = bname;
    scope_push(b, name);
    r = run_steps(b, &ne, body);
    scope_pop(b);
    b->ncall--;
    if (r) goto out;
    const yn *o = yn_get(def, "output");
    df_node *res = ne.cur;
    if (o) {
        char on[160];
        r = -1;
        if (interp(b, &ne, o, on, sizeof on)) goto out;
        res = env_getval(&ne, on);
        if (!res) {
            berr(b, o, "block '%s': output '%s' is not a value of the block", bname, on);
            goto out;
        }
        r = 0;
    }
    e->cur = res;
    r = bind_as(b, e, am ? yn_get(am, "as") : NULL);
out:
    b->e = e;
    env_free(&ne);
    return r;
}

/* ---------------- sections ---------------- */

/* A settings section: every key must be in the config table; values are
 * DSL values (expressions and variables allowed), typed into f->cfg. */
static int load_section(bctx *b, const yn *sec, const char *name, df_config *cfg) {
    if (sec->kind != YN_MAP)
        return berr(b, sec, "section '%s' must be a map of settings", name), -1;
    int nk, m = 0;
    const df_config_key *all = df_config_keys(&nk);
    const char *keys[64];
    size_t l = strlen(name);
    for (int i = 0; i < nk; i++)
        if (!strncmp(all[i].key, name, l) && all[i].key[l] == '.') keys[m++] = all[i].key + l + 1;
    if (check_keys(b, sec, name, keys, m)) return -1;
    for (int i = 0; i < sec->n; i++) {
        char full[96], err[400];
        snprintf(full, sizeof full, "%s.%s", name, sec->keys[i]->s);
        const df_config_key *k = df_config_find(full);
        dval d;
        if (eval_node(b, b->genv, sec->items[i], &d)) return -1;
        int r = df_config_set_dval(cfg, k, &d, err, sizeof err);
        dval_free(&d);
        if (r) return berr(b, sec->items[i], "%s", err), -1;
        cfg->set |= 1ull << (k - all);
    }
    return 0;
}

/* the file position of a config key, for errors found when resolving */
static const yn *key_node(const yn *root, const char *msg) {
    const char *secs[] = {"data", "diffusion", "sampler", "train"};
    for (int i = 0; i < 4; i++) {
        const yn *sec = yn_get(root, secs[i]);
        for (int j = 0; sec && sec->kind == YN_MAP && j < sec->n; j++) {
            char full[96];
            snprintf(full, sizeof full, "%s.%s ", secs[i], sec->keys[j]->s);
            if (!strncmp(msg, full, strlen(full))) return sec->keys[j];
        }
    }
    return NULL;
}

/* ---------------- loading ---------------- */

static int load_vars(bctx *b, const yn *vars) {
    if (!vars) return 0;
    if (vars->kind != YN_MAP) return berr(b, vars, "'vars' must map names to values"), -1;
    for (int i = 0; i < vars->n; i++) {
        const char *k = vars->keys[i]->s;
        if (!isalpha((unsigned char)k[0]) && k[0] != '_')
            return berr(b, vars->keys[i], "bad variable name '%s'", k), -1;
        for (const char *p = k; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '_')
                return berr(b, vars->keys[i], "bad variable name '%s'", k), -1;
        if (!strcmp(k, "B"))
            return berr(b, vars->keys[i], "'B' is the batch size; pick another name"), -1;
        dval v;
        if (eval_node(b, b->genv, vars->items[i], &v)) return -1;
        env_setvar(b->genv, k, v);
    }
    return 0;
}

static const char *top_keys[] = {"include", "vars",      "blocks",  "model",
                                 "data",    "diffusion", "sampler", "train"};

void df_gfile_free(df_gfile *f) {
    if (!f) return;
    ydoc_free(f->doc);
    for (int i = 0; i < f->ninc; i++) ydoc_free(f->inc[i]);
    free(f->path);
    free(f);
}

const char *df_gfile_path(const df_gfile *f) {
    return f ? f->path : NULL;
}

const df_config *df_gfile_config(const df_gfile *f) {
    return f ? &f->cfg : NULL;
}

static int add_include(df_gfile *f, bctx *b, const yn *inc, const char *base, int depth) {
    if (!inc) return 0;
    const yn *items[MAX_INCLUDES];
    int n = 0;
    if (inc->kind == YN_SCALAR)
        items[n++] = inc;
    else if (inc->kind == YN_SEQ && inc->n <= MAX_INCLUDES)
        for (int i = 0; i < inc->n; i++) items[n++] = inc->items[i];
    else
        return berr(b, inc, "'include' must be a file name or a list of at most %d", MAX_INCLUDES),
               -1;
    for (int i = 0; i < n; i++) {
        if (items[i]->kind != YN_SCALAR) return berr(b, items[i], "an include is a file name"), -1;
        if (f->ninc >= MAX_INCLUDES || depth > 4)
            return berr(b, items[i], "too many or too deeply nested includes (a cycle?)"), -1;
        char path[2200], dir[1024];
        snprintf(dir, sizeof dir, "%.1000s", base);
        char *slash = strrchr(dir, '/');
        if (items[i]->s[0] == '/' || !slash)
            snprintf(path, sizeof path, "%.1000s", items[i]->s);
        else {
            *slash = 0;
            snprintf(path, sizeof path, "%s/%.1000s", dir, items[i]->s);
        }
        ydoc *d = ydoc_load_file(path);
        if (!d) {
            char m[900];
            snprintf(m, sizeof m, "%s", df_errmsg());
            return berr(b, items[i], "cannot include '%s': %s", items[i]->s, m), -1;
        }
        f->inc[f->ninc++] = d;
        const yn *r = ydoc_root(d);
        if (!r) continue;
        if (r->kind != YN_MAP)
            return berr(b, r, "an included file must be a map with 'blocks'"), -1;
        static const char *ok[] = {"blocks", "include"};
        if (check_keys(b, r, "included file", ok, 2)) return -1;
        const yn *bl = yn_get(r, "blocks");
        if (bl) {
            if (bl->kind != YN_MAP)
                return berr(b, bl, "'blocks' must map names to block definitions"), -1;
            f->blocks[f->nblocks++] = bl;
        }
        if (add_include(f, b, yn_get(r, "include"), path, depth + 1)) return -1;
    }
    return 0;
}

static df_gfile *load_doc(ydoc *doc, const char *path, const char *const *sets, int nsets) {
    df_gfile *f = calloc(1, sizeof *f);
    if (!f) {
        ydoc_free(doc);
        return NULL;
    }
    f->path = strdup(path ? path : "");
    f->doc = doc;
    if (!f->doc) goto fail;
    for (int i = 0; i < nsets; i++) {
        const char *eq = sets[i] ? strchr(sets[i], '=') : NULL;
        if (!eq || eq == sets[i]) {
            df_seterr(DF_EINVAL,
                      "--set '%s': expected path=value, for example vars.ch=[64,128,256]",
                      sets[i] ? sets[i] : "");
            goto fail;
        }
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
        const char *top = key;
        int known = 0;
        for (int k = 0; k < 8; k++)
            known |= !strncmp(top, top_keys[k], strlen(top_keys[k])) &&
                     (top[strlen(top_keys[k])] == '.' || !top[strlen(top_keys[k])]);
        if (!known) {
            char sug[128];
            char first[64];
            snprintf(first, sizeof first, "%.*s", (int)strcspn(key, "."), key);
            suggest(first, top_keys, 8, sug, sizeof sug);
            df_seterr(DF_EINVAL, "--set '%s': unknown section '%s'%s", sets[i], first, sug);
            goto fail;
        }
        if (ydoc_set_path_text(f->doc, key, eq + 1)) goto fail;
    }
    const yn *root = ydoc_root(f->doc);
    bctx b = {.f = f};
    env genv = {0};
    b.genv = &genv;
    b.e = &genv;
    if (!root) {
        df_seterr(DF_EINVAL, "%s: the file is empty (expected a map with 'model:')", path);
        goto fail;
    }
    if (root->kind != YN_MAP) {
        berr(&b, root, "a graph file is a map with sections (model, vars, blocks, ...), found %s",
             root->kind == YN_SEQ ? "a list" : "a scalar");
        goto fail;
    }
    if (check_keys(&b, root, "graph file", top_keys, 8)) goto fail_env;
    const yn *bl = yn_get(root, "blocks");
    if (bl) {
        if (bl->kind != YN_MAP) {
            berr(&b, bl, "'blocks' must map names to block definitions");
            goto fail_env;
        }
        f->blocks[f->nblocks++] = bl;
    }
    if (add_include(f, &b, yn_get(root, "include"), path, 0)) goto fail_env;
    f->vars = yn_get(root, "vars");
    f->model = yn_get(root, "model");
    if (!f->model) {
        berr(&b, root, "no 'model:' section");
        goto fail_env;
    }
    if (load_vars(&b, f->vars)) goto fail_env;
    const char *secs[] = {"data", "diffusion", "sampler", "train"};
    df_config_defaults(&f->cfg);
    for (int i = 0; i < 4; i++) {
        const yn *s = yn_get(root, secs[i]);
        if (s && load_section(&b, s, secs[i], &f->cfg)) goto fail_env;
    }
    if (df_config_resolve(&f->cfg)) {
        char m[900];
        snprintf(m, sizeof m, "%s", df_errmsg());
        const yn *at = key_node(root, m);
        if (at)
            berr(&b, at, "%s", m);
        else
            df_seterr(DF_EINVAL, "%s: %s", path, m);
        goto fail_env;
    }
    env_free(&genv);
    return f;
fail_env:
    env_free(&genv);
fail:
    df_gfile_free(f);
    return NULL;
}

df_gfile *df_gfile_load(const char *path, const char *const *sets, int nsets) {
    return load_doc(ydoc_load_file(path), path, sets, nsets);
}

df_gfile *df_gfile_load_text(const char *text, const char *name, const char *const *sets,
                             int nsets) {
    if (!text) return df_seterr(DF_EINVAL, "df_gfile_load_text: no text"), NULL;
    return load_doc(ydoc_load_string(text, strlen(text), name), name, sets, nsets);
}

char *df_gfile_resolved(const df_gfile *f, const df_config *cfg) {
    if (!f) return NULL;
    if (!cfg) cfg = &f->cfg;
    yemit *e = yemit_new();
    if (!e) return df_seterr(DF_ENOMEM, "out of memory"), NULL;
    if (f->vars) {
        yemit_scalar(e, "vars", 1);
        yemit_node(e, f->vars);
    }
    if (f->nblocks) { /* the main file's blocks and its includes', first definition wins */
        yemit_scalar(e, "blocks", 1);
        yemit_map_begin(e);
        for (int i = 0; i < f->nblocks; i++)
            for (int k = 0; k < f->blocks[i]->n; k++) {
                const char *name = f->blocks[i]->keys[k]->s;
                int seen = 0;
                for (int j = 0; j < i && !seen; j++) seen = yn_get(f->blocks[j], name) != NULL;
                if (seen) continue;
                yemit_scalar(e, name, 1);
                yemit_node(e, f->blocks[i]->items[k]);
            }
        yemit_map_end(e);
    }
    yemit_scalar(e, "model", 1);
    yemit_node(e, f->model);
    char *graph = yemit_finish(e);
    char *cfgt = df_config_yaml(cfg, DF_YAML_DOCS);
    size_t n = (graph ? strlen(graph) : 0) + (cfgt ? strlen(cfgt) : 0) + strlen(f->path) + 300;
    char *out = graph && cfgt ? malloc(n) : NULL;
    if (out)
        snprintf(out, n,
                 "# The resolved graph of %s: includes inlined, --set overrides applied, every\n"
                 "# setting with its value. Load it with dfrun (it is a graph file).\n%s\n%s",
                 f->path, graph, cfgt);
    else
        df_seterr(DF_ENOMEM, "out of memory");
    free(graph);
    free(cfgt);
    return out;
}

/* ---------------- building the model ---------------- */

df_status df_gfile_build(df_gfile *f, df_graph *g, int64_t batch, df_model_io *io) {
    if (!f || !g || !io || batch < 1) return df_seterr(DF_EINVAL, "df_gfile_build: bad arguments");
    memset(io, 0, sizeof *io);
    env genv = {0}, me = {0};
    bctx b = {.f = f, .g = g, .batch = batch, .genv = &genv, .e = &genv};
    g_scope[0] = 0;
    g_nscope = 0;
    int r = -1;
    if (load_vars(&b, f->vars)) goto out;
    const yn *m = f->model;
    if (m->kind != YN_MAP) {
        berr(&b, m, "'model' must be a map with 'inputs' and 'body'");
        goto out;
    }
    static const char *ok[] = {"inputs", "body", "output"};
    if (check_keys(&b, m, "model", ok, 3)) goto out;
    const yn *ins = yn_get(m, "inputs"), *body = yn_get(m, "body"), *outn = yn_get(m, "output");
    if (!ins || ins->kind != YN_MAP || ins->n < 1) {
        berr(&b, ins ? ins : m,
             "model needs 'inputs:' mapping names to shapes, e.g. x: [B, 1, 28, 28]");
        goto out;
    }
    if (ins->n > DF_MAX_IO) {
        berr(&b, ins, "at most %d inputs", DF_MAX_IO);
        goto out;
    }
    me.vparent = &genv;
    for (int i = 0; i < ins->n; i++) {
        const yn *spec = ins->items[i], *shp = spec;
        df_dtype dt = DF_F32;
        if (spec->kind == YN_MAP) {
            static const char *iok[] = {"shape", "dtype"};
            if (check_keys(&b, spec, "input", iok, 2)) goto out;
            shp = yn_get(spec, "shape");
            const yn *d = yn_get(spec, "dtype");
            if (d) {
                if (d->kind != YN_SCALAR || (strcmp(d->s, "float32") && strcmp(d->s, "int32"))) {
                    berr(&b, d, "dtype must be float32 or int32");
                    goto out;
                }
                dt = strcmp(d->s, "int32") ? DF_F32 : DF_I32;
            }
            if (!shp) {
                berr(&b, spec, "input '%s' needs a 'shape'", ins->keys[i]->s);
                goto out;
            }
        }
        dval v = {0};
        if (shp->kind == YN_SEQ) { /* items are expressions even without '$': [B, 1, 28, 28] */
            v.kind = DV_LIST;
            v.n = shp->n;
            v.items = calloc(shp->n ? shp->n : 1, sizeof *v.items);
            for (int k = 0; k < shp->n; k++) {
                const yn *it = shp->items[k];
                yn tmp;
                char buf[300];
                if (it->kind == YN_SCALAR && it->s[0] != '$') {
                    tmp = *it;
                    snprintf(buf, sizeof buf, "$%.290s", it->s);
                    tmp.s = buf;
                    it = &tmp;
                }
                if (eval_node(&b, &me, it, &v.items[k])) {
                    dval_free(&v);
                    goto out;
                }
            }
        } else if (eval_node(&b, &me, shp, &v))
            goto out;
        int ok2 = v.kind == DV_LIST && v.n >= 1 && v.n <= DF_MAX_DIMS;
        int64_t d[DF_MAX_DIMS];
        for (int k = 0; ok2 && k < v.n; k++) {
            ok2 = v.items[k].kind == DV_INT && v.items[k].i >= 1 && v.items[k].i <= (1ll << 31);
            if (ok2) d[k] = v.items[k].i;
        }
        int nd = v.n;
        dval_free(&v);
        if (!ok2) {
            berr(&b, shp,
                 "input '%s': shape must be a list of 1 to %d positive integers (B = batch)",
                 ins->keys[i]->s, DF_MAX_DIMS);
            goto out;
        }
        df_node *x = df_input(g, ins->keys[i]->s, dt, df_shape_make(nd, d));
        if (graph_failed(&b, ins->keys[i])) goto out;
        env_setval(&me, ins->keys[i]->s, x);
        io->in_name[io->n_in] = ins->keys[i]->s;
        io->in[io->n_in++] = x;
        if (i == 0) me.cur = x;
    }
    if (!body) {
        berr(&b, m, "model has no 'body'");
        goto out;
    }
    if (run_steps(&b, &me, body)) goto out;
    if (outn) {
        const yn *items[DF_MAX_IO];
        int n = 0;
        if (outn->kind == YN_SCALAR)
            items[n++] = outn;
        else if (outn->kind == YN_SEQ && outn->n <= DF_MAX_IO)
            for (int i = 0; i < outn->n; i++) items[n++] = outn->items[i];
        else {
            berr(&b, outn, "'output' is a value name or a list of names");
            goto out;
        }
        for (int i = 0; i < n; i++) {
            df_node *v = items[i]->kind == YN_SCALAR ? env_getval(&me, items[i]->s) : NULL;
            if (!v) {
                berr(&b, items[i], "output: undefined value '%s'",
                     items[i]->kind == YN_SCALAR ? items[i]->s : "?");
                goto out;
            }
            io->out_name[io->n_out] = items[i]->s;
            io->out[io->n_out++] = v;
        }
    } else {
        io->out_name[0] = "out";
        io->out[0] = me.cur;
        io->n_out = 1;
    }
    r = 0;
out:
    sm_free(&b.used);
    env_free(&me);
    env_free(&genv);
    while (g_nscope) scope_pop(&b);
    return r ? DF_EINVAL : DF_OK;
}
