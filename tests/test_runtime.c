/* Runtime pieces outside the graph: RNG, parameter store, optimizers,
 * clipping, EMA, and argument checking of the public entry points. */
#define _GNU_SOURCE
#include "harness.h"
#include "dfrun/bench.h"
#include "parallel.h"
#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <dirent.h>
#include <omp.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_philox_known_answers(void **state) {
    (void)state;
    /* Random123 kat_vectors for philox4x32_10 */
    uint32_t out[4];
    df_philox4((uint32_t[]){0, 0, 0, 0}, (uint32_t[]){0, 0}, out);
    assert_int_equal(out[0], 0x6627e8d5u);
    assert_int_equal(out[1], 0xe169c58du);
    assert_int_equal(out[2], 0xbc57ac4cu);
    assert_int_equal(out[3], 0x9b00dbd8u);
    df_philox4((uint32_t[]){0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
               (uint32_t[]){0xffffffffu, 0xffffffffu}, out);
    assert_int_equal(out[0], 0x408f276du);
    assert_int_equal(out[3], 0x6d5451fdu);
    df_philox4((uint32_t[]){0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
               (uint32_t[]){0xa4093822u, 0x299f31d0u}, out);
    assert_int_equal(out[0], 0xd16cfe09u);
    assert_int_equal(out[1], 0x94fdccebu);
    assert_int_equal(out[2], 0x5001e420u);
    assert_int_equal(out[3], 0x24126ea1u);
}

static void test_rng_threads_and_stats(void **state) {
    (void)state;
    int64_t n = 1 << 20;
    float *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4);
    int old = df_get_threads();
    df_set_threads(1);
    df_rng r1 = df_rng_new(42);
    df_rng_normal(&r1, a, n);
    df_set_threads(2);
    df_rng r2 = df_rng_new(42);
    df_rng_normal(&r2, b, n / 2); /* two draws of n/2 = one draw of n */
    df_rng_normal(&r2, b + n / 2, n / 2);
    assert_memory_equal(a, b, n * 4);
    df_rng r3 = df_rng_new(43);
    df_rng_normal(&r3, c, n);
    assert_memory_not_equal(a, c, n * 4);
    double m = 0, v = 0;
    for (int64_t i = 0; i < n; i++) m += a[i];
    m /= n;
    for (int64_t i = 0; i < n; i++) v += (a[i] - m) * (a[i] - m);
    v /= n;
    assert_true(fabs(m) < 0.005 && fabs(v - 1) < 0.01);
    df_rng_uniform(&r1, a, n);
    m = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(a[i] >= 0 && a[i] < 1);
        m += a[i];
    }
    assert_true(fabs(m / n - 0.5) < 0.003);
    int32_t *k = (int32_t *)c;
    df_rng_randint(&r1, k, n, 11);
    int hist[11] = {0};
    for (int64_t i = 0; i < n; i++) {
        assert_true(k[i] >= 0 && k[i] < 11);
        hist[k[i]]++;
    }
    for (int j = 0; j < 11; j++) assert_true(fabs(hist[j] / (double)n - 1.0 / 11) < 0.002);
    df_set_threads(old);
    free(a);
    free(b);
    free(c);
}

static void test_params_store(void **state) {
    (void)state;
    df_params *ps = df_params_new();
    int w = df_params_get(ps, "l1.weight", df_shape2(4, 3), (df_init){DF_INIT_KAIMING, 0});
    int b = df_params_get(ps, "l1.bias", df_shape1(4), (df_init){DF_INIT_ZEROS, 0});
    assert_int_equal(df_params_get(ps, "l1.weight", df_shape2(4, 3), (df_init){0, 0}), w);
    assert_int_equal(df_params_get(ps, "l1.weight", df_shape2(3, 4), (df_init){0, 0}), -1);
    assert_non_null(strstr(df_errmsg(), "[4, 3]"));
    assert_int_equal(df_params_get(ps, "bad", df_shape2(0, 4), (df_init){0, 0}), -1);
    assert_int_equal(df_params_numel(ps), 16);
    assert_int_equal(df_params_init(ps, 7), DF_OK);
    float *wd = df_param_data(ps, w);
    for (int i = 0; i < 12; i++) assert_true(fabsf(wd[i]) <= 1.0f / sqrtf(3.0f));
    assert_true(df_param_data(ps, b)[0] == 0);
    /* init depends on (seed, name), not on creation order */
    df_params *q = df_params_new();
    df_params_get(q, "l1.bias", df_shape1(4), (df_init){DF_INIT_ZEROS, 0});
    int w2 = df_params_get(q, "l1.weight", df_shape2(4, 3), (df_init){DF_INIT_KAIMING, 0});
    df_params_init(q, 7);
    assert_memory_equal(df_param_data(q, w2), wd, 12 * 4);
    assert_int_equal((uintptr_t)df_param_data(ps, b) % 64, 0);
    df_params_free(q);
    df_params_free(ps);
}

/* Adam / AdamW / SGD against straightforward double-precision references */
static void test_optimizers(void **state) {
    (void)state;
    for (int kind = DF_OPT_SGD; kind <= DF_OPT_ADAMW; kind++) {
        df_params *ps = df_params_new();
        int w = df_params_get(ps, "w", df_shape2(3, 5), (df_init){DF_INIT_NORMAL, 1});
        int b = df_params_get(ps, "b", df_shape1(3), (df_init){DF_INIT_NORMAL, 1});
        df_params_init(ps, 1);
        df_opt_config cfg = df_opt_defaults(kind);
        cfg.lr = 0.05f;
        cfg.weight_decay = 0.1f;
        cfg.momentum = 0.9f;
        df_optim *o = df_optim_new(ps, &cfg);
        assert_non_null(o);
        double rw[18], m[18] = {0}, v[18] = {0};
        for (int i = 0; i < 15; i++) rw[i] = df_param_data(ps, w)[i];
        for (int i = 0; i < 3; i++) rw[15 + i] = df_param_data(ps, b)[i];
        for (int step = 1; step <= 4; step++) {
            float gr[18];
            dft_fill_uniform(gr, 18, -1, 1, 100 + step);
            memcpy(df_param_grad(ps, w), gr, 15 * 4);
            memcpy(df_param_grad(ps, b), gr + 15, 3 * 4);
            assert_int_equal(df_optim_step(o, -1), DF_OK);
            for (int i = 0; i < 18; i++) {
                double d = i < 15 ? 1 : 0; /* decay on matrices only */
                double gi = gr[i];
                if (kind == DF_OPT_SGD) {
                    gi += 0.1 * d * rw[i];
                    m[i] = step == 1 ? gi : 0.9 * m[i] + gi;
                    rw[i] -= 0.05 * m[i];
                } else {
                    if (kind == DF_OPT_ADAM)
                        gi += 0.1 * d * rw[i];
                    else
                        rw[i] -= 0.05 * 0.1 * d * rw[i];
                    m[i] = 0.9 * m[i] + 0.1 * gi;
                    v[i] = 0.999 * v[i] + 0.001 * gi * gi;
                    double mh = m[i] / (1 - pow(0.9, step)), vh = v[i] / (1 - pow(0.999, step));
                    rw[i] -= 0.05 * mh / (sqrt(vh) + 1e-8);
                }
            }
        }
        for (int i = 0; i < 15; i++) assert_true(fabs(df_param_data(ps, w)[i] - rw[i]) < 1e-5);
        for (int i = 0; i < 3; i++) assert_true(fabs(df_param_data(ps, b)[i] - rw[15 + i]) < 1e-5);
        /* a NaN gradient is refused and leaves the weights alone */
        float before = df_param_data(ps, w)[0];
        df_param_grad(ps, b)[1] = NAN;
        assert_int_equal(df_optim_step(o, -1), DF_ENONFINITE);
        assert_true(df_param_data(ps, w)[0] == before);
        df_optim_free(o);
        df_params_free(ps);
    }
    df_opt_config bad = df_opt_defaults(DF_OPT_ADAM);
    bad.beta1 = 1.5f;
    df_params *ps = df_params_new();
    assert_null(df_optim_new(ps, &bad));
    assert_non_null(strstr(df_errmsg(), "beta"));
    assert_null(df_optim_new(NULL, &bad));
    df_params_free(ps);
}

static void test_clip_and_ema(void **state) {
    (void)state;
    df_params *ps = df_params_new();
    int w = df_params_get(ps, "w", df_shape1(4), (df_init){DF_INIT_ZEROS, 0});
    int b = df_params_get(ps, "b", df_shape1(3), (df_init){DF_INIT_ZEROS, 0});
    df_params_alloc(ps);
    float gw[4] = {3, 0, 0, 0}, gb[3] = {0, 4, 0};
    memcpy(df_param_grad(ps, w), gw, 16);
    memcpy(df_param_grad(ps, b), gb, 12);
    assert_true(fabs(df_grad_norm(ps) - 5.0) < 1e-9);
    assert_true(fabs(df_clip_grad_norm(ps, 1.0) - 5.0) < 1e-9);
    assert_true(fabs(df_grad_norm(ps) - 1.0) < 1e-5);
    assert_true(fabs(df_clip_grad_norm(ps, 10.0) - 1.0) < 1e-5); /* under the bound: unchanged */
    assert_true(fabs(df_param_grad(ps, b)[1] - 0.8) < 1e-5);
    df_param_grad(ps, w)[2] = INFINITY;
    assert_true(isnan(df_clip_grad_norm(ps, 1.0)));
    df_ema *e = df_ema_new(ps, 0.5f, 0);
    df_param_data(ps, w)[0] = 2;
    df_ema_update(e);
    df_ema_update(e);
    assert_true(fabsf(df_ema_data(e)[0] - 1.5f) < 1e-6); /* 0 -> 1 -> 1.5 */
    df_ema_swap(e);
    assert_true(fabsf(df_param_data(ps, w)[0] - 1.5f) < 1e-6);
    df_ema_swap(e);
    assert_true(df_param_data(ps, w)[0] == 2);
    df_ema_free(e);
    assert_null(df_ema_new(ps, 2.0f, 0));
    df_params_free(ps);
}

static void test_entry_point_errors(void **state) {
    (void)state;
    assert_null(df_graph_new(NULL));
    assert_int_not_equal(df_run(NULL), DF_OK);
    assert_int_not_equal(df_compile(NULL, NULL), DF_OK);
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *x = df_input(g, "x", DF_F32, df_shape2(2, 3));
    assert_int_equal(df_run(g), DF_ESTATE);
    assert_int_equal(df_set_input(g, x, (float[6]){0}, 6), DF_ESTATE);
    df_node *y = df_scale(g, x, 2);
    assert_int_equal(df_backward(g, y, NULL, 0), DF_ESHAPE); /* not a scalar */
    assert_non_null(strstr(df_errmsg(), "[2, 3]"));
    assert_int_equal(df_backward(g, NULL, NULL, 0), DF_EINVAL);
    df_keep(g, y);
    assert_int_equal(df_compile(g, NULL), DF_OK);
    assert_int_equal(df_compile(g, NULL), DF_ESTATE);
    assert_int_equal(df_set_input(g, x, (float[5]){0}, 5), DF_ESHAPE);
    assert_non_null(strstr(df_errmsg(), "[2, 3]"));
    assert_int_equal(df_set_input(g, y, (float[6]){0}, 6), DF_EINVAL);
    assert_int_equal(df_set_input(g, x, NULL, 6), DF_EINVAL);
    assert_null(df_scale(g, x, 3)); /* compiled: frozen */
    assert_int_equal(df_graph_status(g), DF_ESTATE);
    df_graph_free(g);
    /* bad shapes and names on leaves */
    g = df_graph_new(ps);
    assert_null(df_input(g, "x", DF_F32, df_shape2(0, 3)));
    assert_non_null(strstr(df_graph_errmsg(g), "[0, 3]"));
    df_graph_free(g);
    g = df_graph_new(ps);
    assert_null(df_input(g, NULL, DF_F32, df_shape1(3)));
    df_graph_free(g);
    /* a node from another graph */
    df_graph *g1 = df_graph_new(ps), *g2 = df_graph_new(ps);
    df_node *a = df_input(g1, "a", DF_F32, df_shape1(3));
    df_node *b = df_input(g2, "b", DF_F32, df_shape1(3));
    b = df_input(g2, "c", DF_F32, df_shape1(3));
    (void)b;
    assert_null(df_scale(g2, a, 1.0f)); /* a's id is 0 in g2 too, but it's not g2's node */
    assert_non_null(strstr(df_graph_errmsg(g2), "another graph"));
    df_graph_free(g1);
    df_graph_free(g2);
    /* a parameter with a conflicting shape */
    g = df_graph_new(ps);
    df_param(g, "w", df_shape1(3), (df_init){0, 0});
    assert_null(df_param(g, "w", df_shape1(4), (df_init){0, 0}));
    assert_int_equal(df_graph_status(g), DF_ESHAPE);
    df_graph_free(g);
    df_params_free(ps);
}

static void test_safetensors(void **state) {
    (void)state;
    char dir[] = "/tmp/dfrun_st_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], bad[256];
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    float a[6] = {1, 2, 3, 4, 5, 6};
    int32_t b[3] = {7, -8, 9};
    df_st_tensor t[2] = {{"down.0.conv \"w\"", DF_F32, df_shape2(2, 3), a},
                         {"step", DF_I32, df_shape1(3), b}};
    const char *meta[4] = {"format", "dfrun", "note", "line\nbreak"};
    assert_int_equal(df_st_save(path, t, 2, meta, 2), DF_OK);
    df_st_file *f = df_st_load(path);
    assert_non_null(f);
    assert_int_equal(df_st_count(f), 2);
    const df_st_tensor *x = df_st_find(f, "down.0.conv \"w\"");
    assert_non_null(x);
    assert_true(df_shape_eq(&x->shape, &t[0].shape) && x->dtype == DF_F32);
    assert_memory_equal(x->data, a, sizeof a);
    x = df_st_find(f, "step");
    assert_true(x && x->dtype == DF_I32);
    assert_memory_equal(x->data, b, sizeof b);
    assert_string_equal(df_st_meta(f, "note"), "line\nbreak");
    df_st_free(f);

    /* read the file, then feed every truncation and random corruptions */
    FILE *fp = fopen(path, "rb");
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    for (size_t cut = 0; cut < n; cut++) {
        fp = fopen(bad, "wb");
        fwrite(buf, 1, cut, fp);
        fclose(fp);
        assert_null(df_st_load(bad));
        assert_true(strlen(df_errmsg()) > 0);
    }
    df_rng r = df_rng_new(5);
    for (int trial = 0; trial < 300; trial++) {
        unsigned char c[4096];
        memcpy(c, buf, n);
        int32_t pos[4];
        df_rng_randint(&r, pos, 4, (int32_t)n);
        for (int k = 0; k < 3; k++) c[pos[k]] = (unsigned char)(pos[3] + k * 77);
        fp = fopen(bad, "wb");
        fwrite(c, 1, n, fp);
        fclose(fp);
        f = df_st_load(bad); /* either parses consistently or fails: never crashes */
        if (f) {
            for (int i = 0; i < df_st_count(f); i++) {
                const df_st_tensor *e = df_st_at(f, i);
                assert_true(e->shape.nd >= 1 && e->data);
            }
            df_st_free(f);
        }
    }
    assert_null(df_st_load("/nonexistent/x.safetensors"));
    assert_non_null(strstr(df_errmsg(), "/nonexistent/x.safetensors"));
    assert_null(df_st_load(dir)); /* a directory */

    /* a failed write leaves the previous file intact */
    char sub[300];
    snprintf(sub, sizeof sub, "%s/ro", dir);
    mkdir(sub, 0755);
    char target[320];
    snprintf(target, sizeof target, "%s/ck.safetensors", sub);
    assert_int_equal(df_st_save(target, t, 2, NULL, 0), DF_OK);
    df_st_tensor huge = {"h", DF_F32, df_shape1(1), NULL};
    assert_int_not_equal(df_st_save(target, &huge, 1, NULL, 0), DF_OK); /* NULL data */
    f = df_st_load(target);
    assert_non_null(f);
    assert_int_equal(df_st_count(f), 2);
    df_st_free(f);
    /* the temporary name can't be created (path is a directory): old file kept */
    char blocker[400];
    snprintf(blocker, sizeof blocker, "%s.tmp.%d", target, (int)getpid());
    mkdir(blocker, 0755);
    assert_int_equal(df_st_save(target, t, 1, NULL, 0), DF_EIO);
    f = df_st_load(target);
    assert_non_null(f);
    assert_int_equal(df_st_count(f), 2);
    df_st_free(f);
    rmdir(blocker);
    remove(target);
    rmdir(sub);
    remove(path);
    remove(bad);
    rmdir(dir);
}

/* ---- the thread pool (parallel.h) ---- */
typedef struct {
    _Atomic int *seen; /* per iteration: times run */
    _Atomic int max_worker, nested_bad;
    int nest, slow_us;
} pool_probe;
static void probe_inner(void *ctx, int64_t i0, int64_t i1, int worker) {
    pool_probe *p = ctx;
    (void)i0, (void)i1;
    if (worker != df_worker()) atomic_store(&p->nested_bad, 1);
}
static void probe_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    pool_probe *p = ctx;
    for (int64_t i = i0; i < i1; i++) atomic_fetch_add(&p->seen[i], 1);
    int m = atomic_load(&p->max_worker);
    while (worker > m && !atomic_compare_exchange_weak(&p->max_worker, &m, worker)) {
    }
    if (worker != df_worker()) atomic_store(&p->nested_bad, 1);
    if (p->nest) df_parallel_for(10, 1, probe_inner, p); /* runs inline on this worker */
    if (p->slow_us) usleep((useconds_t)p->slow_us);
}
static void test_pool(void **state) {
    (void)state;
    enum { N = 5000 };
    _Atomic int *seen = calloc(N, sizeof *seen);
    assert_non_null(seen);
    const int threads[] = {4, 1, 2, 3, 2};
    const int64_t sizes[][2] = {{1, 1}, {7, 1}, {N, 1}, {N, 64}, {N, 4999}, {N, N}, {1000, 33}};
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
        df_set_threads(threads[t]);
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            int64_t n = sizes[k][0];
            for (int64_t i = 0; i < n; i++) seen[i] = 0;
            pool_probe p = {seen, 0, 0, (int)(k & 1), 0};
            df_parallel_for(n, sizes[k][1], probe_piece, &p);
            for (int64_t i = 0; i < n; i++) assert_int_equal(seen[i], 1); /* each exactly once */
            assert_true(p.max_worker < threads[t]); /* workers index per-thread scratch */
            assert_int_equal(p.nested_bad, 0);
        }
    }
    /* many short loops back to back: threads that wake late must claim nothing */
    df_set_threads(2);
    for (int r = 0; r < 3000; r++) {
        for (int64_t i = 0; i < 64; i++) seen[i] = 0;
        pool_probe p = {seen, 0, 0, 0, 0};
        df_parallel_for(64, 1 + r % 8, probe_piece, &p);
        for (int64_t i = 0; i < 64; i++) assert_int_equal(seen[i], 1);
        if (r % 500 == 0) usleep(2000); /* let the pool's threads fall asleep */
    }
    /* fewer threads than the pool has: the others must not take pieces
     * (slow pieces give every pool thread time to wake and try) */
    df_set_threads(4);
    pool_probe w = {seen, 0, 0, 0, 0};
    for (int64_t i = 0; i < 64; i++) seen[i] = 0;
    df_parallel_for(64, 1, probe_piece, &w);
    df_set_threads(2);
    for (int64_t i = 0; i < 64; i++) seen[i] = 0;
    pool_probe slow = {seen, 0, 0, 0, 300};
    df_parallel_for(64, 1, probe_piece, &slow);
    assert_true(slow.max_worker < 2);
    df_parallel_for(0, 1, probe_piece, NULL); /* empty: nothing runs */
    /* GEMMs inside pieces stay single-threaded: OpenBLAS must not start
     * OpenMP threads of its own from the pool's threads */
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *x = df_input(g, "x", DF_F32, df_shape2(512, 256));
    df_node *wt = df_param(g, "w", df_shape2(256, 256), (df_init){DF_INIT_KAIMING, 0});
    df_node *y = df_linear(g, x, wt, NULL);
    df_keep(g, y);
    assert_int_equal(df_compile(g, NULL), DF_OK);
    assert_int_equal(df_params_init(ps, 1), DF_OK);
    for (int r = 0; r < 20; r++) assert_int_equal(df_run(g), DF_OK);
    int tasks = 0;
    DIR *d = opendir("/proc/self/task");
    for (struct dirent *e; d && (e = readdir(d));) tasks += e->d_name[0] != '.';
    if (d) closedir(d);
    assert_true(tasks <= 4); /* main + at most 3 pool threads (started for 4 above) */
    /* the caller's own OpenMP setting is given back after the loops */
    omp_set_num_threads(3);
    assert_int_equal(df_run(g), DF_OK);
    assert_int_equal(omp_get_max_threads(), 3);
    df_graph_free(g);
    df_params_free(ps);
    /* a fork()ed child (df_bench_compare runs dfrun's side in one) gets a
     * pool of its own: its loops use every thread again */
    df_set_threads(2);
    pid_t pid = fork();
    if (pid == 0) {
        for (int64_t i = 0; i < 64; i++) seen[i] = 0;
        pool_probe cp = {seen, 0, 0, 0, 300};
        df_parallel_for(64, 1, probe_piece, &cp);
        int ok = cp.max_worker == 1;
        for (int64_t i = 0; i < 64; i++) ok &= seen[i] == 1;
        _exit(ok ? 0 : 1);
    }
    int ws = -1;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    free(seen);
    df_set_threads(0);
}

/* binding: per worker, the CPU set it ran with */
typedef struct {
    cpu_set_t set[8];
    _Atomic int ran[8];
} bind_probe;
static void bind_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    bind_probe *p = ctx;
    (void)i0, (void)i1;
    if (worker < 8 && !atomic_exchange(&p->ran[worker], 1))
        pthread_getaffinity_np(pthread_self(), sizeof p->set[worker], &p->set[worker]);
    usleep(300);
}
static void test_pool_bind(void **state) {
    (void)state;
    cpu_set_t all;
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof all, &all), 0);
    int n = CPU_COUNT(&all);
    if (n < 2 || n > 8) {
        fprintf(stderr, "pool binding: skipped (%d CPUs; the check needs 2 to 8)\n", n);
        return;
    }
    /* as many threads as CPUs: one CPU each, distinct, the caller's set restored */
    df_set_threads(n);
    bind_probe p = {0};
    df_pool_binding b;
    df_pool_bind(&b);
    assert_true(b.bound);
    cpu_set_t mine;
    pthread_getaffinity_np(pthread_self(), sizeof mine, &mine);
    assert_int_equal(CPU_COUNT(&mine), 1);
    df_pool_binding inner; /* a graph run inside a run (from a hook) leaves the binding be */
    df_pool_bind(&inner);
    assert_false(inner.bound);
    df_pool_unbind(&inner);
    pthread_getaffinity_np(pthread_self(), sizeof mine, &mine);
    assert_int_equal(CPU_COUNT(&mine), 1);
    df_parallel_for(64, 1, bind_piece, &p);
    df_pool_unbind(&b);
    for (int w = 1; w < n; w++) /* no pool thread on the caller's CPU */
        if (p.ran[w]) {
            cpu_set_t both;
            CPU_AND(&both, &p.set[w], &mine);
            assert_int_equal(CPU_COUNT(&both), 0);
        }
    pthread_getaffinity_np(pthread_self(), sizeof mine, &mine);
    assert_true(CPU_EQUAL(&mine, &all));
    cpu_set_t used;
    CPU_ZERO(&used);
    int workers = 0;
    for (int w = 1; w < n; w++) {
        if (!p.ran[w]) continue;
        workers++;
        assert_int_equal(CPU_COUNT(&p.set[w]), 1);
        CPU_OR(&used, &used, &p.set[w]);
    }
    assert_true(workers > 0);
    assert_int_equal(CPU_COUNT(&used), workers); /* distinct CPUs */
    /* more threads than CPUs: nothing is bound, the pool threads get every CPU back */
    df_set_threads(n + 1);
    bind_probe q = {0};
    df_pool_bind(&b);
    assert_false(b.bound);
    df_parallel_for(64, 1, bind_piece, &q);
    df_pool_unbind(&b);
    for (int w = 1; w <= n; w++)
        if (q.ran[w]) assert_true(CPU_EQUAL(&q.set[w], &all));
    df_set_threads(0);
}

/* a pool thread's piece outlasts all the poster's: its CPU set after 50 ms */
static void slow_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    bind_probe *p = ctx;
    (void)i0, (void)i1;
    if (!worker) {
        usleep(1000);
        return;
    }
    usleep(50000);
    if (worker < 8 && !atomic_exchange(&p->ran[worker], 1))
        pthread_getaffinity_np(pthread_self(), sizeof p->set[worker], &p->set[worker]);
}
/* Bound, a poster that goes to sleep waiting for a loop's last pieces lets
 * the pool threads run on any CPU (so the kernel can move one that a
 * competing process holds off its CPU); the next loop binds them again. */
/* df_cpu_scaling and df_memory_scaling measure (ratios of times: no bound is asserted,
 * the machine may be busy) and gives the thread count back */
static void test_cpu_scaling(void **state) {
    (void)state;
    df_set_threads(3);
    double r = df_cpu_scaling(2), m = df_memory_scaling(2);
    assert_true(r > 0 && isfinite(r) && m > 0 && isfinite(m));
    assert_int_equal(df_get_threads(), 3);
    df_set_threads(0);
}

static void test_pool_release(void **state) {
    (void)state;
    cpu_set_t all;
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof all, &all), 0);
    int n = CPU_COUNT(&all);
    const char *e = getenv("DFRUN_BIND");
    if (n < 2 || n > 4 || (e && e[0] == '0')) { /* 8 n pieces of 1 ms well within 50 ms */
        fprintf(stderr, "pool release: skipped (%d CPUs, or DFRUN_BIND=0)\n", n);
        return;
    }
    df_set_threads(n);
    df_pool_binding b;
    df_pool_bind(&b);
    assert_true(b.bound);
    bind_probe slow = {0}, next = {0};
    df_parallel_for(8 * n, 1, slow_piece, &slow);
    df_parallel_for(64, 1, bind_piece, &next);
    df_pool_unbind(&b);
    int seen = 0;
    for (int w = 1; w < n; w++) {
        if (slow.ran[w]) seen++, assert_true(CPU_EQUAL(&slow.set[w], &all));
        if (next.ran[w]) assert_int_equal(CPU_COUNT(&next.set[w]), 1);
    }
    assert_true(seen > 0);
    df_set_threads(0);
}

int main(void) {
    df_set_threads(0);
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_rng_threads_and_stats),
        cmocka_unit_test(test_params_store),
        cmocka_unit_test(test_optimizers),
        cmocka_unit_test(test_clip_and_ema),
        cmocka_unit_test(test_entry_point_errors),
        cmocka_unit_test(test_safetensors),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_pool_bind),
        cmocka_unit_test(test_pool_release),
        cmocka_unit_test(test_cpu_scaling),
    };
    return cmocka_run_group_tests_name("runtime", t, NULL, NULL);
}
