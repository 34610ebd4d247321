/* embedding and Fourier time features. */
#include "harness.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static df_node *build_emb(df_graph *g, df_node **in, void *c) {
    (void)c;
    return df_embedding(g, in[0], in[1]);
}
static df_node *build_fourier(df_graph *g, df_node **in, void *c) {
    (void)c;
    return df_fourier(g, in[0], in[1]);
}

static void test_embedding(void **state) {
    (void)state;
    enum { N = 9, V = 5, D = 3 };
    int32_t idx[N] = {0, 4, 2, 2, 1, 4, 4, 0, 3}; /* repeated indices */
    float tab[V * D], ref[N * D];
    dft_fill_uniform(tab, V * D, -1, 1, 1);
    dft_input ins[2] = {{"idx", DF_I32, df_shape1(N), 0, 0, 0, 0, V},
                        {"table", DF_F32, df_shape2(V, D), 1, -1, 1, 0, 0}};
    df_shape os;
    float *y = dft_forward(build_emb, NULL, ins, 2, (void *[]){idx, tab}, &os);
    assert_true(df_shape_eq(&os, &(df_shape){2, {N, D}}));
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++) ref[i * D + d] = tab[idx[i] * D + d];
    assert_int_equal(dft_close(y, ref, N * D, 0, 0, "embedding"), 0);
    free(y);
    dft_mark_forward(DF_OP_EMBEDDING);
    /* random indices: the gradient check draws them in [0, V) */
    dft_input gins[2] = {{"idx", DF_I32, df_shape2(3, 4), 0, 0, 0, 0, V},
                         {"table", DF_F32, df_shape2(V, D), 1, -1, 1, 0, 0}};
    assert_int_equal(dft_gradcheck(build_emb, NULL, gins, 2, 2, 1e-2f, 2e-3, 15), 0);
    /* out-of-range index: run-time error with the value, graph stays usable */
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *ix = df_input(g, "idx", DF_I32, df_shape1(3));
    df_node *t = df_input(g, "table", DF_F32, df_shape2(V, D));
    df_node *e = df_embedding(g, ix, t);
    df_keep(g, e);
    assert_int_equal(df_compile(g, NULL), DF_OK);
    df_set_input(g, t, tab, V * D);
    df_set_input(g, ix, (int32_t[]){1, -1, 2}, 3);
    assert_int_equal(df_run(g), DF_ERANGE);
    assert_non_null(strstr(df_errmsg(), "index -1 at position 1"));
    df_set_input(g, ix, (int32_t[]){1, 4, 2}, 3);
    assert_int_equal(df_run(g), DF_OK);
    df_graph_free(g);
    g = df_graph_new(ps);
    ix = df_input(g, "idx", DF_F32, df_shape1(3));
    t = df_input(g, "table", DF_F32, df_shape2(V, D));
    assert_null(df_embedding(g, ix, t));
    assert_non_null(strstr(df_graph_errmsg(g), "int32"));
    df_graph_free(g);
    df_params_free(ps);
}

static void test_fourier(void **state) {
    (void)state;
    enum { N = 5, K = 4 };
    float t[N], w[K], ref[N * 2 * K];
    dft_fill_uniform(t, N, 0, 1, 3);
    dft_fill_uniform(w, K, -2, 2, 4);
    dft_input ins[2] = {{"t", DF_F32, df_shape1(N), 1, 0, 1, 0, 0},
                        {"w", DF_F32, df_shape1(K), 1, -1, 1, 0, 0}};
    float *y = dft_forward(build_fourier, NULL, ins, 2, (void *[]){t, w}, NULL);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < K; k++) {
            double a = 2 * M_PI * t[i] * w[k];
            ref[i * 2 * K + k] = (float)(sqrt(2) * sin(a));
            ref[i * 2 * K + K + k] = (float)(sqrt(2) * cos(a));
        }
    assert_int_equal(dft_close(y, ref, N * 2 * K, 1e-6f, 1e-5f, "fourier"), 0);
    free(y);
    dft_mark_forward(DF_OP_FOURIER);
    assert_int_equal(dft_gradcheck(build_fourier, NULL, ins, 2, 5, 1e-3f, 2e-3, 16), 0);
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *a = df_input(g, "t", DF_F32, df_shape2(N, 1));
    df_node *b = df_input(g, "w", DF_F32, df_shape1(K));
    assert_null(df_fourier(g, a, b));
    assert_non_null(strstr(df_graph_errmsg(g), "[N]"));
    df_graph_free(g);
    df_params_free(ps);
}

int dft_run_embed(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_embedding),
                                   cmocka_unit_test(test_fourier)};
    return cmocka_run_group_tests_name("embed", t, NULL, NULL);
}
