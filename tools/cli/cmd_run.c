/* dfrun run: named values of a graph file's model (outputs, inputs or any
 * node path) on inputs from .npy files, optionally the parameter gradients of
 * a scalar (df_model_values). */
#define _GNU_SOURCE
#include "args.h"
#include "commands.h"
#include "dfrun/checkpoint.h"
#include "dfrun/model.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXV ARGS_MAX_MULTI

/* every --out value to its file (int32 values written as floats) */
static df_status write_outs(df_node **on, const args_multi *outs) {
    for (int i = 0; i < outs->n; i++) {
        int64_t shp[DF_MAX_DIMS], n = df_shape_numel(&on[i]->shape);
        for (int j = 0; j < on[i]->shape.nd; j++) shp[j] = on[i]->shape.d[j];
        float *v = df_data(on[i]), *conv = NULL; /* [n] */
        if (on[i]->dtype == DF_I32) {
            if (!(conv = malloc((size_t)n * sizeof(float))))
                return df_seterr(DF_ENOMEM, "out of memory");
            for (int64_t j = 0; j < n; j++) conv[j] = (float)((int32_t *)v)[j];
            v = conv;
        }
        df_status st = df_npy_write(strchr(outs->v[i], '=') + 1, v, shp, on[i]->shape.nd);
        free(conv);
        if (st) return st;
    }
    return DF_OK;
}

/* every parameter's gradient, by name, to a safetensors file */
static df_status write_grads(df_params *ps, const char *path) {
    int np = df_params_count(ps);
    df_st_tensor *t = calloc(np ? np : 1, sizeof *t);
    if (!t) return df_seterr(DF_ENOMEM, "out of memory");
    for (int i = 0; i < np; i++) {
        const df_param_info *p = df_params_info(ps, i);
        t[i] = (df_st_tensor){p->name, DF_F32, p->shape, df_param_grad(ps, i)};
    }
    df_status st = df_st_save(path, t, np, NULL, 0);
    free(t);
    return st;
}

int cmd_run(int argc, char **argv) {
    const char *graph = NULL, *ckpt = NULL, *grads = NULL, *weights = "raw";
    args_multi ins = {0}, outs = {0}, sets = {0};
    arg_spec specs[] = {
        {"GRAPH.yaml", A_POS, &graph, NULL, NULL, 0, 0, 0},
        {"--ckpt", A_STR, &ckpt, "FILE",
         "weights (and, without GRAPH, the model) from a checkpoint", 0, 0, 0},
        {"--weights", A_STR, &weights, "ema|raw", "which weights of the checkpoint (default raw)",
         0, 0, 0},
        {"--in", A_MULTI, &ins, "NAME=FILE.npy",
         "an input of the model (float32; int inputs rounded)", 0, 0, 0},
        {"--out", A_MULTI, &outs, "NAME=FILE.npy",
         "a value to write: model output, input or node path", 0, 0, 0},
        {"--grads", A_STR, &grads, "FILE",
         "gradients of the first --out (a scalar) to FILE (safetensors)", 0, 0, 0},
        {"--set", A_MULTI, &sets, "PATH=VALUE", "override a value of the graph file", 0, 0, 0},
    };
    cmd_spec c = {
        "run", "[GRAPH.yaml] [--ckpt FILE] --in NAME=FILE.npy... --out NAME=FILE.npy... [options]",
        "Evaluates named values of GRAPH's model (model outputs, or any node path such as\n"
        "mid.attn.proj) on the given inputs; the batch size is the inputs' first extent. With\n"
        "--grads, the first --out must be a scalar: the gradients of every parameter with\n"
        "respect to it are written to FILE.safetensors. Without --ckpt the parameters are\n"
        "initialised from seed 0; with --ckpt and no GRAPH the checkpoint's own graph is used.\n",
        specs, sizeof specs / sizeof specs[0]};
    int a = args_parse(&c, argc, argv);
    if (a) return a == 1 ? 0 : 2;
    if ((!graph && !ckpt) || !outs.n)
        return args_fail(&c,
                         "run needs a graph file (or --ckpt) and at least one --out NAME=FILE.npy");
    if (strcmp(weights, "ema") && strcmp(weights, "raw"))
        return args_fail(&c, "--weights: expected ema or raw, got '%s'", weights);
    if (args_given(&c, "--weights") && !ckpt) return args_fail(&c, "--weights needs --ckpt");

    int rc = 1, opened = 0;
    df_npy data[MAXV] = {0};
    df_named_input in[MAXV] = {0};
    const char *names[MAXV] = {0};
    char path[4096], notice[1024];
    df_ckpt ck;
    df_gfile *f = NULL;
    df_params *ps = df_params_new();
    df_graph *g = NULL;
    df_node *on[MAXV];
    int64_t B = 0;
    for (int i = 0; i < ins.n; i++) {
        const char *eq = strchr(ins.v[i], '=');
        if (df_npy_read(eq + 1, &data[i])) goto fail;
        in[i] = (df_named_input){strndup(ins.v[i], eq - ins.v[i]), data[i].data, data[i].n};
        if (!data[i].nd) continue; /* a scalar says nothing about the batch */
        if (B && data[i].shape[0] != B) {
            fprintf(stderr, "dfrun: --in %s: first extent %lld differs from the others' %lld\n",
                    ins.v[i], (long long)data[i].shape[0], (long long)B);
            goto out;
        }
        B = data[i].shape[0];
    }
    for (int i = 0; i < outs.n; i++)
        names[i] = strndup(outs.v[i], strchr(outs.v[i], '=') - outs.v[i]);
    if (ckpt) {
        if (df_ckpt_open(df_ckpt_path(ckpt, path, sizeof path), &ck)) goto fail;
        opened = 1;
        if (!(f = df_ckpt_graph(&ck, graph, sets.v, sets.n, notice, sizeof notice))) goto fail;
        if (notice[0]) fprintf(stderr, "dfrun: %s\n", notice);
        /* the store gets the model's parameters, then the checkpoint's weights */
        if (df_model_params(f, ps) ||
            df_ckpt_load_params(&ck, ps, strcmp(weights, "ema") ? DF_WEIGHTS_RAW : DF_WEIGHTS_EMA))
            goto fail;
    } else if (!(f = df_gfile_load(graph, sets.v, sets.n)))
        goto fail;
    if (df_model_values(f, ps, in, ins.n, names, outs.n, grads != NULL, B ? B : 1, &g, on) ||
        write_outs(on, &outs) || (grads && write_grads(ps, grads)))
        goto fail;
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "dfrun: %s\n", df_errmsg());
out:
    for (int i = 0; i < ins.n; i++) free((char *)in[i].name), df_npy_free(&data[i]);
    for (int i = 0; i < outs.n; i++) free((char *)names[i]);
    df_graph_free(g);
    df_params_free(ps);
    df_gfile_free(f);
    if (opened) df_ckpt_close(&ck);
    return rc;
}
