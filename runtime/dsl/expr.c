/* Recursive-descent evaluator for DSL expressions (see expr.h). */
#include "expr.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_LIST 1000000

void dval_free(dval *v) {
    if (!v) return;
    for (int i = 0; i < v->n; i++) dval_free(&v->items[i]);
    free(v->items);
    free(v->s);
    memset(v, 0, sizeof *v);
}
dval dval_int(int64_t i) {
    return (dval){.kind = DV_INT, .i = i};
}
dval dval_float(double f) {
    return (dval){.kind = DV_FLOAT, .f = f};
}
dval dval_str(const char *s) {
    return (dval){.kind = DV_STR, .s = strdup(s ? s : "")};
}
dval dval_copy(const dval *v) {
    dval r = *v;
    r.items = NULL; /* never shared, also for an empty list */
    if (v->s) r.s = strdup(v->s);
    if (v->n) {
        r.items = calloc(v->n, sizeof *r.items);
        for (int i = 0; r.items && i < v->n; i++) r.items[i] = dval_copy(&v->items[i]);
        if (!r.items) r.n = 0;
    }
    return r;
}
/* values in v, counting nested lists' items (MAX_LIST bounds every list) */
static int64_t dval_size(const dval *v) {
    int64_t n = 1;
    for (int i = 0; i < v->n; i++) n += dval_size(&v->items[i]);
    return n;
}

const char *dval_kind_name(dv_kind k) {
    switch (k) {
    case DV_INT:
        return "an integer";
    case DV_FLOAT:
        return "a number";
    case DV_STR:
        return "a string";
    case DV_LIST:
        return "a list";
    default:
        return "nothing";
    }
}
void dval_print(const dval *v, char *buf, int n) {
    if (n <= 0) return;
    switch (v->kind) {
    case DV_INT:
        snprintf(buf, n, "%lld", (long long)v->i);
        break;
    case DV_FLOAT:
        snprintf(buf, n, "%g", v->f);
        break;
    case DV_STR:
        snprintf(buf, n, "'%s'", v->s);
        break;
    case DV_LIST: {
        int k = snprintf(buf, n, "[");
        for (int i = 0; i < v->n && k < n; i++) {
            if (i) k += snprintf(buf + k, n - k, ", ");
            if (k < n) dval_print(&v->items[i], buf + k, n - k);
            k = (int)strlen(buf);
        }
        if (k < n) snprintf(buf + k, n - k, "]");
        break;
    }
    default:
        snprintf(buf, n, "none");
    }
}

typedef struct {
    const char *src, *p;
    const expr_env *env;
    char *err;
    int errn, depth, failed;
} P;

static int fail(P *p, const char *fmt, const char *a) {
    if (!p->failed) {
        char what[512];
        snprintf(what, sizeof what, fmt, a ? a : "");
        snprintf(p->err, p->errn, "in expression '%s' at column %d: %s", p->src,
                 (int)(p->p - p->src) + 1, what);
    }
    p->failed = 1;
    return -1;
}
static void ws(P *p) {
    while (*p->p && isspace((unsigned char)*p->p)) p->p++;
}
static int peek_op(P *p, const char *op) {
    ws(p);
    size_t k = strlen(op);
    if (strncmp(p->p, op, k)) return 0;
    if (isalpha((unsigned char)op[0]) && (isalnum((unsigned char)p->p[k]) || p->p[k] == '_'))
        return 0;
    return 1;
}
static int eat(P *p, const char *op) {
    if (!peek_op(p, op)) return 0;
    p->p += strlen(op);
    return 1;
}

static int expr(P *p, dval *out);

static int as_num(const dval *v, double *d) {
    if (v->kind == DV_INT)
        *d = (double)v->i;
    else if (v->kind == DV_FLOAT)
        *d = v->f;
    else
        return 0;
    return 1;
}
static int truthy(const dval *v) {
    if (v->kind == DV_INT) return v->i != 0;
    if (v->kind == DV_FLOAT) return v->f != 0;
    if (v->kind == DV_LIST) return v->n > 0;
    if (v->kind == DV_STR) return v->s[0] != 0;
    return 0;
}

static int call(P *p, const char *fn, dval *args, int na, dval *out) {
    char b[64];
    if (!strcmp(fn, "len")) {
        if (na != 1 || (args[0].kind != DV_LIST && args[0].kind != DV_STR))
            return fail(p, "len() takes one list or string", NULL);
        *out = dval_int(args[0].kind == DV_LIST ? args[0].n : (int64_t)strlen(args[0].s));
        return 0;
    }
    if (!strcmp(fn, "range")) { /* range(n), range(a, b), range(a, b, step) */
        int64_t a = 0, e, st = 1;
        for (int i = 0; i < na; i++)
            if (args[i].kind != DV_INT) return fail(p, "range() takes integers", NULL);
        if (na < 1 || na > 3) return fail(p, "range() takes one to three integers", NULL);
        e = na >= 2 ? args[1].i : args[0].i;
        if (na >= 2) a = args[0].i;
        if (na == 3) st = args[2].i;
        if (st == 0) return fail(p, "range() step is zero", NULL);
        int64_t cnt =
            st > 0 ? (e > a ? (e - a + st - 1) / st : 0) : (a > e ? (a - e - st - 1) / -st : 0);
        if (cnt > MAX_LIST) return fail(p, "range() longer than a million", NULL);
        out->kind = DV_LIST;
        out->n = (int)cnt;
        out->items = calloc(cnt ? cnt : 1, sizeof *out->items);
        if (!out->items) return fail(p, "out of memory", NULL);
        for (int i = 0; i < out->n; i++) out->items[i] = dval_int(a + i * st);
        return 0;
    }
    if (!strcmp(fn, "sqrt")) {
        double d;
        if (na != 1 || !as_num(&args[0], &d) || d < 0)
            return fail(p, "sqrt() takes one number >= 0", NULL);
        *out = dval_float(sqrt(d));
        return 0;
    }
    if (!strcmp(fn, "min") || !strcmp(fn, "max")) {
        dval *xs = args;
        int n = na;
        if (na == 1 && args[0].kind == DV_LIST) xs = args[0].items, n = args[0].n;
        if (n < 1) return fail(p, "%s() of nothing", fn);
        int best = 0;
        for (int i = 0; i < n; i++) {
            double a, c;
            if (!as_num(&xs[i], &a) || !as_num(&xs[best], &c))
                return fail(p, "%s() takes numbers", fn);
            if (fn[1] == 'i' ? a < c : a > c) best = i;
        }
        *out = dval_copy(&xs[best]);
        return 0;
    }
    if (!strcmp(fn, "int")) {
        double d;
        if (na != 1 || !as_num(&args[0], &d)) return fail(p, "int() takes one number", NULL);
        *out = dval_int((int64_t)d);
        return 0;
    }
    snprintf(b, sizeof b, "%s", fn);
    return fail(p, "unknown function '%s' (known: len, range, min, max, int, sqrt, shape)", b);
}

static int primary(P *p, dval *out) {
    ws(p);
    const char *s = p->p;
    if (isdigit((unsigned char)*s) || (*s == '.' && isdigit((unsigned char)s[1]))) {
        char *e;
        double d = strtod(s, &e);
        int isf = 0;
        for (const char *q = s; q < e; q++) isf |= *q == '.' || *q == 'e' || *q == 'E';
        if (!isf) {
            long long v = strtoll(s, &e, 10);
            if (v > (1ll << 53)) return fail(p, "integer too large", NULL);
            *out = dval_int(v);
        } else {
            if (!isfinite(d)) return fail(p, "number out of range", NULL);
            *out = dval_float(d);
        }
        p->p = e;
        return 0;
    }
    if (*s == '\'' || *s == '"') {
        char q = *s;
        const char *e = strchr(s + 1, q);
        if (!e) return fail(p, "unterminated string", NULL);
        out->kind = DV_STR;
        out->s = strndup(s + 1, e - s - 1);
        p->p = e + 1;
        return 0;
    }
    if (*s == '(') {
        p->p++;
        if (expr(p, out)) return -1;
        if (!eat(p, ")")) return fail(p, "expected ')'", NULL);
        return 0;
    }
    if (*s == '[') {
        p->p++;
        out->kind = DV_LIST;
        int cap = 4;
        int64_t size = 1;
        out->items = calloc(cap, sizeof *out->items);
        if (!out->items) return fail(p, "out of memory", NULL);
        if (eat(p, "]")) return 0;
        do {
            if (out->n == cap) {
                dval *it = realloc(out->items, 2 * cap * sizeof *it);
                if (!it) return fail(p, "out of memory", NULL);
                out->items = it;
                cap *= 2;
            }
            memset(&out->items[out->n], 0, sizeof(dval));
            if (expr(p, &out->items[out->n])) return dval_free(&out->items[out->n]), -1;
            size += dval_size(&out->items[out->n++]);
            if (size > MAX_LIST) return fail(p, "list longer than a million values", NULL);
        } while (eat(p, ","));
        if (!eat(p, "]")) return fail(p, "expected ',' or ']'", NULL);
        return 0;
    }
    if (isalpha((unsigned char)*s) || *s == '_') {
        const char *e = s;
        while (isalnum((unsigned char)*e) || *e == '_') e++;
        char name[64];
        if (e - s >= (int)sizeof name) return fail(p, "name too long", NULL);
        memcpy(name, s, e - s);
        name[e - s] = 0;
        p->p = e;
        if (eat(p, "(")) {
            if (!strcmp(name, "shape")) { /* shape(value name) */
                ws(p);
                const char *a = p->p;
                while (isalnum((unsigned char)*p->p) || *p->p == '_' || *p->p == '.') p->p++;
                char vn[128];
                snprintf(vn, sizeof vn, "%.*s", (int)(p->p - a), a);
                if (!eat(p, ")")) return fail(p, "shape() takes the name of a value", NULL);
                if (!p->env->shape || !p->env->shape(p->env->ctx, vn, out))
                    return fail(p, "shape(): no value named '%s' here", vn);
                return 0;
            }
            dval args[8];
            int na = 0;
            memset(args, 0, sizeof args);
            if (!eat(p, ")")) {
                do {
                    if (na == 8) return fail(p, "too many arguments", NULL);
                    if (expr(p, &args[na++])) {
                        for (int i = 0; i < na; i++) dval_free(&args[i]);
                        return -1;
                    }
                } while (eat(p, ","));
                if (!eat(p, ")")) {
                    for (int i = 0; i < na; i++) dval_free(&args[i]);
                    return fail(p, "expected ',' or ')'", NULL);
                }
            }
            int r = call(p, name, args, na, out);
            for (int i = 0; i < na; i++) dval_free(&args[i]);
            return r;
        }
        if (!strcmp(name, "true")) return *out = dval_int(1), 0;
        if (!strcmp(name, "false")) return *out = dval_int(0), 0;
        if (p->env->var && p->env->var(p->env->ctx, name, out)) return 0;
        char msg[200] = "";
        if (p->env->suggest) p->env->suggest(p->env->ctx, name, msg, sizeof msg);
        char full[300];
        snprintf(full, sizeof full, "undefined variable '%s'%s", name, msg);
        return fail(p, "%s", full);
    }
    if (!*s) return fail(p, "unexpected end", NULL);
    char c[2] = {*s, 0};
    return fail(p, "unexpected '%s'", c);
}

static int postfix(P *p, dval *out) {
    if (primary(p, out)) return -1;
    while (eat(p, "[")) {
        dval ix = {0};
        if (expr(p, &ix)) return dval_free(&ix), -1;
        if (!eat(p, "]")) return dval_free(&ix), fail(p, "expected ']'", NULL);
        if (out->kind != DV_LIST)
            return dval_free(&ix), fail(p, "indexing something that is not a list", NULL);
        if (ix.kind != DV_INT)
            return dval_free(&ix), fail(p, "a list index must be an integer", NULL);
        int64_t k = ix.i < 0 ? ix.i + out->n : ix.i;
        if (k < 0 || k >= out->n) {
            char b[64];
            snprintf(b, sizeof b, "%lld is out of range for a list of %d", (long long)ix.i, out->n);
            return fail(p, "index %s", b);
        }
        dval r = dval_copy(&out->items[k]);
        dval_free(out);
        *out = r;
    }
    return 0;
}

static int unary(P *p, dval *out) {
    if (++p->depth > MAX_DEPTH) return fail(p, "expression nested too deeply", NULL);
    int r;
    if (eat(p, "-")) {
        r = unary(p, out);
        if (!r) {
            if (out->kind == DV_INT)
                out->i = -out->i;
            else if (out->kind == DV_FLOAT)
                out->f = -out->f;
            else
                r = fail(p, "'-' needs a number", NULL);
        }
    } else if (eat(p, "not")) {
        r = unary(p, out);
        if (!r) {
            int t = truthy(out);
            dval_free(out);
            *out = dval_int(!t);
        }
    } else
        r = postfix(p, out);
    p->depth--;
    return r;
}

static int arith(P *p, const char *op, dval *a, dval *b) {
    if (a->kind == DV_LIST && b->kind == DV_LIST && !strcmp(op, "+")) {
        if (dval_size(a) + dval_size(b) > MAX_LIST)
            return fail(p, "list longer than a million values", NULL);
        dval r = {.kind = DV_LIST, .n = a->n + b->n};
        r.items = calloc(r.n ? r.n : 1, sizeof *r.items);
        if (!r.items) return fail(p, "out of memory", NULL);
        for (int i = 0; i < a->n; i++) r.items[i] = dval_copy(&a->items[i]);
        for (int i = 0; i < b->n; i++) r.items[a->n + i] = dval_copy(&b->items[i]);
        dval_free(a);
        *a = r;
        return 0;
    }
    double x, y;
    if (!as_num(a, &x) || !as_num(b, &y)) {
        char m[128];
        snprintf(m, sizeof m, "'%s' needs numbers, got %s and %s", op, dval_kind_name(a->kind),
                 dval_kind_name(b->kind));
        return fail(p, "%s", m);
    }
    int ints = a->kind == DV_INT && b->kind == DV_INT;
    if ((!strcmp(op, "/") || !strcmp(op, "//") || !strcmp(op, "%")) && y == 0)
        return fail(p, "division by zero", NULL);
    if (ints) {
        int64_t i = a->i, j = b->i, r;
        if (!strcmp(op, "+"))
            r = i + j;
        else if (!strcmp(op, "-"))
            r = i - j;
        else if (!strcmp(op, "*")) {
            if (i && (llabs(i) > (1ll << 40) || llabs(j) > (1ll << 40)))
                return fail(p, "integer overflow", NULL);
            r = i * j;
        } else if (!strcmp(op, "//"))
            r = (i - ((i % j) + j) % j) / j;
        else if (!strcmp(op, "%"))
            r = ((i % j) + j) % j;
        else { /* '/': exact integer division stays an integer */
            if (i % j == 0)
                r = i / j;
            else
                return *a = dval_float((double)i / j), 0;
        }
        *a = dval_int(r);
        return 0;
    }
    double r = !strcmp(op, "+")    ? x + y
               : !strcmp(op, "-")  ? x - y
               : !strcmp(op, "*")  ? x * y
               : !strcmp(op, "/")  ? x / y
               : !strcmp(op, "//") ? floor(x / y)
                                   : fmod(x, y);
    *a = dval_float(r);
    return 0;
}

static int term(P *p, dval *out) {
    if (unary(p, out)) return -1;
    for (;;) {
        const char *op = peek_op(p, "//")  ? "//"
                         : peek_op(p, "*") ? "*"
                         : peek_op(p, "/") ? "/"
                         : peek_op(p, "%") ? "%"
                                           : NULL;
        if (!op) return 0;
        eat(p, op);
        dval b = {0};
        if (unary(p, &b) || arith(p, op, out, &b)) return dval_free(&b), -1;
        dval_free(&b);
    }
}
static int sum(P *p, dval *out) {
    if (term(p, out)) return -1;
    for (;;) {
        const char *op = peek_op(p, "+") ? "+" : peek_op(p, "-") ? "-" : NULL;
        if (!op) return 0;
        eat(p, op);
        dval b = {0};
        if (term(p, &b) || arith(p, op, out, &b)) return dval_free(&b), -1;
        dval_free(&b);
    }
}
static int cmp(P *p, dval *out) {
    if (sum(p, out)) return -1;
    const char *ops[] = {"==", "!=", "<=", ">=", "<", ">"};
    for (int k = 0; k < 6; k++)
        if (eat(p, ops[k])) {
            dval b = {0};
            if (sum(p, &b)) return dval_free(&b), -1;
            double x, y;
            int r;
            if (as_num(out, &x) && as_num(&b, &y)) {
                r = k == 0   ? x == y
                    : k == 1 ? x != y
                    : k == 2 ? x <= y
                    : k == 3 ? x >= y
                    : k == 4 ? x < y
                             : x > y;
            } else if (out->kind == DV_STR && b.kind == DV_STR && k < 2) {
                r = (strcmp(out->s, b.s) == 0) == (k == 0);
            } else {
                dval_free(&b);
                return fail(p, "cannot compare these values", NULL);
            }
            dval_free(&b);
            dval_free(out);
            *out = dval_int(r);
            return 0;
        }
    return 0;
}
static int and_(P *p, dval *out) {
    if (cmp(p, out)) return -1;
    while (eat(p, "and")) {
        dval b = {0};
        if (cmp(p, &b)) return dval_free(&b), -1;
        int r = truthy(out) && truthy(&b);
        dval_free(&b);
        dval_free(out);
        *out = dval_int(r);
    }
    return 0;
}
static int expr(P *p, dval *out) {
    if (++p->depth > MAX_DEPTH) return fail(p, "expression nested too deeply", NULL);
    int r = and_(p, out);
    while (!r && eat(p, "or")) {
        dval b = {0};
        r = and_(p, &b);
        if (!r) {
            int t = truthy(out) || truthy(&b);
            dval_free(out);
            *out = dval_int(t);
        }
        dval_free(&b);
    }
    p->depth--;
    return r;
}

int expr_eval(const char *text, const expr_env *env, dval *out, char *err, int errn) {
    P p = {text, text, env, err, errn, 0, 0};
    memset(out, 0, sizeof *out);
    if (expr(&p, out)) {
        dval_free(out);
        return -1;
    }
    ws(&p);
    if (*p.p) {
        fail(&p, "unexpected '%s' after the expression", p.p);
        dval_free(out);
        return -1;
    }
    return 0;
}
