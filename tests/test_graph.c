/* Graph-level checks: autodiff of composite blocks (ResBlock, attention)
 * against finite differences, gradient fan-out, parameter gradients, the
 * planner's no-overlap property on random graphs, bitwise-identical
 * gradients with memory reuse on and off, and executor determinism. */
#include "harness.h"
#include "conv_winograd.h"
#include "unet.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ResBlock(cin -> cout)(x, emb) as in the spec, weights as inputs ---- */
typedef struct {
    int cin, cout, groups;
} rb_ctx;

/* ins: x, emb, gn1.g, gn1.b, c1.w, c1.b, lin.w, lin.b, gn2.g, gn2.b, c2.w, c2.b, [skip.w, skip.b]
 */
static df_node *build_resblock(df_graph *g, df_node **in, void *vctx) {
    rb_ctx *c = vctx;
    df_node *x = in[0], *emb = in[1];
    df_node *h = df_groupnorm(g, x, in[2], in[3], c->groups, 1e-5f);
    h = df_conv2d(g, df_silu(g, h), in[4], in[5], 1, 1);
    h = df_add(g, h, df_linear(g, df_silu(g, emb), in[6], in[7])); /* [B,C] over [B,C,H,W] */
    h = df_groupnorm(g, h, in[8], in[9], c->groups, 1e-5f);
    h = df_conv2d(g, df_silu(g, h), in[10], in[11], 1, 1);
    df_node *skip = c->cin != c->cout ? df_conv2d(g, x, in[12], in[13], 1, 0) : x;
    return df_add(g, h, skip);
}

static void test_resblock_grad(void **state) {
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        rb_ctx c = {variant ? 4 : 6, 6, 2};
        int B = 2, H = 5, W = 4, E = 7;
        dft_input ins[14] = {
            {"x", DF_F32, df_shape4(B, c.cin, H, W), 1, -1, 1, 0, 0},
            {"emb", DF_F32, df_shape2(B, E), 1, -1, 1, 0, 0},
            {"gn1.g", DF_F32, df_shape1(c.cin), 1, 0.5f, 1.5f, 0, 0},
            {"gn1.b", DF_F32, df_shape1(c.cin), 1, -0.5f, 0.5f, 0, 0},
            {"c1.w", DF_F32, df_shape4(c.cout, c.cin, 3, 3), 1, -0.3f, 0.3f, 0, 0},
            {"c1.b", DF_F32, df_shape1(c.cout), 1, -0.3f, 0.3f, 0, 0},
            {"lin.w", DF_F32, df_shape2(c.cout, E), 1, -0.4f, 0.4f, 0, 0},
            {"lin.b", DF_F32, df_shape1(c.cout), 1, -0.4f, 0.4f, 0, 0},
            {"gn2.g", DF_F32, df_shape1(c.cout), 1, 0.5f, 1.5f, 0, 0},
            {"gn2.b", DF_F32, df_shape1(c.cout), 1, -0.5f, 0.5f, 0, 0},
            {"c2.w", DF_F32, df_shape4(c.cout, c.cout, 3, 3), 1, -0.3f, 0.3f, 0, 0},
            {"c2.b", DF_F32, df_shape1(c.cout), 1, -0.3f, 0.3f, 0, 0},
            {"skip.w", DF_F32, df_shape4(c.cout, c.cin, 1, 1), 1, -0.5f, 0.5f, 0, 0},
            {"skip.b", DF_F32, df_shape1(c.cout), 1, -0.5f, 0.5f, 0, 0},
        };
        int n = c.cin != c.cout ? 14 : 12;
        /* the composition is checked here, so with the direct convolutions
         * (Winograd's rounding is larger than this float check's margin; its
         * kernels have their own finite-difference checks in test_ops) */
        int was = df_conv_winograd();
        df_conv_set_winograd(0);
        int bad = dft_gradcheck(build_resblock, &c, ins, n, 1234 + variant, 1e-2f, 4e-3, 24);
        df_conv_set_winograd(was);
        assert_int_equal(bad, 0);
    }
}

/* ---- AttnBlock(C, heads)(x) as in the spec ---- */
typedef struct {
    int C, heads, groups;
} at_ctx;

/* ins: x, gn.g, gn.b, qkv.w, qkv.b, out.w, out.b */
static df_node *build_attn(df_graph *g, df_node **in, void *vctx) {
    at_ctx *c = vctx;
    df_node *x = in[0];
    int64_t B = x->shape.d[0], C = c->C, H = x->shape.d[2], W = x->shape.d[3], HW = H * W;
    int64_t nh = c->heads, d = C / nh;
    df_node *h = df_groupnorm(g, x, in[1], in[2], c->groups, 1e-5f);
    df_node *qkv = df_conv2d(g, h, in[3], in[4], 1, 0); /* [B, 3C, H, W] */
    qkv = df_reshape(g, qkv, df_shape_make(5, (int64_t[]){B, 3, nh, d, HW}));
    df_node *q = df_reshape(g, df_slice(g, qkv, 1, 0, 1), df_shape4(B, nh, d, HW));
    df_node *k = df_reshape(g, df_slice(g, qkv, 1, 1, 1), df_shape4(B, nh, d, HW));
    df_node *v = df_reshape(g, df_slice(g, qkv, 1, 2, 1), df_shape4(B, nh, d, HW));
    df_node *a = df_scale(g, df_matmul(g, q, k, 1, 0), 1.0f / sqrtf((float)d)); /* [B,h,HW,HW] */
    a = df_softmax(g, a);
    df_node *o = df_matmul(g, v, a, 0, 1); /* [B, h, d, HW] */
    o = df_reshape(g, o, df_shape4(B, C, H, W));
    return df_add(g, x, df_conv2d(g, o, in[5], in[6], 1, 0));
}

static void test_attention_grad(void **state) {
    (void)state;
    at_ctx c = {8, 2, 4};
    int B = 2, H = 3, W = 3;
    dft_input ins[7] = {
        {"x", DF_F32, df_shape4(B, c.C, H, W), 1, -1, 1, 0, 0},
        {"gn.g", DF_F32, df_shape1(c.C), 1, 0.5f, 1.5f, 0, 0},
        {"gn.b", DF_F32, df_shape1(c.C), 1, -0.5f, 0.5f, 0, 0},
        {"qkv.w", DF_F32, df_shape4(3 * c.C, c.C, 1, 1), 1, -0.6f, 0.6f, 0, 0},
        {"qkv.b", DF_F32, df_shape1(3 * c.C), 1, -0.3f, 0.3f, 0, 0},
        {"out.w", DF_F32, df_shape4(c.C, c.C, 1, 1), 1, -0.5f, 0.5f, 0, 0},
        {"out.b", DF_F32, df_shape1(c.C), 1, -0.3f, 0.3f, 0, 0},
    };
    assert_int_equal(dft_gradcheck(build_attn, &c, ins, 7, 77, 1e-2f, 4e-3, 24), 0);
}

/* ---- fan-out: one value read by several nodes gets the sum ---- */
static df_node *build_fanout(df_graph *g, df_node **in, void *ctx) {
    (void)ctx;
    df_node *x = in[0];
    df_node *y = df_add(g, df_mul(g, x, x), df_silu(g, x));
    return df_add(g, y, df_scale(g, x, 3.0f));
}

static void test_fanout(void **state) {
    (void)state;
    dft_input ins[1] = {{"x", DF_F32, df_shape2(3, 5), 1, -2, 2, 0, 0}};
    assert_int_equal(dft_gradcheck(build_fanout, NULL, ins, 1, 5, 1e-2f, 2e-3, 15), 0);
    /* and exactly: d/dx sum(x^2 + silu(x) + 3x) = 2x + silu'(x) + 3 */
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *x = df_input(g, "x", DF_F32, df_shape1(4));
    df_node *l = df_sum_all(g, build_fanout(g, &x, NULL));
    assert_int_equal(df_backward(g, l, &x, 1), DF_OK);
    assert_int_equal(df_compile(g, NULL), DF_OK);
    float xv[4] = {-1.5f, -0.2f, 0.3f, 2.0f};
    df_set_input(g, x, xv, 4);
    assert_int_equal(df_run(g), DF_OK);
    const float *gx = df_data(df_grad_of(g, x));
    for (int i = 0; i < 4; i++) {
        double s = 1 / (1 + exp(-xv[i])), ref = 2 * xv[i] + s * (1 + xv[i] * (1 - s)) + 3;
        assert_true(fabs(gx[i] - ref) < 1e-5);
    }
    df_graph_free(g);
    df_params_free(ps);
}

/* ---- parameters: gradients land in the store; a shared weight sums ---- */
static void test_param_grads(void **state) {
    (void)state;
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *x = df_input(g, "x", DF_F32, df_shape2(3, 4));
    df_scope_push(g, "mlp");
    df_node *w = df_param(g, "w", df_shape2(4, 4), (df_init){DF_INIT_KAIMING, 0});
    df_node *unused = df_param(g, "unused", df_shape1(2), (df_init){DF_INIT_ONES, 0});
    df_node *h = df_linear(g, x, w, NULL);
    h = df_linear(g, h, df_param(g, "w", df_shape2(4, 4), (df_init){DF_INIT_KAIMING, 0}), NULL);
    df_scope_pop(g);
    (void)unused;
    assert_string_equal(w->name, "mlp.w");
    assert_int_equal(df_params_count(ps), 2);
    df_node *l = df_sum_all(g, h);
    assert_int_equal(df_backward(g, l, NULL, 0), DF_OK);
    assert_int_equal(df_compile(g, NULL), DF_OK);
    df_params_init(ps, 3);
    float xv[12];
    dft_fill_uniform(xv, 12, -1, 1, 9);
    df_set_input(g, x, xv, 12);
    assert_int_equal(df_run(g), DF_OK);
    /* reference: L = sum(x W^T W^T); dL/dW = dW from both uses */
    const float *W = df_param_data(ps, 0), *gw = df_param_grad(ps, 0);
    double ref[16] = {0};
    for (int n = 0; n < 3; n++) {
        double h1[4];
        for (int o = 0; o < 4; o++) {
            h1[o] = 0;
            for (int i = 0; i < 4; i++) h1[o] += xv[n * 4 + i] * W[o * 4 + i];
        }
        /* second use: y = h1 W^T, dy = 1: dW[o][i] += h1[i]; dh1[i] = sum_o W[o][i] */
        for (int o = 0; o < 4; o++)
            for (int i = 0; i < 4; i++) ref[o * 4 + i] += h1[i];
        for (int o = 0; o < 4; o++) {
            double dh = 0;
            for (int k = 0; k < 4; k++) dh += W[k * 4 + o];
            for (int i = 0; i < 4; i++) ref[o * 4 + i] += dh * xv[n * 4 + i];
        }
    }
    for (int i = 0; i < 16; i++) assert_true(fabs(gw[i] - ref[i]) < 1e-4);
    const float *gu = df_param_grad(ps, 1);
    assert_true(gu[0] == 0 && gu[1] == 0);
    df_graph_free(g);
    df_params_free(ps);
}

/* ---- a random graph of mixed ops ---- */
static df_node *random_graph(df_graph *g, df_node **inputs, int nin, uint64_t seed, int len) {
    df_rng r = df_rng_new(seed);
    df_node *vals[256];
    int nv = 0;
    for (int i = 0; i < nin; i++) vals[nv++] = inputs[i];
    for (int s = 0; s < len && nv < 256; s++) {
        int32_t pick[3];
        df_rng_randint(&r, pick, 3, 1 << 20);
        df_node *a = vals[nv - 1 - pick[0] % (nv < 4 ? nv : 4)];
        df_node *b = vals[pick[1] % nv];
        df_node *y = NULL;
        switch (pick[2] % 9) {
        case 0:
            y = df_add(g, a, b);
            break;
        case 1:
            y = df_mul(g, a, df_scale(g, b, 0.5f));
            break;
        case 2:
            y = df_silu(g, a);
            break;
        case 3:
            y = df_scale(g, a, -0.7f);
            break;
        case 4:
            y = df_sub(g, a, b);
            break;
        case 5:
            y = df_reshape(g, a, df_shape2(1, -1));
            y = df_reshape(g, df_relu(g, y), a->shape);
            break;
        case 6:
            y = df_add(g, a, df_sum(g, b, 1u << 1));
            break; /* broadcast [N,1] */
        case 7: {
            df_node *cat = df_concat(g, (df_node *[]){a, b}, 2, 1);
            y = df_slice(g, cat, 1, pick[0] % 3, a->shape.d[1]);
            break;
        }
        default:
            y = df_softmax(g, a);
            break;
        }
        if (!y) return NULL;
        vals[nv++] = y;
    }
    df_node *acc = vals[nv - 1];
    for (int i = nin; i < nv - 1; i += 3) acc = df_add(g, acc, vals[i]); /* many fan-outs */
    return acc;
}

typedef struct {
    uint64_t seed;
    int len;
} rg_ctx;
static df_node *build_random(df_graph *g, df_node **in, void *vctx) {
    rg_ctx *c = vctx;
    return random_graph(g, in, 2, c->seed, c->len);
}

/* Two live buffers never overlap: recompute liveness independently. */
static int check_no_overlap(df_graph *g) {
    int n = df_graph_size(g), bad = 0;
    int *def = malloc(n * sizeof *def), *last = malloc(n * sizeof *last);
    for (int i = 0; i < n; i++) {
        df_node *x = df_graph_node(g, i);
        def[i] = x->op == DF_OP_INPUT ? -1 : i;
        last[i] = x->keep || x->op == DF_OP_INPUT ? n : i;
    }
    for (int i = 0; i < n; i++) {
        df_node *x = df_graph_node(g, i);
        for (int k = 0; k < x->n_in; k++) {
            df_node *r = x->in[k]->root;
            if (last[r->id] < i) last[r->id] = i;
        }
        if (x->keep && last[x->root->id] < n) last[x->root->id] = n;
    }
    for (int i = 0; i < n; i++) {
        df_node *a = df_graph_node(g, i);
        if (a->storage != DF_STORE_ARENA) continue;
        for (int j = i + 1; j < n; j++) {
            df_node *b = df_graph_node(g, j);
            if (b->storage != DF_STORE_ARENA) continue;
            size_t a0 = a->offset, a1 = a0 + df_node_bytes(a), b0 = b->offset,
                   b1 = b0 + df_node_bytes(b);
            if (a1 <= b0 || b1 <= a0) continue; /* disjoint memory */
            int lo = def[i] > def[j] ? def[i] : def[j];
            int hi = last[i] < last[j] ? last[i] : last[j];
            if (lo > hi) continue; /* never live together */
            /* in-place hand-over: b overwrites its dying input a at b's definition */
            if (b->inplace && b->inplace->root == a && last[i] == j && a0 == b0) continue;
            if (a->inplace && a->inplace->root == b && last[j] == i && a0 == b0) continue;
            if (!bad)
                fprintf(stderr, "overlap: '%s' [%d,%d] @%zu+%zu and '%s' [%d,%d] @%zu+%zu\n",
                        a->name, def[i], last[i], a0, a1 - a0, b->name, def[j], last[j], b0,
                        b1 - b0);
            bad++;
        }
    }
    free(def);
    free(last);
    return bad;
}

static void test_planner_property(void **state) {
    (void)state;
    for (int trial = 0; trial < 40; trial++) {
        df_params *ps = df_params_new();
        df_graph *g = df_graph_new(ps);
        df_node *in[2] = {df_input(g, "a", DF_F32, df_shape2(3, 5 + trial % 4)),
                          df_input(g, "b", DF_F32, df_shape2(3, 5 + trial % 4))};
        rg_ctx c = {1000 + trial, 10 + trial};
        df_node *y = build_random(g, in, &c);
        assert_non_null(y);
        df_node *l = df_sum_all(g, df_mul(g, y, y));
        assert_int_equal(df_backward(g, l, in, 2), DF_OK);
        assert_int_equal(df_compile(g, NULL), DF_OK);
        assert_int_equal(check_no_overlap(g), 0);
        df_plan_stats st;
        df_plan_get_stats(g, &st);
        assert_true(st.planned_bytes <= st.naive_bytes);
        df_graph_free(g);
        df_params_free(ps);
    }
    /* and the random graphs' gradients are right (also bitwise equal with reuse off) */
    for (int trial = 0; trial < 6; trial++) {
        rg_ctx c = {2000 + trial, 12};
        dft_input ins[2] = {{"a", DF_F32, df_shape2(3, 5), 1, -1, 1, 0, 0},
                            {"b", DF_F32, df_shape2(3, 5), 1, -1, 1, 0, 0}};
        assert_int_equal(dft_gradcheck(build_random, &c, ins, 2, 50 + trial, 1e-2f, 4e-3, 15), 0);
    }
}

/* ---- a long network: reuse on/off bitwise equal, determinism, planning ---- */
typedef struct {
    df_params *ps;
    df_graph *g;
    df_node *x, *emb, *loss;
} deep_net;

enum { DEEP_NO_REUSE = 1, DEEP_NO_FUSE = 2 };
static void build_deep(deep_net *d, int flags, int blocks) {
    d->ps = df_params_new();
    d->g = df_graph_new(d->ps);
    df_graph *g = d->g;
    int C = 8;
    d->x = df_input(g, "x", DF_F32, df_shape4(3, 1, 8, 8));
    d->emb = df_input(g, "emb", DF_F32, df_shape2(3, 16));
    df_node *h = df_conv2d(
        g, d->x, df_param(g, "stem.w", df_shape4(C, 1, 3, 3), (df_init){DF_INIT_KAIMING, 0}),
        df_param(g, "stem.b", df_shape1(C), (df_init){DF_INIT_KAIMING, 9}), 1, 1);
    df_node *skips[32];
    for (int b = 0; b < blocks; b++) {
        df_scope_pushf(g, "block.%d", b);
        df_node *in[12] = {h, d->emb};
        const char *nm[10] = {"gn1.g", "gn1.b", "c1.w",  "c1.b", "lin.w",
                              "lin.b", "gn2.g", "gn2.b", "c2.w", "c2.b"};
        df_shape sh[10] = {df_shape1(C),          df_shape1(C), df_shape4(C, C, 3, 3), df_shape1(C),
                           df_shape2(C, 16),      df_shape1(C), df_shape1(C),          df_shape1(C),
                           df_shape4(C, C, 3, 3), df_shape1(C)};
        for (int k = 0; k < 10; k++) {
            df_init init = {DF_INIT_KAIMING, 0};
            if (k == 0 || k == 6) init = (df_init){DF_INIT_ONES, 0};
            in[2 + k] = df_param(g, nm[k], sh[k], init);
        }
        rb_ctx rc = {C, C, 4};
        h = build_resblock(g, in, &rc);
        skips[b] = h;
        if (b % 3 == 2) h = df_add(g, h, skips[b / 2]); /* long skip connections */
        df_scope_pop(g);
    }
    df_node *out =
        df_conv2d(g, h, df_param(g, "out.w", df_shape4(1, C, 3, 3), (df_init){DF_INIT_KAIMING, 0}),
                  NULL, 1, 1);
    d->loss = df_mse_loss(g, out, d->x);
    df_keep(g, d->loss);
    assert_int_equal(df_backward(g, d->loss, NULL, 0), DF_OK);
    int no_reuse = flags & DEEP_NO_REUSE;
    df_compile_opts o = {
        .no_reuse = no_reuse, .no_inplace = no_reuse, .no_fuse = !!(flags & DEEP_NO_FUSE)};
    assert_int_equal(df_compile(g, &o), DF_OK);
    assert_int_equal(df_params_init(d->ps, 5), DF_OK);
    float xv[192], ev[48];
    dft_fill_uniform(xv, 192, -1, 1, 1);
    dft_fill_uniform(ev, 48, -1, 1, 2);
    df_set_input(g, d->x, xv, 192);
    df_set_input(g, d->emb, ev, 48);
}

static void free_deep(deep_net *d) {
    df_graph_free(d->g);
    df_params_free(d->ps);
}

/* y = conv(x, w1, b1) + conv(x, w2, b2): both biases' gradients sum dy to
 * [C]; fused, the second sum is a copy of the first. Gradients bitwise
 * equal to the unfused graph's; *copies: live copy nodes */
static void two_biases(int fuse, float **grads, int64_t *n, int *reduces, int *copies) {
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *x = df_input(g, "x", DF_F32, df_shape4(2, 3, 5, 5));
    df_node *w1 = df_param(g, "w1", df_shape4(4, 3, 3, 3), (df_init){DF_INIT_KAIMING, 0});
    df_node *b1 = df_param(g, "b1", df_shape1(4), (df_init){DF_INIT_KAIMING, 1});
    df_node *w2 = df_param(g, "w2", df_shape4(4, 3, 1, 1), (df_init){DF_INIT_KAIMING, 0});
    df_node *b2 = df_param(g, "b2", df_shape1(4), (df_init){DF_INIT_KAIMING, 1});
    df_node *y = df_add(g, df_conv2d(g, x, w1, b1, 1, 1), df_conv2d(g, x, w2, b2, 1, 0));
    df_node *loss = df_sum_all(g, df_mul(g, y, y));
    assert_int_equal(df_backward(g, loss, NULL, 0), DF_OK);
    df_compile_opts o = {.no_fuse = !fuse};
    assert_int_equal(df_compile(g, &o), DF_OK);
    assert_int_equal(df_params_init(ps, 4), DF_OK);
    float xv[150];
    dft_fill_uniform(xv, 150, -1, 1, 3);
    df_set_input(g, x, xv, 150);
    assert_int_equal(df_run(g), DF_OK);
    *n = df_params_block_numel(ps);
    *grads = malloc(*n * 4);
    memcpy(*grads, df_params_grad(ps), *n * 4);
    *reduces = dft_live(g, DF_OP_REDUCE, NULL);
    *copies = dft_live(g, DF_OP_COPY, NULL);
    df_graph_free(g);
    df_params_free(ps);
}
static void test_same_sums_once(void **state) {
    (void)state;
    float *a, *b;
    int64_t na, nb;
    int ra, rb, ca, cb;
    two_biases(1, &a, &na, &ra, &ca);
    two_biases(0, &b, &nb, &rb, &cb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * 4);
    assert_int_equal(ra, rb - 1); /* one of the two bias sums is a copy of the other */
    assert_int_equal(ca, cb + 1);
    free(a), free(b);
}

static void test_reuse_bitwise_and_determinism(void **state) {
    (void)state;
    deep_net a, b, c;
    build_deep(&a, 0, 10);
    build_deep(&b, DEEP_NO_REUSE, 10);
    build_deep(&c, DEEP_NO_FUSE, 10);
    assert_int_equal(check_no_overlap(a.g), 0);
    assert_int_equal(df_run(a.g), DF_OK);
    assert_int_equal(df_run(b.g), DF_OK);
    int64_t n = df_params_block_numel(a.ps);
    assert_int_equal(n, df_params_block_numel(b.ps));
    assert_memory_equal(df_params_grad(a.ps), df_params_grad(b.ps), n * 4);
    assert_memory_equal(df_data(a.loss), df_data(b.loss), 4);
    /* the fusion pass changes nothing but the memory: same loss and gradients, bitwise */
    assert_int_equal(df_run(c.g), DF_OK);
    assert_memory_equal(df_params_grad(a.ps), df_params_grad(c.ps), n * 4);
    assert_memory_equal(df_data(a.loss), df_data(c.loss), 4);
    df_plan_stats sa, sb, sc;
    df_plan_get_stats(a.g, &sa);
    df_plan_get_stats(b.g, &sb);
    df_plan_get_stats(c.g, &sc);
    fprintf(stderr, "deep net: planned %zu bytes fused, %zu unfused\n", sa.planned_bytes,
            sc.planned_bytes);
    assert_true(sa.planned_bytes < sc.planned_bytes);
    fprintf(stderr,
            "deep net: %d nodes (%d backward, %d in place, %d views): planned %zu bytes, "
            "no reuse %zu bytes (%.1f%%)\n",
            sa.n_nodes, sa.n_backward, sa.n_inplace, sa.n_views, sa.planned_bytes, sb.planned_bytes,
            100.0 * sa.planned_bytes / sb.planned_bytes);
    assert_true(sa.planned_bytes < sb.planned_bytes / 2);
    assert_true(sa.n_inplace > 0);
    /* determinism: run again, and with another thread count */
    float *g1 = malloc(n * 4);
    memcpy(g1, df_params_grad(a.ps), n * 4);
    assert_int_equal(df_run(a.g), DF_OK);
    assert_memory_equal(g1, df_params_grad(a.ps), n * 4);
    int old = df_get_threads();
    df_set_threads(1);
    assert_int_equal(df_run(a.g), DF_OK);
    assert_memory_equal(g1, df_params_grad(a.ps), n * 4);
    df_set_threads(old);
    free(g1);
    free_deep(&a);
    free_deep(&b);
    free_deep(&c);
}

static void test_runtime_errors(void **state) {
    (void)state;
    /* a NaN reaching a loss fails the run with the node's name */
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_node *x = df_input(g, "x", DF_F32, df_shape1(3));
    df_node *t = df_input(g, "t", DF_F32, df_shape1(3));
    df_name_next(g, "my_loss");
    df_node *l = df_mse_loss(g, x, t);
    df_keep(g, l);
    assert_int_equal(df_compile(g, NULL), DF_OK);
    df_set_input(g, x, (float[]){1, NAN, 2}, 3);
    df_set_input(g, t, (float[]){0, 0, 0}, 3);
    assert_int_equal(df_run(g), DF_ENONFINITE);
    assert_non_null(strstr(df_errmsg(), "my_loss"));
    df_set_input(g, x, (float[]){1, 1, 2}, 3);
    assert_int_equal(df_run(g), DF_OK);
    assert_true(fabsf(*(float *)df_data(l) - 2.0f) < 1e-6f);
    df_graph_free(g);
    df_params_free(ps);
}

/* ---- the canonical UNet: parameter counts of the spec, and one training step ---- */
static void test_unet_params(void **state) {
    (void)state;
    int64_t want[2] = {3031585, 11210497};
    for (int k = 0; k < 2; k++) {
        unet_cfg c = unet_default();
        if (k) {
            c.ch[0] = 64;
            c.ch[1] = 128;
            c.ch[2] = 256;
        }
        df_params *ps = df_params_new();
        df_graph *g = df_graph_new(ps);
        unet_io io;
        df_node *out = unet_build(g, &c, 2, &io);
        if (!out) fprintf(stderr, "%s\n", df_graph_errmsg(g));
        assert_non_null(out);
        assert_true(df_shape_eq(&out->shape, &io.x->shape));
        assert_int_equal(df_params_numel(ps), want[k]);
        assert_int_not_equal(df_params_find(ps, "down.1.res.0.conv1.weight"), -1);
        assert_int_not_equal(df_params_find(ps, "mid.attn.qkv.weight"), -1);
        df_graph_free(g);
        df_params_free(ps);
    }
}

static void test_unet_train_step(void **state) {
    (void)state;
    unet_cfg c = unet_default();
    int B = 2;
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    unet_io io;
    df_node *out = unet_build(g, &c, B, &io);
    df_node *eps = df_input(g, "eps", DF_F32, out->shape);
    df_node *loss = df_mse_loss(g, out, eps);
    df_keep(g, loss);
    assert_int_equal(df_backward(g, loss, NULL, 0), DF_OK);
    assert_int_equal(df_compile(g, NULL), DF_OK);
    df_params_init(ps, 1);
    float *x = malloc(B * 784 * 4), tv[2] = {0.3f, 0.9f};
    dft_fill_uniform(x, B * 784, -1, 1, 3);
    df_set_input(g, io.x, x, B * 784);
    dft_fill_uniform(x, B * 784, -1, 1, 4);
    df_set_input(g, eps, x, B * 784);
    df_set_input(g, io.t, tv, 2);
    df_set_input(g, io.y, (int32_t[]){3, 10}, 2);
    assert_int_equal(df_run(g), DF_OK);
    double gn = df_grad_norm(ps);
    assert_true(isfinite(gn) && gn > 0);
    /* every parameter receives a gradient */
    for (int i = 0; i < df_params_count(ps); i++) {
        const df_param_info *p = df_params_info(ps, i);
        const float *gp = df_param_grad(ps, i);
        double s = 0;
        for (int64_t j = 0; j < p->numel; j++) s += fabs(gp[j]);
        if (!(s > 0)) fprintf(stderr, "no gradient reaches %s\n", p->name);
        if (!strcmp(p->name, "label.weight")) continue; /* only rows 3 and 10 */
        assert_true(s > 0);
    }
    /* a label out of range fails the run, naming the value */
    df_set_input(g, io.y, (int32_t[]){3, 11}, 2);
    assert_int_equal(df_run(g), DF_ERANGE);
    assert_non_null(strstr(df_errmsg(), "11"));
    free(x);
    df_graph_free(g);
    df_params_free(ps);
}

int main(void) {
    df_set_threads(0);
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_resblock_grad),
        cmocka_unit_test(test_attention_grad),
        cmocka_unit_test(test_fanout),
        cmocka_unit_test(test_param_grads),
        cmocka_unit_test(test_planner_property),
        cmocka_unit_test(test_same_sums_once),
        cmocka_unit_test(test_reuse_bitwise_and_determinism),
        cmocka_unit_test(test_runtime_errors),
        cmocka_unit_test(test_unet_params),
        cmocka_unit_test(test_unet_train_step),
    };
    return cmocka_run_group_tests_name("graph", t, NULL, NULL);
}
