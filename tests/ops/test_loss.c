/* mse_loss and cross_entropy. */
#include "harness.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static df_node *build_mse(df_graph *g, df_node **in, void *c) {
    (void)c;
    return df_mse_loss(g, in[0], in[1]);
}
static df_node *build_ce(df_graph *g, df_node **in, void *c) {
    (void)c;
    return df_cross_entropy(g, in[0], in[1]);
}

static void test_mse(void **state) {
    (void)state;
    enum { N = 3 * 5 * 7 };
    float p[N], t[N];
    dft_fill_uniform(p, N, -2, 2, 1);
    dft_fill_uniform(t, N, -2, 2, 2);
    dft_input ins[2] = {{"p", DF_F32, df_shape3(3, 5, 7), 1, -2, 2, 0, 0},
                        {"t", DF_F32, df_shape3(3, 5, 7), 1, -2, 2, 0, 0}};
    float *y = dft_forward(build_mse, NULL, ins, 2, (void *[]){p, t}, NULL);
    double s = 0;
    for (int i = 0; i < N; i++) s += ((double)p[i] - t[i]) * ((double)p[i] - t[i]);
    float ref = (float)(s / N);
    assert_int_equal(dft_close(y, &ref, 1, 1e-7f, 1e-6f, "mse"), 0);
    free(y);
    dft_mark_forward(DF_OP_MSE_LOSS);
    assert_int_equal(dft_gradcheck(build_mse, NULL, ins, 2, 3, 1e-2f, 2e-3, 48), 0);
}

static void test_cross_entropy(void **state) {
    (void)state;
    enum { N = 5, C = 7 };
    float x[N * C];
    int32_t l[N];
    dft_fill_uniform(x, N * C, -3, 3, 4);
    dft_fill_int(l, N, 0, C, 5);
    dft_input ins[2] = {{"logits", DF_F32, df_shape2(N, C), 1, -3, 3, 0, 0},
                        {"labels", DF_I32, df_shape1(N), 0, 0, 0, 0, C}};
    float *y = dft_forward(build_ce, NULL, ins, 2, (void *[]){x, l}, NULL);
    double s = 0;
    for (int i = 0; i < N; i++) {
        double z = 0;
        for (int j = 0; j < C; j++) z += exp(x[i * C + j]);
        s += log(z) - x[i * C + l[i]];
    }
    float ref = (float)(s / N);
    assert_int_equal(dft_close(y, &ref, 1, 1e-6f, 1e-5f, "cross_entropy"), 0);
    free(y);
    dft_mark_forward(DF_OP_CROSS_ENTROPY);
    assert_int_equal(dft_gradcheck(build_ce, NULL, ins, 2, 6, 1e-2f, 2e-3, 35), 0);
}

static void test_runtime_errors(void **state) {
    (void)state;
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *x = df_input(g, "logits", DF_F32, df_shape2(3, 4));
    df_node *l = df_input(g, "labels", DF_I32, df_shape1(3));
    df_node *ce = df_cross_entropy(g, x, l);
    df_keep(g, ce);
    assert_int_equal(df_backward(g, ce, &x, 1), DF_OK);
    assert_int_equal(df_compile(g, NULL), DF_OK);
    float xv[12] = {0};
    df_set_input(g, x, xv, 12);
    df_set_input(g, l, (int32_t[]){0, 4, 1}, 3);
    assert_int_equal(df_run(g), DF_ERANGE);
    assert_non_null(strstr(df_errmsg(), "label 4 at position 1"));
    df_set_input(g, l, (int32_t[]){0, 3, 1}, 3); /* fixed: the graph is still usable */
    assert_int_equal(df_run(g), DF_OK);
    assert_true(fabsf(*(float *)df_data(ce) - logf(4)) < 1e-6f);
    xv[5] = NAN;
    df_set_input(g, x, xv, 12);
    assert_int_equal(df_run(g), DF_ENONFINITE);
    df_graph_free(g);
    /* build-time errors: shapes and dtypes */
    g = df_graph_new(ps);
    x = df_input(g, "logits", DF_F32, df_shape2(3, 4));
    l = df_input(g, "labels", DF_F32, df_shape1(3));
    assert_null(df_cross_entropy(g, x, l));
    assert_non_null(strstr(df_graph_errmsg(g), "int32"));
    df_graph_free(g);
    g = df_graph_new(ps);
    x = df_input(g, "p", DF_F32, df_shape2(3, 4));
    l = df_input(g, "t", DF_F32, df_shape2(4, 3));
    assert_null(df_mse_loss(g, x, l));
    assert_non_null(strstr(df_graph_errmsg(g), "[4, 3]"));
    df_graph_free(g);
    df_params_free(ps);
}

int dft_run_loss(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_mse), cmocka_unit_test(test_cross_entropy),
                                   cmocka_unit_test(test_runtime_errors)};
    return cmocka_run_group_tests_name("loss", t, NULL, NULL);
}
