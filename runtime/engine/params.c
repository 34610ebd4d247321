/* Parameter store: names, shapes, and contiguous value/gradient blocks. */
#include "dfrun/params.h"
#include "dfrun/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct df_params {
    df_param_info *p;
    int n, cap;
    int64_t numel;
    float *data, *grad; /* [numel] each, 64-byte aligned */
    int64_t alloc_numel;
};

df_params *df_params_new(void) {
    return calloc(1, sizeof(df_params));
}

void df_params_free(df_params *ps) {
    if (!ps) return;
    for (int i = 0; i < ps->n; i++) free(ps->p[i].name);
    free(ps->p);
    free(ps->data);
    free(ps->grad);
    free(ps);
}

int df_params_find(const df_params *ps, const char *name) {
    if (!ps || !name) return -1;
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->p[i].name, name)) return i;
    return -1;
}

int df_params_get(df_params *ps, const char *name, df_shape shape, df_init init) {
    char a[96], b[96];
    if (!ps || !name || !*name) {
        df_seterr(DF_EINVAL, "parameter store or name missing");
        return -1;
    }
    if (shape.nd < 1 || shape.nd > DF_MAX_DIMS) {
        df_seterr(DF_ESHAPE, "parameter '%s': %d dimensions (expected 1..%d)", name, shape.nd,
                  DF_MAX_DIMS);
        return -1;
    }
    for (int i = 0; i < shape.nd; i++)
        if (shape.d[i] < 1) {
            df_seterr(DF_ESHAPE, "parameter '%s': extent %lld in %s (expected >= 1)", name,
                      (long long)shape.d[i], df_shape_str(&shape, a, sizeof a));
            return -1;
        }
    int i = df_params_find(ps, name);
    if (i >= 0) {
        if (!df_shape_eq(&ps->p[i].shape, &shape)) {
            df_seterr(DF_ESHAPE, "parameter '%s' exists with shape %s, requested %s", name,
                      df_shape_str(&ps->p[i].shape, a, sizeof a),
                      df_shape_str(&shape, b, sizeof b));
            return -1;
        }
        return i;
    }
    if (ps->n == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 64;
        df_param_info *np = realloc(ps->p, cap * sizeof *np);
        if (!np) {
            df_seterr(DF_ENOMEM, "out of memory adding parameter '%s'", name);
            return -1;
        }
        ps->p = np;
        ps->cap = cap;
    }
    df_param_info *p = &ps->p[ps->n];
    memset(p, 0, sizeof *p);
    p->name = strdup(name);
    if (!p->name) {
        df_seterr(DF_ENOMEM, "out of memory adding parameter '%s'", name);
        return -1;
    }
    p->shape = shape;
    p->init = init;
    p->decay = shape.nd >= 2;
    p->numel = df_shape_numel(&shape);
    /* keep each tensor 16-float (64-byte) aligned inside the blocks */
    p->offset = (size_t)((ps->numel + 15) & ~(int64_t)15);
    ps->numel = (int64_t)p->offset + p->numel;
    return ps->n++;
}

int df_params_count(const df_params *ps) {
    return ps ? ps->n : 0;
}

int64_t df_params_numel(const df_params *ps) {
    int64_t s = 0;
    for (int i = 0; ps && i < ps->n; i++) s += ps->p[i].numel;
    return s;
}

const df_param_info *df_params_info(const df_params *ps, int i) {
    return (ps && i >= 0 && i < ps->n) ? &ps->p[i] : NULL;
}

static float *grow(float *old, int64_t oldn, int64_t n) {
    size_t bytes = ((size_t)n * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) return NULL;
    memset(p, 0, bytes ? bytes : 64);
    if (old) memcpy(p, old, (size_t)oldn * sizeof(float));
    free(old);
    return p;
}

df_status df_params_alloc(df_params *ps) {
    if (!ps) return df_seterr(DF_EINVAL, "df_params_alloc: NULL store");
    if (ps->data && ps->alloc_numel >= ps->numel) return DF_OK;
    float *d = grow(ps->data, ps->alloc_numel, ps->numel);
    if (!d) return df_seterr(DF_ENOMEM, "out of memory for %lld parameters", (long long)ps->numel);
    ps->data = d;
    float *g = grow(ps->grad, ps->alloc_numel, ps->numel);
    if (!g) return df_seterr(DF_ENOMEM, "out of memory for %lld gradients", (long long)ps->numel);
    ps->grad = g;
    ps->alloc_numel = ps->numel;
    return DF_OK;
}

/* Total numel of the blocks including alignment padding (for optimizers). */
int64_t df_params_block_numel(const df_params *ps) {
    return ps ? ps->numel : 0;
}

df_status df_params_init(df_params *ps, uint64_t seed) {
    df_status st = df_params_alloc(ps);
    if (st) return st;
    for (int i = 0; i < ps->n; i++) {
        df_param_info *p = &ps->p[i];
        float *x = ps->data + p->offset;
        df_rng r = df_rng_new(seed ^ df_hash_str(p->name));
        switch (p->init.kind) {
        case DF_INIT_ZEROS:
            memset(x, 0, p->numel * sizeof(float));
            break;
        case DF_INIT_ONES:
            for (int64_t k = 0; k < p->numel; k++) x[k] = 1.0f;
            break;
        case DF_INIT_NORMAL:
            df_rng_normal(&r, x, p->numel);
            for (int64_t k = 0; k < p->numel; k++) x[k] *= p->init.a;
            break;
        case DF_INIT_UNIFORM:
        case DF_INIT_KAIMING: {
            float a = p->init.a;
            if (p->init.kind == DF_INIT_KAIMING) {
                double fan_in = a > 0 ? a : (double)p->numel / (double)p->shape.d[0];
                a = (float)(1.0 / sqrt(fan_in));
            }
            df_rng_uniform(&r, x, p->numel);
            for (int64_t k = 0; k < p->numel; k++) x[k] = (2.0f * x[k] - 1.0f) * a;
            break;
        }
        default:
            return df_seterr(DF_EINVAL, "parameter '%s': unknown init kind", p->name);
        }
    }
    return DF_OK;
}

float *df_params_data(df_params *ps) {
    return ps ? ps->data : NULL;
}
float *df_params_grad(df_params *ps) {
    return ps ? ps->grad : NULL;
}
float *df_param_data(df_params *ps, int i) {
    return (ps && ps->data && i >= 0 && i < ps->n) ? ps->data + ps->p[i].offset : NULL;
}
float *df_param_grad(df_params *ps, int i) {
    return (ps && ps->grad && i >= 0 && i < ps->n) ? ps->grad + ps->p[i].offset : NULL;
}
void df_params_zero_grad(df_params *ps) {
    if (ps && ps->grad) memset(ps->grad, 0, (size_t)ps->alloc_numel * sizeof(float));
}
