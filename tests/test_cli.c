/* The CLI's own job: flags, messages and exit codes of train, sample, run,
 * bench, eval and config (behaviour is tested through the library in
 * test_train and test_config; check and viz in test_dsl). */
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char dir[] = "/tmp/dfrun_cli_XXXXXX";
static char out[1 << 16];

/* run dfrun with args from the source directory; output (both streams) in out */
static int cli(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int cli(const char *fmt, ...) {
    char args[4096], cmd[5000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd %s && %s/dfrun %s 2>&1", DFRUN_SOURCE_DIR, DFRUN_BINARY_DIR,
             args);
    FILE *p = popen(cmd, "r");
    size_t k = fread(out, 1, sizeof out - 1, p);
    out[k] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void has(const char *what) {
    if (!strstr(out, what)) fprintf(stderr, "expected '%s' in:\n%s\n", what, out);
    assert_non_null(strstr(out, what));
}

static void test_train_sample(void **state) {
    (void)state;
    assert_int_equal(cli("train graphs/toy_ring.yaml --steps 300 --out %s/ring", dir), 0);
    has("done after 300 steps");
    assert_int_equal(cli("sample --run %s/ring --n 100 --out %s/s.npy --steps 5", dir, dir), 0);
    has("100 samples with ddpm (5 steps");
    assert_int_equal(cli("sample --ckpt %s/ring/checkpoint.safetensors --sampler ddim --out "
                         "%s/s.png --weights raw",
                         dir, dir),
                     0);
    has("ddim (50 steps"); /* another sampler without --steps: that sampler's default */
    has("raw weights");
    /* flags: exit 2 with the flag named */
    assert_int_equal(cli("train"), 2);
    has("no graph file given");
    assert_int_equal(cli("train graphs/toy_ring.yaml --steps -3"), 2);
    has("--steps: expected an integer");
    assert_int_equal(cli("train graphs/toy_ring.yaml --out ''"), 2);
    has("--out: expected DIR, got an empty string");
    assert_int_equal(cli("train graphs/toy_ring.yaml --stpes 3"), 2);
    has("unknown option '--stpes'");
    assert_int_equal(cli("sample --run %s/ring --out ''", dir), 2);
    assert_int_equal(cli("sample --run %s/ring --sampler foo", dir), 2);
    has("--sampler: unknown 'foo'");
    assert_int_equal(cli("sample --run %s/ring --weights best", dir), 2);
    has("--weights: expected ema or raw");
    assert_int_equal(cli("sample --run %s/ring --n 3 --per-class 2", dir), 2);
    /* files and settings: exit 1 with what and where */
    assert_int_equal(cli("sample --run /nonexistent"), 1);
    has("/nonexistent");
    assert_int_equal(cli("sample --run %s/ring --out %s/x.jpg", dir, dir), 1);
    has("must end in .png or .npy");
    assert_int_equal(cli("sample --run %s/ring --per-class 2", dir), 1);
    has("no class input 'y'");
    assert_int_equal(cli("train graphs/toy_ring.yaml --set train.lr=abc --out %s/x", dir), 1);
    has("train.lr: expected a number");
    assert_int_equal(cli("train graphs/toy_ring.yaml --set train.betas=[0.9] --out %s/x", dir), 1);
    has("train.betas: expected a list of 2 numbers");
    assert_int_equal(cli("train graphs/toy_ring.yaml --set sampler.eta=0.5 --out %s/x", dir), 1);
    has("sampler.eta = 0.5 is not used: it applies to the ddim sampler only");
    assert_int_equal(cli("train --help"), 0);
    has("--resume");
}

static void test_resume_flags(void **state) {
    (void)state;
    assert_int_equal(cli("train graphs/toy_moons.yaml --steps 40 --out %s/m", dir), 0);
    assert_int_equal(cli("train --resume --out %s/m --steps 60 --set train.lr=1e-4", dir), 0);
    has("resuming");
    has("overridden by: train.lr=1e-4");
    has("done after 60 steps");
    assert_int_equal(cli("train --resume --out %s/nothing", dir), 1);
    has("checkpoint.safetensors");
}

/* run, bench, eval and config on the trained toy */
static void test_other_commands(void **state) {
    (void)state;
    char t[700];
    snprintf(t, sizeof t, "%s/t.npy", dir); /* 100 times, written by the library */
    float tv[100];
    for (int i = 0; i < 100; i++) tv[i] = 0.5f;
    assert_int_equal(df_npy_write(t, tv, (int64_t[]){100}, 1), 0);
    assert_int_equal(
        cli("run --ckpt %s/ring --in x=%s/s.npy --in t=%s --out out=%s/eps.npy", dir, dir, t, dir),
        0);
    df_npy a;
    snprintf(t, sizeof t, "%s/eps.npy", dir);
    assert_int_equal(df_npy_read(t, &a), 0);
    assert_int_equal(a.n, 200);
    df_npy_free(&a);
    assert_int_not_equal(
        cli("run graphs/toy_ring.yaml --in x=%s/s.npy --out out=%s/e.npy", dir, dir), 0);
    has("input 't'");
    assert_int_not_equal(cli("run graphs/toy_ring.yaml --in x=%s/s.npy --in t=%s/t.npy --out "
                             "nope=%s/e.npy",
                             dir, dir, dir),
                         0);
    has("nope");
    assert_int_equal(cli("bench graphs/toy_ring.yaml --batch 64 --sample-batch 64 --steps 4"), 0);
    has("\"train_img_per_s\"");
    /* --compare against a stand-in peer (a shell script printing the peer's JSON line) */
    long long params = atoll(strstr(out, "\"params\": ") + strlen("\"params\": "));
    char peer[600];
    snprintf(peer, sizeof peer, "%s/peer.sh", dir);
    for (int match = 0; match < 2; match++) {
        FILE *f = fopen(peer, "w");
        assert_non_null(f);
        fprintf(f,
                "echo '{\"params\": %lld, \"train_img_per_s\": 10.0, "
                "\"eval_img_per_s\": 20.0, \"peak_rss_mib\": 100}'\n",
                match ? params : params + 1);
        fclose(f);
        int rc = cli("bench graphs/toy_ring.yaml --batch 64 --sample-batch 64 --steps 2 --compare "
                     "--rounds 2 --busy --python /bin/sh --peer %s",
                     peer);
        if (!match) {
            assert_int_equal(rc, 1);
            has("--peer-channels");
        } else {
            assert_int_equal(rc, 0);
            has("round 2");
            has("dfrun/peer over 2 rounds: train");
            has("quiet: dfrun train"); /* --busy: each side quiet and under load */
            has("under load, share of quiet kept over 2 rounds: dfrun train");
        }
    }
    /* --scaling: 1 thread against T, alternating, with the ratios */
    assert_int_equal(cli("bench graphs/toy_ring.yaml --batch 64 --sample-batch 64 --steps 2 "
                         "--scaling --rounds 2 --threads 2"),
                     0);
    has("round 2  1 thread: train");
    has("2 threads: train");
    has("1 -> 2 threads over 2 rounds: train");
    /* the machine's own scaling, per round ("...x)") and over the rounds */
    has("x  (arithmetic alone: ");
    has("x, memory alone: ");
    has("(the machine: arithmetic alone ");
    assert_int_equal(cli("bench graphs/toy_ring.yaml --scaling --compare"), 2);
    has("give --compare or --scaling, not both");
    assert_int_equal(cli("bench graphs/toy_ring.yaml --compare --peer /nonexistent.py"), 1);
    has("the peer benchmark '/nonexistent.py' cannot be read");
    /* --precision: a choice of train.precision, checked by the parser */
    int bf = strcmp(df_bf16_mode(), "no effect") != 0; /* a portable build refuses bf16 */
    assert_int_equal(cli("bench graphs/toy_ring.yaml --batch 8 --sample-batch 8 --steps 1 "
                         "--precision bf16"),
                     bf ? 0 : 1);
    has(bf ? "\"precision\": \"bf16" : "train.precision: bf16 runs on the AVX-512");
    assert_int_equal(cli("bench graphs/toy_ring.yaml --precision fp16"), 2);
    has("--precision: expected fp32 or bf16, got 'fp16'");
    assert_int_equal(cli("sample --run %s/ring --precision half", dir), 2);
    has("--precision: expected fp32 or bf16");
    assert_int_equal(cli("bench graphs/toy_ring.yaml --busy"), 2);
    has("--busy goes with --compare");
    assert_int_not_equal(cli("eval --classifier %s/ring /nonexistent.npy", dir), 0);
    assert_int_equal(cli("config graphs/toy_ring.yaml --set train.lr=0.01"), 0);
    has("lr: 0.01");
    has("# not used: it applies to the ddim sampler only");
    assert_int_equal(cli("check graphs/toy_ring.yaml --quiet --explain"), 0);
    has("ema_warmup: true");
}

int main(void) {
    assert_non_null(mkdtemp(dir));
    const struct CMUnitTest t[] = {cmocka_unit_test(test_train_sample),
                                   cmocka_unit_test(test_resume_flags),
                                   cmocka_unit_test(test_other_commands)};
    int r = cmocka_run_group_tests_name("cli", t, NULL, NULL);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) r |= 0;
    return r;
}
