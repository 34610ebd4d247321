/* reduce (sum / mean / sum_to) and expand. */
#include "harness.h"
#include <stdlib.h>

typedef struct {
    df_shape x;
    unsigned mask;
    int mean;
} rctx;

static df_node *build_sum(df_graph *g, df_node **in, void *ctx) {
    rctx *c = ctx;
    return c->mean ? df_mean(g, in[0], c->mask) : df_sum(g, in[0], c->mask);
}

static void naive_sum(const df_shape *s, unsigned mask, int mean, const float *x, float *y) {
    df_shape t = *s;
    double cnt = 1;
    for (int j = 0; j < s->nd; j++)
        if (mask & (1u << j)) {
            t.d[j] = 1;
            cnt *= s->d[j];
        }
    int64_t n = df_shape_numel(s), m = df_shape_numel(&t);
    double *acc = calloc(m, sizeof *acc);
    for (int64_t i = 0; i < n; i++) {
        int64_t r = i, o = 0, mul = 1;
        for (int j = s->nd - 1; j >= 0; j--) {
            int64_t q = r % s->d[j];
            r /= s->d[j];
            o += (t.d[j] == 1 ? 0 : q) * mul;
            mul *= t.d[j];
        }
        acc[o] += x[i];
    }
    for (int64_t i = 0; i < m; i++) y[i] = (float)(mean ? acc[i] / cnt : acc[i]);
    free(acc);
}

static void test_reduce_forward(void **state) {
    (void)state;
    rctx cases[] = {{df_shape4(3, 5, 7, 2), 1u << 1, 0},
                    {df_shape4(3, 5, 7, 2), 0xd, 0},
                    {df_shape4(3, 5, 7, 2), 0xf, 1},
                    {df_shape3(1, 9, 4), 1u << 2, 1},
                    {df_shape2(13, 3), 1u << 0, 0},
                    {df_shape3(4, 5, 6), 0, 0},
                    {df_shape4(2, 3, 1, 5), 0x5, 0},
                    /* an upsample's gradient: [.., H, 2, W, 2] over the 2s (few rows,
                     * offsets up front) */
                    {(df_shape){6, {2, 3, 4, 2, 5, 2}}, 0x28, 0},
                    /* more rows than are listed up front, and dims that merge */
                    {df_shape3(300, 2, 3), 0x5, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t n = df_shape_numel(&cases[c].x);
        float *x = malloc(n * 4), ref[1024];
        dft_fill_uniform(x, n, -1, 1, 40 + c);
        dft_input ins[1] = {{"x", DF_F32, cases[c].x, 1, -1, 1, 0, 0}};
        df_shape os;
        float *y = dft_forward(build_sum, &cases[c], ins, 1, (void *[]){x}, &os);
        assert_non_null(y);
        naive_sum(&cases[c].x, cases[c].mask, cases[c].mean, x, ref);
        assert_int_equal(dft_close(y, ref, df_shape_numel(&os), 1e-6f, 1e-5f, "reduce"), 0);
        assert_int_equal(dft_gradcheck(build_sum, &cases[c], ins, 1, 7 + c, 1e-2f, 2e-3, 32), 0);
        free(x);
        free(y);
    }
    dft_mark_forward(DF_OP_REDUCE);
}

typedef struct {
    df_shape to;
    int off;
} ectx;
static df_node *build_expand(df_graph *g, df_node **in, void *ctx) {
    ectx *c = ctx;
    return df_expand(g, in[0], c->to);
}
static df_node *build_sum_to(df_graph *g, df_node **in, void *ctx) {
    ectx *c = ctx;
    return df_sum_to(g, in[0], c->to, c->off);
}

static void test_expand(void **state) {
    (void)state;
    /* [2,3] -> [2,3,4,5] (leading-aligned, as a per-channel bias) */
    float x[6], ref[120];
    dft_fill_uniform(x, 6, -1, 1, 3);
    ectx c = {df_shape4(2, 3, 4, 5), -1};
    dft_input ins[1] = {{"x", DF_F32, df_shape2(2, 3), 1, -1, 1, 0, 0}};
    float *y = dft_forward(build_expand, &c, ins, 1, (void *[]){x}, NULL);
    for (int i = 0; i < 120; i++) ref[i] = x[i / 20];
    assert_int_equal(dft_close(y, ref, 120, 0, 0, "expand"), 0);
    free(y);
    /* [5] -> [2,3,4,5] (numpy) */
    ectx c2 = {df_shape4(2, 3, 4, 5), -1};
    dft_input in2[1] = {{"x", DF_F32, df_shape1(5), 1, -1, 1, 0, 0}};
    y = dft_forward(build_expand, &c2, in2, 1, (void *[]){x}, NULL);
    for (int i = 0; i < 120; i++) ref[i] = x[i % 5];
    assert_int_equal(dft_close(y, ref, 120, 0, 0, "expand numpy"), 0);
    free(y);
    dft_mark_forward(DF_OP_EXPAND);
    assert_int_equal(dft_gradcheck(build_expand, &c, ins, 1, 5, 1e-2f, 2e-3, 32), 0);
    assert_int_equal(dft_gradcheck(build_expand, &c2, in2, 1, 6, 1e-2f, 2e-3, 32), 0);
    /* sum_to with an explicit offset: conv bias gradient [B,C,H,W] -> [C] */
    ectx c3 = {df_shape1(3), 1};
    dft_input in3[1] = {{"x", DF_F32, df_shape4(2, 3, 4, 5), 1, -1, 1, 0, 0}};
    float big[120];
    dft_fill_uniform(big, 120, -1, 1, 9);
    y = dft_forward(build_sum_to, &c3, in3, 1, (void *[]){big}, NULL);
    for (int ch = 0; ch < 3; ch++) {
        double s = 0;
        for (int b = 0; b < 2; b++)
            for (int k = 0; k < 20; k++) s += big[(b * 3 + ch) * 20 + k];
        ref[ch] = (float)s;
    }
    assert_int_equal(dft_close(y, ref, 3, 1e-6f, 1e-5f, "sum_to"), 0);
    free(y);
    assert_int_equal(dft_gradcheck(build_sum_to, &c3, in3, 1, 8, 1e-2f, 2e-3, 32), 0);
}

static void test_reduce_errors(void **state) {
    (void)state;
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *x = df_input(g, "x", DF_F32, df_shape3(2, 3, 4));
    assert_null(df_sum_to(g, x, df_shape1(5), -1));
    assert_int_equal(df_graph_status(g), DF_ESHAPE);
    df_graph_free(g);
    g = df_graph_new(ps);
    x = df_input(g, "x", DF_F32, df_shape3(2, 3, 4));
    assert_null(df_expand(g, x, df_shape2(3, 4)));
    assert_int_not_equal(df_graph_status(g), DF_OK);
    df_graph_free(g);
    df_params_free(ps);
}

int dft_run_reduce(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_reduce_forward),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_reduce_errors),
    };
    return cmocka_run_group_tests_name("reduce", t, NULL, NULL);
}
