/* softmax over the last axis. */
#include "harness.h"
#include <math.h>
#include <stdlib.h>

static df_node *build(df_graph *g, df_node **in, void *c) {
    (void)c;
    return df_softmax(g, in[0]);
}

static void test_forward(void **state) {
    (void)state;
    enum { R = 2 * 3, L = 7 };
    float x[R * L], ref[R * L];
    dft_fill_uniform(x, R * L, 50, 100, 1); /* large values: needs the max shift */
    dft_input ins[1] = {{"x", DF_F32, df_shape3(2, 3, L), 1, -2, 2, 0, 0}};
    float *y = dft_forward(build, NULL, ins, 1, (void *[]){x}, NULL);
    for (int r = 0; r < R; r++) {
        double m = -1e30, s = 0;
        for (int j = 0; j < L; j++) m = fmax(m, x[r * L + j]);
        for (int j = 0; j < L; j++) s += exp(x[r * L + j] - m);
        for (int j = 0; j < L; j++) ref[r * L + j] = (float)(exp(x[r * L + j] - m) / s);
    }
    assert_int_equal(dft_close(y, ref, R * L, 1e-7f, 1e-5f, "softmax"), 0);
    free(y);
    dft_mark_forward(DF_OP_SOFTMAX);
}

static void test_grad(void **state) {
    (void)state;
    dft_input ins[1] = {{"x", DF_F32, df_shape3(2, 3, 7), 1, -2, 2, 0, 0}};
    assert_int_equal(dft_gradcheck(build, NULL, ins, 1, 5, 1e-2f, 2e-3, 42), 0);
    dft_input row[1] = {{"x", DF_F32, df_shape1(5), 1, -3, 3, 0, 0}};
    assert_int_equal(dft_gradcheck(build, NULL, row, 1, 6, 1e-2f, 2e-3, 5), 0);
}

int dft_run_softmax(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_forward), cmocka_unit_test(test_grad)};
    return cmocka_run_group_tests_name("softmax", t, NULL, NULL);
}
