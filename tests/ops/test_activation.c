/* silu, relu and their gradient kernels. */
#include "harness.h"
#include <math.h>
#include <stdlib.h>

static df_node *build_silu(df_graph *g, df_node **in, void *c) {
    (void)c;
    return df_silu(g, in[0]);
}
static df_node *build_relu(df_graph *g, df_node **in, void *c) {
    (void)c;
    return df_relu(g, in[0]);
}

static void test_forward(void **state) {
    (void)state;
    enum { N = 3 * 7 * 5 };
    float x[N], ref[N];
    dft_fill_uniform(x, N, -6, 6, 1);
    dft_input ins[1] = {{"x", DF_F32, df_shape3(3, 7, 5), 1, -3, 3, 0, 0}};
    float *y = dft_forward(build_silu, NULL, ins, 1, (void *[]){x}, NULL);
    for (int i = 0; i < N; i++) ref[i] = (float)(x[i] / (1 + exp(-(double)x[i])));
    assert_int_equal(dft_close(y, ref, N, 1e-6f, 1e-5f, "silu"), 0);
    free(y);
    dft_mark_forward(DF_OP_SILU);
    y = dft_forward(build_relu, NULL, ins, 1, (void *[]){x}, NULL);
    for (int i = 0; i < N; i++) ref[i] = x[i] > 0 ? x[i] : 0;
    assert_int_equal(dft_close(y, ref, N, 0, 0, "relu"), 0);
    free(y);
    dft_mark_forward(DF_OP_RELU);
}

static void test_grad(void **state) {
    (void)state;
    dft_input ins[1] = {{"x", DF_F32, df_shape3(3, 7, 5), 1, -3, 3, 0, 0}};
    assert_int_equal(dft_gradcheck(build_silu, NULL, ins, 1, 2, 1e-2f, 2e-3, 64), 0);
    assert_int_equal(dft_gradcheck(build_relu, NULL, ins, 1, 3, 1e-2f, 2e-3, 64), 0);
    dft_input one[1] = {{"x", DF_F32, df_shape1(1), 1, 0.5f, 1.5f, 0, 0}}; /* batch-1 style */
    assert_int_equal(dft_gradcheck(build_silu, NULL, one, 1, 4, 1e-2f, 2e-3, 8), 0);
}

/* non-finite inputs: silu follows IEEE (NaN -> NaN, +Inf -> +Inf) with no
 * undefined behaviour in the vectorised exp (UBSan checks that shift) */
static void test_nonfinite(void **state) {
    (void)state;
    float x[8] = {NAN, INFINITY, -INFINITY, 0, 1, -1, 100, -100};
    dft_input ins[1] = {{"x", DF_F32, df_shape1(8), 0, 0, 0, 0, 0}};
    float *y = dft_forward(build_silu, NULL, ins, 1, (void *[]){x}, NULL);
    assert_non_null(y);
    assert_true(isnan(y[0]));
    assert_true(y[1] > 1e30f);
    assert_false(y[2] > 0); /* -Inf / huge */
    assert_true(fabsf(y[4] - 0.7310586f) < 1e-6f);
    assert_true(fabsf(y[6] - 100) < 1e-4f && fabsf(y[7]) < 1e-30f);
    free(y);
}

static void test_errors(void **state) {
    (void)state;
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *i = df_input(g, "i", DF_I32, df_shape1(4));
    assert_null(df_silu(g, i));
    assert_int_equal(df_graph_status(g), DF_EINVAL);
    df_graph_free(g);
    df_params_free(ps);
}

int dft_run_activation(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_forward), cmocka_unit_test(test_grad),
                                   cmocka_unit_test(test_nonfinite), cmocka_unit_test(test_errors)};
    return cmocka_run_group_tests_name("activation", t, NULL, NULL);
}
