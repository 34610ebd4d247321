/* reshape, permute, slice, pad, concat, upsample and its gradient. */
#include "harness.h"
#include <stdlib.h>
#include <string.h>

static df_node *build_reshape(df_graph *g, df_node **in, void *ctx) {
    (void)ctx;
    /* a view feeding a computation: scale so the gradient flows through */
    return df_scale(g, df_reshape(g, in[0], df_shape2(5, -1)), 1.5f);
}
static df_node *build_permute(df_graph *g, df_node **in, void *ctx) {
    return df_permute(g, in[0], (const int *)ctx);
}
static df_node *build_slice(df_graph *g, df_node **in, void *ctx) {
    const int *a = ctx;
    return df_slice(g, in[0], a[0], a[1], a[2]);
}
static df_node *build_pad(df_graph *g, df_node **in, void *ctx) {
    const int *a = ctx;
    return df_pad(g, in[0], a[0], a[1], a[2]);
}
static df_node *build_concat(df_graph *g, df_node **in, void *ctx) {
    return df_concat(g, in, 3, *(const int *)ctx);
}
static df_node *build_upsample(df_graph *g, df_node **in, void *ctx) {
    return df_upsample(g, in[0], *(const int *)ctx);
}

static void test_reshape(void **state) {
    (void)state;
    float x[60], ref[60];
    dft_fill_uniform(x, 60, -1, 1, 1);
    dft_input ins[1] = {{"x", DF_F32, df_shape3(3, 4, 5), 1, -1, 1, 0, 0}};
    df_shape os;
    float *y = dft_forward(build_reshape, NULL, ins, 1, (void *[]){x}, &os);
    assert_true(df_shape_eq(&os, &(df_shape){2, {5, 12}}));
    for (int i = 0; i < 60; i++) ref[i] = 1.5f * x[i];
    assert_int_equal(dft_close(y, ref, 60, 0, 0, "reshape"), 0);
    free(y);
    dft_mark_forward(DF_OP_RESHAPE);
    assert_int_equal(dft_gradcheck(build_reshape, NULL, ins, 1, 2, 1e-2f, 2e-3, 32), 0);
}

/* part: a view of elements [7, 7 + 12) of a computed [60] as [3, 4],
 * feeding a computation (a view of an input would alias the input itself) */
static df_node *build_part(df_graph *g, df_node **in, void *ctx) {
    (void)ctx;
    return df_scale(g, df_part(g, df_scale(g, in[0], 2.0f), 7, df_shape2(3, 4)), 1.5f);
}
static void test_part(void **state) {
    (void)state;
    float x[60], ref[12];
    dft_fill_uniform(x, 60, -1, 1, 3);
    dft_input ins[1] = {{"x", DF_F32, df_shape1(60), 1, -1, 1, 0, 0}};
    df_shape os;
    float *y = dft_forward(build_part, NULL, ins, 1, (void *[]){x}, &os);
    assert_true(df_shape_eq(&os, &(df_shape){2, {3, 4}}));
    for (int i = 0; i < 12; i++) ref[i] = 1.5f * (2.0f * x[7 + i]);
    assert_int_equal(dft_close(y, ref, 12, 0, 0, "part"), 0);
    free(y);
    /* a part that does not fit is refused */
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    assert_null(df_part(g, df_input(g, "x", DF_F32, df_shape1(10)), 5, df_shape1(6)));
    assert_non_null(strstr(df_graph_errmsg(g), "does not fit"));
    df_graph_free(g);
    df_params_free(ps);
}

static void test_permute(void **state) {
    (void)state;
    int perm[4] = {0, 2, 3, 1};
    int64_t D[4] = {2, 3, 4, 5};
    float x[120], ref[120];
    dft_fill_uniform(x, 120, -1, 1, 3);
    dft_input ins[1] = {{"x", DF_F32, df_shape4(2, 3, 4, 5), 1, -1, 1, 0, 0}};
    df_shape os;
    float *y = dft_forward(build_permute, perm, ins, 1, (void *[]){x}, &os);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 4; c++)
                for (int d = 0; d < 5; d++) {
                    int idx[4] = {a, b, c, d};
                    int o =
                        ((idx[perm[0]] * D[perm[1]] + idx[perm[1]]) * D[perm[2]] + idx[perm[2]]) *
                            D[perm[3]] +
                        idx[perm[3]];
                    ref[o] = x[((a * 3 + b) * 4 + c) * 5 + d];
                }
    assert_int_equal(dft_close(y, ref, 120, 0, 0, "permute"), 0);
    free(y);
    dft_mark_forward(DF_OP_PERMUTE);
    assert_int_equal(dft_gradcheck(build_permute, perm, ins, 1, 4, 1e-2f, 2e-3, 32), 0);
    int perm2[3] = {2, 0, 1};
    dft_input in2[1] = {{"x", DF_F32, df_shape3(3, 1, 7), 1, -1, 1, 0, 0}};
    assert_int_equal(dft_gradcheck(build_permute, perm2, in2, 1, 5, 1e-2f, 2e-3, 32), 0);
}

static void test_slice_pad(void **state) {
    (void)state;
    float x[105], ref[400];
    dft_fill_uniform(x, 105, -1, 1, 6);
    int sl[3] = {1, 2, 3}; /* axis 1, [2, 5) of [3, 7, 5] */
    dft_input ins[1] = {{"x", DF_F32, df_shape3(3, 7, 5), 1, -1, 1, 0, 0}};
    float *y = dft_forward(build_slice, sl, ins, 1, (void *[]){x}, NULL);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 5; c++) ref[(a * 3 + b) * 5 + c] = x[(a * 7 + b + 2) * 5 + c];
    assert_int_equal(dft_close(y, ref, 45, 0, 0, "slice"), 0);
    free(y);
    dft_mark_forward(DF_OP_SLICE);
    assert_int_equal(dft_gradcheck(build_slice, sl, ins, 1, 7, 1e-2f, 2e-3, 48), 0);
    int pd[3] = {2, 1, 3}; /* axis 2: 5 -> 9 */
    y = dft_forward(build_pad, pd, ins, 1, (void *[]){x}, NULL);
    for (int a = 0; a < 21; a++)
        for (int c = 0; c < 9; c++) ref[a * 9 + c] = (c >= 1 && c < 6) ? x[a * 5 + c - 1] : 0;
    assert_int_equal(dft_close(y, ref, 189, 0, 0, "pad"), 0);
    free(y);
    dft_mark_forward(DF_OP_PAD);
    assert_int_equal(dft_gradcheck(build_pad, pd, ins, 1, 8, 1e-2f, 2e-3, 48), 0);
}

static void test_concat(void **state) {
    (void)state;
    int ax = 1;
    float a[2 * 3 * 4], b[2 * 1 * 4], c[2 * 5 * 4], ref[2 * 9 * 4];
    dft_fill_uniform(a, 24, -1, 1, 1);
    dft_fill_uniform(b, 8, -1, 1, 2);
    dft_fill_uniform(c, 40, -1, 1, 3);
    dft_input ins[3] = {{"a", DF_F32, df_shape3(2, 3, 4), 1, -1, 1, 0, 0},
                        {"b", DF_F32, df_shape3(2, 1, 4), 1, -1, 1, 0, 0},
                        {"c", DF_F32, df_shape3(2, 5, 4), 1, -1, 1, 0, 0}};
    float *y = dft_forward(build_concat, &ax, ins, 3, (void *[]){a, b, c}, NULL);
    for (int n = 0; n < 2; n++)
        for (int ch = 0; ch < 9; ch++)
            for (int k = 0; k < 4; k++)
                ref[(n * 9 + ch) * 4 + k] = ch < 3   ? a[(n * 3 + ch) * 4 + k]
                                            : ch < 4 ? b[(n * 1 + ch - 3) * 4 + k]
                                                     : c[(n * 5 + ch - 4) * 4 + k];
    assert_int_equal(dft_close(y, ref, 72, 0, 0, "concat"), 0);
    free(y);
    dft_mark_forward(DF_OP_CONCAT);
    assert_int_equal(dft_gradcheck(build_concat, &ax, ins, 3, 9, 1e-2f, 2e-3, 32), 0);
    /* errors: mismatched extents name both shapes */
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *xs[2] = {df_input(g, "a", DF_F32, df_shape3(2, 3, 4)),
                      df_input(g, "b", DF_F32, df_shape3(2, 3, 5))};
    assert_null(df_concat(g, xs, 2, 1));
    assert_non_null(strstr(df_graph_errmsg(g), "[2, 3, 5]"));
    df_graph_free(g);
    df_params_free(ps);
}

static void test_upsample(void **state) {
    (void)state;
    int f = 2;
    float x[2 * 3 * 3 * 5], ref[2 * 3 * 6 * 10];
    dft_fill_uniform(x, 90, -1, 1, 11);
    dft_input ins[1] = {{"x", DF_F32, df_shape4(2, 3, 3, 5), 1, -1, 1, 0, 0}};
    float *y = dft_forward(build_upsample, &f, ins, 1, (void *[]){x}, NULL);
    for (int p = 0; p < 6; p++)
        for (int h = 0; h < 6; h++)
            for (int w = 0; w < 10; w++) ref[(p * 6 + h) * 10 + w] = x[(p * 3 + h / 2) * 5 + w / 2];
    assert_int_equal(dft_close(y, ref, 360, 0, 0, "upsample"), 0);
    free(y);
    f = 3;
    y = dft_forward(build_upsample, &f, ins, 1, (void *[]){x}, NULL);
    assert_non_null(y);
    assert_true(y[0] == x[0] && y[2] == x[0] && y[3] == x[1] && y[15 * 2] == x[0] &&
                y[15 * 3] == x[5]);
    free(y);
    dft_mark_forward(DF_OP_UPSAMPLE);
    f = 2;
    assert_int_equal(dft_gradcheck(build_upsample, &f, ins, 1, 12, 1e-2f, 2e-3, 48), 0);
}

static df_node *build_upsample_bwd(df_graph *g, df_node **in, void *ctx) {
    return df_upsample_bwd(g, in[0], *(const int *)ctx);
}
/* upsample's gradient: the sum of each f x f block, rows of 21 outputs (a
 * vector and a masked one), 14 (28 -> 14, the UNet's) and f = 3 */
static void test_upsample_bwd(void **state) {
    (void)state;
    const int cases[][5] = {{2, 3, 3, 21, 2}, {1, 2, 14, 14, 2}, {2, 2, 2, 5, 3}}; /* B C H W f */
    for (int c = 0; c < 3; c++) {
        int B = cases[c][0], C = cases[c][1], H = cases[c][2], W = cases[c][3], f = cases[c][4];
        int X = W * f, n = B * C * H * f * X;
        float *x = malloc(n * 4), *ref = malloc(B * C * H * W * 4);
        dft_fill_uniform(x, n, -1, 1, 40 + c);
        dft_input ins[1] = {{"x", DF_F32, df_shape4(B, C, H * f, X), 1, -1, 1, 0, 0}};
        float *y = dft_forward(build_upsample_bwd, &f, ins, 1, (void *[]){x}, NULL);
        assert_non_null(y);
        for (int p = 0; p < B * C; p++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++) {
                    float s = 0;
                    for (int r = 0; r < f; r++) {
                        float row = 0;
                        for (int k = 0; k < f; k++) row += x[((p * H + h) * f + r) * X + w * f + k];
                        s += row;
                    }
                    ref[(p * H + h) * W + w] = s;
                }
        assert_int_equal(dft_close(y, ref, B * C * H * W, 0, 0, "upsample_bwd"), 0);
        free(y);
        if (c != 1)
            assert_int_equal(dft_gradcheck(build_upsample_bwd, &f, ins, 1, 13 + c, 1e-2f, 2e-3, 48),
                             0);
        free(x), free(ref);
    }
    dft_mark_forward(DF_OP_UPSAMPLE_BWD);
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *x = df_input(g, "x", DF_F32, df_shape4(1, 2, 6, 5));
    assert_null(df_upsample_bwd(g, x, 2));
    assert_non_null(strstr(df_graph_errmsg(g), "not dividing"));
    df_graph_free(g);
    df_params_free(ps);
}

static void test_shape_errors(void **state) {
    (void)state;
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *x = df_input(g, "x", DF_F32, df_shape3(2, 3, 4));
    assert_null(df_reshape(g, x, df_shape2(5, 5)));
    assert_non_null(strstr(df_graph_errmsg(g), "24 elements"));
    df_graph_free(g);
    g = df_graph_new(ps);
    x = df_input(g, "x", DF_F32, df_shape3(2, 3, 4));
    assert_null(df_slice(g, x, 1, 2, 2));
    assert_int_equal(df_graph_status(g), DF_EINVAL);
    df_graph_free(g);
    g = df_graph_new(ps);
    x = df_input(g, "x", DF_F32, df_shape3(2, 3, 4));
    assert_null(df_permute(g, x, (int[]){0, 0, 1}));
    assert_null(df_upsample(g, x, 2)); /* sticky */
    df_graph_free(g);
    g = df_graph_new(ps);
    x = df_input(g, "x", DF_F32, df_shape3(2, 3, 4));
    assert_null(df_upsample(g, x, 2));
    assert_non_null(strstr(df_graph_errmsg(g), "[B, C, H, W]"));
    df_graph_free(g);
    df_params_free(ps);
}

int dft_run_shape(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_reshape),      cmocka_unit_test(test_part),
        cmocka_unit_test(test_permute),      cmocka_unit_test(test_slice_pad),
        cmocka_unit_test(test_concat),       cmocka_unit_test(test_upsample),
        cmocka_unit_test(test_upsample_bwd), cmocka_unit_test(test_shape_errors),
    };
    return cmocka_run_group_tests_name("shape", t, NULL, NULL);
}
