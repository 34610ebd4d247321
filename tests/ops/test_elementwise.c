/* add / sub / mul with broadcasting, scale, copy, fill. */
#include "harness.h"
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

typedef struct {
    int op;
    int oa, ob; /* alignment offsets, -1 = infer */
} bin_ctx;

static df_node *build_bin(df_graph *g, df_node **in, void *ctx) {
    bin_ctx *c = ctx;
    return df_binary_aligned(g, c->op, in[0], in[1], c->oa, c->ob);
}

/* naive: out index -> operand index by explicit alignment */
static void naive_bin(int op, const df_shape *sa, int oa, const float *a, const df_shape *sb,
                      int ob, const float *b, const df_shape *so, float *y) {
    int64_t n = df_shape_numel(so);
    for (int64_t i = 0; i < n; i++) {
        int64_t idx[DF_MAX_DIMS], r = i;
        for (int j = so->nd - 1; j >= 0; j--) {
            idx[j] = r % so->d[j];
            r /= so->d[j];
        }
        int64_t ia = 0, ib = 0;
        for (int j = 0; j < sa->nd; j++) ia = ia * sa->d[j] + (sa->d[j] == 1 ? 0 : idx[j + oa]);
        for (int j = 0; j < sb->nd; j++) ib = ib * sb->d[j] + (sb->d[j] == 1 ? 0 : idx[j + ob]);
        y[i] = op == DF_OP_ADD ? a[ia] + b[ib] : op == DF_OP_SUB ? a[ia] - b[ib] : a[ia] * b[ib];
    }
}

typedef struct {
    df_shape a, b, out;
    int oa, ob; /* expected inferred offsets */
} bcase;

static void test_binary_forward(void **state) {
    (void)state;
    bcase cases[] = {
        {df_shape3(3, 5, 7), df_shape3(3, 5, 7), df_shape3(3, 5, 7), 0, 0},
        {df_shape4(2, 3, 5, 7), df_shape2(2, 3), df_shape4(2, 3, 5, 7), 0, 0}, /* [B,C] over NCHW */
        {df_shape4(2, 3, 5, 7), df_shape1(7), df_shape4(2, 3, 5, 7), 0, 3},    /* numpy trailing */
        {df_shape3(1, 5, 1), df_shape3(4, 1, 3), df_shape3(4, 5, 3), 0, 0},    /* both broadcast */
        {df_shape1(1), df_shape3(2, 3, 5), df_shape3(2, 3, 5), 2, 0},          /* scalar */
        {df_shape4(1, 3, 1, 1), df_shape4(4, 3, 9, 9), df_shape4(4, 3, 9, 9), 0, 0},
        /* long rows, split into spans (the last one short) */
        {df_shape3(3, 5, 8001), df_shape3(3, 5, 8001), df_shape3(3, 5, 8001), 0, 0},
        {df_shape2(2, 50001), df_shape2(2, 1), df_shape2(2, 50001), 0, 0},
    };
    int ops[3] = {DF_OP_ADD, DF_OP_SUB, DF_OP_MUL};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int k = 0; k < 3; k++) {
            bin_ctx ctx = {ops[k], -1, -1};
            dft_input ins[2] = {{"a", DF_F32, cases[c].a, 0, -2, 2, 0, 0},
                                {"b", DF_F32, cases[c].b, 0, -2, 2, 0, 0}};
            int64_t na = df_shape_numel(&cases[c].a), nb = df_shape_numel(&cases[c].b);
            float *a = malloc(na * 4), *b = malloc(nb * 4);
            dft_fill_uniform(a, na, -2, 2, 10 + c);
            dft_fill_uniform(b, nb, -2, 2, 20 + c);
            df_shape os;
            float *y = dft_forward(build_bin, &ctx, ins, 2, (void *[]){a, b}, &os);
            assert_non_null(y);
            assert_true(df_shape_eq(&os, &cases[c].out));
            float *ref = malloc(df_shape_numel(&os) * 4);
            naive_bin(ops[k], &cases[c].a, cases[c].oa, a, &cases[c].b, cases[c].ob, b, &os, ref);
            assert_int_equal(dft_close(y, ref, df_shape_numel(&os), 0, 0, "binary"), 0);
            free(a);
            free(b);
            free(y);
            free(ref);
        }
    dft_mark_forward(DF_OP_ADD);
    dft_mark_forward(DF_OP_SUB);
    dft_mark_forward(DF_OP_MUL);
}

static void test_binary_grad(void **state) {
    (void)state;
    int ops[3] = {DF_OP_ADD, DF_OP_SUB, DF_OP_MUL};
    df_shape pairs[][2] = {{df_shape3(2, 3, 5), df_shape3(2, 3, 5)},
                           {df_shape4(2, 3, 4, 5), df_shape2(2, 3)},
                           {df_shape3(1, 5, 1), df_shape3(4, 1, 3)},
                           {df_shape3(3, 4, 5), df_shape1(5)}};
    for (int k = 0; k < 3; k++)
        for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
            bin_ctx ctx = {ops[k], -1, -1};
            dft_input ins[2] = {{"a", DF_F32, pairs[p][0], 1, -1, 1, 0, 0},
                                {"b", DF_F32, pairs[p][1], 1, -1, 1, 0, 0}};
            int rc = dft_gradcheck(build_bin, &ctx, ins, 2, 100 + p, 1e-2f, 2e-3, 48);
            if (rc) fprintf(stderr, "op %d pair %zu\n", ops[k], p);
            assert_int_equal(rc, 0);
        }
}

static df_node *build_scale(df_graph *g, df_node **in, void *ctx) {
    (void)ctx;
    return df_scale(g, in[0], -1.75f);
}
static df_node *build_copy(df_graph *g, df_node **in, void *ctx) {
    (void)ctx;
    return df_copy(g, in[0]);
}
static df_node *build_fill(df_graph *g, df_node **in, void *ctx) {
    (void)ctx;
    return df_add(g, in[0], df_fill(g, df_shape2(3, 1), 2.5f));
}

static void test_unary(void **state) {
    (void)state;
    dft_input ins[1] = {{"x", DF_F32, df_shape3(3, 5, 7), 1, -2, 2, 0, 0}};
    float x[105], ref[105];
    dft_fill_uniform(x, 105, -2, 2, 5);
    float *y = dft_forward(build_scale, NULL, ins, 1, (void *[]){x}, NULL);
    for (int i = 0; i < 105; i++) ref[i] = -1.75f * x[i];
    assert_int_equal(dft_close(y, ref, 105, 0, 0, "scale"), 0);
    free(y);
    dft_mark_forward(DF_OP_SCALE);
    y = dft_forward(build_copy, NULL, ins, 1, (void *[]){x}, NULL);
    assert_int_equal(dft_close(y, x, 105, 0, 0, "copy"), 0);
    free(y);
    dft_mark_forward(DF_OP_COPY);
    dft_input in2[1] = {{"x", DF_F32, df_shape2(3, 4), 1, -2, 2, 0, 0}};
    y = dft_forward(build_fill, NULL, in2, 1, (void *[]){x}, NULL);
    for (int i = 0; i < 12; i++) ref[i] = x[i] + 2.5f;
    assert_int_equal(dft_close(y, ref, 12, 0, 0, "fill"), 0);
    free(y);
    dft_mark_forward(DF_OP_FILL);
    assert_int_equal(dft_gradcheck(build_scale, NULL, ins, 1, 3, 1e-2f, 2e-3, 32), 0);
    assert_int_equal(dft_gradcheck(build_copy, NULL, ins, 1, 4, 1e-2f, 2e-3, 32), 0);
}

static void test_binary_errors(void **state) {
    (void)state;
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *a = df_input(g, "a", DF_F32, df_shape3(2, 3, 4));
    df_node *b = df_input(g, "b", DF_F32, df_shape2(5, 4));
    assert_null(df_add(g, a, b));
    assert_int_equal(df_graph_status(g), DF_ESHAPE);
    assert_non_null(strstr(df_graph_errmsg(g), "[2, 3, 4]"));
    assert_non_null(strstr(df_graph_errmsg(g), "[5, 4]"));
    /* sticky: later builders return NULL quietly */
    assert_null(df_scale(g, a, 2));
    assert_null(df_add(g, NULL, a));
    df_graph_free(g);
    g = df_graph_new(ps);
    a = df_input(g, "a", DF_F32, df_shape1(3));
    df_node *li = df_input(g, "l", DF_I32, df_shape1(3));
    assert_null(df_mul(g, a, li));
    assert_non_null(strstr(df_graph_errmsg(g), "int32"));
    df_graph_free(g);
    g = df_graph_new(ps);
    assert_null(df_add(g, NULL, NULL));
    assert_int_equal(df_graph_status(g), DF_EINVAL);
    df_graph_free(g);
    df_params_free(ps);
}

int dft_run_elementwise(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_binary_forward),
        cmocka_unit_test(test_binary_grad),
        cmocka_unit_test(test_unary),
        cmocka_unit_test(test_binary_errors),
    };
    return cmocka_run_group_tests_name("elementwise", t, NULL, NULL);
}
