/* Small expressions of the graph DSL: integers and floats, lists, strings,
 * + - * / // %, comparisons, and/or/not, indexing, and the functions
 * len, range, min, max, int, shape(value). Internal to the DSL. */
#ifndef DFRUN_EXPR_H
#define DFRUN_EXPR_H
#include <stdint.h>

typedef enum { DV_NONE = 0, DV_INT, DV_FLOAT, DV_STR, DV_LIST } dv_kind;

typedef struct dval {
    dv_kind kind;
    int64_t i;
    double f;
    char *s;
    struct dval *items;
    int n;
} dval;

void dval_free(dval *v);
dval dval_copy(const dval *v);
dval dval_int(int64_t i);
dval dval_float(double f);
dval dval_str(const char *s);
/* "32", "[32, 64]", "'a'" */
void dval_print(const dval *v, char *buf, int n);
const char *dval_kind_name(dv_kind k);

typedef struct {
    /* variable by name: 1 found (out set), 0 unknown */
    int (*var)(void *ctx, const char *name, dval *out);
    /* shape of a named graph value: 1 found, 0 unknown */
    int (*shape)(void *ctx, const char *name, dval *out);
    /* names for "did you mean" on an unknown variable (may be NULL) */
    void (*suggest)(void *ctx, const char *name, char *buf, int n);
    void *ctx;
} expr_env;

/* Evaluate text; 0 on success, else -1 with err set (what is wrong). */
int expr_eval(const char *text, const expr_env *env, dval *out, char *err, int errn);

#endif
