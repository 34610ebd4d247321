/* YAML to a positioned tree (see ydoc.h). */
#include "yaml.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

struct ydoc {
    yn *root;
    char *file;
    yn **all; /* every node, for freeing */
    int nall, capall;
};

static yn *new_node(ydoc *d, yn_kind k, int line, int col) {
    if (d->nall == d->capall) {
        int cap = d->capall ? 2 * d->capall : 256;
        yn **a = realloc(d->all, cap * sizeof *a);
        if (!a) return NULL;
        d->all = a;
        d->capall = cap;
    }
    yn *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = k;
    n->file = d->file;
    n->line = line;
    n->col = col;
    d->all[d->nall++] = n;
    return n;
}

void ydoc_free(ydoc *d) {
    if (!d) return;
    for (int i = 0; i < d->nall; i++) {
        free(d->all[i]->s);
        free(d->all[i]->items);
        free(d->all[i]->keys);
        free(d->all[i]);
    }
    free(d->all);
    free(d->file);
    free(d);
}

yn *ydoc_root(ydoc *d) {
    return d ? d->root : NULL;
}

/* ---------------- loading: libyaml events into the tree ----------------
 * Limits are checked as events arrive, so a hostile document is rejected
 * after at most YDOC_MAX_DEPTH levels or YDOC_MAX_NODES nodes of work.
 * An alias shares the anchored subtree (no copy); its size counts again
 * towards YDOC_MAX_NODES, which bounds every walk of the tree. */

#define MAX_ANCHORS 10000

typedef struct {
    ydoc *d;
    yn *stack[YDOC_MAX_DEPTH + 2];
    int cap[YDOC_MAX_DEPTH + 2]; /* allocated items (keys) of each open node */
    yn *key[YDOC_MAX_DEPTH + 2]; /* a map's key waiting for its value */
    int depth;
    int64_t count; /* nodes, aliases expanded */
    struct {
        char *name;
        yn *node;
    } anchors[MAX_ANCHORS];
    int nanchors;
    int64_t aliases;
    char err[600];
} build_ctx;

static int bfail(build_ctx *c, const yaml_mark_t *m, const char *fmt, const char *arg) {
    if (!c->err[0]) {
        char what[300];
        snprintf(what, sizeof what, fmt, arg ? arg : "");
        snprintf(c->err, sizeof c->err, "%s:%d:%d: %s", c->d->file, (int)m->line + 1,
                 (int)m->column + 1, what);
    }
    return -1;
}

static int key_cmp(const void *a, const void *b) {
    int r = strcmp((*(yn *const *)a)->s, (*(yn *const *)b)->s);
    if (r) return r;
    return (*(yn *const *)a)->line - (*(yn *const *)b)->line;
}

/* duplicate keys of a finished map, found by sorting (n log n) */
static int check_dups(build_ctx *c, yn *m) {
    if (m->n < 2) return 0;
    yn **k = malloc(m->n * sizeof *k);
    if (!k) return snprintf(c->err, sizeof c->err, "out of memory"), -1;
    memcpy(k, m->keys, m->n * sizeof *k);
    qsort(k, m->n, sizeof *k, key_cmp);
    int r = 0;
    for (int i = 1; i < m->n && !r; i++)
        if (!strcmp(k[i]->s, k[i - 1]->s)) {
            snprintf(c->err, sizeof c->err, "%s:%d:%d: duplicate key '%.200s' (first at line %d)",
                     c->d->file, k[i]->line, k[i]->col, k[i]->s, k[i - 1]->line);
            r = -1;
        }
    free(k);
    return r;
}

static int grow(yn ***a, int *cap, int n) {
    if (n < *cap) return 0;
    int c = *cap ? 2 * *cap : 4;
    yn **b = realloc(*a, c * sizeof *b);
    if (!b) return -1;
    *a = b;
    *cap = c;
    return 0;
}

/* put a finished (or shared) node into the open parent, or make it the root */
static int attach(build_ctx *c, yn *n, const yaml_mark_t *m) {
    if (!c->depth) {
        c->d->root = n;
        return 0;
    }
    int i = c->depth - 1;
    yn *p = c->stack[i];
    if (p->kind == YN_SEQ) {
        if (grow(&p->items, &c->cap[i], p->n)) return bfail(c, m, "out of memory", NULL);
        p->items[p->n++] = n;
        p->size += n->size;
        return 0;
    }
    if (!c->key[i]) { /* a map key */
        if (n->kind != YN_SCALAR) return bfail(c, m, "a map key must be a plain name", NULL);
        c->key[i] = n;
        return 0;
    }
    int cap = c->cap[i];
    if (grow(&p->items, &cap, p->n) || grow(&p->keys, &c->cap[i], p->n))
        return bfail(c, m, "out of memory", NULL);
    p->keys[p->n] = c->key[i];
    p->items[p->n++] = n;
    p->size += n->size + 1;
    c->key[i] = NULL;
    return 0;
}

static int anchor(build_ctx *c, const yaml_char_t *name, yn *n, const yaml_mark_t *m) {
    if (!name) return 0;
    if (c->nanchors == MAX_ANCHORS) return bfail(c, m, "more than %s anchors ('&name')", "10000");
    c->anchors[c->nanchors].name = strdup((const char *)name);
    c->anchors[c->nanchors++].node = n;
    return 0;
}

static int count(build_ctx *c, int64_t k, const yaml_mark_t *m) {
    c->count += k;
    if (c->count > YDOC_MAX_NODES)
        return bfail(c, m, "more than 1000000 nodes%s",
                     c->aliases ? " (aliases counted as expanded)" : "");
    return 0;
}

static int on_event(build_ctx *c, yaml_event_t *e) {
    const yaml_mark_t *m = &e->start_mark;
    int line = (int)m->line + 1, col = (int)m->column + 1;
    yn *n;
    switch (e->type) {
    case YAML_SCALAR_EVENT:
        if (count(c, 1, m) || !(n = new_node(c->d, YN_SCALAR, line, col)))
            return c->err[0] ? -1 : bfail(c, m, "out of memory", NULL);
        n->s = strndup((const char *)e->data.scalar.value, e->data.scalar.length);
        if (!n->s) return bfail(c, m, "out of memory", NULL);
        if (strlen(n->s) != e->data.scalar.length)
            return bfail(c, m, "a NUL byte inside a scalar", NULL);
        n->plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        n->size = 1;
        return anchor(c, e->data.scalar.anchor, n, m) ? -1 : attach(c, n, m);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        if (c->depth >= YDOC_MAX_DEPTH) return bfail(c, m, "nesting deeper than %s levels", "64");
        int seq = e->type == YAML_SEQUENCE_START_EVENT;
        if (count(c, 1, m) || !(n = new_node(c->d, seq ? YN_SEQ : YN_MAP, line, col)))
            return c->err[0] ? -1 : bfail(c, m, "out of memory", NULL);
        n->size = 1;
        const yaml_char_t *a = seq ? e->data.sequence_start.anchor : e->data.mapping_start.anchor;
        if (anchor(c, a, n, m) || attach(c, n, m)) return -1;
        c->stack[c->depth] = n;
        c->cap[c->depth] = 0;
        c->key[c->depth++] = NULL;
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        yn *done = c->stack[--c->depth];
        if (c->depth > 0) c->stack[c->depth - 1]->size += done->size - 1;
        return done->kind == YN_MAP ? check_dups(c, done) : 0;
    }
    case YAML_ALIAS_EVENT:
        c->aliases++;
        for (int i = c->nanchors - 1; i >= 0; i--)
            if (!strcmp(c->anchors[i].name, (const char *)e->data.alias.anchor)) {
                n = c->anchors[i].node;
                for (int k = 0; k < c->depth; k++)
                    if (c->stack[k] == n)
                        return bfail(c, m, "alias '*%s' inside its own anchor",
                                     (const char *)e->data.alias.anchor);
                return count(c, n->size, m) ? -1 : attach(c, n, m);
            }
        return bfail(c, m, "unknown alias '*%s'", (const char *)e->data.alias.anchor);
    default:
        return 0;
    }
}

ydoc *ydoc_load_string(const char *text, size_t len, const char *name) {
    if (!text || !name) {
        df_seterr(DF_EINVAL, "ydoc_load_string: NULL argument");
        return NULL;
    }
    if (len > YDOC_MAX_BYTES) {
        df_seterr(DF_EINVAL, "%s: %zu bytes is larger than the %u-byte limit for a graph file",
                  name, len, YDOC_MAX_BYTES);
        return NULL;
    }
    ydoc *d = calloc(1, sizeof *d);
    build_ctx *c = calloc(1, sizeof *c);
    yaml_parser_t p;
    if (!d || !c || !(d->file = strdup(name)) || !yaml_parser_initialize(&p)) {
        if (d) ydoc_free(d);
        free(c);
        df_seterr(DF_ENOMEM, "out of memory");
        return NULL;
    }
    c->d = d;
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int docs = 0, done = 0;
    while (!done && !c->err[0]) {
        yaml_event_t e;
        if (!yaml_parser_parse(&p, &e)) {
            snprintf(c->err, sizeof c->err, "%s:%d:%d: YAML syntax error: %s%s%s", name,
                     (int)p.problem_mark.line + 1, (int)p.problem_mark.column + 1,
                     p.problem ? p.problem : "unknown problem", p.context ? " " : "",
                     p.context ? p.context : "");
            break;
        }
        if (e.type == YAML_DOCUMENT_START_EVENT && ++docs > 1)
            snprintf(c->err, sizeof c->err,
                     "%s:%d:%d: more than one YAML document ('---'); a graph file holds one", name,
                     (int)e.start_mark.line + 1, (int)e.start_mark.column + 1);
        else
            on_event(c, &e);
        done = e.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&e);
    }
    yaml_parser_delete(&p);
    for (int i = 0; i < c->nanchors; i++) free(c->anchors[i].name);
    int failed = c->err[0] != 0;
    if (failed) {
        df_seterr(DF_EINVAL, "%s", c->err);
        ydoc_free(d);
        d = NULL;
    }
    free(c);
    return d;
}

ydoc *ydoc_load_file(const char *path) {
    if (!path) {
        df_seterr(DF_EINVAL, "no file given");
        return NULL;
    }
    struct stat sb; /* a FIFO or device would block or never end */
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        df_seterr(DF_EIO, "%s: not a regular file (a directory, FIFO or device)", path);
        return NULL;
    }
    if (stat(path, &sb) == 0 && sb.st_size > (off_t)YDOC_MAX_BYTES) {
        df_seterr(DF_EINVAL, "%s: %lld bytes is larger than the %u-byte limit for a graph file",
                  path, (long long)sb.st_size, YDOC_MAX_BYTES);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        df_seterr(DF_EIO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap > YDOC_MAX_BYTES) break;
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf || err) {
        free(buf);
        df_seterr(DF_EIO, "%s: cannot read the file", path);
        return NULL;
    }
    if (memchr(buf, 0, n)) {
        free(buf);
        df_seterr(DF_EINVAL, "%s: binary data (a NUL byte): not a YAML graph file", path);
        return NULL;
    }
    ydoc *d = ydoc_load_string(buf, n, path);
    free(buf);
    return d;
}

yn *yn_get(const yn *map, const char *key) {
    if (!map || map->kind != YN_MAP) return NULL;
    for (int i = 0; i < map->n; i++)
        if (!strcmp(map->keys[i]->s, key)) return map->items[i];
    return NULL;
}

yn *ydoc_new_scalar(ydoc *d, const char *text, const char *file, int line, int col) {
    yn *n = new_node(d, YN_SCALAR, line, col);
    if (!n) return NULL;
    n->s = strdup(text);
    n->plain = 1;
    if (file) n->file = file;
    return n;
}

int ydoc_set_path(ydoc *d, const char *path, yn *value) {
    if (!d || !path || !value) return -1;
    if (!d->root) {
        d->root = new_node(d, YN_MAP, 1, 1);
        if (!d->root) return -1;
    }
    yn *cur = d->root;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL, *tok = strtok_r(buf, ".", &save);
    while (tok) {
        char *next = strtok_r(NULL, ".", &save);
        if (cur->kind != YN_MAP) {
            df_seterr(DF_EINVAL, "--set %s: '%s' is inside a value that is not a map", path, tok);
            return -1;
        }
        int i;
        for (i = 0; i < cur->n; i++)
            if (!strcmp(cur->keys[i]->s, tok)) break;
        if (i == cur->n) { /* new key */
            yn **it = realloc(cur->items, (cur->n + 1) * sizeof *it);
            if (!it) return -1;
            cur->items = it;
            yn **ks = realloc(cur->keys, (cur->n + 1) * sizeof *ks);
            if (!ks) return -1;
            cur->keys = ks;
            cur->keys[i] = ydoc_new_scalar(d, tok, value->file, value->line, value->col);
            cur->items[i] = next ? new_node(d, YN_MAP, value->line, value->col) : value;
            if (!cur->keys[i] || !cur->items[i]) return -1;
            cur->n++;
        } else if (!next) {
            cur->items[i] = value;
        }
        if (next) cur = cur->items[i];
        tok = next;
    }
    return 0;
}

int ydoc_set_path_text(ydoc *d, const char *path, const char *text) {
    char name[600];
    snprintf(name, sizeof name, "--set %s", path);
    ydoc *t = ydoc_load_string(text, strlen(text), name);
    if (!t) return -1;
    yn *v = t->root;
    if (!v) v = new_node(t, YN_SCALAR, 1, 1), v->s = strdup(""), v->plain = 1;
    /* adopt t's nodes */
    for (int i = 0; i < t->nall; i++) {
        if (d->nall == d->capall) {
            int cap = d->capall ? 2 * d->capall : 256;
            yn **a = realloc(d->all, cap * sizeof *a);
            if (!a) return -1;
            d->all = a;
            d->capall = cap;
        }
        t->all[i]->file = NULL;
        d->all[d->nall++] = t->all[i];
    }
    /* keep the override's name alive in d: reuse a node's string */
    yn *holder = ydoc_new_scalar(d, name, NULL, 1, 1);
    for (int i = 0; i < t->nall; i++) t->all[i]->file = holder ? holder->s : "--set";
    t->nall = 0;
    ydoc_free(t);
    return ydoc_set_path(d, path, v);
}

/* ---------------- emitting (libyaml's emitter: it chooses safe quoting) ---------------- */

struct yemit {
    yaml_emitter_t em;
    char *buf;
    size_t len, cap;
    int failed;
};

static int emit_write(void *ctx, unsigned char *p, size_t n) {
    yemit *e = ctx;
    if (e->len + n + 1 > e->cap) {
        size_t cap = 2 * (e->cap + n) + 256;
        char *b = realloc(e->buf, cap);
        if (!b) return 0;
        e->buf = b;
        e->cap = cap;
    }
    memcpy(e->buf + e->len, p, n);
    e->len += n;
    e->buf[e->len] = 0;
    return 1;
}

static void ev(yemit *e, yaml_event_t *x, int ok) {
    if (!ok || !yaml_emitter_emit(&e->em, x)) e->failed = 1;
}

yemit *yemit_new(void) {
    yemit *e = calloc(1, sizeof *e);
    if (!e || !yaml_emitter_initialize(&e->em)) return free(e), NULL;
    yaml_emitter_set_output(&e->em, emit_write, e);
    yaml_emitter_set_unicode(&e->em, 1);
    yaml_emitter_set_width(&e->em, 100);
    yaml_event_t x;
    ev(e, &x, yaml_stream_start_event_initialize(&x, YAML_UTF8_ENCODING));
    ev(e, &x, yaml_document_start_event_initialize(&x, NULL, NULL, NULL, 1));
    ev(e, &x, yaml_mapping_start_event_initialize(&x, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
    return e;
}

void yemit_scalar(yemit *e, const char *s, int plain) {
    yaml_event_t x;
    ev(e, &x,
       yaml_scalar_event_initialize(&x, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), plain, 1,
                                    YAML_ANY_SCALAR_STYLE));
}

/* short lists of scalars in flow style ([B, 1, 28, 28]), the rest in block style */
static int flat(const yn *n) {
    if (n->kind != YN_SEQ || n->n > 8) return 0;
    for (int i = 0; i < n->n; i++)
        if (n->items[i]->kind != YN_SCALAR) return 0;
    return 1;
}

void yemit_node(yemit *e, const yn *n) {
    yaml_event_t x;
    if (n->kind == YN_SCALAR) {
        yemit_scalar(e, n->s, n->plain);
    } else if (n->kind == YN_SEQ) {
        ev(e, &x,
           yaml_sequence_start_event_initialize(
               &x, NULL, NULL, 1, flat(n) ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE));
        for (int i = 0; i < n->n; i++) yemit_node(e, n->items[i]);
        ev(e, &x, yaml_sequence_end_event_initialize(&x));
    } else {
        ev(e, &x, yaml_mapping_start_event_initialize(&x, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
        for (int i = 0; i < n->n; i++) {
            yemit_scalar(e, n->keys[i]->s, 1);
            yemit_node(e, n->items[i]);
        }
        ev(e, &x, yaml_mapping_end_event_initialize(&x));
    }
}

void yemit_map_begin(yemit *e) {
    yaml_event_t x;
    ev(e, &x, yaml_mapping_start_event_initialize(&x, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
}

void yemit_map_end(yemit *e) {
    yaml_event_t x;
    ev(e, &x, yaml_mapping_end_event_initialize(&x));
}

char *yemit_finish(yemit *e) {
    yaml_event_t x;
    ev(e, &x, yaml_mapping_end_event_initialize(&x));
    ev(e, &x, yaml_document_end_event_initialize(&x, 1));
    ev(e, &x, yaml_stream_end_event_initialize(&x));
    yaml_emitter_flush(&e->em);
    yaml_emitter_delete(&e->em);
    char *out = e->failed ? NULL : e->buf;
    if (e->failed) {
        free(e->buf);
        df_seterr(DF_ENOMEM, "cannot write the resolved graph document");
    }
    free(e);
    return out;
}
