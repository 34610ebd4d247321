/* The config table: every key accepted by the DSL is used. For each key a
 * probe value (with, where the key applies only in some settings, the
 * settings that make it apply) must change what a short training run and
 * sampling produce, or be rejected with a message naming the key. Also:
 * typed setting from text, and resolved documents that load back to the
 * same config and model. */
#include "harness.h"
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[] = "/tmp/dfrun_config_XXXXXX";
static char graph[700], imgraph[700], convgraph[700], mnist[700];

/* a class-conditional 2-D model small enough for dozens of runs */
static const char *cond2d =
    "vars: {h: 32}\n"
    "model:\n"
    "  inputs: {x: [B, 2], t: [B], y: {shape: [B], dtype: int32}}\n"
    "  body:\n"
    "    - fourier: {in: t, dim: 16, name: time}\n"
    "    - linear: {out: $h, as: temb}\n"
    "    - embedding: {in: y, num: 12, dim: $h, as: yemb}\n"
    "    - linear: {in: x, out: $h}\n"
    "    - add: {in: [_, temb]}\n"
    "    - add: {in: [_, yemb]}\n"
    "    - silu\n"
    "    - linear: {out: 2}\n"
    "data: {kind: ring8, n: 2000}\n"
    "sampler: {steps: 20}\n"
    "train: {batch: 64, steps: 4, log_every: 1, checkpoint_every: 2, ema: 0.9, lr: 0.01}\n";

/* 28x28 images (for data.path, with MNIST-format files written here) */
static const char *img = "model:\n"
                         "  inputs: {x: [B, 1, 28, 28], t: [B]}\n"
                         "  body:\n"
                         "    - reshape: {in: x, shape: \"$[B, 784]\"}\n"
                         "    - linear: {out: 784}\n"
                         "    - reshape: {shape: \"$[B, 1, 28, 28]\"}\n"
                         "sampler: {steps: 5}\n"
                         "train: {batch: 16, steps: 2, log_every: 1}\n";

/* with a 3x3 convolution of 8 input channels (the Winograd path): precision */
static const char *conv = "model:\n"
                          "  inputs: {x: [B, 1, 28, 28], t: [B]}\n"
                          "  body:\n"
                          "    - conv2d: {in: x, out: 8}\n"
                          "    - conv2d: {out: 8}\n" /* 8 -> 8: bf16 products apply */
                          "    - conv2d: {out: 1}\n"
                          "sampler: {steps: 5}\n"
                          "train: {batch: 16, steps: 2, log_every: 1}\n";

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* What a run produced: weights, EMA, log (without timings), files, samples.
 * 0 if the run was rejected (message in err). */
static uint64_t fingerprint(const char *g, const char *const *sets, int nsets, char *err) {
    static int run = 0;
    char out[700];
    snprintf(out, sizeof out, "%s/run%d", dir, run++);
    df_train_opts o = {.graph = g, .sets = sets, .nsets = nsets, .out_dir = out};
    df_trainer *t = df_trainer_new(&o);
    if (!t) {
        snprintf(err, 1000, "%s", df_errmsg());
        return 0;
    }
    assert_int_equal(df_trainer_run(t), 0);
    uint64_t h = 1469598103934665603ull;
    df_params *ps = df_trainer_params(t);
    h = fnv(h, df_params_data(ps), (size_t)df_params_block_numel(ps) * 4);
    h = fnv(h, df_ema_data(df_trainer_ema(t)), (size_t)df_params_block_numel(ps) * 4);
    int64_t steps = df_trainer_step_count(t);
    h = fnv(h, &steps, sizeof steps);
    df_trainer_free(t);
    char p[800], line[512];
    snprintf(p, sizeof p, "%s/log.jsonl", out);
    FILE *f = fopen(p, "r");
    while (f && fgets(line, sizeof line, f)) {
        char *ips = strstr(line, "\"img_per_s\": "); /* timing: blanked */
        for (ips = ips ? ips + 13 : NULL; ips && *ips && *ips != ',' && *ips != '}'; ips++)
            *ips = ' ';
        h = fnv(h, line, strlen(line));
    }
    if (f) fclose(f);
    DIR *d = opendir(out);
    struct dirent *e;
    int nfiles = 0;
    while ((e = readdir(d))) nfiles++;
    closedir(d);
    h = fnv(h, &nfiles, sizeof nfiles);
    df_gen_opts go = {.ckpt = out};
    df_generator *gen = df_generator_open(&go);
    assert_non_null(gen);
    const df_model *m = df_generator_model(gen);
    int32_t lab[16];
    for (int i = 0; i < 16; i++) lab[i] = i % 2;
    float *x = malloc((size_t)(16 * m->dim) * 4);
    df_gen_request r = {16, m->y ? lab : NULL, NULL, NULL, 5, NULL, NULL};
    assert_int_equal(df_generate(gen, &r, x), 0);
    h = fnv(h, x, (size_t)(16 * m->dim) * 4);
    free(x);
    df_generator_free(gen);
    return h;
}

typedef struct {
    const char *key, *probe;
    const char *with; /* a setting that makes the key apply (baseline and probe) */
    int images;       /* 1: probe on the 28x28 model (the value: the MNIST files written in
                         dir); 2: on the convolutional one with the value given */
} probe;

static const probe probes[] = {
    {"data.kind", "moons", NULL, 0},
    {"data.path", NULL, NULL, 1}, /* the MNIST files written in dir */
    {"data.val_fraction", "0.3", NULL, 0},
    {"data.n", "500", NULL, 0},
    {"diffusion.schedule", "cosine", NULL, 0},
    {"diffusion.beta_min", "0.3", NULL, 0},
    {"diffusion.beta_max", "10", NULL, 0},
    {"diffusion.T", "20", "diffusion.schedule=ddpm_linear", 0},
    {"diffusion.power", "3", "diffusion.schedule=poly", 0},
    {"diffusion.predict", "score", NULL, 0},
    {"diffusion.t_min", "0.2", NULL, 0},
    {"diffusion.label_dropout", "0.6", NULL, 0},
    {"diffusion.null_class", "11", NULL, 0},
    {"sampler.name", "ddim", NULL, 0},
    {"sampler.steps", "7", NULL, 0},
    {"sampler.eta", "0.7", "sampler.name=ddim", 0},
    {"sampler.guidance", "3", NULL, 0},
    {"sampler.snr", "0.4", "sampler.name=pc_langevin", 0},
    {"sampler.corrector_steps", "2", "sampler.name=pc_langevin", 0},
    {"sampler.clip_x0", "0.5", "sampler.name=ddim", 0},
    {"train.optimizer", "sgd", NULL, 0},
    {"train.lr", "0.02", NULL, 0},
    {"train.weight_decay", "0.5", NULL, 0},
    {"train.betas", "[0.5, 0.9]", NULL, 0},
    {"train.eps", "0.01", NULL, 0},
    {"train.momentum", "0.5", "train.optimizer=sgd", 0},
    {"train.warmup", "3", NULL, 0},
    {"train.lr_schedule", "cosine", NULL, 0},
    {"train.batch", "32", NULL, 0},
    {"train.steps", "3", NULL, 0},
    {"train.epochs", "0.01", NULL, 0},
    {"train.minutes", "1e-9", NULL, 0},
    {"train.ema", "0.15", NULL, 0}, /* below the warm-up decay of the later steps */
    {"train.ema_warmup", "false", NULL, 0},
    {"train.clip", "0.001", NULL, 0},
    {"train.precision", "bf16", NULL, 2},
    {"train.checkpoint_every", "3", NULL, 0},
    {"train.sample_every", "2", NULL, 0},
    {"train.log_every", "2", NULL, 0},
    {"train.seed", "5", NULL, 0},
};

/* an IDX file of n items of the given dims */
static void write_idx(const char *name, int nd, const int32_t *dims, const uint8_t *data) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s", mnist, name);
    FILE *f = fopen(p, "wb");
    uint8_t hdr[4] = {0, 0, 8, (uint8_t)nd};
    fwrite(hdr, 1, 4, f);
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        uint8_t be[4] = {dims[i] >> 24, dims[i] >> 16, dims[i] >> 8, dims[i]};
        fwrite(be, 1, 4, f);
        n *= dims[i];
    }
    fwrite(data, 1, (size_t)n, f);
    fclose(f);
}

static void setup_files(void) {
    snprintf(graph, sizeof graph, "%s/cond2d.yaml", dir);
    snprintf(imgraph, sizeof imgraph, "%s/img.yaml", dir);
    snprintf(convgraph, sizeof convgraph, "%s/conv.yaml", dir);
    snprintf(mnist, sizeof mnist, "%s/mnist", dir);
    FILE *f = fopen(graph, "w");
    fputs(cond2d, f);
    fclose(f);
    f = fopen(imgraph, "w");
    fputs(img, f);
    fclose(f);
    f = fopen(convgraph, "w");
    fprintf(f, "%sdata: {path: %s}\n", conv, mnist);
    fclose(f);
    assert_int_equal(mkdir(mnist, 0755), 0);
    static uint8_t px[40 * 784], lab[40];
    for (int i = 0; i < 40 * 784; i++) px[i] = (uint8_t)((i * 7919) % 251);
    for (int i = 0; i < 40; i++) lab[i] = (uint8_t)(i % 10);
    write_idx("train-images-idx3-ubyte", 3, (int32_t[]){40, 28, 28}, px);
    write_idx("train-labels-idx1-ubyte", 1, (int32_t[]){40}, lab);
}

static void test_every_key_is_used(void **state) {
    (void)state;
    setup_files();
    int nk;
    const df_config_key *keys = df_config_keys(&nk);
    int np = (int)(sizeof probes / sizeof probes[0]);
    for (int i = 0; i < nk; i++) { /* a new key needs a probe here */
        int found = 0;
        for (int j = 0; j < np; j++) found |= !strcmp(probes[j].key, keys[i].key);
        if (!found) fprintf(stderr, "config key %s has no probe\n", keys[i].key);
        assert_true(found);
    }
    char err[1000], setting[800];
    for (int j = 0; j < np; j++) {
        const probe *p = &probes[j];
        const char *g = p->images == 2 ? convgraph : p->images ? imgraph : graph;
        const char *base[2] = {p->with}, *probe_sets[2] = {setting, p->with};
        if (p->images == 1)
            snprintf(setting, sizeof setting, "%s=%s", p->key, mnist);
        else
            snprintf(setting, sizeof setting, "%s=%s", p->key, p->probe);
        uint64_t h0 = fingerprint(g, base, p->with ? 1 : 0, err);
        if (!h0) fprintf(stderr, "baseline of %s: %s\n", p->key, err);
        assert_true(h0 != 0);
        uint64_t h1 = fingerprint(g, probe_sets, p->with ? 2 : 1, err);
        if (!h1) { /* rejected: the message names the key */
            fprintf(stderr, "%-26s rejected: %s\n", p->key, err);
            assert_non_null(strstr(err, p->key));
            continue;
        }
        if (h0 == h1) fprintf(stderr, "%s = %s changed nothing\n", p->key, setting);
        assert_true(h0 != h1);
    }
    /* keys given where they do not apply are rejected, naming the key */
    const char *misplaced[] = {"diffusion.T=20", "sampler.eta=0.5", "train.momentum=0.5",
                               "data.path=/x"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fingerprint(graph, &misplaced[i], 1, err), 0);
        assert_non_null(strstr(err, "is not used"));
    }
}

static void test_set_and_get(void **state) {
    (void)state;
    df_config c;
    df_config_defaults(&c);
    char v[64];
    assert_int_equal(df_config_set(&c, "train.lr", "1e-3"), 0);
    assert_true(c.train.lr == 1e-3);
    assert_int_equal(df_config_set(&c, "sampler.name", "dpmpp_2m"), 0);
    assert_int_equal(c.sampler.name, DF_SAMPLER_DPMPP_2M);
    assert_int_equal(df_config_set(&c, "train.betas", "[0.8, 0.95]"), 0);
    assert_true(c.train.betas[1] == 0.95);
    assert_int_equal(df_config_set(&c, "train.ema_warmup", "false"), 0);
    assert_int_equal(c.train.ema_warmup, 0);
    assert_int_equal(df_config_set(&c, "train.lr", "fast"), DF_EINVAL);
    assert_non_null(strstr(df_errmsg(), "train.lr: expected a number in [0, 10]"));
    assert_int_equal(df_config_set(&c, "train.batch", "0"), DF_EINVAL);
    assert_int_equal(df_config_set(&c, "train.lr", "auto"), DF_EINVAL); /* not an auto key */
    assert_int_equal(df_config_set(&c, "train.nope", "1"), DF_EINVAL);
    assert_int_equal(df_config_resolve(&c), 0);
    assert_int_equal(c.sampler.steps, 10); /* auto: DPM-Solver++(2M)'s */
    assert_int_equal(df_config_get(&c, "diffusion.beta_max", v, sizeof v), 0);
    assert_string_equal(v, "20");
    assert_string_equal(df_config_choice("train.optimizer", c.train.optimizer), "adam");
}

/* a resolved document after its two header lines */
static const char *body(const char *doc) {
    const char *p = strchr(doc, '\n');
    p = p ? strchr(p + 1, '\n') : NULL;
    return p ? p : doc;
}

/* resolved documents of the shipped graphs load back to the same config
 * and parameters (and resolve to themselves) */
static void test_resolved_round_trip(void **state) {
    (void)state;
    const char *gs[] = {"unet_mnist", "toy_ring", "toy_moons", "mnist_classifier"};
    for (int i = 0; i < 4; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/graphs/%s.yaml", DFRUN_SOURCE_DIR, gs[i]);
        const char *sets[] = {"train.lr=3e-4"};
        df_gfile *f = df_gfile_load(p, sets, 1);
        assert_non_null(f);
        char *doc = df_gfile_resolved(f, NULL);
        assert_non_null(doc);
        df_gfile *r = df_gfile_load_text(doc, "resolved", NULL, 0);
        if (!r) fprintf(stderr, "%s: %s\n", gs[i], df_errmsg());
        assert_non_null(r);
        const df_config *a = df_gfile_config(f), *b = df_gfile_config(r);
        char *ya = df_config_yaml(a, 0), *yb = df_config_yaml(b, 0);
        assert_string_equal(ya, yb);
        assert_true(b->train.lr == 3e-4);
        df_params *pa = df_params_new(), *pb = df_params_new();
        assert_int_equal(df_model_params(f, pa), 0);
        assert_int_equal(df_model_params(r, pb), 0);
        assert_int_equal(df_params_count(pa), df_params_count(pb));
        assert_int_equal(df_params_numel(pa), df_params_numel(pb));
        char *doc2 = df_gfile_resolved(r, NULL);
        assert_string_equal(body(doc), body(doc2)); /* only the header's file name differs */
        free(ya), free(yb), free(doc), free(doc2);
        df_params_free(pa), df_params_free(pb);
        df_gfile_free(f), df_gfile_free(r);
    }
}

int main(void) {
    assert_non_null(mkdtemp(dir));
    df_set_threads(2);
    const struct CMUnitTest t[] = {cmocka_unit_test(test_set_and_get),
                                   cmocka_unit_test(test_resolved_round_trip),
                                   cmocka_unit_test(test_every_key_is_used)};
    int r = cmocka_run_group_tests_name("config", t, NULL, NULL);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) r |= 0;
    return r;
}
