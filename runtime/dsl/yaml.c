/* YAML to a positioned tree (see ydoc.h). */
#include "yaml.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

typedef struct {
    ydoc *d;
    yaml_document_t *doc;
    long count;
    int failed;
} conv_ctx;

static yn *convert(conv_ctx *c, yaml_node_t *yn_src, int depth) {
    if (c->failed) return NULL;
    int line = (int)yn_src->start_mark.line + 1, col = (int)yn_src->start_mark.column + 1;
    if (depth > YDOC_MAX_DEPTH) {
        df_seterr(DF_EINVAL, "%s:%d:%d: nesting deeper than %d levels", c->d->file, line, col,
                  YDOC_MAX_DEPTH);
        c->failed = 1;
        return NULL;
    }
    if (++c->count > YDOC_MAX_NODES) {
        df_seterr(DF_EINVAL,
                  "%s:%d:%d: the document expands to more than %d nodes (an alias bomb?)",
                  c->d->file, line, col, YDOC_MAX_NODES);
        c->failed = 1;
        return NULL;
    }
    yn *n = NULL;
    switch (yn_src->type) {
    case YAML_SCALAR_NODE:
        n = new_node(c->d, YN_SCALAR, line, col);
        if (!n) break;
        n->s = strndup((const char *)yn_src->data.scalar.value, yn_src->data.scalar.length);
        if (n->s && strlen(n->s) != yn_src->data.scalar.length) {
            df_seterr(DF_EINVAL, "%s:%d:%d: a NUL byte inside a scalar", c->d->file, line, col);
            c->failed = 1;
            return NULL;
        }
        n->plain = yn_src->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        break;
    case YAML_SEQUENCE_NODE: {
        n = new_node(c->d, YN_SEQ, line, col);
        if (!n) break;
        int k = (int)(yn_src->data.sequence.items.top - yn_src->data.sequence.items.start);
        n->items = calloc(k ? k : 1, sizeof *n->items);
        for (int i = 0; i < k && !c->failed; i++) {
            yaml_node_t *it = yaml_document_get_node(c->doc, yn_src->data.sequence.items.start[i]);
            n->items[i] = it ? convert(c, it, depth + 1) : NULL;
            n->n = i + 1;
        }
        break;
    }
    case YAML_MAPPING_NODE: {
        n = new_node(c->d, YN_MAP, line, col);
        if (!n) break;
        int k = (int)(yn_src->data.mapping.pairs.top - yn_src->data.mapping.pairs.start);
        n->items = calloc(k ? k : 1, sizeof *n->items);
        n->keys = calloc(k ? k : 1, sizeof *n->keys);
        for (int i = 0; i < k && !c->failed; i++) {
            yaml_node_pair_t *p = &yn_src->data.mapping.pairs.start[i];
            yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
            yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
            if (!kn || !vn) continue;
            if (kn->type != YAML_SCALAR_NODE) {
                df_seterr(DF_EINVAL, "%s:%d:%d: a map key must be a plain name", c->d->file,
                          (int)kn->start_mark.line + 1, (int)kn->start_mark.column + 1);
                c->failed = 1;
                return NULL;
            }
            yn *key = convert(c, kn, depth + 1);
            yn *val = convert(c, vn, depth + 1);
            if (c->failed) return NULL;
            for (int j = 0; j < n->n; j++)
                if (!strcmp(n->keys[j]->s, key->s)) {
                    df_seterr(DF_EINVAL, "%s:%d:%d: duplicate key '%s' (first at line %d)",
                              c->d->file, key->line, key->col, key->s, n->keys[j]->line);
                    c->failed = 1;
                    return NULL;
                }
            n->keys[n->n] = key;
            n->items[n->n] = val;
            n->n++;
        }
        break;
    }
    default:
        break;
    }
    if (!n && !c->failed) {
        df_seterr(DF_ENOMEM, "%s: out of memory", c->d->file);
        c->failed = 1;
    }
    return n;
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
    if (!d || !(d->file = strdup(name))) {
        free(d);
        df_seterr(DF_ENOMEM, "out of memory");
        return NULL;
    }
    yaml_parser_t p;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&p)) {
        ydoc_free(d);
        df_seterr(DF_ENOMEM, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        df_seterr(DF_EINVAL, "%s:%d:%d: YAML syntax error: %s%s%s", name,
                  (int)p.problem_mark.line + 1, (int)p.problem_mark.column + 1,
                  p.problem ? p.problem : "unknown problem", p.context ? " " : "",
                  p.context ? p.context : "");
        yaml_parser_delete(&p);
        ydoc_free(d);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    conv_ctx c = {d, &doc, 0, 0};
    if (root) d->root = convert(&c, root, 0);
    /* a second document in the stream is an error */
    yaml_document_t more;
    int extra = 0;
    if (!c.failed && yaml_parser_load(&p, &more)) {
        extra = yaml_document_get_root_node(&more) != NULL;
        yaml_document_delete(&more);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    if (c.failed) {
        ydoc_free(d);
        return NULL;
    }
    if (extra) {
        df_seterr(DF_EINVAL, "%s: more than one YAML document ('---'); a graph file holds one",
                  name);
        ydoc_free(d);
        return NULL;
    }
    return d;
}

ydoc *ydoc_load_file(const char *path) {
    if (!path) {
        df_seterr(DF_EINVAL, "no file given");
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
