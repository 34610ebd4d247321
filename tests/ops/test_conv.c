/* conv2d and its gradient kernels against a direct convolution. */
#include "harness.h"
#include "conv_winograd.h"
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

typedef struct {
    int B, Cin, H, W, Cout, KH, KW, s, p, bias;
} cc;

static df_node *build(df_graph *g, df_node **in, void *vc) {
    cc *c = vc;
    return df_conv2d(g, in[0], in[1], c->bias ? in[2] : NULL, c->s, c->p);
}

static void naive(const cc *c, const float *x, const float *w, const float *b, float *y) {
    int Ho = (c->H + 2 * c->p - c->KH) / c->s + 1, Wo = (c->W + 2 * c->p - c->KW) / c->s + 1;
    for (int n = 0; n < c->B; n++)
        for (int co = 0; co < c->Cout; co++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    double s = b ? b[co] : 0;
                    for (int ci = 0; ci < c->Cin; ci++)
                        for (int kh = 0; kh < c->KH; kh++)
                            for (int kw = 0; kw < c->KW; kw++) {
                                int ih = oh * c->s - c->p + kh, iw = ow * c->s - c->p + kw;
                                if (ih < 0 || iw < 0 || ih >= c->H || iw >= c->W) continue;
                                s += (double)x[((n * c->Cin + ci) * c->H + ih) * c->W + iw] *
                                     w[((co * c->Cin + ci) * c->KH + kh) * c->KW + kw];
                            }
                    y[((n * c->Cout + co) * Ho + oh) * Wo + ow] = (float)s;
                }
}

static cc cases[] = {
    {2, 3, 7, 5, 5, 3, 3, 1, 1, 1},     {1, 5, 9, 9, 7, 3, 3, 2, 1, 1},
    {3, 4, 6, 6, 3, 1, 1, 1, 0, 1},     {2, 3, 8, 7, 4, 5, 3, 1, 2, 0},
    {2, 2, 5, 5, 3, 3, 3, 1, 0, 1},     {1, 3, 7, 7, 2, 1, 1, 2, 0, 1},
    {40, 3, 4, 4, 5, 3, 3, 1, 1, 1},    /* many small images: several per GEMM chunk */
    {70, 2, 3, 3, 3, 1, 1, 1, 0, 0},    /* 1x1 across images */
    {2, 9, 6, 15, 37, 3, 3, 1, 1, 1},   /* two channel groups, the second partial */
    {2, 6, 8, 8, 20, 3, 3, 2, 1, 1},    /* stride 2, even sizes */
    {1, 33, 10, 9, 18, 3, 3, 2, 1, 0},  /* stride 2, odd width */
    {1, 200, 5, 130, 4, 3, 3, 1, 1, 1}, /* wide rows: one-row slab blocks */
    {3, 64, 14, 14, 32, 1, 1, 1, 0, 1}, /* 1x1 at the UNet's sizes: 196 pixels */
    {2, 24, 7, 7, 37, 1, 1, 1, 0, 0},   /* 49 pixels, odd channel counts */
    {2, 9, 20, 20, 16, 1, 1, 1, 0, 1},  /* 400 pixels: several GEMM chunks */
    {3, 1, 28, 28, 32, 3, 3, 1, 1, 1},  /* thin (conv_thin.c): one input channel, a stem */
    {2, 32, 28, 28, 1, 3, 3, 1, 1, 1},  /* thin: one output channel, an output conv */
    {2, 5, 9, 17, 2, 3, 3, 1, 1, 0},    /* thin, 2 output channels, rows of 16 + 1 pixels */
    {2, 1, 9, 17, 5, 3, 3, 1, 1, 1},    /* thin, one input channel, rows of 16 + 1 pixels */
};

static void inputs(const cc *c, dft_input *ins) {
    dft_input a[3] = {{"x", DF_F32, df_shape4(c->B, c->Cin, c->H, c->W), 1, -1, 1, 0, 0},
                      {"w", DF_F32, df_shape4(c->Cout, c->Cin, c->KH, c->KW), 1, -0.5f, 0.5f, 0, 0},
                      {"b", DF_F32, df_shape1(c->Cout), 1, -0.5f, 0.5f, 0, 0}};
    memcpy(ins, a, sizeof a);
}

static void test_forward(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cc *c = &cases[k];
        dft_input ins[3];
        inputs(c, ins);
        int64_t nx = df_shape_numel(&ins[0].shape), nw = df_shape_numel(&ins[1].shape);
        float *x = malloc(nx * 4), *w = malloc(nw * 4), b[64];
        dft_fill_uniform(x, nx, -1, 1, 1 + k);
        dft_fill_uniform(w, nw, -0.5f, 0.5f, 2 + k);
        dft_fill_uniform(b, c->Cout, -0.5f, 0.5f, 3 + k);
        df_shape os;
        float *y = dft_forward(build, c, ins, 2 + c->bias, (void *[]){x, w, b}, &os);
        assert_non_null(y);
        /* float rounding grows with the length of each sum */
        int ckk = c->Cin * c->KH * c->KW;
        float atol = 1e-5f * (ckk > 32 ? ckk / 32.0f : 1.0f);
        float *ref = malloc(df_shape_numel(&os) * 4);
        naive(c, x, w, c->bias ? b : NULL, ref);
        assert_int_equal(dft_close(y, ref, df_shape_numel(&os), atol, 1e-4f, "conv2d"), 0);
        free(x);
        free(w);
        free(y);
        free(ref);
    }
    dft_mark_forward(DF_OP_CONV2D);
}

/* The direct and GEMM kernels; the Winograd path has its own checks
 * (test_winograd.c: its float rounding needs a larger difference step). */
static void test_grad(void **state) {
    (void)state;
    df_conv_set_winograd(0);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cc *c = &cases[k];
        dft_input ins[3];
        inputs(c, ins);
        assert_int_equal(dft_gradcheck(build, c, ins, 2 + c->bias, 100 + k, 1e-2f, 2e-3, 24), 0);
    }
    df_conv_set_winograd(1);
}

/* conv2d with an addend (what fuse.c makes of add(conv2d(...), r)): inputs
 * x, w, [b], r with ia[2] = 1, ia[3] = 1 for r [B, Cout] (one value per image
 * and channel), else r of the output's shape */
typedef struct {
    cc c;
    int per_channel;
} ac;
static df_node *build_addend(df_graph *g, df_node **in, void *vc) {
    ac *a = vc;
    int32_t ia[4] = {a->c.s, a->c.p, 1, a->per_channel};
    df_node *xs[4] = {in[0], in[1], in[2], in[3]};
    int n = 3;
    if (!a->c.bias)
        xs[2] = in[3];
    else
        n = 4;
    return df_node_new(g, DF_OP_CONV2D, xs, n, ia, 4, NULL, 0);
}
static void test_addend(void **state) {
    (void)state;
    /* Winograd (3x3 stride 1, >= 4 channels), direct (stride 2; 3 channels), GEMM (1x1) */
    const cc shapes[] = {{2, 6, 9, 7, 5, 3, 3, 1, 1, 1},
                         {2, 3, 8, 8, 20, 3, 3, 2, 1, 0},
                         {2, 3, 7, 5, 5, 3, 3, 1, 1, 1},
                         {3, 4, 6, 6, 3, 1, 1, 1, 0, 1},
                         {2, 20, 7, 9, 11, 1, 1, 1, 0, 1}};
    for (int wino = 0; wino < 2; wino++)
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
            for (int pc = 0; pc < 2; pc++) {
                ac a = {shapes[k], pc};
                const cc *c = &a.c;
                int Ho = (c->H + 2 * c->p - c->KH) / c->s + 1,
                    Wo = (c->W + 2 * c->p - c->KW) / c->s + 1;
                dft_input ins[4];
                inputs(c, ins);
                ins[3] = (dft_input){
                    "r", DF_F32, pc ? df_shape2(c->B, c->Cout) : df_shape4(c->B, c->Cout, Ho, Wo),
                    1,   -1,     1,
                    0,   0};
                int64_t nx = df_shape_numel(&ins[0].shape), nw = df_shape_numel(&ins[1].shape),
                        nr = df_shape_numel(&ins[3].shape);
                float *x = malloc(nx * 4), *w = malloc(nw * 4), *r = malloc(nr * 4), b[64];
                dft_fill_uniform(x, nx, -1, 1, 11 + k);
                dft_fill_uniform(w, nw, -0.5f, 0.5f, 12 + k);
                dft_fill_uniform(b, c->Cout, -0.5f, 0.5f, 13 + k);
                dft_fill_uniform(r, nr, -1, 1, 14 + k);
                df_conv_set_winograd(wino);
                df_shape os;
                float *y1 = dft_forward(build_addend, &a, ins, 4, (void *[]){x, w, b, r}, &os);
                /* the plain conv's output plus r in float: what the separate add gives */
                float *y2 = dft_forward(build, &a.c, ins, 2 + c->bias, (void *[]){x, w, b}, NULL);
                assert_non_null(y1), assert_non_null(y2);
                int64_t P = (int64_t)Ho * Wo, ny = df_shape_numel(&os);
                for (int64_t i = 0; i < ny; i++) y2[i] += pc ? r[i / P] : r[i];
                /* rounded as the separate ops: (conv + bias) + r, bitwise */
                assert_memory_equal(y1, y2, ny * 4);
                if (!wino) /* the addend's gradient (and the rest) by finite differences */
                    assert_int_equal(
                        dft_gradcheck(build_addend, &a, ins, 4, 300 + k, 1e-2f, 2e-3, 24), 0);
                free(x), free(w), free(r), free(y1), free(y2);
            }
    df_conv_set_winograd(1);
}

/* Same compiled graph, 1 and 2 threads: bitwise identical outputs and gradients. */
static void test_threads_bitwise(void **state) {
    (void)state;
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *x = df_input(g, "x", DF_F32, df_shape4(37, 8, 7, 7));
    df_node *w = df_param(g, "w", df_shape4(16, 8, 3, 3), (df_init){DF_INIT_KAIMING, 0});
    df_node *y = df_conv2d(g, x, w, NULL, 1, 1);
    df_node *l = df_mse_loss(g, y, df_scale(g, y, 0.5f));
    df_keep(g, y);
    assert_int_equal(df_backward(g, l, &x, 1), DF_OK);
    assert_int_equal(df_compile(g, NULL), DF_OK);
    df_params_init(ps, 1);
    int64_t nx = 37 * 8 * 49, ny = 37 * 16 * 49;
    float *xv = malloc(nx * 4), *y1 = malloc(ny * 4), *g1 = malloc(nx * 4),
          *w1 = malloc(16 * 72 * 4);
    dft_fill_uniform(xv, nx, -1, 1, 5);
    df_set_input(g, x, xv, nx);
    int old = df_get_threads();
    df_set_threads(1);
    assert_int_equal(df_run(g), DF_OK);
    memcpy(y1, df_data(y), ny * 4);
    memcpy(g1, df_data(df_grad_of(g, x)), nx * 4);
    memcpy(w1, df_param_grad(ps, 0), 16 * 72 * 4);
    df_set_threads(2);
    assert_int_equal(df_run(g), DF_OK);
    assert_memory_equal(y1, df_data(y), ny * 4);
    assert_memory_equal(g1, df_data(df_grad_of(g, x)), nx * 4);
    assert_memory_equal(w1, df_param_grad(ps, 0), 16 * 72 * 4);
    df_set_threads(old);
    free(xv);
    free(y1);
    free(g1);
    free(w1);
    df_graph_free(g);
    df_params_free(ps);
}

static void test_errors(void **state) {
    (void)state;
    df_params *ps = df_params_new();
    struct {
        df_shape x, w;
        int s, p;
        const char *msg;
    } bad[] = {
        {df_shape4(2, 3, 8, 8), df_shape4(4, 5, 3, 3), 1, 1, "expects 5"},
        {df_shape4(2, 3, 2, 2), df_shape4(4, 3, 5, 5), 1, 0, "larger than the padded input"},
        {df_shape4(2, 3, 8, 8), df_shape4(4, 3, 3, 3), 0, 1, "stride 0"},
        {df_shape3(3, 8, 8), df_shape4(4, 3, 3, 3), 1, 1, "[B, Cin, H, W]"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        df_graph *g = df_graph_new(ps);
        df_node *x = df_input(g, "x", DF_F32, bad[k].x);
        df_node *w = df_input(g, "w", DF_F32, bad[k].w);
        df_name_next(g, "conv1");
        assert_null(df_conv2d(g, x, w, NULL, bad[k].s, bad[k].p));
        const char *m = df_graph_errmsg(g);
        if (!strstr(m, bad[k].msg) || !strstr(m, "conv1")) fprintf(stderr, "message: %s\n", m);
        assert_non_null(strstr(m, bad[k].msg));
        assert_non_null(strstr(m, "conv1"));
        df_graph_free(g);
    }
    df_graph *g = df_graph_new(ps);
    df_node *x = df_input(g, "x", DF_F32, df_shape4(2, 3, 8, 8));
    df_node *w = df_input(g, "w", DF_F32, df_shape4(4, 3, 3, 3));
    df_node *b = df_input(g, "b", DF_F32, df_shape1(3));
    assert_null(df_conv2d(g, x, w, b, 1, 1));
    assert_non_null(strstr(df_graph_errmsg(g), "bias [3]"));
    df_graph_free(g);
    df_params_free(ps);
}

int dft_run_conv(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_forward), cmocka_unit_test(test_grad),
                                   cmocka_unit_test(test_threads_bitwise),
                                   cmocka_unit_test(test_addend), cmocka_unit_test(test_errors)};
    return cmocka_run_group_tests_name("conv", t, NULL, NULL);
}
