/* The trainer (see train.h): one object holds the run: graph file and
 * config, model, data, optimizer, EMA, RNG, run directory and log. */
#define _GNU_SOURCE
#include "atomic.h"
#include "dfrun/data.h"
#include "dfrun/dist.h"
#include "dfrun/model.h"
#include "dfrun/runtime.h"
#include "dfrun/sample.h"
#include "dfrun/train.h"
#include "runlog.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct df_trainer {
    df_train_opts o;
    df_gfile *f;
    df_config cfg;  /* the run's settings (data.path made absolute) */
    char *doc;      /* the resolved graph document */
    char stem[256]; /* graph file name without extension */
    df_params *ps;
    df_model m;
    df_generator *gen; /* sample grids, built when first needed */
    df_optim *opt;
    df_ema *ema;
    df_schedule sched;
    df_dsm_cfg dsm;
    df_rng rng;
    df_dataset ds;
    int64_t ntrain, nval, dim, B;
    int64_t step, start_step, total;
    double t0, tlog, loss, loss_acc, grad_norm, lr;
    int64_t nacc;
    float *x0, *xt, *tgt, *w, *t; /* [B, dim] x3, [B] x2 */
    int32_t *y0, *y, *idx;        /* [B] */
    char dir[1024], ckpt[1100];
    FILE *log;
    df_history hist;
    int failed;
    const df_dist *dist; /* data parallelism: the ranks sharing each batch */
    int rank, nranks, ckpt_ranks;
    int64_t lo, Bl;           /* this rank's rows [lo, lo + Bl) of the global batch B */
    df_gradsync *sync;        /* gradient allreduce (more than one rank) */
    int stop_all, timeup_all; /* a stop or the time budget, agreed by every rank */
};

static void emit_loss(df_trainer *t, df_train_event_kind k, const char *text, double loss,
                      double val) {
    if (!t->o.on_event || t->rank) return; /* rank 0 alone reports */
    double el = df_seconds() - t->t0,
           ips = (t->step - t->start_step) * (double)t->B / (el > 0 ? el : 1);
    double eta = t->total ? (t->total - t->step) * (el / fmax(1, (double)(t->step - t->start_step)))
                          : t->cfg.train.minutes * 60 - el;
    df_train_event e = {k, t->step, t->total, loss, val, t->lr, t->grad_norm, ips, el, eta, text};
    t->o.on_event(t->o.ctx, &e);
}

static void emit(df_trainer *t, df_train_event_kind k, const char *text, double val) {
    emit_loss(t, k, text, t->loss, val);
}

static void notice(df_trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(df_trainer *t, const char *fmt, ...) {
    char buf[1600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    emit(t, DF_EV_NOTICE, buf, NAN);
}

static int mkdirs(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

static void stem_of(const char *graph, char *out, int n) {
    const char *b = strrchr(graph, '/');
    snprintf(out, n, "%s", b ? b + 1 : graph);
    char *d = strrchr(out, '.');
    if (d && d != out) *d = 0;
}

/* the run directory: given, the latest (resume), or runs/<stem>/<time> */
static df_status pick_dir_here(df_trainer *t) {
    const df_train_opts *o = &t->o;
    const char *root = o->runs_root ? o->runs_root : "runs";
    if (o->out_dir) {
        if (!o->out_dir[0]) return df_seterr(DF_EINVAL, "the run directory name is empty");
        snprintf(t->dir, sizeof t->dir, "%s", o->out_dir);
    } else if (o->resume) {
        char p[1100];
        snprintf(p, sizeof p, "%s/%s/latest", root, t->stem);
        char *r = realpath(p, NULL);
        if (!r) return df_seterr(DF_EIO, "resume: no run at '%s' (give the run directory)", p);
        snprintf(t->dir, sizeof t->dir, "%s", r);
        free(r);
    } else {
        time_t tt = time(NULL);
        struct tm tm;
        char ts[64];
        localtime_r(&tt, &tm);
        strftime(ts, sizeof ts, "%Y%m%d-%H%M%S", &tm);
        snprintf(t->dir, sizeof t->dir, "%s/%s/%s", root, t->stem, ts);
        struct stat sb; /* two runs started in the same second get their own directories */
        for (int k = 2; stat(t->dir, &sb) == 0 && k < 1000; k++)
            snprintf(t->dir, sizeof t->dir, "%s/%s/%s-%d", root, t->stem, ts, k);
    }
    if (mkdirs(t->dir))
        return df_seterr(DF_EIO, "cannot create the run directory '%s': %s", t->dir,
                         strerror(errno));
    if (!o->out_dir && !o->resume) { /* <root>/<stem>/latest -> <time> */
        char p[1100];
        snprintf(p, sizeof p, "%s/%s/latest", root, t->stem);
        unlink(p);
        if (symlink(strrchr(t->dir, '/') + 1, p)) { /* not fatal: --run finds it by path */
        }
    }
    snprintf(t->ckpt, sizeof t->ckpt, "%s/checkpoint.safetensors", t->dir);
    return DF_OK;
}

/* rank 0 picks (and creates) the run directory; every rank gets its name */
static df_status pick_dir(df_trainer *t) {
    struct {
        int st;
        char dir[1024], msg[1024];
    } m = {0};
    if (t->rank == 0 && (m.st = pick_dir_here(t))) snprintf(m.msg, sizeof m.msg, "%s", df_errmsg());
    snprintf(m.dir, sizeof m.dir, "%s", t->dir);
    df_status st = df_dist_bcast(t->dist, &m, sizeof m, 0);
    if (st || m.st) return st ? st : df_seterr(m.st, "%s", m.msg);
    snprintf(t->dir, sizeof t->dir, "%s", m.dir);
    snprintf(t->ckpt, sizeof t->ckpt, "%s/checkpoint.safetensors", t->dir);
    return DF_OK;
}

/* temporary files of checkpoint writes that were killed */
static void clean_stale(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) {
            char p[1400];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d) closedir(d);
}

static df_status load_graph(df_trainer *t, df_ckpt *c) {
    const df_train_opts *o = &t->o;
    if (!o->resume) {
        if (!o->graph) return df_seterr(DF_EINVAL, "no graph file given");
        stem_of(o->graph, t->stem, sizeof t->stem);
        t->f = df_gfile_load(o->graph, o->sets, o->nsets);
        if (t->f) t->cfg = *df_gfile_config(t->f);
        return t->f ? pick_dir(t) : DF_EINVAL;
    }
    stem_of(o->graph ? o->graph : "run", t->stem, sizeof t->stem);
    if (!o->graph && !o->out_dir) return df_seterr(DF_EINVAL, "resume: give the run directory");
    df_status st = pick_dir(t);
    if (st || (st = df_ckpt_open(t->ckpt, c))) return st;
    t->ckpt_ranks = (int)c->ranks;
    char note[1400];
    t->f = df_ckpt_graph(c, NULL, o->sets, o->nsets, note, sizeof note);
    if (!t->f) return DF_EINVAL;
    if (note[0]) notice(t, "%s", note);
    if (o->nsets) {
        char list[1200] = "";
        for (int i = 0, l = 0; i < o->nsets && l < (int)sizeof list; i++)
            l += snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", o->sets[i]);
        notice(t, "resuming with the run's stored settings, overridden by: %s", list);
    }
    t->cfg = *df_gfile_config(t->f);
    return DF_OK;
}

static df_status load_data(df_trainer *t) {
    df_config *c = &t->cfg;
    df_status st;
    uint64_t seed = (uint64_t)c->train.seed + 1;
    if (c->data.kind == DF_DATA_MNIST) {
        const char *dir = t->o.data_dir ? t->o.data_dir : c->data.path;
        if ((st = df_mnist_load(dir, &t->ds))) {
            if (t->o.data_dir) return st;
            notice(t,
                   "no MNIST files in '%s'; training on the built-in procedural digits (give the "
                   "MNIST directory for real digits)",
                   dir);
            c->data.kind = DF_DATA_DIGITS;
            if ((st = df_digits_make(c->data.n, seed, &t->ds))) return st;
        } else { /* the run records where its data came from */
            char *r = realpath(dir, NULL);
            snprintf(c->data.path, sizeof c->data.path, "%s", r ? r : dir);
            free(r);
        }
    } else if (c->data.kind == DF_DATA_DIGITS)
        st = df_digits_make(c->data.n, seed, &t->ds);
    else
        st =
            df_toy_make(c->data.kind == DF_DATA_MOONS ? "moons" : "ring8", c->data.n, seed, &t->ds);
    if (st) return st;
    const df_shape *xs = &t->m.x->shape;
    int img = t->ds.h > 0;
    int ok = img ? xs->nd == 4 && xs->d[1] == 1 && xs->d[2] == t->ds.h && xs->d[3] == t->ds.w
                 : xs->nd == 2 && xs->d[1] == 2;
    if (!ok) {
        char s[96];
        return df_seterr(DF_ESHAPE, "the data (%s) are %s, the model's x is %s", t->ds.source,
                         img ? (t->ds.h == 28 && t->ds.w == 28 ? "1x28x28 images" : "images")
                             : "2-D points",
                         df_shape_str(xs, s, sizeof s));
    }
    t->nval = (int64_t)(t->ds.n * c->data.val_fraction);
    t->ntrain = t->ds.n - t->nval;
    if (t->ntrain < 1) return df_seterr(DF_EINVAL, "no training examples left after validation");
    return DF_OK;
}

static df_status write_config(df_trainer *t) {
    if (t->rank) return DF_OK;
    char p[1200];
    snprintf(p, sizeof p, "%s/config.yaml", t->dir);
    df_atomic a;
    df_status st = df_atomic_open(&a, p);
    if (!st) st = df_atomic_close(&a, fputs(t->doc, a.f) >= 0);
    return st;
}

static int64_t budget(const df_trainer *t) {
    const df_config *c = &t->cfg;
    int64_t total = c->train.steps;
    if (c->train.epochs > 0) {
        int64_t e = (int64_t)ceil(c->train.epochs * t->ntrain / (double)t->B);
        if (!total || e < total) total = e;
    }
    return !total && !(c->train.minutes > 0) ? 1000 : total;
}

static df_status alloc_state(df_trainer *t) {
    const df_config *c = &t->cfg;
    df_opt_config oc = df_config_optim(c);
    t->opt = df_optim_new(t->ps, &oc);
    t->ema = t->opt ? df_ema_new(t->ps, (float)c->train.ema, (int)c->train.ema_warmup) : NULL;
    size_t bd = (size_t)(t->B * t->dim) * 4, b = (size_t)t->B * 4;
    t->x0 = malloc(bd), t->xt = malloc(bd), t->tgt = malloc(bd);
    t->w = malloc(b), t->t = malloc(b), t->y0 = malloc(b), t->y = malloc(b), t->idx = malloc(b);
    if (!t->opt || !t->ema) return DF_ENOMEM;
    if (!t->x0 || !t->xt || !t->tgt || !t->w || !t->t || !t->y0 || !t->y || !t->idx)
        return df_seterr(DF_ENOMEM, "out of memory for the batch buffers");
    t->dsm = (df_dsm_cfg){c->diffusion.t_min, c->diffusion.predict == DF_PREDICT_SCORE,
                          c->diffusion.label_dropout, (int32_t)c->diffusion.null_class};
    return df_config_schedule(c, &t->sched);
}

/* this rank's contiguous shard of the global batch */
static df_status split_batch(df_trainer *t) {
    if (t->B < t->nranks)
        return df_seterr(DF_EINVAL, "the batch (%lld) is smaller than the number of ranks (%d)",
                         (long long)t->B, t->nranks);
    t->lo = t->B * t->rank / t->nranks;
    t->Bl = t->B * (t->rank + 1) / t->nranks - t->lo;
    return DF_OK;
}

/* more than one rank: the gradient allreduce, and a word on oversubscription */
static df_status start_dist(df_trainer *t) {
    if (t->nranks < 2) return DF_OK;
    /* for measuring (README): the bucket size; DFRUN_OVERLAP 0: no overlap, 2: rank
     * skew timed apart, 3: both */
    const char *mb = getenv("DFRUN_BUCKET_MB"), *ov = getenv("DFRUN_OVERLAP");
    double bucket = mb && atof(mb) > 0 ? atof(mb) : 1;
    int k = ov ? atoi(ov) : 1;
    int flags = (k == 1 || k == 2 ? DF_SYNC_OVERLAP : 0) | (k >= 2 ? DF_SYNC_PROBE : 0);
    t->sync = df_gradsync_new(t->dist, t->ps, t->m.g, (size_t)(bucket * (1 << 20)), flags);
    if (!t->sync) return DF_EINVAL;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int local = df_dist_local_size(t->dist), nt = df_get_threads();
    if (cores > 0 && (long)local * nt > cores)
        notice(t,
               "%d ranks on this host x %d threads = %d threads for %ld cores: give each rank "
               "fewer (--threads %ld, or mpirun -x DFRUN_THREADS=%ld)",
               local, nt, local * nt, cores, cores / local > 0 ? cores / local : 1,
               cores / local > 0 ? cores / local : 1);
    return DF_OK;
}

df_trainer *df_trainer_new(const df_train_opts *o) {
    if (!o) return df_seterr(DF_EINVAL, "df_trainer_new: no options"), NULL;
    df_trainer *t = calloc(1, sizeof *t);
    if (!t) return df_seterr(DF_ENOMEM, "out of memory"), NULL;
    t->o = *o;
    t->dist = o->dist ? o->dist : df_dist_world();
    t->rank = df_dist_rank(t->dist);
    t->nranks = df_dist_size(t->dist);
    t->t0 = df_seconds();
    t->ps = df_params_new();
    df_ckpt c = {0};
    df_status st = load_graph(t, &c);
    if (!st) {
        t->B = t->cfg.train.batch;
        st = split_batch(t);
        if (!st) st = df_model_build(&t->m, t->f, t->ps, t->Bl, DF_MODEL_TRAIN);
    }
    if (!st) {
        t->dim = t->m.dim;
        st = load_data(t);
    }
    if (!st) st = alloc_state(t);
    if (!st) st = start_dist(t);
    if (!st) st = df_params_init(t->ps, (uint64_t)t->cfg.train.seed);
    t->rng = df_rng_new((uint64_t)t->cfg.train.seed);
    if (!st && o->resume) {
        if (!(st = df_ckpt_load_params(&c, t->ps, DF_WEIGHTS_RAW)) &&
            !(st = df_ckpt_load_train_state(&c, t->ps, t->ema, t->opt))) {
            t->step = t->start_step = c.step;
            t->rng = c.rng;
            notice(t, "resuming %s at step %lld", t->dir, (long long)t->step);
            if (t->ckpt_ranks != t->nranks)
                notice(t,
                       "resuming a run trained on %d rank%s with %d rank%s (the batch of %lld is "
                       "global and its draws do not depend on the ranks: the run goes on as it "
                       "would have)",
                       t->ckpt_ranks, t->ckpt_ranks > 1 ? "s" : "", t->nranks,
                       t->nranks > 1 ? "s" : "", (long long)t->B);
        }
    }
    df_ckpt_close(&c);
    if (!st && !(t->doc = df_gfile_resolved(t->f, &t->cfg))) st = DF_ENOMEM;
    if (!st) st = write_config(t);
    if (!st && t->rank == 0) {
        clean_stale(t->dir);
        st = df_runlog_open(t->dir, o->resume, t->step, &t->log, &t->hist);
    }
    if (st) {
        char m[2000];
        snprintf(m, sizeof m, "%s", df_errmsg());
        df_trainer_free(t);
        df_seterr(st, "%s", m);
        return NULL;
    }
    t->total = budget(t);
    t->t0 = t->tlog = df_seconds();
    char what[1600];
    snprintf(what, sizeof what,
             "training %s on %s (%lld train, %lld validation), batch %lld, %lld parameters -> %s",
             o->graph ? o->graph : t->stem, t->ds.source, (long long)t->ntrain, (long long)t->nval,
             (long long)t->B, (long long)df_params_numel(t->ps), t->dir);
    if (t->nranks > 1)
        snprintf(what + strlen(what), sizeof what - strlen(what),
                 " on %d ranks (%lld examples each, %d thread%s per rank)", t->nranks,
                 (long long)t->Bl, df_get_threads(), df_get_threads() > 1 ? "s" : "");
    emit(t, DF_EV_START, what, NAN);
    return t;
}

void df_trainer_free(df_trainer *t) {
    if (!t) return;
    if (t->log) fclose(t->log);
    df_gradsync_free(t->sync);
    df_history_free(&t->hist);
    df_generator_free(t->gen);
    df_model_free(&t->m);
    df_optim_free(t->opt);
    df_ema_free(t->ema);
    df_schedule_free(&t->sched);
    df_dataset_free(&t->ds);
    df_params_free(t->ps);
    df_gfile_free(t->f);
    free(t->doc);
    free(t->x0), free(t->xt), free(t->tgt), free(t->w), free(t->t);
    free(t->y0), free(t->y), free(t->idx);
    free(t);
}

/* a batch from rows [off, off + nrows) drawn with r, fed to the graph */
static void feed_batch(df_trainer *t, int64_t off, int64_t nrows, df_rng *r, int dropout) {
    df_model *m = &t->m;
    int64_t B = t->Bl, dim = t->dim;
    df_rng_randint(r, t->idx, t->B, (int32_t)nrows); /* the global batch; ours from lo */
    for (int64_t i = 0; i < B; i++) {
        int64_t k = off + t->idx[t->lo + i];
        memcpy(t->x0 + i * dim, t->ds.x + k * dim, (size_t)dim * 4);
        t->y0[i] = t->ds.y[k];
    }
    if (m->classifier) {
        df_set_input(m->g, m->x, t->x0, B * dim);
        df_set_input(m->g, m->labels, t->y0, B);
        return;
    }
    df_rng rs = {r->key, r->counter + (uint64_t)t->lo * DF_DSM_DRAWS(dim)}; /* global rows */
    df_dsm_batch(&t->sched, &t->dsm, t->x0, t->y0, B, dim, dropout, &rs, t->xt, t->tgt, t->w, t->t,
                 t->y);
    r->counter += (uint64_t)t->B * DF_DSM_DRAWS(dim);
    df_set_input(m->g, m->x, t->xt, B * dim);
    df_set_input(m->g, m->t, t->t, B);
    if (m->y) df_set_input(m->g, m->y, t->y, B);
    df_set_input(m->g, m->weight, t->w, B);
    df_set_input(m->g, m->target, t->tgt, B * dim);
}

/* More than one rank: sum the ranks' shares of the loss (each the mean over
 * its rows) and flags, and agree on failure: a rank whose step failed still
 * joins, so that none waits for it. st: this rank's status. */
static df_status reduce_loss(df_trainer *t, df_status st, double *loss, double *flags, int nf) {
    if (t->nranks < 2) return st;
    char m[1200];
    snprintf(m, sizeof m, "%s", df_errmsg());
    double v[4] = {st ? 0 : *loss * (double)t->Bl / (double)t->B, st != 0, 0, 0};
    for (int i = 0; i < nf && i < 2; i++) v[2 + i] = flags[i];
    df_status s2 = df_dist_sum(t->dist, v, 2 + nf);
    if (st) return df_seterr(st, "rank %d: %s", t->rank, m);
    if (s2) return s2;
    if (v[1] > 0)
        return df_seterr(DF_ESTATE, "%.0f other rank(s) failed (see their message)", v[1]);
    *loss = v[0];
    for (int i = 0; i < nf && i < 2; i++) flags[i] = v[2 + i];
    return DF_OK;
}

df_status df_trainer_validate(df_trainer *t, double *loss) {
    if (!t || !loss) return df_seterr(DF_EINVAL, "df_trainer_validate: bad arguments");
    *loss = NAN;
    if (t->nval < 1) return DF_OK;
    df_rng vr = df_rng_new((uint64_t)t->cfg.train.seed ^ 0x5eedull); /* a fixed batch */
    feed_batch(t, t->ntrain, t->nval, &vr, 0);
    df_status st = df_run(t->m.g);
    double l = st ? NAN : *(const float *)df_data(t->m.loss);
    if (!(st = reduce_loss(t, st, &l, NULL, 0))) *loss = l;
    df_params_zero_grad(t->ps);
    return st;
}

df_status df_trainer_save(df_trainer *t) {
    if (t->rank) return DF_OK; /* rank 0 writes; the state is the same on every rank */
    df_ckpt_state s = {t->ps, t->ema, t->opt, t->step, t->rng, t->doc, t->o.graph, t->nranks};
    return df_ckpt_save(t->ckpt, &s);
}

static df_status write_outputs(df_trainer *t) {
    char p[1200];
    df_status st = DF_OK;
    if (t->o.no_outputs || t->rank) return DF_OK;
    snprintf(p, sizeof p, "%s/loss.png", t->dir);
    if (t->hist.n && (st = df_history_plot(&t->hist, p, t->stem))) return st;
    if (t->m.classifier) return DF_OK;
    if (!t->gen && !(t->gen = df_generator_new(t->f, &t->cfg, t->ps, 100))) return DF_EINVAL;
    const df_model *gm = df_generator_model(t->gen);
    int img = gm->x->shape.nd == 4;
    int64_t count = gm->y ? 100 : img ? 64 : 4000;
    int32_t lab[100];
    for (int i = 0; i < 100; i++) lab[i] = i / 10;
    float *out = malloc((size_t)(count * gm->dim) * 4);
    if (!out) return df_seterr(DF_ENOMEM, "out of memory");
    df_sampler_cfg fast = df_config_sampler(&t->cfg); /* a quick look: DPM-Solver++(2M), 25 */
    fast.kind = DF_SAMPLER_DPMPP_2M;
    fast.steps = 25;
    const double w = 1.0; /* conditional samples, no guidance */
    df_gen_request r = {count, gm->y ? lab : NULL, &fast, &w, 1234, NULL, NULL};
    df_ema_swap(t->ema);
    st = df_generate(t->gen, &r, out);
    df_ema_swap(t->ema);
    snprintf(p, sizeof p, "%s/samples_%06lld.png", t->dir, (long long)t->step);
    if (!st) st = df_save_samples(p, out, count, &gm->x->shape, gm->y ? 10 : 8);
    free(out);
    if (!st) emit(t, DF_EV_SAMPLES, p, NAN);
    return st;
}

df_status df_trainer_step(df_trainer *t) {
    if (!t || t->failed) return df_seterr(DF_ESTATE, "the trainer stopped after an error");
    feed_batch(t, 0, t->ntrain, &t->rng, 1);
    df_gradsync_begin(t->sync, (float)((double)t->Bl / (double)t->B));
    df_status st = df_run(t->m.g);
    double loss = st ? NAN : *(const float *)df_data(t->m.loss);
    if (!st && !isfinite(loss)) st = df_seterr(DF_ENONFINITE, "the loss is %g", loss);
    if (t->sync) { /* gradients summed, loss and stop agreed: every rank steps alike */
        char m[1200];
        snprintf(m, sizeof m, "%s", df_errmsg());
        df_status s2 = df_gradsync_finish(t->sync);
        st = st ? df_seterr(st, "%s", m) : s2;
        double el = df_seconds() - t->t0,
               fl[2] = {t->o.stop && *t->o.stop,
                        t->cfg.train.minutes > 0 && el >= 60 * t->cfg.train.minutes};
        st = reduce_loss(t, st, &loss, fl, 2);
        t->stop_all = fl[0] > 0, t->timeup_all = fl[1] > 0;
    }
    if (!st) {
        const df_config *c = &t->cfg;
        t->grad_norm = df_clip_grad_norm(t->ps, c->train.clip);
        t->lr = df_lr_at(c, t->step, t->total);
        st = df_optim_step(t->opt, (float)t->lr);
    }
    if (st) {
        char m[1200];
        snprintf(m, sizeof m, "%s", df_errmsg());
        t->failed = 1;
        return df_seterr(st, "step %lld: %s; stopping (the last checkpoint is kept)",
                         (long long)t->step + 1, m);
    }
    df_ema_update(t->ema);
    t->step++;
    t->loss = loss;
    t->loss_acc += loss;
    t->nacc++;
    const df_config *c = &t->cfg;
    int ck = t->step % c->train.checkpoint_every == 0;
    if (t->step % c->train.log_every == 0 || ck) {
        double val = NAN, mean = t->loss_acc / t->nacc;
        if (ck && (st = df_trainer_validate(t, &val))) return st;
        double el = df_seconds() - t->t0;
        double ips = (t->step - t->start_step) * (double)t->B / (el > 0 ? el : 1);
        if (t->log) df_runlog_write(t->log, &t->hist, t->step, mean, t->lr, t->grad_norm, ips, val);
        emit_loss(t, DF_EV_LOG, NULL, mean, val);
        t->loss_acc = 0;
        t->nacc = 0;
    }
    if (ck) {
        if ((st = df_trainer_save(t))) return st;
        emit(t, DF_EV_CHECKPOINT, t->ckpt, NAN);
    }
    if (c->train.sample_every > 0 && t->step % c->train.sample_every == 0) st = write_outputs(t);
    return st;
}

int df_trainer_done(const df_trainer *t) {
    if (!t || t->failed) return 1;
    if (t->total && t->step >= t->total) return 1;
    if (t->nranks > 1) return t->stop_all || t->timeup_all; /* agreed at each step */
    if (t->o.stop && *t->o.stop) return 1;
    return t->cfg.train.minutes > 0 && df_seconds() - t->t0 >= 60 * t->cfg.train.minutes;
}

df_status df_trainer_run(df_trainer *t) {
    if (!t) return df_seterr(DF_EINVAL, "df_trainer_run: no trainer");
    df_status st = DF_OK;
    while (!st && !df_trainer_done(t)) st = df_trainer_step(t);
    if (st) return st;
    if ((st = df_trainer_save(t))) return st;
    if ((st = write_outputs(t))) return st;
    df_gradsync_stats g = df_gradsync_get_stats(t->sync);
    char skew[96] = "";
    if (g.skew_s > 0)
        snprintf(skew, sizeof skew, "; before that, %.2f ms waiting for the slowest rank",
                 1e3 * g.skew_s / fmax(1, (double)g.steps));
    if (g.steps)
        notice(t,
               "gradient allreduce: %.2f MB per step in %lld buckets; blocked %.2f ms per step "
               "after the backward pass (%.2f ms from the first bucket's start%s)",
               g.bytes / 1e6, (long long)g.buckets, 1e3 * g.wait_s / g.steps,
               1e3 * g.window_s / g.steps, skew);
    int stopped = t->nranks > 1 ? t->stop_all : t->o.stop && *t->o.stop;
    emit(t, DF_EV_DONE, stopped ? "stopped" : "done", NAN);
    return DF_OK;
}

double df_lr_at(const df_config *c, int64_t step, int64_t total) {
    double lr = c->train.lr;
    int64_t wu = c->train.warmup;
    if (wu > 0 && step < wu) return lr * (step + 1.0) / wu;
    if (c->train.lr_schedule == DF_LR_COSINE && total > wu)
        return lr * 0.5 * (1 + cos(M_PI * (double)(step - wu) / (double)(total - wu)));
    return lr;
}

int64_t df_trainer_step_count(const df_trainer *t) {
    return t ? t->step : 0;
}
int64_t df_trainer_total(const df_trainer *t) {
    return t ? t->total : 0;
}
double df_trainer_loss(const df_trainer *t) {
    return t ? t->loss : NAN;
}
const char *df_trainer_dir(const df_trainer *t) {
    return t ? t->dir : NULL;
}
const char *df_trainer_checkpoint(const df_trainer *t) {
    return t ? t->ckpt : NULL;
}
const df_config *df_trainer_config(const df_trainer *t) {
    return t ? &t->cfg : NULL;
}
df_params *df_trainer_params(df_trainer *t) {
    return t ? t->ps : NULL;
}
df_ema *df_trainer_ema(df_trainer *t) {
    return t ? t->ema : NULL;
}
