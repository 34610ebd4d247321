/* End to end through the C API: an MLP learns a 2-D regression
 * y = sin(2 x1) * cos(x2) with Adam; the loss must fall below a bound. */
#include "harness.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static df_node *dense(df_graph *g, const char *name, df_node *x, int in, int out) {
    df_scope_push(g, name);
    df_node *w = df_param(g, "weight", df_shape2(out, in), (df_init){DF_INIT_KAIMING, 0});
    df_node *b = df_param(g, "bias", df_shape1(out), (df_init){DF_INIT_KAIMING, (float)in});
    df_node *y = df_linear(g, x, w, b);
    df_scope_pop(g);
    return y;
}

static void make_batch(df_rng *r, float *x, float *y, int n) {
    df_rng_uniform(r, x, 2 * n);
    for (int i = 0; i < n; i++) {
        x[2 * i] = 4 * x[2 * i] - 2;
        x[2 * i + 1] = 4 * x[2 * i + 1] - 2;
        y[i] = sinf(2 * x[2 * i]) * cosf(x[2 * i + 1]);
    }
}

static void test_mlp_regression(void **state) {
    (void)state;
    const int B = 128, H = 64, steps = 600;
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *x = df_input(g, "x", DF_F32, df_shape2(B, 2));
    df_node *t = df_input(g, "target", DF_F32, df_shape2(B, 1));
    df_node *h = df_silu(g, dense(g, "fc1", x, 2, H));
    h = df_silu(g, dense(g, "fc2", h, H, H));
    df_node *y = dense(g, "fc3", h, H, 1);
    df_node *loss = df_mse_loss(g, y, t);
    df_keep(g, loss);
    assert_int_equal(df_graph_status(g), DF_OK);
    assert_int_equal(df_backward(g, loss, NULL, 0), DF_OK);
    assert_int_equal(df_compile(g, NULL), DF_OK);
    assert_int_equal(df_params_init(ps, 1), DF_OK);
    df_opt_config cfg = df_opt_defaults(DF_OPT_ADAM);
    cfg.lr = 3e-3f;
    df_optim *opt = df_optim_new(ps, &cfg);
    assert_non_null(opt);
    df_rng data = df_rng_new(99);
    float *xb = malloc(B * 2 * 4), *yb = malloc(B * 4);
    double first = 0, last = 0;
    for (int s = 0; s < steps; s++) {
        make_batch(&data, xb, yb, B);
        df_set_input(g, x, xb, 2 * B);
        df_set_input(g, t, yb, B);
        assert_int_equal(df_run(g), DF_OK);
        float l = *(float *)df_data(loss);
        if (s < 20) first += l / 20;
        if (s >= steps - 20) last += l / 20;
        df_clip_grad_norm(ps, 1.0);
        assert_int_equal(df_optim_step(opt, -1), DF_OK);
    }
    fprintf(stderr, "mlp: loss %.4f (first 20 steps) -> %.4f (last 20 steps)\n", first, last);
    assert_true(last < 0.02);
    assert_true(last < first / 5);
    free(xb);
    free(yb);
    df_optim_free(opt);
    df_graph_free(g);
    df_params_free(ps);
}

int main(void) {
    df_set_threads(0);
    const struct CMUnitTest t[] = {cmocka_unit_test(test_mlp_regression)};
    return cmocka_run_group_tests_name("mlp", t, NULL, NULL);
}
