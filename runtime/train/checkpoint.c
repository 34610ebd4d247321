/* Self-describing checkpoints (see checkpoint.h). */
#define _GNU_SOURCE
#include "dfrun/checkpoint.h"
#include "dfrun/model.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

df_status df_ckpt_save(const char *path, const df_ckpt_state *s) {
    if (!path || !s || !s->ps) return df_seterr(DF_EINVAL, "df_ckpt_save: bad arguments");
    int np = df_params_count(s->ps);
    int64_t nstate = 0;
    float *state = s->opt ? df_optim_state(s->opt, &nstate) : NULL;
    df_st_tensor *t = calloc(2 * (size_t)np + 1, sizeof *t);
    char **names = calloc((size_t)np + 1, sizeof *names);
    char *absg = s->graph_path ? realpath(s->graph_path, NULL) : NULL;
    df_status st = DF_ENOMEM;
    int n = 0;
    if (!t || !names) goto out;
    for (int i = 0; i < np; i++) {
        const df_param_info *p = df_params_info(s->ps, i);
        t[n++] = (df_st_tensor){p->name, DF_F32, p->shape, df_param_data(s->ps, i)};
    }
    for (int i = 0; s->ema && i < np; i++) {
        const df_param_info *p = df_params_info(s->ps, i);
        if (asprintf(&names[i], "ema.%s", p->name) < 0) goto out;
        t[n++] = (df_st_tensor){names[i], DF_F32, p->shape, df_ema_data(s->ema) + p->offset};
    }
    if (state) t[n++] = (df_st_tensor){"optimizer.state", DF_F32, df_shape1(nstate), state};
    char step[32], key[32], ctr[32], osteps[32], eupd[32], ranks[16];
    snprintf(step, sizeof step, "%lld", (long long)s->step);
    snprintf(key, sizeof key, "%llu", (unsigned long long)s->rng.key);
    snprintf(ctr, sizeof ctr, "%llu", (unsigned long long)s->rng.counter);
    snprintf(osteps, sizeof osteps, "%lld", (long long)(s->opt ? df_optim_steps(s->opt) : 0));
    snprintf(ranks, sizeof ranks, "%d", s->ranks > 0 ? s->ranks : 1);
    snprintf(eupd, sizeof eupd, "%lld", (long long)(s->ema ? df_ema_updates(s->ema) : 0));
    const char *meta[] = {"format",
                          DF_CKPT_FORMAT,
                          "dfrun.version",
                          DF_VERSION,
                          "step",
                          step,
                          "rng.key",
                          key,
                          "rng.counter",
                          ctr,
                          "optimizer.steps",
                          osteps,
                          "ema.updates",
                          eupd,
                          "ranks",
                          ranks,
                          "graph",
                          absg ? absg : (s->graph_path ? s->graph_path : ""),
                          "graph.resolved",
                          s->graph_doc ? s->graph_doc : ""};
    st = df_st_save(path, t, n, meta, 10);
out:
    if (st == DF_ENOMEM && !t) df_seterr(DF_ENOMEM, "df_ckpt_save: out of memory");
    for (int i = 0; names && i < np; i++) free(names[i]);
    free(names);
    free(t);
    free(absg);
    return st;
}

/* a non-negative integer in metadata, parsed strictly (max: its range) */
static int meta_num(const df_ckpt *c, const char *key, uint64_t max, uint64_t *out, int required) {
    const char *v = df_st_meta(c->st, key);
    if (!v) {
        if (required) df_seterr(DF_EINVAL, "%s: metadata '%s' is missing", c->path, key);
        return required ? -1 : 0;
    }
    char *e;
    errno = 0;
    unsigned long long x = strtoull(v, &e, 10);
    if (!*v || *e || errno || v[0] < '0' || v[0] > '9' || x > max) {
        df_seterr(DF_EINVAL, "%s: metadata '%s' = '%.40s' is not an integer in [0, %llu]", c->path,
                  key, v, (unsigned long long)max);
        return -1;
    }
    *out = (uint64_t)x;
    return 0;
}

static int meta_int(const df_ckpt *c, const char *key, int64_t *out, int required) {
    uint64_t u = (uint64_t)*out;
    int r = meta_num(c, key, INT64_MAX, &u, required);
    *out = (int64_t)u;
    return r;
}

df_status df_ckpt_open(const char *path, df_ckpt *c) {
    memset(c, 0, sizeof *c);
    c->path = path;
    if (!(c->st = df_st_load(path))) return DF_EIO;
    const char *fmt = df_st_meta(c->st, "format");
    c->format = fmt && !strcmp(fmt, DF_CKPT_FORMAT) ? 2 : 1;
    if (fmt && strcmp(fmt, DF_CKPT_FORMAT) && strcmp(fmt, "dfrun-checkpoint-1")) {
        df_seterr(DF_EINVAL, "%s: unknown checkpoint format '%.60s' (this dfrun reads %s)", path,
                  fmt, DF_CKPT_FORMAT);
        df_ckpt_close(c); /* after the message: fmt points into the file */
        return DF_EINVAL;
    }
    c->version = df_st_meta(c->st, "dfrun.version");
    if (!c->version) c->version = "?";
    c->graph_path = df_st_meta(c->st, "graph");
    if (c->graph_path && !c->graph_path[0]) c->graph_path = NULL;
    c->graph_doc = df_st_meta(c->st, "graph.resolved");
    if (c->graph_doc && !c->graph_doc[0]) c->graph_doc = NULL;
    uint64_t key = 0, ctr = 0;
    c->has_train_state = df_st_meta(c->st, "step") != NULL;
    if (c->has_train_state &&
        (meta_int(c, "step", &c->step, 1) || meta_num(c, "rng.key", UINT64_MAX, &key, 1) ||
         meta_num(c, "rng.counter", UINT64_MAX, &ctr, 1) ||
         meta_int(c, "optimizer.steps", &c->opt_steps, 1) ||
         meta_int(c, "ema.updates", &c->ema_updates, 0) || meta_int(c, "ranks", &c->ranks, 0))) {
        df_status st = DF_EINVAL;
        df_ckpt_close(c);
        return st;
    }
    if (c->format == 1) c->ema_updates = c->step;
    if (c->ranks < 1) c->ranks = 1;
    c->rng.key = key;
    c->rng.counter = ctr;
    return DF_OK;
}

void df_ckpt_close(df_ckpt *c) {
    if (!c) return;
    df_st_free(c->st);
    memset(c, 0, sizeof *c);
}

/* the first parameter that differs between two builds of a model */
static df_status same_params(df_gfile *a, df_gfile *b, const char *an, const char *bn) {
    df_params *pa = df_params_new(), *pb = df_params_new();
    df_status st = df_model_params(a, pa);
    if (!st) st = df_model_params(b, pb);
    int na = df_params_count(pa), nb = df_params_count(pb);
    for (int i = 0; !st && i < (na > nb ? na : nb); i++) {
        const df_param_info *x = i < na ? df_params_info(pa, i) : NULL;
        const df_param_info *y = x ? NULL : df_params_info(pb, i);
        int j = x ? df_params_find(pb, x->name) : -1;
        char s1[96], s2[96];
        if (!x)
            st = df_seterr(DF_ESHAPE, "%s has parameter '%s' %s that %s lacks", bn, y->name,
                           df_shape_str(&y->shape, s1, sizeof s1), an);
        else if (j < 0)
            st = df_seterr(DF_ESHAPE, "%s has parameter '%s' %s that %s lacks", an, x->name,
                           df_shape_str(&x->shape, s1, sizeof s1), bn);
        else if (!df_shape_eq(&x->shape, &df_params_info(pb, j)->shape))
            st = df_seterr(DF_ESHAPE, "parameter '%s' is %s in %s but %s in %s", x->name,
                           df_shape_str(&x->shape, s1, sizeof s1), an,
                           df_shape_str(&df_params_info(pb, j)->shape, s2, sizeof s2), bn);
    }
    df_params_free(pa), df_params_free(pb);
    return st;
}

df_gfile *df_ckpt_graph(const df_ckpt *c, const char *graph, const char *const *sets, int nsets,
                        char *notice, size_t nn) {
    if (notice && nn) notice[0] = 0;
    char name[1200];
    snprintf(name, sizeof name, "%s:graph", c->path);
    if (!c->graph_doc) { /* an old checkpoint: the graph file at the recorded path */
        const char *p = graph ? graph : c->graph_path;
        if (!p) {
            df_seterr(DF_EINVAL, "%s: the checkpoint records no graph; give the graph file",
                      c->path);
            return NULL;
        }
        if (notice)
            snprintf(notice, nn,
                     "%s is an older checkpoint without its graph: using %s as it is now", c->path,
                     p);
        return df_gfile_load(p, sets, nsets);
    }
    df_gfile *f = df_gfile_load_text(c->graph_doc, name, sets, nsets);
    if (!f || !graph) return f;
    df_gfile *g = df_gfile_load(graph, sets, nsets);
    if (!g || same_params(g, f, graph, "the checkpoint's graph")) {
        char m[1500];
        snprintf(m, sizeof m, "%s", df_errmsg());
        df_seterr(DF_ESHAPE, "%s does not match %s: %s", graph, c->path, m);
        df_gfile_free(f);
        df_gfile_free(g);
        return NULL;
    }
    df_gfile_free(f);
    return g;
}

static df_status copy_tensor(const df_ckpt *c, const df_param_info *p, const char *name,
                             float *dst) {
    const df_st_tensor *t = df_st_find(c->st, name);
    char a[96], b[96];
    if (!t)
        return df_seterr(DF_EINVAL, "%s: tensor '%s' is missing (the graph needs %s)", c->path,
                         name, df_shape_str(&p->shape, b, sizeof b));
    if (t->dtype != DF_F32)
        return df_seterr(DF_EINVAL, "%s: tensor '%s' is not float32", c->path, name);
    if (!df_shape_eq(&t->shape, &p->shape))
        return df_seterr(DF_ESHAPE, "%s: tensor '%s' has shape %s, the graph needs %s", c->path,
                         name, df_shape_str(&t->shape, a, sizeof a),
                         df_shape_str(&p->shape, b, sizeof b));
    memcpy(dst, t->data, (size_t)p->numel * 4);
    for (int64_t i = 0; i < p->numel; i++)
        if (!isfinite(dst[i]))
            return df_seterr(DF_ENONFINITE, "%s: tensor '%s' holds a non-finite value (%g at %lld)",
                             c->path, name, dst[i], (long long)i);
    return DF_OK;
}

df_status df_ckpt_load_params(const df_ckpt *c, df_params *ps, df_weights w) {
    if (!c || !c->st || !ps) return df_seterr(DF_EINVAL, "df_ckpt_load_params: bad arguments");
    df_status st = df_params_alloc(ps);
    for (int i = 0; !st && i < df_params_count(ps); i++) {
        const df_param_info *p = df_params_info(ps, i);
        char nm[600];
        snprintf(nm, sizeof nm, "%s%s", w == DF_WEIGHTS_EMA ? "ema." : "", p->name);
        st = copy_tensor(c, p, nm, df_param_data(ps, i));
    }
    return st;
}

df_status df_ckpt_load_train_state(const df_ckpt *c, df_params *ps, df_ema *ema, df_optim *opt) {
    if (!c->has_train_state)
        return df_seterr(DF_EINVAL, "%s: no training state (step, RNG) to resume from", c->path);
    df_status st = DF_OK;
    for (int i = 0; !st && ema && i < df_params_count(ps); i++) {
        const df_param_info *p = df_params_info(ps, i);
        char nm[600];
        snprintf(nm, sizeof nm, "ema.%s", p->name);
        st = copy_tensor(c, p, nm, df_ema_data(ema) + p->offset);
    }
    if (st) return st;
    if (ema) df_ema_set_updates(ema, c->ema_updates);
    if (!opt) return DF_OK;
    int64_t ns = 0;
    float *state = df_optim_state(opt, &ns);
    const df_st_tensor *t = df_st_find(c->st, "optimizer.state");
    if (!t || t->dtype != DF_F32 || df_shape_numel(&t->shape) != ns)
        return df_seterr(DF_EINVAL,
                         "%s: optimizer state missing or of another size (%lld values expected: "
                         "the optimizer or model differs)",
                         c->path, (long long)ns);
    memcpy(state, t->data, (size_t)ns * 4);
    df_optim_set_steps(opt, c->opt_steps);
    return DF_OK;
}

const char *df_ckpt_path(const char *path, char *buf, size_t n) {
    struct stat sb;
    if (path && !stat(path, &sb) && S_ISDIR(sb.st_mode))
        snprintf(buf, n, "%s/checkpoint.safetensors", path);
    else
        snprintf(buf, n, "%s", path ? path : "");
    return buf;
}

df_status df_ckpt_latest_run(const char *root, char *buf, size_t n) {
    if (!root) root = "runs";
    DIR *d = opendir(root);
    if (!d) return df_seterr(DF_EIO, "no run found: cannot read '%s' (%s)", root, strerror(errno));
    struct dirent *e;
    double best = -1;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[2048];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s/latest/checkpoint.safetensors", root, e->d_name);
        if (stat(p, &sb)) continue;
        double t = sb.st_mtim.tv_sec + 1e-9 * sb.st_mtim.tv_nsec;
        if (t > best) {
            best = t;
            snprintf(p, sizeof p, "%s/%s/latest", root, e->d_name);
            char *r = realpath(p, NULL);
            snprintf(buf, n, "%s", r ? r : p);
            free(r);
        }
    }
    closedir(d);
    if (best < 0) return df_seterr(DF_EIO, "no run with a checkpoint under '%s'", root);
    return DF_OK;
}
