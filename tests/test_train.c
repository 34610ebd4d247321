/* The run library, in-process: the trainer on the ring-of-8 toy and sampling
 * from its checkpoint alone; exact resume; self-describing checkpoints (the
 * run's --set overrides, a graph file edited after training, old
 * checkpoints, a mismatching graph); EMA warm-up; config values from
 * expressions. */
#include "harness.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/dfrun_train_XXXXXX";

static void path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

/* train a graph file with overrides into dir/<name>; returns the trainer's status */
static df_status train(const char *graph, const char *name, const char *const *sets, int nsets,
                       int resume) {
    char out[600];
    path(out, sizeof out, name);
    df_train_opts o = {.graph = graph,
                       .sets = sets,
                       .nsets = nsets,
                       .out_dir = out,
                       .resume = resume,
                       .no_outputs = 1};
    df_trainer *t = df_trainer_new(&o);
    if (!t) {
        fprintf(stderr, "trainer: %s\n", df_errmsg());
        return DF_EINVAL;
    }
    df_status st = df_trainer_run(t);
    if (st) fprintf(stderr, "train: %s\n", df_errmsg());
    df_trainer_free(t);
    return st;
}

/* n samples from a run's checkpoint (EMA weights), caller frees */
static float *sample_hint(const char *name, const char *graph, int64_t n, uint64_t seed,
                          int64_t hint) {
    char ck[600];
    path(ck, sizeof ck, name);
    df_gen_opts o = {.ckpt = ck, .graph = graph, .count = hint};
    df_generator *g = df_generator_open(&o);
    if (!g) return NULL;
    float *x = malloc((size_t)(n * df_generator_model(g)->dim) * 4);
    df_gen_request r = {n, NULL, NULL, NULL, seed, NULL, NULL};
    if (df_generate(g, &r, x)) free(x), x = NULL;
    df_generator_free(g);
    return x;
}
static float *sample(const char *name, const char *graph, int64_t n, uint64_t seed) {
    return sample_hint(name, graph, n, seed, 0);
}

static void test_ring_end_to_end(void **state) {
    (void)state;
    const char *half[] = {"train.batch=256"}; /* half the file's batch: quicker under ASan */
    assert_int_equal(train(DFRUN_SOURCE_DIR "/graphs/toy_ring.yaml", "ring", half, 1, 0), 0);
    float *x = sample("ring", NULL, 4000, 1);
    assert_non_null(x);
    /* the forward batch sized to the request (60 instead of 200) changes no sample */
    float *s200 = sample("ring", NULL, 30, 9), *s60 = sample_hint("ring", NULL, 30, 9, 30);
    assert_non_null(s200), assert_non_null(s60);
    assert_memory_equal(s200, s60, 30 * 2 * 4);
    free(s200), free(s60);
    int hit[8] = {0}, near = 0;
    for (int64_t i = 0; i < 4000; i++) {
        double best = 1e9;
        int bk = 0;
        for (int k = 0; k < 8; k++) {
            double dx = x[2 * i] - 2 * cos(k * M_PI / 4), dy = x[2 * i + 1] - 2 * sin(k * M_PI / 4);
            double d = sqrt(dx * dx + dy * dy);
            if (d < best) best = d, bk = k;
        }
        if (best < 0.3) near++, hit[bk]++;
    }
    fprintf(stderr, "ring: %.1f%% of samples within 3 std of a mode\n", near / 40.0);
    assert_true(near >= 0.9 * 4000);
    for (int k = 0; k < 8; k++) assert_true(hit[k] > 0);
    free(x);
}

static int64_t file_size(const char *p) {
    struct stat sb;
    return stat(p, &sb) ? -1 : sb.st_size;
}

/* 200 steps straight == 100 steps, then resume to 200: the same log lines
 * (losses) and bitwise the same weights, EMA and optimizer state */
static void test_resume_exact(void **state) {
    (void)state;
    const char *g = DFRUN_SOURCE_DIR "/graphs/toy_moons.yaml";
    const char *s200[] = {"train.log_every=10", "train.checkpoint_every=50", "train.steps=200",
                          "train.seed=3"};
    const char *s100[] = {"train.log_every=10", "train.checkpoint_every=50", "train.steps=100",
                          "train.seed=3"};
    const char *more[] = {"train.steps=200"}; /* the seed comes from the checkpoint */
    assert_int_equal(train(g, "full", s200, 4, 0), 0);
    assert_int_equal(train(g, "half", s100, 4, 0), 0);
    char stale[700]; /* a killed checkpoint write: removed on resume */
    path(stale, sizeof stale, "half/checkpoint.safetensors.tmp.99999");
    FILE *f = fopen(stale, "w");
    fputs("partial", f);
    fclose(f);
    assert_int_equal(train(NULL, "half", more, 1, 1), 0);
    assert_int_equal(file_size(stale), -1);
    char pa[700], pb[700];
    path(pa, sizeof pa, "full/log.jsonl");
    path(pb, sizeof pb, "half/log.jsonl");
    FILE *fa = fopen(pa, "r"), *fb = fopen(pb, "r");
    assert_non_null(fa);
    assert_non_null(fb);
    char la[512], lb[512];
    int lines = 0;
    while (fgets(la, sizeof la, fa)) {
        assert_non_null(fgets(lb, sizeof lb, fb));
        *strstr(la, "\"img_per_s\"") = *strstr(lb, "\"img_per_s\"") = 0; /* timing differs */
        if (strcmp(la, lb)) fprintf(stderr, "resume differs:\n  %s\n  %s\n", la, lb);
        assert_string_equal(la, lb);
        lines++;
    }
    assert_null(fgets(lb, sizeof lb, fb)); /* no duplicated steps */
    assert_int_equal(lines, 20);
    fclose(fa), fclose(fb);
    path(pa, sizeof pa, "full/checkpoint.safetensors");
    path(pb, sizeof pb, "half/checkpoint.safetensors");
    df_st_file *a = df_st_load(pa), *b = df_st_load(pb);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(df_st_count(a), df_st_count(b));
    for (int i = 0; i < df_st_count(a); i++) {
        const df_st_tensor *ta = df_st_at(a, i), *tb = df_st_find(b, ta->name);
        assert_non_null(tb);
        int64_t n = df_shape_numel(&ta->shape);
        assert_int_equal(n, df_shape_numel(&tb->shape));
        assert_memory_equal(ta->data, tb->data, (size_t)n * 4);
    }
    assert_string_equal(df_st_meta(a, "ema.updates"), "200");
    df_st_free(a), df_st_free(b);
}

/* a copy of the ring graph in dir (so it can be edited after training) */
static void copy_graph(const char *to) {
    FILE *in = fopen(DFRUN_SOURCE_DIR "/graphs/toy_ring.yaml", "r"), *out = fopen(to, "w");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, k, out);
    fclose(in), fclose(out);
}

/* Regressions: sampling used to re-read the graph file without the run's
 * overrides ("has shape [64, 32] (the graph needs [128, 32])"), and an edited
 * file changed what sampling built. */
static void test_self_describing(void **state) {
    (void)state;
    char g[600], ck[700];
    path(g, sizeof g, "ring_copy.yaml");
    copy_graph(g);
    const char *sets[] = {"vars.hidden=64", "train.steps=30", "train.seed=2"}; /* rng key >= 2^63 */
    assert_int_equal(train(g, "small", sets, 3, 0), 0);
    float *a = sample("small", NULL, 256, 7);
    assert_non_null(a); /* the override is in the checkpoint */
    FILE *f = fopen(g, "w");
    fputs("model: {inputs: {x: [B, 2], t: [B]}, body: [silu]}\n", f); /* edited after training */
    fclose(f);
    float *b = sample("small", NULL, 256, 7);
    assert_non_null(b);
    assert_memory_equal(a, b, 256 * 2 * 4); /* the file no longer matters */
    free(a), free(b);
    /* a graph given explicitly is checked against the stored one */
    path(ck, sizeof ck, "small");
    df_gen_opts o = {.ckpt = ck, .graph = DFRUN_SOURCE_DIR "/graphs/toy_ring.yaml"};
    assert_null(df_generator_open(&o));
    assert_non_null(strstr(df_errmsg(), "parameter 'temb.weight' is [128, 32]"));
    assert_non_null(strstr(df_errmsg(), "[64, 32] in the checkpoint"));
    /* the run's config.yaml is the resolved document: it loads and builds the same model */
    char cy[700];
    path(cy, sizeof cy, "small/config.yaml");
    df_gfile *gf = df_gfile_load(cy, NULL, 0);
    assert_non_null(gf);
    assert_int_equal(df_gfile_config(gf)->train.steps, 30);
    const char *h64[] = {"vars.hidden=64"};
    df_gfile *ref = df_gfile_load(DFRUN_SOURCE_DIR "/graphs/toy_ring.yaml", h64, 1);
    df_params *ps = df_params_new(), *pr = df_params_new();
    assert_int_equal(df_model_params(gf, ps), 0);
    assert_int_equal(df_model_params(ref, pr), 0);
    assert_int_equal(df_params_numel(ps), df_params_numel(pr));
    df_params_free(ps), df_params_free(pr);
    df_gfile_free(gf), df_gfile_free(ref);
}

/* a checkpoint written without its graph (format 1) still loads through the
 * graph file's path, with a notice */
static void test_old_checkpoint(void **state) {
    (void)state;
    char ck[700], old[700];
    path(ck, sizeof ck, "ring/checkpoint.safetensors");
    path(old, sizeof old, "old.safetensors");
    df_ckpt c;
    assert_int_equal(df_ckpt_open(ck, &c), 0);
    assert_non_null(c.graph_doc);
    assert_int_equal(c.format, 2);
    df_params *ps = df_params_new();
    df_gfile *f = df_ckpt_graph(&c, NULL, NULL, 0, NULL, 0);
    assert_non_null(f);
    assert_int_equal(df_model_params(f, ps), 0);
    assert_int_equal(df_ckpt_load_params(&c, ps, DF_WEIGHTS_EMA), 0);
    df_ckpt_state s = {ps, NULL, NULL, 0, {0, 0}, NULL, DFRUN_SOURCE_DIR "/graphs/toy_ring.yaml",
                       1};
    assert_int_equal(df_ckpt_save(old, &s), 0);
    char bad[700]; /* a NaN weight is refused when loading, not sampled from */
    path(bad, sizeof bad, "nan.safetensors");
    df_params_data(ps)[3] = NAN;
    s.graph_doc = c.graph_doc;
    assert_int_equal(df_ckpt_save(bad, &s), 0);
    df_gen_opts ob = {.ckpt = bad, .weights = DF_WEIGHTS_RAW};
    assert_null(df_generator_open(&ob));
    assert_non_null(strstr(df_errmsg(), "holds a non-finite value"));
    df_ckpt_close(&c);
    df_gfile_free(f);
    df_params_free(ps);
    df_gen_opts o = {.ckpt = old, .weights = DF_WEIGHTS_RAW};
    df_generator *g = df_generator_open(&o);
    assert_non_null(g);
    assert_non_null(strstr(df_generator_notice(g), "older checkpoint"));
    df_generator_free(g);
    o.weights = DF_WEIGHTS_EMA; /* not stored: a clear error */
    assert_null(df_generator_open(&o));
    assert_non_null(strstr(df_errmsg(), "tensor 'ema.time.freq' is missing"));
}

/* EMA warm-up: the initial weights' share after n updates is
 * prod_k min(decay, (1 + k) / (10 + k)), tiny after 1000 updates, where a
 * plain EMA of 0.999 still holds 37% of them. */
static void test_ema_warmup(void **state) {
    (void)state;
    df_params *ps = df_params_new();
    int w = df_params_get(ps, "w", df_shape1(1), (df_init){DF_INIT_ZEROS, 0});
    assert_int_equal(df_params_alloc(ps), 0);
    df_ema *plain = df_ema_new(ps, 0.999f, 0), *warm = df_ema_new(ps, 0.999f, 1);
    assert_true(fabsf(df_ema_decay_now(warm) - 0.1f) < 1e-7); /* (1 + 0) / (10 + 0) */
    df_param_data(ps, w)[0] = 1;                              /* trained weights: 1; initial: 0 */
    for (int i = 0; i < 1000; i++) df_ema_update(plain), df_ema_update(warm);
    assert_int_equal(df_ema_updates(warm), 1000);
    double init_plain = 1 - df_ema_data(plain)[0], init_warm = 1 - df_ema_data(warm)[0];
    fprintf(stderr, "initial weights' share after 1000 updates: %.3f plain, %.2e warm-up\n",
            init_plain, init_warm);
    assert_true(fabs(init_plain - pow(0.999, 1000)) < 1e-3);
    assert_true(init_warm < 1e-3);
    assert_true(fabsf(df_ema_decay_now(warm) - 1001.0f / 1010) < 1e-6);
    df_ema_set_updates(warm, 20000); /* (1 + n) / (10 + n) > decay: capped */
    assert_true(df_ema_decay_now(warm) == 0.999f);
    df_ema_free(plain), df_ema_free(warm);
    df_params_free(ps);
}

static const char *write_text(const char *name, const char *text) {
    static char p[700];
    path(p, sizeof p, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

/* Regression: train: {steps: $nsteps} passed check but training ignored it;
 * a malformed number became the default. */
static void test_config_expressions(void **state) {
    (void)state;
    const char *model = "model:\n  inputs: {x: [B, 2], t: [B]}\n  body:\n"
                        "    - linear: {in: x, out: 2}\n";
    char text[1024];
    snprintf(text, sizeof text,
             "vars: {nsteps: 7, base: 0.001}\n%sdata: {kind: moons, n: 500}\n"
             "train: {steps: $nsteps, lr: $base * 2, batch: $nsteps * 4}\n",
             model);
    const char *g = write_text("expr.yaml", text);
    char out[600];
    path(out, sizeof out, "expr");
    df_train_opts o = {.graph = g, .out_dir = out, .no_outputs = 1};
    df_trainer *t = df_trainer_new(&o);
    assert_non_null(t);
    assert_int_equal(df_trainer_total(t), 7);
    assert_int_equal(df_trainer_config(t)->train.batch, 28);
    assert_true(fabs(df_trainer_config(t)->train.lr - 0.002) < 1e-12);
    assert_int_equal(df_trainer_run(t), 0);
    assert_int_equal(df_trainer_step_count(t), 7);
    df_trainer_free(t);
    snprintf(text, sizeof text, "%strain: {lr: 1e-3x}\n", model);
    assert_null(df_gfile_load(write_text("bad.yaml", text), NULL, 0));
    assert_non_null(strstr(df_errmsg(), "bad.yaml:5:"));
    assert_non_null(strstr(df_errmsg(), "train.lr: expected a number"));
    snprintf(text, sizeof text, "%sdiffusion: {T: 100}\n", model); /* vp_linear has no T */
    assert_null(df_gfile_load(write_text("bad2.yaml", text), NULL, 0));
    assert_non_null(strstr(df_errmsg(), "bad2.yaml:5:"));
    assert_non_null(strstr(df_errmsg(), "diffusion.T = 100 is not used"));
}

/* the latest run under a runs directory: the newest checkpoint behind a
 * <graph>/latest link (dfrun sample used to find it with popen("ls -1dt ...")) */
static void test_latest_run(void **state) {
    (void)state;
    char root[600], p[800], got[1200];
    path(root, sizeof root, "runs");
    assert_int_equal(df_ckpt_latest_run(root, got, sizeof got), DF_EIO);
    assert_non_null(strstr(df_errmsg(), "runs"));
    const char *sets[] = {"train.steps=2"};
    const char *gs[] = {DFRUN_SOURCE_DIR "/graphs/toy_moons.yaml",
                        DFRUN_SOURCE_DIR "/graphs/toy_ring.yaml"};
    for (int i = 0; i < 2; i++) {
        df_train_opts o = {
            .graph = gs[i], .sets = sets, .nsets = 1, .runs_root = root, .no_outputs = 1};
        df_trainer *t = df_trainer_new(&o);
        assert_non_null(t);
        assert_int_equal(df_trainer_run(t), 0);
        df_trainer_free(t);
        usleep(20000);
    }
    assert_int_equal(df_ckpt_latest_run(root, got, sizeof got), 0);
    snprintf(p, sizeof p, "%s/toy_ring/", root);
    assert_non_null(strstr(got, "/runs/toy_ring/")); /* the newest, resolved through latest */
    assert_null(strstr(got, "latest"));
}

int main(void) {
    assert_non_null(mkdtemp(dir));
    df_set_threads(2);
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_ring_end_to_end), cmocka_unit_test(test_resume_exact),
        cmocka_unit_test(test_self_describing), cmocka_unit_test(test_old_checkpoint),
        cmocka_unit_test(test_ema_warmup),      cmocka_unit_test(test_config_expressions),
        cmocka_unit_test(test_latest_run),
    };
    int r = cmocka_run_group_tests_name("train", t, NULL, NULL);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) r |= 0;
    return r;
}
