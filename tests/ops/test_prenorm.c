/* A groupnorm_silu or a nearest upsample fused into the convolution that
 * reads it and its weight gradient (fuse.c): conv2d(groupnorm_silu(x)) or
 * conv2d(upsample(x)) with a bias and a time-embedding addend, compiled
 * fused and unfused, must agree bitwise, at
 * both Winograd tile sizes, with pieces that split images, without affine
 * parameters, under bf16, with Winograd switched off (the fused node then
 * computes the activation into its scratch) and on 1 and 2 threads. The
 * unfused pair is checked against float64 references in test_norm.c and
 * test_winograd.c. Convolutions with few output channels run the thin
 * kernel (conv_thin.c), which reads x through the op the same way. In training graphs the weight
 * gradient reads x through the op too: the gradients of w and x, fused and unfused, agree bitwise.
 * Skipped in builds without the kernel. */
#include "harness.h"
#include "conv_winograd.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    int B, C, H, W, Cout, groups, affine; /* groups 0: an upsample by 2 of [H / 2, W / 2] */
} pc;

typedef struct {
    df_params *ps;
    df_graph *g;
    df_node *x, *ga, *be, *w, *b, *e, *y, *r, *dw, *dx; /* r: the loss's random weights */
} pgraph;

/* y = conv(groupnorm_silu(x)) + b + e[b, co], forward only (or with
 * gradients: grad) */
static void pgraph_new(const pc *c, int fuse, int grad, int precision, pgraph *p) {
    p->ps = df_params_new();
    df_graph *g = p->g = df_graph_new(p->ps);
    int up = c->groups == 0;
    p->x = df_input(g, "x", DF_F32, df_shape4(c->B, c->C, c->H >> up, c->W >> up));
    p->ga = c->affine ? df_input(g, "gamma", DF_F32, df_shape1(c->C)) : NULL;
    p->be = c->affine ? df_input(g, "beta", DF_F32, df_shape1(c->C)) : NULL;
    p->w = df_input(g, "w", DF_F32, df_shape4(c->Cout, c->C, 3, 3));
    p->b = df_input(g, "b", DF_F32, df_shape1(c->Cout));
    p->e = df_input(g, "e", DF_F32, df_shape4(c->B, c->Cout, 1, 1));
    df_node *t = up ? df_upsample(g, p->x, 2)
                    : df_silu(g, df_groupnorm(g, p->x, p->ga, p->be, c->groups, 1e-5f));
    p->y = df_add(g, df_conv2d(g, t, p->w, p->b, 1, 1), p->e);
    df_keep(g, p->y);
    p->r = NULL;
    if (grad) { /* a random-weighted loss */
        p->r = df_input(g, "r", DF_F32, p->y->shape);
        assert_int_equal(
            df_backward(g, df_sum_all(g, df_mul(g, p->y, p->r)), (df_node *[]){p->w, p->x}, 2),
            DF_OK);
        p->dw = df_grad_of(g, p->w), p->dx = df_grad_of(g, p->x);
        df_keep(g, p->dw), df_keep(g, p->dx);
    }
    df_compile_opts o = {.no_fuse = !fuse, .precision = precision};
    assert_int_equal(df_compile(g, &o), DF_OK);
    df_node *in[7] = {p->x, p->ga, p->be, p->w, p->b, p->e, p->r};
    for (int k = 0; k < 7; k++) {
        if (!in[k]) continue;
        int64_t n = df_shape_numel(&in[k]->shape);
        float *v = malloc(n * 4);
        /* x off-centre and scaled per channel, so the statistics matter */
        dft_fill_uniform(v, n, k == 0 ? -1.5f : -0.5f, k == 0 ? 2.5f : 0.5f, 40 + k);
        df_set_input(g, in[k], v, n);
        free(v);
    }
}
static void pgraph_free(pgraph *p) {
    df_graph_free(p->g);
    df_params_free(p->ps);
}
/* a conv2d or weight gradient reading x through a groupnorm_silu or an upsample */
static int reads_through(const df_node *d) {
    return d->ia[4] > 0 || d->ia[6] > 1;
}
/* a fused groupnorm gradient reading x's groupnorm_stats */
static int reads_stats(const df_node *d) {
    return d->ia[1] == 1;
}

/* Each case fused and unfused (with gradients: grad), Winograd on, off and
 * bf16, 1 and 2 threads: y (and dw, dx) bitwise equal */
static void fused_vs_pair(const pc *cases, size_t ncases, int grad) {
    for (size_t k = 0; k < ncases; k++)
        for (int mode = 0; mode < 3; mode++) { /* Winograd on, off, bf16 */
            const pc *c = &cases[k];
            df_conv_set_winograd(mode != 1);
            int prec = mode == 2 ? DF_PRECISION_BF16 : DF_PRECISION_FP32;
            pgraph f, u;
            pgraph_new(c, 1, grad, prec, &f);
            pgraph_new(c, 0, grad, prec, &u);
            assert_int_equal(dft_live(f.g, DF_OP_CONV2D, reads_through), 1);
            assert_int_equal(dft_live(u.g, DF_OP_CONV2D, reads_through), 0);
            assert_int_equal(dft_live(f.g, DF_OP_CONV2D_BWD_WEIGHT, reads_through), grad);
            assert_int_equal(dft_live(f.g, DF_OP_GROUPNORM_STATS, NULL), c->groups > 0);
            assert_int_equal(dft_live(u.g, DF_OP_GROUPNORM_STATS, NULL), 0);
            if (grad && c->groups > 0 && c->affine) /* its fused gradient reads them too */
                assert_int_equal(dft_live(f.g, DF_OP_GROUPNORM_SILU_BWD_ALL, reads_stats), 1);
            assert_int_equal(df_run(u.g), DF_OK);
            for (int nt = 1; nt <= 2; nt++) {
                int old = df_get_threads();
                df_set_threads(nt);
                assert_int_equal(df_run(f.g), DF_OK);
                df_set_threads(old);
                assert_memory_equal(df_data(f.y), df_data(u.y), df_shape_numel(&f.y->shape) * 4);
                if (!grad) continue;
                assert_memory_equal(df_data(f.dw), df_data(u.dw), df_shape_numel(&f.dw->shape) * 4);
                assert_memory_equal(df_data(f.dx), df_data(u.dx), df_shape_numel(&f.dx->shape) * 4);
            }
            if (grad) { /* not all zeros */
                const float *dw = df_data(f.dw);
                assert_true(dw[0] != 0 && dw[df_shape_numel(&f.dw->shape) - 1] != 0);
            }
            pgraph_free(&f), pgraph_free(&u);
        }
    df_conv_set_winograd(1);
}

static void test_fused_equals_pair(void **state) {
    (void)state;
    if (!wino_applies(&(dconv_shape){1, 16, 8, 8, 16, 3, 3, 1, 1, 8, 8})) skip();
    const pc cases[] = {
        {3, 32, 28, 28, 24, 8, 1}, /* F(4,3): pieces of 112 tiles split images */
        {5, 16, 7, 7, 16, 4, 1},   /* F(7,3): a tile per image, pieces of 16 images */
        {9, 24, 14, 14, 8, 4, 0},  /* F(7,3), 4 tiles per image; no gamma and beta */
        {2, 8, 9, 13, 5, 2, 1},    /* ragged tiles */
        {3, 16, 28, 28, 8, 0, 0},  /* upsample 14x14 -> 28x28, F(4,3) */
        {5, 24, 14, 14, 16, 0, 0}, /* upsample 7x7 -> 14x14, F(7,3) */
        {2, 8, 10, 12, 5, 0, 0},   /* upsample 5x6 -> 10x12, ragged */
        {3, 32, 28, 28, 1, 8, 1},  /* one output channel: the thin kernel (conv_thin.c) */
        {2, 6, 9, 17, 2, 2, 1},    /* thin, rows of 16 + 1 pixels */
        {2, 8, 10, 12, 2, 0, 0},   /* thin, upsample 5x6 -> 10x12 */
    };
    fused_vs_pair(cases, sizeof cases / sizeof cases[0], 0);
    dft_mark_forward(DF_OP_CONV2D);
}

/* With gradients: the weight gradient reads x through the op as well, in
 * chunks of pieces, whole (7x7 at many channels), with split images */
static void test_training_fused(void **state) {
    (void)state;
    if (!wino_applies(&(dconv_shape){1, 16, 8, 8, 16, 3, 3, 1, 1, 8, 8})) skip();
    const pc cases[] = {
        {3, 32, 28, 28, 24, 8, 1}, /* F(4,3): pieces of 128 tiles split images */
        {24, 64, 7, 7, 96, 8, 1},  /* F(7,3), run whole */
        {9, 24, 14, 14, 8, 4, 0},  /* F(7,3), 4 tiles per image; no gamma and beta */
        {2, 8, 9, 13, 5, 2, 1},    /* ragged tiles */
        {3, 16, 28, 28, 8, 0, 0},  /* upsample 14x14 -> 28x28 */
        {5, 24, 14, 14, 16, 0, 0}, /* upsample 7x7 -> 14x14 */
        {3, 32, 28, 28, 1, 8, 1},  /* one output channel: the thin kernel */
        {2, 6, 9, 17, 2, 2, 1},    /* thin, rows of 16 + 1 pixels */
        {2, 8, 10, 12, 2, 0, 0},   /* thin, upsample 5x6 -> 10x12 */
    };
    fused_vs_pair(cases, sizeof cases / sizeof cases[0], 1);
}

int dft_run_prenorm(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_fused_equals_pair),
                                   cmocka_unit_test(test_training_fused)};
    return cmocka_run_group_tests_name("prenorm", t, NULL, NULL);
}
