/* The Winograd paths of conv2d (F(4,3) and F(7,3): forward, data gradient
 * and weight gradient) against float64 references, with finite differences and 1 vs 2
 * threads. Skipped (passes) in builds without the kernel. */
#include "harness.h"
#include "conv_winograd.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int B, Cin, H, W, Cout, bias;
} wc;

static wc cases[] = {
    {2, 32, 28, 28, 32, 1},  {2, 64, 14, 14, 64, 1}, {2, 128, 7, 7, 128, 1}, /* UNet levels */
    {1, 256, 7, 7, 128, 0},  {2, 64, 28, 28, 32, 1}, {3, 32, 14, 14, 64, 0}, /* UNet joins */
    {1, 17, 9, 13, 19, 1},   {3, 16, 5, 6, 21, 0},   {5, 20, 11, 10, 16, 1}, /* odd sizes */
    {1, 16, 1, 1, 16, 1},    {2, 16, 3, 17, 23, 1},  {7, 24, 6, 5, 40, 0},
    {64, 16, 14, 14, 16, 1}, /* 1024 tiles: several pieces */
    {22, 8, 28, 28, 4, 0},   /* 1078 tiles: weight-gradient chunks of 2 pieces */
    {1, 200, 5, 130, 4, 1},  {2, 32, 28, 28, 1, 1}, /* few output channels */
    {3, 4, 9, 7, 5, 1},      {2, 5, 28, 28, 32, 0}, /* few input channels */
    {40, 96, 7, 7, 96, 1}, /* weight gradient run whole over 40 tiles (2 pieces' worth) */
};
#define NCASES (sizeof cases / sizeof cases[0])

static dconv_shape shape_of(const wc *c) {
    dconv_shape d = {c->B, c->Cin, c->H, c->W, c->Cout, 3, 3, 1, 1, c->H, c->W};
    return d;
}
/* The data gradient's conv: gy (Cout channels) -> dx (Cin channels). */
static dconv_shape shape_bwd(const wc *c) {
    dconv_shape d = {c->B, c->Cout, c->H, c->W, c->Cin, 3, 3, 1, 1, c->H, c->W};
    return d;
}

/* y = conv(x, w) + b, dx = conv^T(gy, w) and dw in float64, 3x3, stride 1,
 * pad 1 */
static void ref_fwd(const wc *c, const float *x, const float *w, const float *b, double *y) {
    int H = c->H, W = c->W;
    for (int n = 0; n < c->B; n++)
        for (int co = 0; co < c->Cout; co++)
            for (int oh = 0; oh < H; oh++)
                for (int ow = 0; ow < W; ow++) {
                    double s = b ? b[co] : 0;
                    for (int ci = 0; ci < c->Cin; ci++)
                        for (int k = 0; k < 9; k++) {
                            int ih = oh - 1 + k / 3, iw = ow - 1 + k % 3;
                            if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
                            s += (double)x[((n * c->Cin + ci) * H + ih) * W + iw] *
                                 w[(co * c->Cin + ci) * 9 + k];
                        }
                    y[((n * c->Cout + co) * H + oh) * W + ow] = s;
                }
}
static void ref_bwd(const wc *c, const float *gy, const float *w, double *dx) {
    int H = c->H, W = c->W;
    for (int n = 0; n < c->B; n++)
        for (int ci = 0; ci < c->Cin; ci++)
            for (int ih = 0; ih < H; ih++)
                for (int iw = 0; iw < W; iw++) {
                    double s = 0;
                    for (int co = 0; co < c->Cout; co++)
                        for (int k = 0; k < 9; k++) {
                            int oh = ih + 1 - k / 3, ow = iw + 1 - k % 3;
                            if (oh < 0 || ow < 0 || oh >= H || ow >= W) continue;
                            s += (double)gy[((n * c->Cout + co) * H + oh) * W + ow] *
                                 w[(co * c->Cin + ci) * 9 + k];
                        }
                    dx[((n * c->Cin + ci) * H + ih) * W + iw] = s;
                }
}

static void ref_dw(const wc *c, const float *x, const float *gy, double *dw) {
    int H = c->H, W = c->W;
    for (int co = 0; co < c->Cout; co++)
        for (int ci = 0; ci < c->Cin; ci++)
            for (int k = 0; k < 9; k++) {
                double s = 0;
                for (int n = 0; n < c->B; n++)
                    for (int oh = 0; oh < H; oh++)
                        for (int ow = 0; ow < W; ow++) {
                            int ih = oh - 1 + k / 3, iw = ow - 1 + k % 3;
                            if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
                            s += (double)gy[((n * c->Cout + co) * H + oh) * W + ow] *
                                 x[((n * c->Cin + ci) * H + ih) * W + iw];
                        }
                dw[(co * c->Cin + ci) * 9 + k] = s;
            }
}

static int run_precision = DF_PRECISION_FP32; /* of the graphs run() compiles */

/* Runs y = conv(x, w, b), dx and dw from loss = sum(y * gy) at the thread
 * count given; y, dx and dw receive copies. */
static void run(const wc *c, const float *x, const float *w, const float *b, const float *gy,
                float *y, float *dx, float *dw, int threads) {
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *xn = df_input(g, "x", DF_F32, df_shape4(c->B, c->Cin, c->H, c->W));
    df_node *wn = df_input(g, "w", DF_F32, df_shape4(c->Cout, c->Cin, 3, 3));
    df_node *bn = c->bias ? df_input(g, "b", DF_F32, df_shape1(c->Cout)) : NULL;
    df_node *yn = df_conv2d(g, xn, wn, bn, 1, 1);
    df_node *gn = df_input(g, "gy", DF_F32, yn->shape);
    df_node *l = df_sum_all(g, df_mul(g, yn, gn));
    df_keep(g, yn);
    assert_int_equal(df_backward(g, l, (df_node *[]){xn, wn}, 2), DF_OK);
    df_compile_opts co = {.precision = run_precision};
    assert_int_equal(df_compile(g, &co), DF_OK);
    int64_t nx = df_shape_numel(&xn->shape), ny = df_shape_numel(&yn->shape);
    df_set_input(g, xn, x, nx);
    df_set_input(g, wn, w, c->Cout * c->Cin * 9);
    if (bn) df_set_input(g, bn, b, c->Cout);
    df_set_input(g, gn, gy, ny);
    int old = df_get_threads();
    df_set_threads(threads);
    assert_int_equal(df_run(g), DF_OK);
    df_set_threads(old);
    memcpy(y, df_data(yn), ny * 4);
    memcpy(dx, df_data(df_grad_of(g, xn)), nx * 4);
    memcpy(dw, df_data(df_grad_of(g, wn)), (size_t)c->Cout * c->Cin * 9 * 4);
    df_graph_free(g);
    df_params_free(ps);
}

/* max |got - ref| and that over max |ref| */
static void errors(const float *got, const double *ref, int64_t n, double *abs_err,
                   double *rel_err) {
    double e = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(got[i] - ref[i]);
        if (d > e) e = d;
        if (fabs(ref[i]) > m) m = fabs(ref[i]);
    }
    *abs_err = e;
    *rel_err = m > 0 ? e / m : e;
}

typedef struct {
    float *x, *w, *b, *gy, *y, *dx, *dw;
    double *ry, *rdx, *rdw;
    int64_t nx, ny, nw;
} bufs;
static void bufs_new(const wc *c, uint64_t seed, bufs *s) {
    s->nx = (int64_t)c->B * c->Cin * c->H * c->W;
    s->ny = (int64_t)c->B * c->Cout * c->H * c->W;
    int64_t nw = s->nw = (int64_t)c->Cout * c->Cin * 9;
    s->x = malloc(s->nx * 4), s->w = malloc(nw * 4), s->b = malloc(c->Cout * 4);
    s->gy = malloc(s->ny * 4), s->y = malloc(s->ny * 4), s->dx = malloc(s->nx * 4);
    s->dw = malloc(nw * 4), s->ry = malloc(s->ny * 8), s->rdx = malloc(s->nx * 8);
    s->rdw = malloc(nw * 8);
    /* activations in [-1, 1), weights with a Kaiming-like scale */
    float a = 1.7f / sqrtf(9.0f * c->Cin);
    dft_fill_uniform(s->x, s->nx, -1, 1, seed);
    dft_fill_uniform(s->w, nw, -a, a, seed + 1);
    dft_fill_uniform(s->b, c->Cout, -0.5f, 0.5f, seed + 2);
    dft_fill_uniform(s->gy, s->ny, -1, 1, seed + 3);
}
static void bufs_free(bufs *s) {
    free(s->x), free(s->w), free(s->b), free(s->gy), free(s->y), free(s->dx), free(s->dw);
    free(s->ry), free(s->rdx), free(s->rdw);
}

/* Error bounds, relative to the largest reference value. F(4,3)'s
 * transforms scale values by up to 10 (BT) and 8 (AT) and G has 1/6, 1/12,
 * 1/24, so its float rounding is about 5x the direct kernel's. Measured on
 * these cases: at most 8.7e-6 (forward, 256 -> 128 channels), 7.4e-6 (data
 * gradient) and 5.2e-6 (weight gradient); the direct kernel 1.7e-6, 1.2e-6
 * and 1.1e-6. F(7,3)'s AT reaches 64 and BT 5.3: at most 4.6e-4, and an rms
 * error of 3-7e-5 of the rms value (F(4,3): 1-2e-6). */
#define WINO_REL_TOL 2e-5
#define WINO7_REL_TOL 6e-4
#define WINO7_RMS_TOL 1e-4

static const char *what[3] = {"forward", "data gradient", "weight gradient"};
/* the switch's settings compared: F(4,3) only, F(7,3) wherever it applies, off */
static const int modes[3] = {4, 7, 0};
static const char *mode_name[3] = {"F(4,3)", "F(7,3)", "direct"};

static double rms_err(const float *got, const double *ref, int64_t n);

static void test_accuracy(void **state) {
    (void)state;
    if (!wino_applies(&(dconv_shape){1, 16, 8, 8, 16, 3, 3, 1, 1, 8, 8})) skip();
    double worst[3][3] = {{0}}; /* [fwd, data, weight][mode]: rel error */
    double worst_rms7 = 0;
    for (size_t k = 0; k < NCASES; k++) {
        const wc *c = &cases[k];
        dconv_shape f = shape_of(c), bd = shape_bwd(c);
        /* the forward and weight gradient always; the data gradient when gy
         * has >= 4 channels */
        assert_true(wino_applies(&f) && wino_bw_applies(&f));
        assert_true(wino_applies(&bd) == (c->Cout >= 4));
        bufs s;
        bufs_new(c, 10 * k + 1, &s);
        ref_fwd(c, s.x, s.w, c->bias ? s.b : NULL, s.ry);
        ref_bwd(c, s.gy, s.w, s.rdx);
        ref_dw(c, s.x, s.gy, s.rdw);
        for (int md = 0; md < 3; md++) {
            df_conv_set_winograd(modes[md]);
            run(c, s.x, s.w, s.b, s.gy, s.y, s.dx, s.dw, 2);
            double ea[3], er[3];
            errors(s.y, s.ry, s.ny, &ea[0], &er[0]);
            errors(s.dx, s.rdx, s.nx, &ea[1], &er[1]);
            errors(s.dw, s.rdw, s.nw, &ea[2], &er[2]);
            if (getenv("DFT_VERBOSE"))
                printf("  %-7s B%-2d %3d->%-3d %2dx%-2d abs/rel fwd %.1e %.1e  dx %.1e %.1e  dw "
                       "%.1e %.1e\n",
                       mode_name[md], c->B, c->Cin, c->Cout, c->H, c->W, ea[0], er[0], ea[1], er[1],
                       ea[2], er[2]);
            for (int e = 0; e < 3; e++) {
                double tol = modes[md] == 7 ? WINO7_REL_TOL : WINO_REL_TOL;
                if (er[e] > worst[e][md]) worst[e][md] = er[e];
                if (modes[md] && er[e] > tol)
                    fprintf(stderr, "case %zu %s: %s rel err %.3g\n", k, mode_name[md], what[e],
                            er[e]);
                if (modes[md]) assert_true(er[e] <= tol);
            }
            if (modes[md] == 7) {
                double r[3] = {rms_err(s.y, s.ry, s.ny), rms_err(s.dx, s.rdx, s.nx),
                               rms_err(s.dw, s.rdw, s.nw)};
                for (int e = 0; e < 3; e++) {
                    if (r[e] > worst_rms7) worst_rms7 = r[e];
                    assert_true(r[e] <= WINO7_RMS_TOL);
                }
            }
        }
        bufs_free(&s);
    }
    df_conv_set_winograd(1);
    for (int e = 0; e < 3; e++)
        printf("  max rel error vs float64, %s: F(4,3) %.2e, F(7,3) %.2e, direct %.2e\n", what[e],
               worst[e][0], worst[e][1], worst[e][2]);
    printf("  F(7,3) rms error over the rms value: at most %.2e\n", worst_rms7);
}

/* The tile size chosen per shape: F(7,3) where its tiles save the most
 * (sides 7, 14, 21), F(4,3) elsewhere (8, and 28, where F(4,3) fits
 * exactly). The default's result equals the forced size's, bitwise. */
static void test_tile_choice(void **state) {
    (void)state;
    if (!wino_applies(&(dconv_shape){1, 16, 8, 8, 16, 3, 3, 1, 1, 8, 8})) skip();
    const wc picks[] = {{2, 32, 14, 14, 32, 1},
                        {2, 16, 8, 8, 16, 1},
                        {1, 16, 28, 28, 8, 0},
                        {2, 64, 7, 7, 64, 0},
                        {1, 16, 21, 14, 8, 1}};
    const int want[] = {7, 4, 4, 7, 7};
    for (size_t k = 0; k < sizeof picks / sizeof picks[0]; k++) {
        const wc *c = &picks[k];
        bufs s;
        bufs_new(c, 90 + k, &s);
        float *y[3];
        for (int md = 0; md < 3; md++) {
            y[md] = malloc(s.ny * 4);
            df_conv_set_winograd((int[]){1, 4, 7}[md]);
            run(c, s.x, s.w, s.b, s.gy, y[md], s.dx, s.dw, 2);
        }
        df_conv_set_winograd(1);
        /* F(4,3) and F(7,3) round differently; the default is one of them */
        assert_true(memcmp(y[1], y[2], s.ny * 4) != 0);
        assert_memory_equal(y[0], y[want[k] == 7 ? 2 : 1], s.ny * 4);
        for (int md = 0; md < 3; md++) free(y[md]);
        bufs_free(&s);
    }
}

/* The switch works and the path is really taken: on and off differ. */
static void test_switch(void **state) {
    (void)state;
    if (!wino_applies(&(dconv_shape){1, 16, 8, 8, 16, 3, 3, 1, 1, 8, 8})) skip();
    const wc *c = &cases[0];
    bufs s;
    bufs_new(c, 7, &s);
    float *y0 = malloc(s.ny * 4), *dx0 = malloc(s.nx * 4), *dw0 = malloc(s.nw * 4);
    df_conv_set_winograd(0);
    assert_false(wino_available(&(dconv_shape){1, 16, 8, 8, 16, 3, 3, 1, 1, 8, 8}));
    run(c, s.x, s.w, s.b, s.gy, y0, dx0, dw0, 2);
    df_conv_set_winograd(1);
    run(c, s.x, s.w, s.b, s.gy, s.y, s.dx, s.dw, 2);
    assert_true(memcmp(y0, s.y, s.ny * 4) != 0);
    assert_true(memcmp(dx0, s.dx, s.nx * 4) != 0);
    assert_true(memcmp(dw0, s.dw, s.nw * 4) != 0);
    free(y0), free(dx0), free(dw0);
    bufs_free(&s);
}

/* 1 and 2 threads: bitwise identical forward and gradients. */
static void test_threads(void **state) {
    (void)state;
    int idx[] = {0, 2, 7, 12, 13, 18, 6, 8};
    for (size_t k = 0; k < sizeof idx / sizeof idx[0]; k++) {
        const wc *c = &cases[idx[k]];
        df_conv_set_winograd(k < 6 ? 1 : 7); /* the default's choice; F(7,3) on odd sizes */
        bufs s;
        bufs_new(c, 30 + k, &s);
        float *y1 = malloc(s.ny * 4), *dx1 = malloc(s.nx * 4), *dw1 = malloc(s.nw * 4);
        run(c, s.x, s.w, s.b, s.gy, y1, dx1, dw1, 1);
        run(c, s.x, s.w, s.b, s.gy, s.y, s.dx, s.dw, 2);
        assert_memory_equal(y1, s.y, s.ny * 4);
        assert_memory_equal(dx1, s.dx, s.nx * 4);
        assert_memory_equal(dw1, s.dw, s.nw * 4);
        free(y1), free(dx1), free(dw1);
        bufs_free(&s);
    }
    df_conv_set_winograd(1);
}

/* root-mean-square error over the root-mean-square reference */
static double rms_err(const float *got, const double *ref, int64_t n) {
    double e = 0, m = 0;
    for (int64_t i = 0; i < n; i++)
        e += (got[i] - ref[i]) * (got[i] - ref[i]), m += ref[i] * ref[i];
    return m > 0 ? sqrt(e / m) : sqrt(e);
}

/* precision bf16: the forward, data and weight gradients from bf16-rounded operands
 * (vdpbf16ps, and the emulation), against float64, where the shape runs
 * F(4,3) tiles; F(7,3) shapes stay float32 (their error is checked against
 * F(7,3)'s float32 bounds, so bf16 there would fail). bf16 keeps 8 bits, and
 * F(4,3)'s transforms magnify the rounding of the transformed operands
 * (AT's rows reach 8): measured rms error 1.9-2.4% of the rms value, and at
 * most 8% of the largest value (float32: 2e-6). Bounds: rms above 1e-4 (the
 * rounding is really there) and below 4%, max below 15%; native and emulated
 * sums of the same rounded operands agree to float32 rounding. */
#define BF16_RMS_TOL 4e-2
#define BF16_MAX_TOL 0.15
static void test_bf16(void **state) {
    (void)state;
    if (!wino_applies(&(dconv_shape){1, 16, 8, 8, 16, 3, 3, 1, 1, 8, 8})) skip();
    df_conv_set_winograd(1);
    int idx[] = {0, 3, 4, 6, 7, 12, 17};
    double worst[3] = {0, 0, 0};
    for (size_t q = 0; q < sizeof idx / sizeof idx[0]; q++) {
        const wc *c = &cases[idx[q]];
        bufs s;
        bufs_new(c, 50 + q, &s);
        ref_fwd(c, s.x, s.w, c->bias ? s.b : NULL, s.ry);
        ref_bwd(c, s.gy, s.w, s.rdx);
        ref_dw(c, s.x, s.gy, s.rdw);
        float *y2 = malloc(s.ny * 4), *dx2 = malloc(s.nx * 4), *dw2 = malloc(s.nw * 4);
        run_precision = DF_PRECISION_BF16;
        for (int emu = 0; emu < 2; emu++) {
            wino_bf16_force_emulation(emu);
            run(c, s.x, s.w, s.b, s.gy, emu ? y2 : s.y, emu ? dx2 : s.dx, emu ? dw2 : s.dw, 2);
        }
        wino_bf16_force_emulation(0);
        run_precision = DF_PRECISION_FP32;
        double ea, er[3], na, nr, rms[2] = {rms_err(s.y, s.ry, s.ny), rms_err(s.dx, s.rdx, s.nx)};
        errors(s.y, s.ry, s.ny, &ea, &er[0]);
        errors(s.dx, s.rdx, s.nx, &ea, &er[1]);
        errors(s.dw, s.rdw, s.nw, &ea, &er[2]);
        if (getenv("DFT_VERBOSE"))
            printf(
                "  bf16 B%-2d %3d->%-3d %2dx%-2d fwd rms %.1e max %.1e  dx rms %.1e max %.1e  dw "
                "rms %.1e max %.1e\n",
                c->B, c->Cin, c->Cout, c->H, c->W, rms[0], er[0], rms[1], er[1],
                rms_err(s.dw, s.rdw, s.nw), er[2]);
        double rw = rms_err(s.dw, s.rdw, s.nw), all[3] = {rms[0], rms[1], rw};
        dconv_shape d = shape_of(c);
        for (int e = 0; e < 3; e++) {
            if (wino_tile(&d) == 7) { /* float32 F(7,3) */
                assert_true(all[e] < WINO7_RMS_TOL && er[e] < WINO7_REL_TOL);
                continue;
            }
            if (all[e] > worst[e]) worst[e] = all[e];
            assert_true(all[e] > 1e-4 && all[e] < BF16_RMS_TOL && er[e] < BF16_MAX_TOL);
        }
        /* emulated against native: the same operands, other rounding of the sums */
        double *dy = malloc(s.ny * 8);
        for (int64_t i = 0; i < s.ny; i++) dy[i] = s.y[i];
        errors(y2, dy, s.ny, &na, &nr);
        assert_true(nr < 1e-5);
        free(dy), free(y2), free(dx2), free(dw2);
        bufs_free(&s);
    }
    printf("  bf16 rms error vs float64: forward %.2e, data gradient %.2e, weight gradient %.2e "
           "(%s)\n",
           worst[0], worst[1], worst[2],
           wino_bf16_native() ? "vdpbf16ps" : "emulated: no AVX512_BF16");
}

/* y = conv(x, w) + b in a forward-only graph, compiled with or without the cache */
typedef struct {
    df_params *ps;
    df_graph *g;
    df_node *x, *w, *b, *y;
} fwd_graph;
static void fwd_graph_new(const wc *c, int no_cache, fwd_graph *f) {
    f->ps = df_params_new();
    f->g = df_graph_new(f->ps);
    f->x = df_input(f->g, "x", DF_F32, df_shape4(c->B, c->Cin, c->H, c->W));
    f->w = df_input(f->g, "w", DF_F32, df_shape4(c->Cout, c->Cin, 3, 3));
    f->b = df_input(f->g, "b", DF_F32, df_shape1(c->Cout));
    f->y = df_conv2d(f->g, f->x, f->w, f->b, 1, 1);
    df_keep(f->g, f->y);
    df_compile_opts co = {.no_cache = no_cache};
    assert_int_equal(df_compile(f->g, &co), DF_OK);
}
static void fwd_graph_run(fwd_graph *f, const bufs *s, const float *w, int64_t nw, float *y) {
    df_set_input(f->g, f->x, s->x, s->nx);
    df_set_input(f->g, f->w, w, nw);
    df_set_input(f->g, f->b, s->b, df_shape_numel(&f->b->shape));
    assert_int_equal(df_run(f->g), DF_OK);
    memcpy(y, df_data(f->y), s->ny * 4);
}
/* A forward-only graph keeps each convolution's transformed weights and
 * reuses them while the weights are unchanged; changed weights give the same
 * output as a graph that keeps nothing. Both tile sizes. */
static void test_weight_cache(void **state) {
    (void)state;
    if (!wino_applies(&(dconv_shape){1, 16, 8, 8, 16, 3, 3, 1, 1, 8, 8})) skip();
    const wc cc[] = {{2, 32, 14, 14, 24, 1}, {2, 16, 8, 8, 16, 1}}; /* F(7,3), F(4,3) */
    for (size_t k = 0; k < 2; k++) {
        const wc *c = &cc[k];
        bufs s;
        bufs_new(c, 70 + k, &s);
        float *y0 = malloc(s.ny * 4), *y1 = malloc(s.ny * 4), *w2 = malloc(s.nw * 4);
        for (int64_t i = 0; i < s.nw; i++) w2[i] = -s.w[i];
        fwd_graph kept, plain;
        fwd_graph_new(c, 0, &kept);
        fwd_graph_new(c, 1, &plain);
        long t0 = wino_weight_transforms();
        fwd_graph_run(&kept, &s, s.w, s.nw, y0);
        fwd_graph_run(&kept, &s, s.w, s.nw, y1);
        assert_int_equal(wino_weight_transforms() - t0, 1); /* made once, then reused */
        assert_memory_equal(y0, y1, s.ny * 4);
        fwd_graph_run(&kept, &s, w2, s.nw, y1); /* new weights: made again */
        assert_int_equal(wino_weight_transforms() - t0, 2);
        fwd_graph_run(&plain, &s, w2, s.nw, y0);
        fwd_graph_run(&plain, &s, w2, s.nw, y0);
        assert_int_equal(wino_weight_transforms() - t0, 4); /* no cache: every run */
        assert_memory_equal(y0, y1, s.ny * 4);
        for (int i = 0; i < 3; i++) w2[(i * 7919) % s.nw] += 1e-3f; /* a few weights change */
        fwd_graph_run(&kept, &s, w2, s.nw, y1);
        fwd_graph_run(&plain, &s, w2, s.nw, y0);
        assert_memory_equal(y0, y1, s.ny * 4);
        df_graph_free(kept.g), df_graph_free(plain.g);
        df_params_free(kept.ps), df_params_free(plain.ps);
        free(y0), free(y1), free(w2);
        bufs_free(&s);
    }
}

static df_node *build(df_graph *g, df_node **in, void *vc) {
    const wc *c = vc;
    return df_conv2d(g, in[0], in[1], c->bias ? in[2] : NULL, 1, 1);
}
/* Finite differences through the Winograd forward and gradients. conv
 * is linear in x and in w, so central differences have no truncation error
 * at any step: a step of 0.25 keeps the forward's float rounding (about 6x
 * the direct kernel's, see above) from dominating the difference quotient
 * (with 0.01 the 200-channel case errs 1.4x over the tolerance). */
static void test_grad(void **state) {
    (void)state;
    wc gc[] = {{2, 16, 6, 7, 17, 1}, {1, 24, 9, 5, 16, 0}, {1, 200, 5, 130, 4, 1},
               {2, 16, 6, 7, 17, 1}, {1, 24, 9, 5, 16, 0}, {1, 16, 14, 14, 16, 1}};
    for (size_t k = 0; k < sizeof gc / sizeof gc[0]; k++) {
        const wc *c = &gc[k];
        df_conv_set_winograd(k < 3 ? 4 : 7);
        dft_input ins[3] = {{"x", DF_F32, df_shape4(c->B, c->Cin, c->H, c->W), 1, -1, 1, 0, 0},
                            {"w", DF_F32, df_shape4(c->Cout, c->Cin, 3, 3), 1, -0.2f, 0.2f, 0, 0},
                            {"b", DF_F32, df_shape1(c->Cout), 1, -0.5f, 0.5f, 0, 0}};
        assert_int_equal(dft_gradcheck(build, (void *)c, ins, 2 + c->bias, 200 + k,
                                       k < 3 ? 0.25f : 1.0f, 2e-3, 24),
                         0);
    }
    df_conv_set_winograd(1);
}

int dft_run_winograd(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_accuracy),    cmocka_unit_test(test_switch),
        cmocka_unit_test(test_tile_choice), cmocka_unit_test(test_threads),
        cmocka_unit_test(test_grad),        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_weight_cache)};
    return cmocka_run_group_tests_name("winograd", t, NULL, NULL);
}
