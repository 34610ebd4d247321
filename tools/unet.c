/* The canonical UNet with the C API (see unet.h). */
#include "unet.h"
#include <math.h>

unet_cfg unet_default(void) {
    unet_cfg c = {{32, 64, 128, 0}, 3, 2, 8, 4, 128, 256, 10};
    return c;
}

static df_node *pconv(df_graph *g, const char *name, df_node *x, int cin, int cout, int k,
                      int stride) {
    df_scope_push(g, name);
    df_node *w = df_param(g, "weight", df_shape4(cout, cin, k, k), (df_init){DF_INIT_KAIMING, 0});
    df_node *b =
        df_param(g, "bias", df_shape1(cout), (df_init){DF_INIT_KAIMING, (float)(cin * k * k)});
    df_scope_pop(g);
    df_name_next(g, name);
    return df_conv2d(g, x, w, b, stride, k / 2);
}

static df_node *plinear(df_graph *g, const char *name, df_node *x, int in, int out) {
    df_scope_push(g, name);
    df_node *w = df_param(g, "weight", df_shape2(out, in), (df_init){DF_INIT_KAIMING, 0});
    df_node *b = df_param(g, "bias", df_shape1(out), (df_init){DF_INIT_KAIMING, (float)in});
    df_scope_pop(g);
    df_name_next(g, name);
    return df_linear(g, x, w, b);
}

static df_node *pnorm(df_graph *g, const char *name, df_node *x, int c, int groups) {
    df_scope_push(g, name);
    df_node *w = df_param(g, "weight", df_shape1(c), (df_init){DF_INIT_ONES, 0});
    df_node *b = df_param(g, "bias", df_shape1(c), (df_init){DF_INIT_ZEROS, 0});
    df_scope_pop(g);
    df_name_next(g, name);
    return df_groupnorm(g, x, w, b, groups, 1e-5f);
}

static df_node *resblock(df_graph *g, const unet_cfg *c, df_node *x, df_node *emb, int cin,
                         int cout) {
    df_node *h =
        pconv(g, "conv1", df_silu(g, pnorm(g, "norm1", x, cin, c->groups)), cin, cout, 3, 1);
    h = df_add(g, h, plinear(g, "emb_proj", df_silu(g, emb), c->emb, cout));
    h = pconv(g, "conv2", df_silu(g, pnorm(g, "norm2", h, cout, c->groups)), cout, cout, 3, 1);
    df_node *skip = cin != cout ? pconv(g, "skip", x, cin, cout, 1, 1) : x;
    return df_add(g, h, skip);
}

static df_node *attnblock(df_graph *g, const unet_cfg *c, df_node *x, int C) {
    int64_t B = x->shape.d[0], H = x->shape.d[2], W = x->shape.d[3], HW = H * W;
    int64_t nh = c->heads, d = C / nh;
    df_node *qkv = pconv(g, "qkv", pnorm(g, "norm", x, C, c->groups), C, 3 * C, 1, 1);
    qkv = df_reshape(g, qkv, df_shape_make(5, (int64_t[]){B, 3, nh, d, HW}));
    df_node *q = df_reshape(g, df_slice(g, qkv, 1, 0, 1), df_shape4(B, nh, d, HW));
    df_node *k = df_reshape(g, df_slice(g, qkv, 1, 1, 1), df_shape4(B, nh, d, HW));
    df_node *v = df_reshape(g, df_slice(g, qkv, 1, 2, 1), df_shape4(B, nh, d, HW));
    df_node *a = df_softmax(g, df_scale(g, df_matmul(g, q, k, 1, 0), 1.0f / sqrtf((float)d)));
    df_node *o = df_reshape(g, df_matmul(g, v, a, 0, 1), df_shape4(B, C, H, W));
    return df_add(g, x, pconv(g, "proj", o, C, C, 1, 1));
}

df_node *unet_build(df_graph *g, const unet_cfg *c, int64_t B, unet_io *io) {
    io->x = df_input(g, "x", DF_F32, df_shape4(B, 1, 28, 28));
    io->t = df_input(g, "t", DF_F32, df_shape1(B));
    io->y = df_input(g, "y", DF_I32, df_shape1(B));
    /* embeddings */
    df_scope_push(g, "time");
    df_node *w = df_param(g, "freq", df_shape1(c->tdim / 2), (df_init){DF_INIT_NORMAL, 1.0f});
    df_node *temb = df_fourier(g, io->t, w);
    temb = plinear(g, "fc1", temb, c->tdim, c->emb);
    temb = plinear(g, "fc2", df_silu(g, temb), c->emb, c->emb);
    df_scope_pop(g);
    df_scope_push(g, "label");
    df_node *table =
        df_param(g, "weight", df_shape2(c->classes + 1, c->emb), (df_init){DF_INIT_NORMAL, 1.0f});
    df_scope_pop(g);
    df_node *emb = df_add(g, temb, df_embedding(g, io->y, table));
    /* body */
    df_node *h = pconv(g, "stem", io->x, 1, c->ch[0], 3, 1);
    df_node *skips[8];
    for (int i = 0; i < c->nlevels; i++) {
        df_scope_pushf(g, "down.%d", i);
        for (int r = 0; r < c->nres; r++) {
            df_scope_pushf(g, "res.%d", r);
            h = resblock(g, c, h, emb, c->ch[i], c->ch[i]);
            df_scope_pop(g);
        }
        skips[i] = h;
        if (i + 1 < c->nlevels) h = pconv(g, "downsample", h, c->ch[i], c->ch[i + 1], 3, 2);
        df_scope_pop(g);
    }
    int cm = c->ch[c->nlevels - 1];
    df_scope_push(g, "mid");
    df_scope_push(g, "res.0");
    h = resblock(g, c, h, emb, cm, cm);
    df_scope_pop(g);
    df_scope_push(g, "attn");
    h = attnblock(g, c, h, cm);
    df_scope_pop(g);
    df_scope_push(g, "res.1");
    h = resblock(g, c, h, emb, cm, cm);
    df_scope_pop(g);
    df_scope_pop(g);
    for (int i = c->nlevels - 1; i >= 0; i--) {
        df_scope_pushf(g, "up.%d", i);
        h = df_concat(g, (df_node *[]){h, skips[i]}, 2, 1);
        for (int r = 0; r < c->nres; r++) {
            df_scope_pushf(g, "res.%d", r);
            h = resblock(g, c, h, emb, r == 0 ? 2 * c->ch[i] : c->ch[i], c->ch[i]);
            df_scope_pop(g);
        }
        if (i > 0) h = pconv(g, "upsample", df_upsample(g, h, 2), c->ch[i], c->ch[i - 1], 3, 1);
        df_scope_pop(g);
    }
    h = df_silu(g, pnorm(g, "out_norm", h, c->ch[0], c->groups));
    io->out = pconv(g, "out", h, c->ch[0], 1, 3, 1);
    return io->out;
}
