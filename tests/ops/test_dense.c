/* matmul (all transposes, batched and shared operands) and linear. */
#include "harness.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    int ta, tb;
} mctx;
static df_node *build_mm(df_graph *g, df_node **in, void *vc) {
    mctx *c = vc;
    return df_matmul(g, in[0], in[1], c->ta, c->tb);
}
static df_node *build_lin(df_graph *g, df_node **in, void *vc) {
    return df_linear(g, in[0], in[1], *(int *)vc ? in[2] : NULL);
}

static void test_matmul(void **state) {
    (void)state;
    int M = 5, N = 7, K = 3;
    for (int shared = 0; shared < 3; shared++) /* 0: both batched, 1: A shared, 2: B shared */
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int bat = 2;
                df_shape sa = ta ? df_shape3(bat, K, M) : df_shape3(bat, M, K);
                df_shape sb = tb ? df_shape3(bat, N, K) : df_shape3(bat, K, N);
                if (shared == 1) sa = ta ? df_shape2(K, M) : df_shape2(M, K);
                if (shared == 2) sb = tb ? df_shape2(N, K) : df_shape2(K, N);
                int64_t na = df_shape_numel(&sa), nb = df_shape_numel(&sb);
                float *a = malloc(na * 4), *b = malloc(nb * 4), ref[2 * 5 * 7];
                dft_fill_uniform(a, na, -1, 1, 1);
                dft_fill_uniform(b, nb, -1, 1, 2);
                mctx c = {ta, tb};
                dft_input ins[2] = {{"a", DF_F32, sa, 1, -1, 1, 0, 0},
                                    {"b", DF_F32, sb, 1, -1, 1, 0, 0}};
                df_shape os;
                float *y = dft_forward(build_mm, &c, ins, 2, (void *[]){a, b}, &os);
                assert_non_null(y);
                assert_true(df_shape_eq(&os, &(df_shape){3, {bat, M, N}}));
                for (int q = 0; q < bat; q++)
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++) {
                            double s = 0;
                            const float *A = a + (shared == 1 ? 0 : q * M * K);
                            const float *Bm = b + (shared == 2 ? 0 : q * K * N);
                            for (int k = 0; k < K; k++)
                                s += (double)(ta ? A[k * M + i] : A[i * K + k]) *
                                     (tb ? Bm[j * K + k] : Bm[k * N + j]);
                            ref[(q * M + i) * N + j] = (float)s;
                        }
                assert_int_equal(dft_close(y, ref, bat * M * N, 1e-6f, 1e-5f, "matmul"), 0);
                assert_int_equal(
                    dft_gradcheck(build_mm, &c, ins, 2, 7 + ta + 2 * tb, 1e-2f, 2e-3, 30), 0);
                free(a);
                free(b);
                free(y);
            }
    dft_mark_forward(DF_OP_MATMUL);
}

static void test_linear(void **state) {
    (void)state;
    int in = 5, out = 3;
    for (int bias = 0; bias < 2; bias++) {
        df_shape sx = df_shape3(2, 3, in); /* 3-D input */
        float x[30], w[15], b[3], ref[18];
        dft_fill_uniform(x, 30, -1, 1, 3);
        dft_fill_uniform(w, 15, -1, 1, 4);
        dft_fill_uniform(b, 3, -1, 1, 5);
        dft_input ins[3] = {{"x", DF_F32, sx, 1, -1, 1, 0, 0},
                            {"w", DF_F32, df_shape2(out, in), 1, -1, 1, 0, 0},
                            {"b", DF_F32, df_shape1(out), 1, -1, 1, 0, 0}};
        float *y = dft_forward(build_lin, &bias, ins, 2 + bias, (void *[]){x, w, b}, NULL);
        for (int r = 0; r < 6; r++)
            for (int o = 0; o < out; o++) {
                double s = bias ? b[o] : 0;
                for (int k = 0; k < in; k++) s += (double)x[r * in + k] * w[o * in + k];
                ref[r * out + o] = (float)s;
            }
        assert_int_equal(dft_close(y, ref, 18, 1e-6f, 1e-5f, "linear"), 0);
        free(y);
        assert_int_equal(dft_gradcheck(build_lin, &bias, ins, 2 + bias, 9, 1e-2f, 2e-3, 30), 0);
    }
    dft_mark_forward(DF_OP_LINEAR);
}

static void test_errors(void **state) {
    (void)state;
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *a = df_input(g, "a", DF_F32, df_shape2(4, 5));
    df_node *b = df_input(g, "b", DF_F32, df_shape2(6, 7));
    assert_null(df_matmul(g, a, b, 0, 0));
    assert_non_null(strstr(df_graph_errmsg(g), "[4, 5]"));
    assert_non_null(strstr(df_graph_errmsg(g), "[6, 7]"));
    df_graph_free(g);
    g = df_graph_new(ps);
    a = df_input(g, "x", DF_F32, df_shape2(4, 5));
    b = df_input(g, "w", DF_F32, df_shape2(3, 6));
    assert_null(df_linear(g, a, b, NULL));
    assert_non_null(strstr(df_graph_errmsg(g), "5 features"));
    df_graph_free(g);
    df_params_free(ps);
}

int dft_run_dense(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_matmul), cmocka_unit_test(test_linear),
                                   cmocka_unit_test(test_errors)};
    return cmocka_run_group_tests_name("dense", t, NULL, NULL);
}
