/* dfrun train: denoising score matching on a graph file's model, with the
 * file's data, diffusion, sampler and train sections; dfrun sample: samples
 * from a run's checkpoint. Checkpoints are safetensors written atomically. */
#define _GNU_SOURCE
#include "train.h"
#include "dfrun/dfrun.h"
#include "dfrun/dsl.h"
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SETS 64

static volatile sig_atomic_t g_stop;
static void on_sigint(int s) {
    (void)s;
    g_stop = 1;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

typedef struct {
    /* flags */
    const char *graph, *out, *data_dir, *run, *ckpt, *outfile, *sampler, *traj;
    const char *sets[MAX_SETS];
    int nsets, resume, threads, batch, n, per_class, klass, steps_s;
    long long steps;
    double epochs, minutes, guidance;
    long long seed;
    int seed_given, guidance_given;
} flags;

/* the run's settings: graph file values, overridden by flags */
typedef struct {
    df_schedule sched;
    int discrete, predict_score, null_class, has_y, classes;
    double t_min, label_dropout;
    df_opt_config opt;
    int warmup, cosine;
    long long steps;
    double epochs, minutes, ema, clip;
    long long ckpt_every, sample_every, log_every;
    int batch;
    uint64_t seed;
    char data_kind[32], data_path[512];
    double val_fraction;
    long long toy_n;
    df_sampler_cfg samp;
    double guidance;
} settings;

static double num(const df_gfile *f, const char *key, double def) {
    const char *s = df_gfile_get(f, key);
    if (!s) return def;
    char *e;
    double v = strtod(s, &e);
    return *e ? def : v;
}
static const char *str(const df_gfile *f, const char *key, const char *def) {
    const char *s = df_gfile_get(f, key);
    return s ? s : def;
}

static int load_settings(const df_gfile *f, settings *s) {
    memset(s, 0, sizeof *s);
    const char *sk = str(f, "diffusion.schedule", "vp_linear");
    int kind = !strcmp(sk, "vp_linear")     ? DF_SCHED_VP
               : !strcmp(sk, "ddpm_linear") ? DF_SCHED_DDPM_LINEAR
               : !strcmp(sk, "cosine")      ? DF_SCHED_COSINE
                                            : DF_SCHED_POLY;
    double bmin = num(f, "diffusion.beta_min", kind == DF_SCHED_VP ? 0.1 : 1e-4);
    double bmax = num(f, "diffusion.beta_max", kind == DF_SCHED_VP ? 20 : 0.02);
    int T = (int)num(f, "diffusion.T", kind == DF_SCHED_POLY ? 10 : 1000);
    if (df_schedule_init(&s->sched, kind, bmin, bmax, T, num(f, "diffusion.power", 2))) return -1;
    s->discrete = kind != DF_SCHED_VP;
    s->t_min = num(f, "diffusion.t_min", 1e-3);
    s->predict_score = !strcmp(str(f, "diffusion.predict", "eps"), "score");
    s->label_dropout = num(f, "diffusion.label_dropout", 0.1);
    s->null_class = (int)num(f, "diffusion.null_class", 10);
    const char *ok = str(f, "train.optimizer", "adam");
    s->opt = df_opt_defaults(!strcmp(ok, "sgd")     ? DF_OPT_SGD
                             : !strcmp(ok, "adamw") ? DF_OPT_ADAMW
                                                    : DF_OPT_ADAM);
    s->opt.lr = (float)num(f, "train.lr", 2e-4);
    s->opt.weight_decay = (float)num(f, "train.weight_decay", s->opt.weight_decay);
    s->opt.momentum = (float)num(f, "train.momentum", s->opt.momentum);
    s->warmup = (int)num(f, "train.warmup", 0);
    s->cosine = !strcmp(str(f, "train.lr_schedule", "constant"), "cosine");
    s->steps = (long long)num(f, "train.steps", 0);
    s->epochs = num(f, "train.epochs", 0);
    s->minutes = num(f, "train.minutes", 0);
    s->ema = num(f, "train.ema", 0.999);
    s->clip = num(f, "train.clip", 1.0);
    s->ckpt_every = (long long)num(f, "train.checkpoint_every", 500);
    s->sample_every = (long long)num(f, "train.sample_every", 0);
    s->log_every = (long long)num(f, "train.log_every", 20);
    s->batch = (int)num(f, "train.batch", 128);
    s->seed = (uint64_t)num(f, "train.seed", 0);
    snprintf(s->data_kind, sizeof s->data_kind, "%s", str(f, "data.kind", "mnist"));
    snprintf(s->data_path, sizeof s->data_path, "%s", str(f, "data.path", "../shared/data/mnist"));
    s->val_fraction = num(f, "data.val_fraction", 0.05);
    s->toy_n = (long long)num(f, "data.n", 20000);
    const char *sn = str(f, "sampler.name", "euler_maruyama");
    int sk2 = df_sampler_by_name(sn);
    s->samp = df_sampler_defaults(sk2 < 0 ? DF_SAMPLER_EULER_MARUYAMA : sk2);
    s->samp.steps = (int)num(f, "sampler.steps", s->samp.steps);
    s->samp.eta = num(f, "sampler.eta", 0);
    s->samp.snr = num(f, "sampler.snr", 0.16);
    s->samp.t_min = s->t_min;
    s->guidance = num(f, "sampler.guidance", 1.0);
    return 0;
}

/* ---------------- the model as graphs ---------------- */

typedef struct {
    df_graph *g;
    df_model_io io;
    df_node *x, *t, *y, *out, *target, *lw, *loss;
    df_node *labels, *features; /* classifier models (no input 't') */
    int clf;
    int64_t B, dim; /* dim: elements per example */
} net;

static int build_net(df_gfile *f, df_params *ps, int64_t B, int train, net *n) {
    memset(n, 0, sizeof *n);
    n->B = B;
    n->g = df_graph_new(ps);
    if (df_gfile_build(f, n->g, B, &n->io)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return -1;
    }
    for (int i = 0; i < n->io.n_in; i++) {
        if (!strcmp(n->io.in_name[i], "x")) n->x = n->io.in[i];
        if (!strcmp(n->io.in_name[i], "t")) n->t = n->io.in[i];
        if (!strcmp(n->io.in_name[i], "y")) n->y = n->io.in[i];
    }
    if (!n->x) {
        fprintf(stderr, "dfrun: %s: the model needs an input 'x'\n", df_gfile_path(f));
        return -1;
    }
    n->out = n->io.out[0];
    n->dim = df_shape_numel(&n->x->shape) / B;
    n->clf = !n->t; /* no time input: a classifier, trained by cross-entropy on labels */
    for (int i = 1; i < n->io.n_out; i++)
        if (!strcmp(n->io.out_name[i], "features")) n->features = n->io.out[i];
    if (n->clf) {
        if (n->out->shape.nd != 2 || n->out->shape.d[0] != B) {
            char a[96];
            fprintf(stderr,
                    "dfrun: %s: a classifier's first output must be logits [B, classes], got %s\n",
                    df_gfile_path(f), df_shape_str(&n->out->shape, a, sizeof a));
            return -1;
        }
        if (n->features) df_keep(n->g, n->features);
        df_keep(n->g, n->out);
        if (train) {
            n->labels = df_input(n->g, "labels", DF_I32, df_shape1(B));
            n->loss = df_cross_entropy(n->g, n->out, n->labels);
        }
    } else if (!df_shape_eq(&n->out->shape, &n->x->shape)) {
        char a[96], b[96];
        fprintf(stderr, "dfrun: %s: the model's output %s must have the shape of x %s\n",
                df_gfile_path(f), df_shape_str(&n->out->shape, a, sizeof a),
                df_shape_str(&n->x->shape, b, sizeof b));
        return -1;
    } else if (train) { /* loss = mean((lw * out - target)^2); lw = 1 (eps) or s (score) */
        df_shape lws = n->x->shape;
        for (int i = 1; i < lws.nd; i++) lws.d[i] = 1;
        n->lw = df_input(n->g, "loss_weight", DF_F32, lws);
        n->target = df_input(n->g, "target", DF_F32, n->x->shape);
        n->loss = df_mse_loss(n->g, df_mul(n->g, n->out, n->lw), n->target);
    }
    if (train) {
        df_keep(n->g, n->loss);
        if (df_graph_status(n->g) || df_backward(n->g, n->loss, NULL, 0)) {
            fprintf(stderr, "dfrun: %s\n",
                    df_graph_status(n->g) ? df_graph_errmsg(n->g) : df_errmsg());
            return -1;
        }
    } else
        df_keep(n->g, n->out);
    if (df_compile(n->g, NULL)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return -1;
    }
    return 0;
}

/* ---------------- checkpoints ---------------- */

static int save_ckpt(const char *path, df_params *ps, df_ema *ema, df_optim *opt, long long step,
                     const df_rng *rng, const char *graph) {
    char *absg = realpath(graph, NULL); /* sampling may run from another directory */
    int np = df_params_count(ps);
    int64_t nstate = 0;
    float *state = df_optim_state(opt, &nstate);
    df_st_tensor *t = calloc(2 * np + 2, sizeof *t);
    char **names = calloc(np, sizeof *names);
    for (int i = 0; i < np; i++) {
        const df_param_info *p = df_params_info(ps, i);
        t[i] = (df_st_tensor){p->name, DF_F32, p->shape, df_param_data(ps, i)};
        names[i] = malloc(strlen(p->name) + 8);
        sprintf(names[i], "ema.%s", p->name);
        t[np + i] = (df_st_tensor){names[i], DF_F32, p->shape, df_ema_data(ema) + p->offset};
    }
    t[2 * np] = (df_st_tensor){"optimizer.state", DF_F32, df_shape1(nstate), state};
    char sstep[32], skey[32], sctr[32], ssteps[32];
    snprintf(sstep, sizeof sstep, "%lld", step);
    snprintf(skey, sizeof skey, "%llu", (unsigned long long)rng->key);
    snprintf(sctr, sizeof sctr, "%llu", (unsigned long long)rng->counter);
    snprintf(ssteps, sizeof ssteps, "%lld", (long long)df_optim_steps(opt));
    const char *meta[] = {
        "format", "dfrun-checkpoint-1", "step", sstep,   "rng.key",          skey, "rng.counter",
        sctr,     "optimizer.steps",    ssteps, "graph", absg ? absg : graph};
    df_status st = df_st_save(path, t, 2 * np + 1, meta, 6);
    free(absg);
    for (int i = 0; i < np; i++) free(names[i]);
    free(names);
    free(t);
    if (st) fprintf(stderr, "dfrun: checkpoint not written: %s\n", df_errmsg());
    return st ? -1 : 0;
}

/* load parameters (ema = 1: the EMA weights into the parameters) */
static int load_params(const char *path, df_params *ps, int use_ema, df_st_file **keep) {
    df_st_file *f = df_st_load(path);
    if (!f) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return -1;
    }
    for (int i = 0; i < df_params_count(ps); i++) {
        const df_param_info *p = df_params_info(ps, i);
        char nm[600];
        snprintf(nm, sizeof nm, "%s%s", use_ema ? "ema." : "", p->name);
        const df_st_tensor *t = df_st_find(f, nm);
        if (!t && use_ema) t = df_st_find(f, p->name);
        char a[96], b[96];
        if (!t || !df_shape_eq(&t->shape, &p->shape) || t->dtype != DF_F32) {
            fprintf(stderr, "dfrun: %s: parameter '%s' %s %s (the graph needs %s)\n", path, p->name,
                    t ? "has shape" : "is missing", t ? df_shape_str(&t->shape, a, sizeof a) : "",
                    df_shape_str(&p->shape, b, sizeof b));
            df_st_free(f);
            return -1;
        }
        memcpy(df_param_data(ps, i), t->data, (size_t)p->numel * 4);
    }
    if (keep)
        *keep = f;
    else
        df_st_free(f);
    return 0;
}

/* ---------------- sampling with the model ---------------- */

typedef struct {
    net *n;
    int32_t *labels; /* [count] or NULL */
    int64_t count;
    double w; /* guidance */
    int null_class;
    const settings *s;
} eps_ctx;

/* eps for `count` samples, in batches of the eval graph; guidance via the null class */
static df_status model_eps(void *vctx, const float *x, int64_t n, int64_t dim, double t,
                           float *eps) {
    eps_ctx *c = vctx;
    net *m = c->n;
    int guided = c->labels && m->y && c->w != 1.0;
    int64_t B = m->B, per = guided ? B / 2 : B;
    float *xb = calloc((size_t)(B * dim), 4), *tb = malloc((size_t)B * 4);
    int32_t *yb = calloc((size_t)B, 4);
    for (int64_t i = 0; i < B; i++) tb[i] = (float)t;
    df_status st = DF_OK;
    double ab = df_sched_ab(&c->s->sched, t), sd = sqrt(1 - ab);
    for (int64_t b0 = 0; b0 < n && !st; b0 += per) {
        int64_t k = n - b0 < per ? n - b0 : per;
        memcpy(xb, x + b0 * dim, (size_t)(k * dim) * 4);
        for (int64_t i = 0; i < k; i++) yb[i] = c->labels ? c->labels[b0 + i] : c->null_class;
        if (guided) { /* second half: the same x with the null class, one batched forward */
            memcpy(xb + per * dim, x + b0 * dim, (size_t)(k * dim) * 4);
            for (int64_t i = 0; i < k; i++) yb[per + i] = c->null_class;
        }
        df_set_input(m->g, m->x, xb, B * dim);
        df_set_input(m->g, m->t, tb, B);
        if (m->y) df_set_input(m->g, m->y, yb, B);
        if ((st = df_run(m->g))) break;
        const float *o = df_data(m->out);
        for (int64_t i = 0; i < k * dim; i++) {
            double e = o[i], e0 = guided ? o[per * dim + i] : e;
            double eg = e0 + c->w * (e - e0);
            eps[b0 * dim + i] = (float)(c->s->predict_score ? -sd * eg : eg);
        }
    }
    free(xb);
    free(tb);
    free(yb);
    return st;
}

/* snapshots of the reverse process for --trajectory */
typedef struct {
    int every, nsnap, max;
    int64_t keep, dim; /* values kept per snapshot */
    float *buf;
} traj_t;
static void traj_cb(void *ctx, const float *x, double t, int step) {
    traj_t *tr = ctx;
    (void)t;
    if (step % tr->every || tr->nsnap >= tr->max) return;
    memcpy(tr->buf + tr->nsnap * tr->keep * tr->dim, x, (size_t)(tr->keep * tr->dim) * 4);
    tr->nsnap++;
}

static int sample_to(df_gfile *f, df_params *ps, const settings *s, net *ev, int64_t count,
                     int32_t *labels, double w, uint64_t seed, float *out, traj_t *tr) {
    eps_ctx c = {ev, labels, count, w, s->null_class, s};
    df_rng r = df_rng_new(seed ^ 0xabcdefull);
    (void)f;
    (void)ps;
    if (df_sample(&s->sched, &s->samp, model_eps, &c, out, count, ev->dim, &r, tr ? traj_cb : NULL,
                  tr)) {
        fprintf(stderr, "dfrun: sampling failed: %s\n", df_errmsg());
        return -1;
    }
    return 0;
}

/* a grid PNG: one row per class for conditional image models, else 8 per row;
 * 2-D toys as a scatter density */
static int write_grid(const char *path, const float *x, int64_t count, const net *ev, int cols) {
    if (ev->x->shape.nd == 4)
        return df_png_grid(path, x, count, (int)ev->x->shape.d[2], (int)ev->x->shape.d[3], cols, 2)
                   ? -1
                   : 0;
    /* 2-D: density image 200x200 over [-3, 3]^2 */
    int S = 200;
    float *img = malloc((size_t)S * S * 4);
    for (int i = 0; i < S * S; i++) img[i] = -1;
    for (int64_t i = 0; i < count; i++) {
        int px = (int)((x[2 * i] + 3) / 6 * S), py = (int)((3 - x[2 * i + 1]) / 6 * S);
        if (px >= 0 && px < S && py >= 0 && py < S && img[py * S + px] < 1)
            img[py * S + px] += 0.5f;
    }
    int r = df_png_grid(path, img, 1, S, S, 1, 2) ? -1 : 0;
    free(img);
    return r;
}

/* ---------------- flags ---------------- */

static const char *usage_train =
    "usage: dfrun train GRAPH.yaml [options]\n"
    "\n"
    "Trains the graph's model by denoising score matching with the file's data, diffusion,\n"
    "sampler and train sections. Writes runs/<graph>/<timestamp>/ (and runs/<graph>/latest):\n"
    "config.yaml, checkpoint.safetensors (atomic), log.jsonl, samples_<step>.png.\n"
    "  --out DIR          run directory (default runs/<graph>/<timestamp>)\n"
    "  --steps N          budget in optimizer steps (train.steps)\n"
    "  --epochs N         budget in passes over the training data (train.epochs)\n"
    "  --minutes M        budget in wall-clock minutes (train.minutes)\n"
    "  --batch B          batch size (train.batch)\n"
    "  --seed S           seed (train.seed)\n"
    "  --threads T        threads (default: DFRUN_THREADS or all cores)\n"
    "  --data DIR         MNIST directory (data.path)\n"
    "  --resume           continue the run in --out (or the latest run) from its checkpoint\n"
    "  --set PATH=VALUE   override a setting of the graph file (repeatable)\n"
    "Ctrl-C stops after the current step and saves a checkpoint.\n";

static const char *usage_sample =
    "usage: dfrun sample [--run DIR | --ckpt FILE --graph GRAPH.yaml] [options]\n"
    "\n"
    "Samples from a trained model (EMA weights). With no --run/--ckpt: the latest run under\n"
    "runs/ (it says which).\n"
    "  --out FILE         .png grid (default samples.png in the run) or .npy float32\n"
    "  --sampler NAME     euler_maruyama, ddpm, ddim, pf_ode_heun, dpmpp_2m, pc_langevin\n"
    "  --steps N          sampler steps\n"
    "  --n N              number of samples (default 64)\n"
    "  --per-class N      N of each class 0..9 in order (one grid row per class)\n"
    "  --class K          all samples of class K\n"
    "  --guidance W       classifier-free guidance weight (1 = conditional model)\n"
    "  --trajectory FILE.png  the reverse process at several times (noise to samples)\n"
    "  --seed S, --batch B, --threads T, --set PATH=VALUE\n";

static int bad(const char *usage, const char *msg, const char *arg) {
    fprintf(stderr, "dfrun: ");
    fprintf(stderr, msg, arg ? arg : "");
    fprintf(stderr, "\n\n%s", usage);
    return 2;
}

static int pint(const char *s, long long lo, long long hi, long long *out) {
    char *e;
    if (!s) return -1;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (!*s || *e || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}
static int pnum(const char *s, double lo, double hi, double *out) {
    char *e;
    if (!s) return -1;
    double v = strtod(s, &e);
    if (!*s || *e || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

static int parse(int argc, char **argv, const char *usage, int sample, flags *fl) {
    memset(fl, 0, sizeof *fl);
    fl->guidance = 1.0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long iv;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 1;
        }
#define NEEDV(name)                                                                                \
    if (!v) return bad(usage, "%s needs a value", name);                                           \
    i++
        if (!strcmp(a, "--set")) {
            NEEDV("--set");
            if (fl->nsets == MAX_SETS) return bad(usage, "at most 64 --set%s", "");
            fl->sets[fl->nsets++] = v;
        } else if (!strcmp(a, "--out")) {
            NEEDV("--out");
            fl->out = v;
        } else if (!strcmp(a, "--threads")) {
            NEEDV("--threads");
            if (pint(v, 1, 1024, &iv))
                return bad(usage, "--threads: expected 1..1024, got '%s'", v);
            fl->threads = (int)iv;
        } else if (!strcmp(a, "--batch")) {
            NEEDV("--batch");
            if (pint(v, 1, 65536, &iv))
                return bad(usage, "--batch: expected 1..65536, got '%s'", v);
            fl->batch = (int)iv;
        } else if (!strcmp(a, "--seed")) {
            NEEDV("--seed");
            if (pint(v, 0, (1ll << 53), &fl->seed))
                return bad(usage, "--seed: expected an integer >= 0, got '%s'", v);
            fl->seed_given = 1;
        } else if (!sample && !strcmp(a, "--steps")) {
            NEEDV("--steps");
            if (pint(v, 1, (1ll << 40), &fl->steps))
                return bad(usage, "--steps: expected a positive integer, got '%s'", v);
        } else if (!sample && !strcmp(a, "--epochs")) {
            NEEDV("--epochs");
            if (pnum(v, 1e-6, 1e9, &fl->epochs))
                return bad(usage, "--epochs: expected a positive number, got '%s'", v);
        } else if (!sample && !strcmp(a, "--minutes")) {
            NEEDV("--minutes");
            if (pnum(v, 1e-6, 1e9, &fl->minutes))
                return bad(usage, "--minutes: expected a positive number, got '%s'", v);
        } else if (!sample && !strcmp(a, "--data")) {
            NEEDV("--data");
            fl->data_dir = v;
        } else if (!sample && !strcmp(a, "--resume")) {
            fl->resume = 1;
        } else if (sample && !strcmp(a, "--run")) {
            NEEDV("--run");
            fl->run = v;
        } else if (sample && !strcmp(a, "--ckpt")) {
            NEEDV("--ckpt");
            fl->ckpt = v;
        } else if (sample && !strcmp(a, "--trajectory")) {
            NEEDV("--trajectory");
            fl->traj = v;
        } else if (sample && !strcmp(a, "--graph")) {
            NEEDV("--graph");
            fl->graph = v;
        } else if (sample && !strcmp(a, "--sampler")) {
            NEEDV("--sampler");
            if (df_sampler_by_name(v) < 0)
                return bad(usage,
                           "--sampler: unknown '%s' (euler_maruyama, ddpm, ddim, pf_ode_heun, "
                           "dpmpp_2m, pc_langevin)",
                           v);
            fl->sampler = v;
        } else if (sample && !strcmp(a, "--steps")) {
            NEEDV("--steps");
            if (pint(v, 1, 100000, &iv))
                return bad(usage, "--steps: expected 1..100000, got '%s'", v);
            fl->steps_s = (int)iv;
        } else if (sample && !strcmp(a, "--n")) {
            NEEDV("--n");
            if (pint(v, 1, 1000000, &iv))
                return bad(usage, "--n: expected 1..1000000, got '%s'", v);
            fl->n = (int)iv;
        } else if (sample && !strcmp(a, "--per-class")) {
            NEEDV("--per-class");
            if (pint(v, 1, 100000, &iv))
                return bad(usage, "--per-class: expected 1..100000, got '%s'", v);
            fl->per_class = (int)iv;
        } else if (sample && !strcmp(a, "--class")) {
            NEEDV("--class");
            if (pint(v, 0, 9, &iv)) return bad(usage, "--class: expected 0..9, got '%s'", v);
            fl->klass = (int)iv + 1;
        } else if (sample && !strcmp(a, "--guidance")) {
            NEEDV("--guidance");
            if (pnum(v, -100, 100, &fl->guidance))
                return bad(usage, "--guidance: expected a number, got '%s'", v);
            fl->guidance_given = 1;
        } else if (a[0] == '-') {
            return bad(usage, "unknown option '%s'", a);
        } else if (!sample && !fl->graph) {
            fl->graph = a;
        } else {
            return bad(usage, "unexpected argument '%s'", a);
        }
#undef NEEDV
    }
    if (!sample && !fl->graph) return bad(usage, "no graph file given%s", "");
    return 0;
}

static void mkdirs(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    mkdir(tmp, 0755);
}

static void graph_stem(const char *graph, char *out, int n) {
    const char *b = strrchr(graph, '/');
    snprintf(out, n, "%s", b ? b + 1 : graph);
    char *d = strrchr(out, '.');
    if (d) *d = 0;
}

/* ---------------- data ---------------- */

static int load_data(const settings *s, const flags *fl, const net *n, df_dataset *ds) {
    const char *k = s->data_kind;
    if (!strcmp(k, "mnist")) {
        const char *dir = fl->data_dir ? fl->data_dir : s->data_path;
        if (df_mnist_load(dir, ds)) {
            if (fl->data_dir) { /* asked for explicitly: an error */
                fprintf(stderr, "dfrun: %s\n", df_errmsg());
                return -1;
            }
            fprintf(stderr,
                    "dfrun: no MNIST files in '%s'; training on the built-in procedural digits "
                    "(use --data DIR for real MNIST)\n",
                    dir);
            if (df_digits_make(20000, s->seed + 1, ds)) return -1;
        }
    } else if (!strcmp(k, "digits")) {
        if (df_digits_make(s->toy_n, s->seed + 1, ds)) return -1;
    } else if (df_toy_make(k, s->toy_n, s->seed + 1, ds)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return -1;
    }
    int64_t per = ds->h ? (int64_t)ds->h * ds->w : 2;
    if (per != n->dim) {
        fprintf(stderr,
                "dfrun: the data (%s) has %lld values per example, the model's x takes %lld\n",
                ds->source, (long long)per, (long long)n->dim);
        return -1;
    }
    return 0;
}

/* ---------------- dfrun train ---------------- */

typedef struct {
    float *x0, *xt, *tgt, *lw, *t, *eps;
    int32_t *y;
} batchbuf;

/* one batch of noised examples drawn with rng r from rows [0, nrows) */
static void make_batch(const settings *s, const df_dataset *ds, int64_t nrows, int64_t off,
                       int64_t B, int64_t dim, df_rng *r, batchbuf *b, int dropout) {
    int32_t *idx = malloc((size_t)B * 4);
    float *u = malloc((size_t)B * 2 * 4);
    df_rng_randint(r, idx, B, (int32_t)nrows);
    df_rng_uniform(r, u, 2 * B);
    df_rng_normal(r, b->eps, B * dim);
    for (int64_t i = 0; i < B; i++) {
        const float *src = ds->x + (off + idx[i]) * dim;
        double t = s->discrete ? (double)(1 + (int)(u[i] * s->sched.T)) / s->sched.T
                               : s->t_min + (1 - s->t_min) * u[i];
        if (t > 1) t = 1;
        double ab = df_sched_ab(&s->sched, t), a = sqrt(ab), sd = sqrt(1 - ab);
        b->t[i] = (float)t;
        b->lw[i] = s->predict_score ? (float)sd : 1.0f;
        for (int64_t j = 0; j < dim; j++) {
            float e = b->eps[i * dim + j];
            b->xt[i * dim + j] = (float)(a * src[j] + sd * e);
            b->tgt[i * dim + j] = s->predict_score ? -e : e;
        }
        b->y[i] = ds->y[off + idx[i]];
        if (dropout && u[B + i] < s->label_dropout) b->y[i] = s->null_class;
    }
    free(idx);
    free(u);
}

static void feed(net *n, batchbuf *b) {
    df_set_input(n->g, n->x, b->xt, n->B * n->dim);
    if (n->clf) {
        df_set_input(n->g, n->labels, b->y, n->B);
        return;
    }
    df_set_input(n->g, n->t, b->t, n->B);
    if (n->y) df_set_input(n->g, n->y, b->y, n->B);
    df_set_input(n->g, n->lw, b->lw, n->B);
    df_set_input(n->g, n->target, b->tgt, n->B * n->dim);
}

/* a classifier's batch: clean examples and their labels */
static void clf_batch(const df_dataset *ds, int64_t nrows, int64_t off, int64_t B, int64_t dim,
                      df_rng *r, batchbuf *b) {
    int32_t *idx = malloc((size_t)B * 4);
    df_rng_randint(r, idx, B, (int32_t)nrows);
    for (int64_t i = 0; i < B; i++) {
        memcpy(b->xt + i * dim, ds->x + (off + idx[i]) * dim, (size_t)dim * 4);
        b->y[i] = ds->y[off + idx[i]];
    }
    free(idx);
}

static int sample_grid(df_gfile *f, df_params *ps, const settings *s, net *ev, df_ema *ema,
                       const char *path) {
    int64_t count = ev->y ? 100 : (ev->x->shape.nd == 4 ? 64 : 4000);
    int32_t *lab = NULL;
    if (ev->y) {
        lab = malloc((size_t)count * 4);
        for (int64_t i = 0; i < count; i++) lab[i] = (int32_t)(i / 10);
    }
    float *out = malloc((size_t)(count * ev->dim) * 4);
    /* progress grids use a fast few-step sampler: DPM-Solver++(2M), 25 steps */
    settings fast = *s;
    fast.samp = df_sampler_defaults(DF_SAMPLER_DPMPP_2M);
    fast.samp.steps = 25;
    fast.samp.t_min = s->t_min;
    if (ema) df_ema_swap(ema);
    int r = sample_to(f, ps, &fast, ev, count, lab, 1.0, 1234, out, NULL);
    if (ema) df_ema_swap(ema);
    if (!r) r = write_grid(path, out, count, ev, ev->y ? 10 : 8);
    free(out);
    free(lab);
    return r;
}

int cmd_train(int argc, char **argv) {
    flags fl;
    int r = parse(argc, argv, usage_train, 0, &fl);
    if (r) return r == 1 ? 0 : r;
    if (fl.threads) df_set_threads(fl.threads);
    df_gfile *f = df_gfile_load(fl.graph, fl.sets, fl.nsets);
    if (!f) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return 1;
    }
    settings s;
    if (load_settings(f, &s)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        df_gfile_free(f);
        return 1;
    }
    if (fl.batch) s.batch = fl.batch;
    if (fl.seed_given) s.seed = (uint64_t)fl.seed;
    if (fl.steps || fl.epochs || fl.minutes)
        s.steps = fl.steps, s.epochs = fl.epochs, s.minutes = fl.minutes;
    int rc = 1;
    df_params *ps = df_params_new();
    net tr = {0}, ev = {0};
    df_dataset ds = {0};
    df_optim *opt = NULL;
    df_ema *ema = NULL;
    FILE *log = NULL;
    batchbuf b = {0};
    if (build_net(f, ps, s.batch, 1, &tr)) goto out;
    if (load_data(&s, &fl, &tr, &ds)) goto out;
    int64_t nval = (int64_t)(ds.n * s.val_fraction), ntrain = ds.n - nval;
    if (ntrain < 1) {
        fprintf(stderr, "dfrun: no training examples left after the validation split\n");
        goto out;
    }
    /* run directory */
    char stem[256], dir[1024], path[1200];
    graph_stem(fl.graph, stem, sizeof stem);
    if (fl.out)
        snprintf(dir, sizeof dir, "%s", fl.out);
    else if (fl.resume) {
        snprintf(path, sizeof path, "runs/%s/latest", stem);
        char *real = realpath(path, NULL);
        if (!real) {
            fprintf(stderr, "dfrun: --resume: no run at '%s' (give --out DIR)\n", path);
            goto out;
        }
        snprintf(dir, sizeof dir, "%s", real);
        free(real);
    } else {
        time_t tt = time(NULL);
        struct tm tm;
        localtime_r(&tt, &tm);
        char ts[64];
        strftime(ts, sizeof ts, "%Y%m%d-%H%M%S", &tm);
        snprintf(dir, sizeof dir, "runs/%s/%s", stem, ts);
    }
    mkdirs(dir);
    if (!fl.out && !fl.resume) { /* runs/<graph>/latest */
        snprintf(path, sizeof path, "runs/%s/latest", stem);
        unlink(path);
        const char *base = strrchr(dir, '/');
        if (symlink(base ? base + 1 : dir, path)) { /* not fatal */
        }
    }
    /* the resolved config: the file and its overrides */
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    if (!fl.resume) {
        FILE *src = fopen(fl.graph, "r"), *dst = fopen(path, "w");
        if (src && dst) {
            fprintf(dst, "# dfrun train %s", fl.graph);
            for (int i = 0; i < fl.nsets; i++) fprintf(dst, " --set %s", fl.sets[i]);
            fprintf(dst, "\n# batch %d, seed %llu\n", s.batch, (unsigned long long)s.seed);
            char buf[4096];
            size_t k;
            while ((k = fread(buf, 1, sizeof buf, src)) > 0) fwrite(buf, 1, k, dst);
        }
        if (src) fclose(src);
        if (dst) fclose(dst);
    }
    df_params_init(ps, s.seed);
    opt = df_optim_new(ps, &s.opt);
    ema = df_ema_new(ps, (float)s.ema);
    if (!opt || !ema) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        goto out;
    }
    df_rng rng = df_rng_new(s.seed);
    long long step = 0;
    char ckpt[1200];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", dir);
    if (fl.resume) {
        df_st_file *cf = NULL;
        if (load_params(ckpt, ps, 0, &cf)) goto out;
        for (int i = 0; i < df_params_count(ps); i++) {
            const df_param_info *p = df_params_info(ps, i);
            char nm[600];
            snprintf(nm, sizeof nm, "ema.%s", p->name);
            const df_st_tensor *t = df_st_find(cf, nm);
            if (t && df_shape_eq(&t->shape, &p->shape))
                memcpy(df_ema_data(ema) + p->offset, t->data, (size_t)p->numel * 4);
        }
        int64_t ns = 0;
        float *st = df_optim_state(opt, &ns);
        const df_st_tensor *ot = df_st_find(cf, "optimizer.state");
        const char *m1 = df_st_meta(cf, "step"), *m2 = df_st_meta(cf, "rng.key"),
                   *m3 = df_st_meta(cf, "rng.counter"), *m4 = df_st_meta(cf, "optimizer.steps");
        if (!ot || df_shape_numel(&ot->shape) != ns || !m1 || !m2 || !m3 || !m4) {
            fprintf(stderr,
                    "dfrun: %s: not a dfrun checkpoint of this graph (optimizer state or step "
                    "missing)\n",
                    ckpt);
            df_st_free(cf);
            goto out;
        }
        memcpy(st, ot->data, (size_t)ns * 4);
        step = atoll(m1);
        rng.key = strtoull(m2, NULL, 10);
        rng.counter = strtoull(m3, NULL, 10);
        df_optim_set_steps(opt, atoll(m4));
        df_st_free(cf);
        fprintf(stderr, "dfrun: resuming %s at step %lld\n", dir, step);
    }
    long long total = s.steps;
    if (s.epochs > 0) {
        long long e = (long long)ceil(s.epochs * ntrain / s.batch);
        if (!total || e < total) total = e;
    }
    if (!total && !(s.minutes > 0)) total = 1000;
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    log = fopen(path, fl.resume ? "a" : "w");
    if (!log) {
        fprintf(stderr, "dfrun: cannot write %s: %s\n", path, strerror(errno));
        goto out;
    }
    fprintf(
        stderr,
        "dfrun: training %s on %s (%lld train, %lld validation), batch %d, %lld parameters -> %s\n",
        fl.graph, ds.source, (long long)ntrain, (long long)nval, s.batch,
        (long long)df_params_numel(ps), dir);
    int64_t B = s.batch, dim = tr.dim;
    b.xt = malloc((size_t)(B * dim) * 4);
    b.tgt = malloc((size_t)(B * dim) * 4);
    b.eps = malloc((size_t)(B * dim) * 4);
    b.lw = malloc((size_t)B * 4);
    b.t = malloc((size_t)B * 4);
    b.y = malloc((size_t)B * 4);
    signal(SIGINT, on_sigint);
    int tty = isatty(2);
    double t0 = now(), tlog = t0, loss_acc = 0;
    long long nacc = 0, start = step;
    int failed = 0;
    while (!g_stop) {
        if (total && step >= total) break;
        if (s.minutes > 0 && now() - t0 >= 60 * s.minutes) break;
        if (tr.clf)
            clf_batch(&ds, ntrain, 0, B, dim, &rng, &b);
        else
            make_batch(&s, &ds, ntrain, 0, B, dim, &rng, &b, 1);
        feed(&tr, &b);
        if (df_run(tr.g)) {
            fprintf(stderr, "\ndfrun: step %lld: %s; stopping (the last checkpoint is kept)\n",
                    step + 1, df_errmsg());
            failed = 1;
            break;
        }
        double gn = df_clip_grad_norm(ps, s.clip > 0 ? s.clip : 0);
        double lr = s.opt.lr;
        if (s.warmup > 0 && step < s.warmup)
            lr *= (step + 1.0) / s.warmup;
        else if (s.cosine && total)
            lr *=
                0.5 *
                (1 + cos(M_PI * (double)(step - s.warmup) / fmax(1.0, (double)(total - s.warmup))));
        if (df_optim_step(opt, (float)lr)) {
            fprintf(stderr, "\ndfrun: step %lld: %s; stopping (the last checkpoint is kept)\n",
                    step + 1, df_errmsg());
            failed = 1;
            break;
        }
        df_ema_update(ema);
        step++;
        loss_acc += *(float *)df_data(tr.loss);
        nacc++;
        int ck = s.ckpt_every > 0 && step % s.ckpt_every == 0;
        if (step % s.log_every == 0 || ck) {
            double el = now() - t0, ips = (step - start) * (double)B / (el > 0 ? el : 1);
            double vloss = NAN;
            if (ck && nval > 0) { /* validation loss on a fixed batch */
                df_rng vr = df_rng_new(s.seed ^ 0x5eed);
                if (tr.clf)
                    clf_batch(&ds, nval, ntrain, B, dim, &vr, &b);
                else
                    make_batch(&s, &ds, nval, ntrain, B, dim, &vr, &b, 0);
                feed(&tr, &b);
                if (!df_run(tr.g)) vloss = *(float *)df_data(tr.loss);
                df_params_zero_grad(ps);
            }
            fprintf(log,
                    "{\"step\": %lld, \"loss\": %.6f, \"lr\": %.3g, \"grad_norm\": %.4f, "
                    "\"img_per_s\": %.1f",
                    step, loss_acc / nacc, lr, gn, ips);
            if (!isnan(vloss)) fprintf(log, ", \"val_loss\": %.6f", vloss);
            fprintf(log, "}\n");
            fflush(log);
            double eta = total ? (total - step) * (el / (step - start)) : (s.minutes * 60 - el);
            char of[48] = "";
            if (total) snprintf(of, sizeof of, "/%lld", total);
            if (tty)
                fprintf(stderr, "\r[%lld%s] loss %.4f  %.1f img/s  ETA %.0fs   ", step, of,
                        loss_acc / nacc, ips, eta);
            else
                fprintf(stderr, "step %lld%s loss %.4f lr %.2e grad %.3f %.1f img/s%s\n", step, of,
                        loss_acc / nacc, lr, gn, ips, isnan(vloss) ? "" : " (checkpoint)");
            loss_acc = 0;
            nacc = 0;
            tlog = now();
        }
        if (ck && save_ckpt(ckpt, ps, ema, opt, step, &rng, fl.graph)) {
            failed = 1;
            break;
        }
        if (!tr.clf && s.sample_every > 0 && step % s.sample_every == 0) {
            if (!ev.g && build_net(f, ps, 100, 0, &ev)) goto out;
            snprintf(path, sizeof path, "%s/samples_%06lld.png", dir, step);
            if (!sample_grid(f, ps, &s, &ev, ema, path) && !tty)
                fprintf(stderr, "wrote %s\n", path);
        }
    }
    (void)tlog;
    if (tty) fprintf(stderr, "\n");
    if (!failed) {
        if (save_ckpt(ckpt, ps, ema, opt, step, &rng, fl.graph)) goto out;
        snprintf(path, sizeof path, "%s/samples_%06lld.png", dir, step);
        if (!tr.clf) {
            if (!ev.g && build_net(f, ps, 100, 0, &ev)) goto out;
            sample_grid(f, ps, &s, &ev, ema, path);
        } else
            snprintf(path, sizeof path, "(none: a classifier)");
        fprintf(stderr, "dfrun: %s after %lld steps (%.1f s); checkpoint %s, samples %s\n",
                g_stop ? "interrupted" : "done", step, now() - t0, ckpt, path);
        rc = 0;
    }
out:
    if (log) fclose(log);
    free(b.xt), free(b.tgt), free(b.eps), free(b.lw), free(b.t), free(b.y);
    df_dataset_free(&ds);
    df_optim_free(opt);
    df_ema_free(ema);
    df_graph_free(tr.g);
    df_graph_free(ev.g);
    df_params_free(ps);
    df_schedule_free(&s.sched);
    df_gfile_free(f);
    return rc;
}

/* ---------------- dfrun sample ---------------- */

int cmd_sample(int argc, char **argv) {
    flags fl;
    int r = parse(argc, argv, usage_sample, 1, &fl);
    if (r) return r == 1 ? 0 : r;
    if (fl.threads) df_set_threads(fl.threads);
    char dir[1024] = "", ckpt[1200], graph[1200];
    if (fl.ckpt) {
        snprintf(ckpt, sizeof ckpt, "%s", fl.ckpt);
        if (!fl.graph) {
            df_st_file *cf = df_st_load(ckpt);
            const char *g = cf ? df_st_meta(cf, "graph") : NULL;
            if (!g) {
                fprintf(stderr, "dfrun: %s: %s; give --graph\n", ckpt,
                        cf ? "no graph recorded" : df_errmsg());
                df_st_free(cf);
                return 1;
            }
            snprintf(graph, sizeof graph, "%s", g);
            df_st_free(cf);
        } else
            snprintf(graph, sizeof graph, "%s", fl.graph);
        const char *sl = strrchr(ckpt, '/');
        snprintf(dir, sizeof dir, "%.*s", sl ? (int)(sl - ckpt) : 1, sl ? ckpt : ".");
    } else {
        if (fl.run)
            snprintf(dir, sizeof dir, "%s", fl.run);
        else { /* the newest runs/<graph>/latest */
            FILE *p = popen("ls -1dt runs/*/latest 2>/dev/null | head -1", "r");
            char line[1024] = "";
            if (p) {
                if (!fgets(line, sizeof line, p)) line[0] = 0;
                pclose(p);
            }
            line[strcspn(line, "\n")] = 0;
            if (!line[0]) {
                fprintf(stderr, "dfrun: no run found under runs/; train first (dfrun train "
                                "GRAPH.yaml) or give --run/--ckpt\n");
                return 1;
            }
            char *real = realpath(line, NULL);
            snprintf(dir, sizeof dir, "%s", real ? real : line);
            free(real);
            fprintf(stderr, "dfrun: sampling from the latest run, %s\n", dir);
        }
        snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", dir);
        df_st_file *cf = df_st_load(ckpt);
        const char *g = cf ? df_st_meta(cf, "graph") : NULL;
        if (!g && !fl.graph) {
            fprintf(stderr, "dfrun: %s\n",
                    cf ? "the checkpoint records no graph; give --graph" : df_errmsg());
            df_st_free(cf);
            return 1;
        }
        snprintf(graph, sizeof graph, "%s", fl.graph ? fl.graph : g);
        df_st_free(cf);
    }
    df_gfile *f = df_gfile_load(graph, fl.sets, fl.nsets);
    if (!f) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return 1;
    }
    settings s;
    int rc = 1;
    df_params *ps = df_params_new();
    net ev = {0};
    float *out = NULL;
    int32_t *lab = NULL;
    if (load_settings(f, &s)) goto out;
    if (fl.sampler)
        s.samp = df_sampler_defaults(df_sampler_by_name(fl.sampler)), s.samp.t_min = s.t_min;
    if (fl.steps_s) s.samp.steps = fl.steps_s;
    if (fl.guidance_given) s.guidance = fl.guidance;
    int B = fl.batch ? fl.batch : 200;
    if (build_net(f, ps, B, 0, &ev)) goto out;
    if (load_params(ckpt, ps, 1, NULL)) goto out;
    int64_t count = fl.per_class ? 10ll * fl.per_class : fl.n ? fl.n : 64;
    if (ev.y) {
        lab = malloc((size_t)count * 4);
        for (int64_t i = 0; i < count; i++)
            lab[i] = fl.per_class ? (int32_t)(i / fl.per_class)
                     : fl.klass   ? fl.klass - 1
                                  : (int32_t)(i % 10);
    } else if (fl.per_class || fl.klass) {
        fprintf(stderr,
                "dfrun: this model has no class input 'y': --per-class/--class don't apply\n");
        goto out;
    }
    out = malloc((size_t)(count * ev.dim) * 4);
    uint64_t seed = fl.seed_given ? (uint64_t)fl.seed : 0;
    double t0 = now();
    traj_t tj = {0};
    if (fl.traj) { /* 8 snapshots of the first samples, then the result */
        tj.max = 8;
        tj.every = s.samp.steps / 8 > 0 ? s.samp.steps / 8 : 1;
        tj.keep = ev.x->shape.nd == 4 ? (count < 10 ? count : 10) : count;
        tj.dim = ev.dim;
        tj.buf = malloc((size_t)((tj.max + 1) * tj.keep * tj.dim) * 4);
    }
    if (sample_to(f, ps, &s, &ev, count, lab, s.guidance, seed, out, fl.traj ? &tj : NULL)) {
        free(tj.buf);
        goto out;
    }
    if (fl.traj) {
        memcpy(tj.buf + tj.nsnap * tj.keep * tj.dim, out, (size_t)(tj.keep * tj.dim) * 4);
        int cols = tj.nsnap + 1, ok = 0;
        if (ev.x->shape.nd == 4) { /* rows: samples; columns: times (noise -> image) */
            int h = (int)ev.x->shape.d[2], w2 = (int)ev.x->shape.d[3];
            float *grid = malloc((size_t)(cols * tj.keep * tj.dim) * 4);
            for (int64_t i = 0; i < tj.keep; i++)
                for (int c = 0; c < cols; c++)
                    memcpy(grid + (i * cols + c) * tj.dim, tj.buf + (c * tj.keep + i) * tj.dim,
                           (size_t)tj.dim * 4);
            ok = !df_png_grid(fl.traj, grid, cols * tj.keep, h, w2, cols, 2);
            free(grid);
        } else { /* 2-D: one density panel per time */
            int S = 120;
            float *pan = malloc((size_t)cols * S * S * 4);
            for (int c = 0; c < cols; c++) {
                float *img = pan + (size_t)c * S * S;
                for (int i = 0; i < S * S; i++) img[i] = -1;
                for (int64_t i = 0; i < tj.keep; i++) {
                    const float *q = tj.buf + (c * tj.keep + i) * 2;
                    int px = (int)((q[0] + 3) / 6 * S), py = (int)((3 - q[1]) / 6 * S);
                    if (px >= 0 && px < S && py >= 0 && py < S && img[py * S + px] < 1)
                        img[py * S + px] += 0.5f;
                }
            }
            ok = !df_png_grid(fl.traj, pan, cols, S, S, cols, 2);
            free(pan);
        }
        free(tj.buf);
        if (!ok) {
            fprintf(stderr, "dfrun: %s\n", df_errmsg());
            goto out;
        }
        fprintf(stderr, "dfrun: trajectory (%d times, noise to samples) -> %s\n", cols, fl.traj);
    }
    char op[1200];
    snprintf(op, sizeof op, "%s", fl.outfile ? fl.outfile : fl.out ? fl.out : "");
    if (!op[0]) snprintf(op, sizeof op, "%s/samples.png", dir);
    const char *ext = strrchr(op, '.');
    int ok;
    if (ev.x->shape.nd == 4) /* images: pixels in [-1, 1] */
        for (int64_t i = 0; i < count * ev.dim; i++)
            out[i] = out[i] < -1 ? -1 : out[i] > 1 ? 1 : out[i];
    if (ext && !strcmp(ext, ".npy")) {
        int64_t shp[4];
        int nd = ev.x->shape.nd;
        shp[0] = count;
        for (int i = 1; i < nd; i++) shp[i] = ev.x->shape.d[i];
        ok = !df_npy_write(op, out, shp, nd);
        if (!ok) fprintf(stderr, "dfrun: %s\n", df_errmsg());
    } else if (ext && !strcmp(ext, ".png")) {
        ok = !write_grid(op, out, count, &ev, fl.per_class ? fl.per_class : 10);
        if (!ok) fprintf(stderr, "dfrun: %s\n", df_errmsg());
    } else {
        fprintf(stderr, "dfrun: --out must end in .png or .npy, got '%s'\n", op);
        goto out;
    }
    if (!ok) goto out;
    fprintf(stderr, "dfrun: %lld samples with %s (%d steps, guidance %g) in %.1f s -> %s\n",
            (long long)count, df_sampler_name(s.samp.kind), s.samp.steps, s.guidance, now() - t0,
            op);
    rc = 0;
out:
    free(out);
    free(lab);
    df_graph_free(ev.g);
    df_params_free(ps);
    df_schedule_free(&s.sched);
    df_gfile_free(f);
    return rc;
}

/* ---------------- dfrun bench ---------------- */

static const char *usage_bench =
    "usage: dfrun bench GRAPH.yaml [--batch B] [--sample-batch S] [--steps N] [--threads T]\n"
    "                   [--set PATH=VALUE]...\n"
    "\n"
    "Times training steps (forward, backward, Adam) at batch B and sampling forwards at\n"
    "batch S on random data after a warm-up; prints img/s, GFLOP/s, planned and peak memory.\n"
    "Compare with /usr/bin/python3 ../shared/bench/torch_ref.py bench in the same session.\n";

int cmd_bench(int argc, char **argv) {
    const char *graph = NULL, *sets[MAX_SETS];
    int nsets = 0, B = 128, SB = 256, steps = 10;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long iv;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_bench, stdout);
            return 0;
        } else if (!strcmp(a, "--batch") && v && !pint(v, 1, 65536, &iv))
            B = (int)iv, i++;
        else if (!strcmp(a, "--sample-batch") && v && !pint(v, 1, 65536, &iv))
            SB = (int)iv, i++;
        else if (!strcmp(a, "--steps") && v && !pint(v, 1, 100000, &iv))
            steps = (int)iv, i++;
        else if (!strcmp(a, "--threads") && v && !pint(v, 1, 1024, &iv))
            df_set_threads((int)iv), i++;
        else if (!strcmp(a, "--set") && v && nsets < MAX_SETS)
            sets[nsets++] = v, i++;
        else if (a[0] == '-')
            return bad(usage_bench, "unknown option or bad value: '%s'", a);
        else if (!graph)
            graph = a;
        else
            return bad(usage_bench, "unexpected argument '%s'", a);
    }
    if (!graph) return bad(usage_bench, "no graph file given%s", "");
    df_gfile *f = df_gfile_load(graph, sets, nsets);
    if (!f) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return 1;
    }
    int rc = 1;
    df_params *ps = df_params_new();
    net tr = {0}, ev = {0};
    df_optim *opt = NULL;
    batchbuf b = {0};
    settings s = {0};
    if (load_settings(f, &s) || build_net(f, ps, B, 1, &tr) || build_net(f, ps, SB, 0, &ev))
        goto out;
    df_params_init(ps, 0);
    opt = df_optim_new(ps, &s.opt);
    int64_t dim = tr.dim;
    b.xt = malloc((size_t)(B * dim) * 4), b.tgt = malloc((size_t)(B * dim) * 4);
    b.eps = malloc((size_t)(B * dim) * 4), b.lw = malloc((size_t)B * 4),
    b.t = malloc((size_t)B * 4);
    b.y = calloc((size_t)(B > SB ? B : SB), 4);
    df_rng r = df_rng_new(1);
    df_rng_normal(&r, b.xt, B * dim);
    df_rng_normal(&r, b.tgt, B * dim);
    df_rng_uniform(&r, b.t, B);
    for (int64_t i = 0; i < B; i++) b.lw[i] = 1, b.y[i] = (int32_t)(i % 10);
    feed(&tr, &b);
    if (df_run(tr.g) || df_optim_step(opt, -1)) goto fail; /* warm-up */
    double t0 = now();
    for (int k = 0; k < steps; k++)
        if (df_run(tr.g) || df_optim_step(opt, -1)) goto fail;
    double ts = (now() - t0) / steps;
    float *xs = malloc((size_t)(SB * dim) * 4), *tt = malloc((size_t)SB * 4);
    df_rng_normal(&r, xs, SB * dim);
    for (int64_t i = 0; i < SB; i++) tt[i] = 0.5f;
    df_set_input(ev.g, ev.x, xs, SB * dim);
    if (ev.t) df_set_input(ev.g, ev.t, tt, SB);
    if (ev.y) df_set_input(ev.g, ev.y, b.y, SB);
    free(xs);
    free(tt);
    if (df_run(ev.g)) goto fail;
    int ne = steps / 2 > 2 ? steps / 2 : 2;
    t0 = now();
    for (int k = 0; k < ne; k++)
        if (df_run(ev.g)) goto fail;
    double es = (now() - t0) / ne;
    df_plan_stats st, se;
    df_plan_get_stats(tr.g, &st);
    df_plan_get_stats(ev.g, &se);
    double fl = df_graph_flops(tr.g, 0) / B;
    FILE *p = fopen("/proc/self/status", "r");
    char line[256];
    long hwm = 0;
    while (p && fgets(line, sizeof line, p))
        if (!strncmp(line, "VmHWM:", 6)) hwm = atol(line + 6);
    if (p) fclose(p);
    printf("{\"graph\": \"%s\", \"params\": %lld, \"batch\": %d, \"threads\": %d, "
           "\"train_step_s\": %.4f, "
           "\"train_img_per_s\": %.1f, \"train_gflop_per_s\": %.1f, \"eval_batch\": %d, "
           "\"eval_s\": %.4f, "
           "\"eval_img_per_s\": %.1f, \"fwd_gflop_per_img\": %.4f, \"train_planned_mib\": %.1f, "
           "\"train_no_reuse_mib\": %.1f, \"eval_planned_mib\": %.1f, \"peak_rss_mib\": %.0f}\n",
           graph, (long long)df_params_numel(ps), B, df_get_threads(), ts, B / ts,
           3 * fl * B / ts / 1e9, SB, es, SB / es, fl / 1e9, st.planned_bytes / 1048576.0,
           st.naive_bytes / 1048576.0, se.planned_bytes / 1048576.0, hwm / 1024.0);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "dfrun: %s\n", df_errmsg());
out:
    free(b.xt), free(b.tgt), free(b.eps), free(b.lw), free(b.t), free(b.y);
    df_optim_free(opt);
    df_graph_free(tr.g);
    df_graph_free(ev.g);
    df_params_free(ps);
    df_gfile_free(f);
    df_schedule_free(&s.sched);
    return rc;
}
