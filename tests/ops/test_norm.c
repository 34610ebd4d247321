/* GroupNorm with and without affine parameters. */
#include "harness.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int groups, affine, silu; /* silu: the fused groupnorm_silu */
} gctx;
static df_node *build(df_graph *g, df_node **in, void *vc) {
    gctx *c = vc;
    df_node *(*f)(df_graph *, df_node *, df_node *, df_node *, int, float) =
        c->silu ? df_groupnorm_silu : df_groupnorm;
    return c->affine ? f(g, in[0], in[1], in[2], c->groups, 1e-5f)
                     : f(g, in[0], NULL, NULL, c->groups, 1e-5f);
}

static void naive(const df_shape *s, const float *x, const float *ga, const float *be, int G,
                  int silu, float *y) {
    int64_t B = s->d[0], C = s->d[1], S = df_shape_numel(s) / (B * C), cg = C / G;
    for (int64_t b = 0; b < B; b++)
        for (int64_t g = 0; g < G; g++) {
            const float *p = x + (b * C + g * cg) * S;
            double m = 0, v = 0;
            for (int64_t i = 0; i < cg * S; i++) m += p[i];
            m /= cg * S;
            for (int64_t i = 0; i < cg * S; i++) v += (p[i] - m) * (p[i] - m);
            v /= cg * S;
            for (int64_t c = 0; c < cg; c++)
                for (int64_t k = 0; k < S; k++) {
                    int64_t ch = g * cg + c, i = (b * C + ch) * S + k;
                    double xh = (x[i] - m) / sqrt(v + 1e-5);
                    double t = ga ? xh * ga[ch] + be[ch] : xh;
                    y[i] = (float)(silu ? t / (1 + exp(-t)) : t);
                }
        }
}

static void test_forward_and_grad(void **state) {
    (void)state;
    struct {
        df_shape s;
        int groups;
    } cases[] = {{df_shape4(2, 6, 3, 5), 3},
                 {df_shape4(1, 12, 4, 3), 4},
                 {df_shape4(3, 5, 2, 3), 1},
                 {df_shape4(2, 6, 3, 3), 6},
                 {df_shape3(2, 8, 7), 2}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (int variant = 0; variant < 4; variant++) {
            int affine = variant & 1, silu = variant >> 1;
            df_shape s = cases[k].s;
            int64_t n = df_shape_numel(&s), C = s.d[1];
            float *x = malloc(n * 4), *ref = malloc(n * 4), ga[64], be[64];
            dft_fill_uniform(x, n, -2, 3, 10 + k);
            dft_fill_uniform(ga, C, 0.5f, 1.5f, 20 + k);
            dft_fill_uniform(be, C, -1, 1, 30 + k);
            gctx c = {cases[k].groups, affine, silu};
            dft_input ins[3] = {{"x", DF_F32, s, 1, -2, 3, 0, 0},
                                {"gamma", DF_F32, df_shape1(C), 1, 0.5f, 1.5f, 0, 0},
                                {"beta", DF_F32, df_shape1(C), 1, -1, 1, 0, 0}};
            float *y = dft_forward(build, &c, ins, affine ? 3 : 1, (void *[]){x, ga, be}, NULL);
            naive(&s, x, affine ? ga : NULL, be, cases[k].groups, silu, ref);
            assert_int_equal(
                dft_close(y, ref, n, 1e-5f, 1e-4f, silu ? "groupnorm_silu" : "groupnorm"), 0);
            assert_int_equal(dft_gradcheck(build, &c, ins, affine ? 3 : 1, 40 + k, 1e-2f, 4e-3, 40),
                             0);
            free(x);
            free(ref);
            free(y);
        }
    dft_mark_forward(DF_OP_GROUPNORM);
    dft_mark_forward(DF_OP_GROUPNORM_SILU);
}

/* one-pass statistics: a large mean over a small spread still normalises right */
static void test_offset_inputs(void **state) {
    (void)state;
    df_shape s = df_shape4(2, 4, 6, 6);
    int64_t n = df_shape_numel(&s);
    float *x = malloc(n * 4), *ref = malloc(n * 4);
    dft_fill_uniform(x, n, 1000, 1001, 3);
    gctx c = {2, 0, 0};
    dft_input in = {"x", DF_F32, s, 1, 1000, 1001, 0, 0};
    float *y = dft_forward(build, &c, &in, 1, (void *[]){x}, NULL);
    naive(&s, x, NULL, NULL, 2, 0, ref);
    assert_int_equal(dft_close(y, ref, n, 1e-4f, 1e-4f, "groupnorm, mean 1000"), 0);
    free(x), free(ref), free(y);
}

/* The fused pair against the two ops: silu(groupnorm(x)) and the gradient
 * reaching the groupnorm (silu_bwd of its output) are bitwise equal */
static df_node *build_pair(df_graph *g, df_node **in, void *vc) {
    gctx *c = vc;
    return df_silu(g, df_groupnorm(g, in[0], in[1], in[2], c->groups, 1e-5f));
}
static void test_fused_equals_pair(void **state) {
    (void)state;
    df_shape s = df_shape4(3, 8, 5, 6);
    int64_t n = df_shape_numel(&s);
    float *x = malloc(n * 4), ga[8], be[8];
    dft_fill_uniform(x, n, -3, 3, 7);
    dft_fill_uniform(ga, 8, 0.5f, 1.5f, 8);
    dft_fill_uniform(be, 8, -1, 1, 9);
    gctx c = {4, 1, 1};
    dft_input ins[3] = {{"x", DF_F32, s, 1, -3, 3, 0, 0},
                        {"gamma", DF_F32, df_shape1(8), 1, 0.5f, 1.5f, 0, 0},
                        {"beta", DF_F32, df_shape1(8), 1, -1, 1, 0, 0}};
    float *y1 = dft_forward(build, &c, ins, 3, (void *[]){x, ga, be}, NULL);
    float *y2 = dft_forward(build_pair, &c, ins, 3, (void *[]){x, ga, be}, NULL);
    assert_memory_equal(y1, y2, n * 4);
    free(y1);
    free(y2);
    free(x);
}

/* The whole gradient of groupnorm_silu fused into one node (fuse.c:
 * groupnorm_silu_bwd_all, whose parts are dx, dgamma, dbeta and dx's sums)
 * against the unfused nodes: every gradient bitwise equal. x = x0 * p +
 * bias + emb, so that dx flows on to a parameter as an activation's
 * gradient does and is summed to a bias's [C] (twice: a second bias) and a
 * time embedding's [B, C] gradients. With residual, the loss reads x + silu(groupnorm(x)), so that
 * x's gradient is dx plus the residual path's (the op adds it; the sums are
 * of the total). nreduce: the live reduces (fused: only the loss's); nadd:
 * the live adds. */
static void fused_backward(df_shape s, int groups, int residual, int fuse, float **grads,
                           int64_t *ng, int *nall, int *nreduce, int *nadd) {
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    int64_t C = s.d[1], n = df_shape_numel(&s);
    df_node *x0 = df_input(g, "x0", DF_F32, s), *w = df_input(g, "w", DF_F32, s);
    df_node *p = df_param(g, "p", s, (df_init){DF_INIT_ONES, 0});
    df_node *ga = df_param(g, "gamma", df_shape1(C), (df_init){DF_INIT_ONES, 0});
    df_node *be = df_param(g, "beta", df_shape1(C), (df_init){DF_INIT_ZEROS, 0});
    df_node *bias = df_param(g, "bias", df_shape1(C), (df_init){DF_INIT_ZEROS, 0});
    df_node *emb = df_param(g, "emb", df_shape2(s.d[0], C), (df_init){DF_INIT_ZEROS, 0});
    df_node *bias2 = df_param(g, "bias2", df_shape1(C), (df_init){DF_INIT_ZEROS, 0});
    df_node *u = df_binary_aligned(g, DF_OP_ADD, df_mul(g, x0, p), bias, 0, 1); /* [C] */
    u = df_binary_aligned(g, DF_OP_ADD, u, emb, 0, 0);                          /* [B, C] */
    u = df_binary_aligned(g, DF_OP_ADD, u, bias2, 0, 1); /* the same sum as bias's: a copy */
    df_node *t = df_silu(g, df_groupnorm(g, u, ga, be, groups, 1e-5f));
    if (residual) t = df_add(g, u, t);
    df_node *loss = df_sum_all(g, df_mul(g, t, w)); /* random weights */
    assert_int_equal(df_backward(g, loss, NULL, 0), DF_OK);
    df_compile_opts o = {.no_fuse = !fuse};
    assert_int_equal(df_compile(g, &o), DF_OK);
    assert_int_equal(df_params_init(ps, 3), DF_OK);
    float *v = malloc(n * 4);
    dft_fill_uniform(v, n, -2, 3, 11);
    df_set_input(g, x0, v, n);
    dft_fill_uniform(v, n, -1, 1, 12);
    df_set_input(g, w, v, n);
    dft_fill_uniform(df_param_data(ps, 1), C, 0.5f, 1.5f, 13); /* gamma, beta */
    dft_fill_uniform(df_param_data(ps, 2), C, -1, 1, 14);
    dft_fill_uniform(df_param_data(ps, 3), C, -1, 1, 15); /* bias, emb */
    dft_fill_uniform(df_param_data(ps, 4), s.d[0] * C, -1, 1, 16);
    dft_fill_uniform(df_param_data(ps, 5), C, -1, 1, 17);
    assert_int_equal(df_run(g), DF_OK);
    *ng = df_params_block_numel(ps);
    *grads = malloc(*ng * 4);
    memcpy(*grads, df_params_grad(ps), *ng * 4);
    *nall = dft_live(g, DF_OP_GROUPNORM_SILU_BWD_ALL, NULL);
    *nreduce = dft_live(g, DF_OP_REDUCE, NULL);
    *nadd = dft_live(g, DF_OP_ADD, NULL);
    free(v);
    df_graph_free(g);
    df_params_free(ps);
}
static void test_fused_backward(void **state) {
    (void)state;
    const struct {
        df_shape s;
        int groups;
    } cases[] = {{df_shape4(3, 8, 5, 6), 4},
                 {df_shape4(2, 32, 28, 28), 8},
                 {df_shape4(5, 16, 7, 7), 4},
                 {df_shape4(2, 6, 2, 3), 3},
                 {df_shape4(1, 8, 4, 4), 2}}; /* B = 1: the two sums of dx coincide */
    for (size_t k = 0; k < 2 * sizeof cases / sizeof cases[0]; k++) {
        int64_t n1, n2;
        float *a, *b;
        int fused, plain, r1, r2, a1, a2, res = (int)(k % 2);
        df_shape s = cases[k / 2].s;
        fused_backward(s, cases[k / 2].groups, res, 1, &a, &n1, &fused, &r1, &a1);
        fused_backward(s, cases[k / 2].groups, res, 0, &b, &n2, &plain, &r2, &a2);
        assert_int_equal(fused, 1);
        assert_int_equal(plain, 0);
        assert_int_equal(r1, 1); /* beta's, the biases' and emb's reduces are slices */
        assert_int_equal(r2, 5);
        assert_int_equal(a2, 3 + 2 * res); /* + the residual and its gradients' sum */
        assert_int_equal(a1, 3 + res);     /* the op adds the residual's gradient */
        assert_int_equal(n1, n2);
        assert_memory_equal(a, b, n1 * 4);
        free(a), free(b);
    }
    dft_mark_forward(DF_OP_GROUPNORM_SILU_BWD_ALL);
    dft_mark_forward(DF_OP_PART);
}

/* groupnorm_stats (fuse.c makes it for the groupnorms folded into
 * convolutions): each image's and group's mean and 1 / sqrt(var + eps)
 * against float64 two-pass references */
static df_node *build_stats(df_graph *g, df_node **in, void *ctx) {
    int32_t groups = *(int *)ctx;
    float eps = 1e-5f;
    return df_node_new(g, DF_OP_GROUPNORM_STATS, in, 1, &groups, 1, &eps, 1);
}
static void test_stats(void **state) {
    (void)state;
    const struct {
        df_shape s;
        int groups;
    } cases[] = {{df_shape4(3, 8, 5, 6), 4}, {df_shape4(2, 6, 7, 7), 3}, {df_shape3(2, 4, 9), 1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        df_shape s = cases[k].s;
        int G = cases[k].groups;
        int64_t n = df_shape_numel(&s), B = s.d[0], per = n / (B * G);
        float *x = malloc(n * 4);
        dft_fill_uniform(x, n, -2, 3, 30 + k);
        dft_input in = {"x", DF_F32, s, 1, -2, 3, 0, 0};
        df_shape os;
        float *st = dft_forward(build_stats, &G, &in, 1, (void *[]){x}, &os);
        assert_non_null(st);
        assert_int_equal(df_shape_numel(&os), 2 * B * G);
        float ref[2 * 64];
        for (int64_t bg = 0; bg < B * G; bg++) { /* groups are runs of per values */
            double m = 0, v = 0;
            for (int64_t i = 0; i < per; i++) m += x[bg * per + i];
            m /= per;
            for (int64_t i = 0; i < per; i++) v += (x[bg * per + i] - m) * (x[bg * per + i] - m);
            ref[2 * bg] = (float)m, ref[2 * bg + 1] = (float)(1 / sqrt(v / per + 1e-5));
        }
        assert_int_equal(dft_close(st, ref, 2 * B * G, 1e-6f, 1e-5f, "groupnorm_stats"), 0);
        free(st), free(x);
    }
    dft_mark_forward(DF_OP_GROUPNORM_STATS);
}

static void test_errors(void **state) {
    (void)state;
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *x = df_input(g, "x", DF_F32, df_shape4(2, 6, 3, 3));
    df_node *ga = df_input(g, "g", DF_F32, df_shape1(6));
    df_node *be = df_input(g, "b", DF_F32, df_shape1(6));
    assert_null(df_groupnorm(g, x, ga, be, 4, 1e-5f));
    assert_non_null(strstr(df_graph_errmsg(g), "groups 4 must divide the 6 channels"));
    df_graph_free(g);
    g = df_graph_new(ps);
    x = df_input(g, "x", DF_F32, df_shape4(2, 6, 3, 3));
    ga = df_input(g, "g", DF_F32, df_shape1(5));
    be = df_input(g, "b", DF_F32, df_shape1(6));
    assert_null(df_groupnorm(g, x, ga, be, 3, 1e-5f));
    assert_non_null(strstr(df_graph_errmsg(g), "gamma has shape [5], expected [6]"));
    df_graph_free(g);
    g = df_graph_new(ps); /* the fused gradient's added gradient in the wrong shape */
    x = df_input(g, "x", DF_F32, df_shape4(2, 6, 3, 3));
    ga = df_input(g, "g", DF_F32, df_shape1(6));
    be = df_input(g, "b", DF_F32, df_shape1(6));
    df_node *acc = df_input(g, "acc", DF_F32, df_shape4(2, 6, 3, 2));
    int32_t groups = 3;
    float eps = 1e-5f;
    assert_null(df_node_new(g, DF_OP_GROUPNORM_SILU_BWD_ALL, (df_node *[]){x, ga, be, x, acc}, 5,
                            &groups, 1, &eps, 1));
    assert_non_null(strstr(df_graph_errmsg(g), "acc in the input's shape"));
    df_graph_free(g);
    df_params_free(ps);
}

int dft_run_norm(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_forward_and_grad), cmocka_unit_test(test_fused_equals_pair),
        cmocka_unit_test(test_fused_backward),   cmocka_unit_test(test_stats),
        cmocka_unit_test(test_offset_inputs),    cmocka_unit_test(test_errors)};
    return cmocka_run_group_tests_name("norm", t, NULL, NULL);
}
