/* A groupnorm_silu or a nearest upsample fused into the convolution that
 * reads it (fuse.c, graphs without gradients): conv2d(groupnorm_silu(x)) or
 * conv2d(upsample(x)) with a bias and a time-embedding addend, compiled
 * fused and unfused, must agree bitwise, at
 * both Winograd tile sizes, with pieces that split images, without affine
 * parameters, under bf16, with Winograd switched off (the fused node then
 * computes the activation into its scratch) and on 1 and 2 threads. The
 * unfused pair is checked against float64 references in test_norm.c and
 * test_winograd.c. Training graphs keep the pair (the weight gradient reads
 * the activation): checked too. Skipped in builds without the kernel. */
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
    df_node *x, *ga, *be, *w, *b, *e, *y;
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
    if (grad) assert_int_equal(df_backward(g, df_sum_all(g, p->y), (df_node *[]){p->w}, 1), DF_OK);
    df_compile_opts o = {.no_fuse = !fuse, .precision = precision};
    assert_int_equal(df_compile(g, &o), DF_OK);
    df_node *in[6] = {p->x, p->ga, p->be, p->w, p->b, p->e};
    for (int k = 0; k < 6; k++) {
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
/* the fused graph's conv2d nodes that read x through a groupnorm_silu */
static int fused_count(const pgraph *p) {
    int n = 0;
    for (int i = 0; i < df_graph_size(p->g); i++) {
        const df_node *d = df_graph_node(p->g, i);
        n += !d->dead && d->op == DF_OP_CONV2D && (d->ia[4] > 0 || d->ia[6] > 1);
    }
    return n;
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
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (int mode = 0; mode < 3; mode++) { /* Winograd on, off, bf16 */
            const pc *c = &cases[k];
            df_conv_set_winograd(mode != 1);
            int prec = mode == 2 ? DF_PRECISION_BF16 : DF_PRECISION_FP32;
            pgraph f, u;
            pgraph_new(c, 1, 0, prec, &f);
            pgraph_new(c, 0, 0, prec, &u);
            assert_int_equal(fused_count(&f), 1);
            assert_int_equal(fused_count(&u), 0);
            int64_t n = df_shape_numel(&f.y->shape);
            assert_int_equal(df_run(u.g), DF_OK);
            for (int nt = 1; nt <= 2; nt++) {
                int old = df_get_threads();
                df_set_threads(nt);
                assert_int_equal(df_run(f.g), DF_OK);
                df_set_threads(old);
                assert_memory_equal(df_data(f.y), df_data(u.y), n * 4);
            }
            pgraph_free(&f), pgraph_free(&u);
        }
    df_conv_set_winograd(1);
    dft_mark_forward(DF_OP_CONV2D);
}

/* With gradients the activation is kept for the weight gradient: no fusion */
static void test_training_keeps_pair(void **state) {
    (void)state;
    const pc c = {2, 16, 8, 8, 16, 4, 1};
    pgraph p;
    pgraph_new(&c, 1, 1, DF_PRECISION_FP32, &p);
    assert_int_equal(fused_count(&p), 0);
    pgraph_free(&p);
}

int dft_run_prenorm(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_fused_equals_pair),
                                   cmocka_unit_test(test_training_keeps_pair)};
    return cmocka_run_group_tests_name("prenorm", t, NULL, NULL);
}
