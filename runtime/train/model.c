/* A graph file's model built for training or inference (see model.h). */
#include "dfrun/model.h"
#include "dfrun/runtime.h"
#include <string.h>

static df_status fail(df_gfile *f, const char *what, const df_node *a, const df_node *b) {
    char sa[96] = "", sb[96] = "";
    if (a) df_shape_str(&a->shape, sa, sizeof sa);
    if (b) df_shape_str(&b->shape, sb, sizeof sb);
    return df_seterr(DF_EINVAL, "%s: %s%s%s%s%s", df_gfile_path(f), what, a ? " " : "", sa,
                     b ? " vs x " : "", sb);
}

/* inputs by name, outputs: the first, and 'features' */
static df_status find_io(df_model *m, df_gfile *f) {
    for (int i = 0; i < m->io.n_in; i++) {
        const char *n = m->io.in_name[i];
        if (!strcmp(n, "x")) m->x = m->io.in[i];
        if (!strcmp(n, "t")) m->t = m->io.in[i];
        if (!strcmp(n, "y")) m->y = m->io.in[i];
    }
    if (!m->x || m->x->dtype != DF_F32)
        return fail(f, "the model needs a float32 input 'x' (the examples)", NULL, NULL);
    if (m->y && m->y->dtype != DF_I32)
        return fail(f, "the model's input 'y' (class labels) must be int32", NULL, NULL);
    m->out = m->io.out[0];
    for (int i = 1; i < m->io.n_out; i++)
        if (!strcmp(m->io.out_name[i], "features")) m->features = m->io.out[i];
    m->dim = df_shape_numel(&m->x->shape) / m->batch;
    m->classifier = !m->t;
    if (m->classifier) {
        if (m->out->shape.nd != 2 || m->out->shape.d[0] != m->batch || m->out->dtype != DF_F32)
            return fail(
                f, "a classifier's (no input 't') first output must be logits [B, classes], got",
                m->out, NULL);
    } else if (!df_shape_eq(&m->out->shape, &m->x->shape) || m->out->dtype != DF_F32)
        return fail(f, "the model's output must have the shape of its input x:", m->out, m->x);
    return DF_OK;
}

/* loss = mean((weight * out - target)^2) for DSM; cross-entropy for classifiers */
static void add_loss(df_model *m) {
    df_graph *g = m->g;
    if (m->classifier) {
        m->labels = df_input(g, "labels", DF_I32, df_shape1(m->batch));
        m->loss = df_cross_entropy(g, m->out, m->labels);
        return;
    }
    df_shape ws = m->x->shape; /* [B, 1, ...] */
    for (int i = 1; i < ws.nd; i++) ws.d[i] = 1;
    m->weight = df_input(g, "loss_weight", DF_F32, ws);
    m->target = df_input(g, "target", DF_F32, m->x->shape);
    m->loss = df_mse_loss(g, df_mul(g, m->out, m->weight), m->target);
}

df_status df_model_build(df_model *m, df_gfile *f, df_params *ps, int64_t batch,
                         df_model_mode mode) {
    memset(m, 0, sizeof *m);
    if (!f || !ps || batch < 1) return df_seterr(DF_EINVAL, "df_model_build: bad arguments");
    m->batch = batch;
    m->g = df_graph_new(ps);
    if (!m->g) return DF_ENOMEM;
    df_status st = df_gfile_build(f, m->g, batch, &m->io);
    if (!st) st = find_io(m, f);
    if (st) return st;
    if (mode == DF_MODEL_TRAIN) {
        add_loss(m);
        df_keep(m->g, m->loss);
        if (df_graph_status(m->g))
            return df_seterr(df_graph_status(m->g), "%s", df_graph_errmsg(m->g));
        if ((st = df_backward(m->g, m->loss, NULL, 0))) return st;
    } else {
        df_keep(m->g, m->out);
        if (m->features) df_keep(m->g, m->features);
    }
    df_compile_opts co = {.precision = (int)df_gfile_config(f)->train.precision};
    if (co.precision == DF_PRECISION_BF16 && !strcmp(df_bf16_mode(), "no effect"))
        return df_seterr(DF_EINVAL,
                         "train.precision: bf16 runs on the AVX-512 Winograd kernels, which this "
                         "build lacks (a portable build); use fp32 (--precision fp32)");
    return df_compile(m->g, &co);
}

void df_model_free(df_model *m) {
    if (!m) return;
    df_graph_free(m->g);
    memset(m, 0, sizeof *m);
}

df_status df_model_params(df_gfile *f, df_params *ps) {
    df_graph *g = df_graph_new(ps);
    df_model_io io;
    df_status st = g ? df_gfile_build(f, g, 1, &io) : DF_ENOMEM;
    df_graph_free(g);
    return st;
}
