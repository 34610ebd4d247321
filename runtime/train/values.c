/* Named values of a graph file's model on given inputs (see model.h,
 * df_model_values): what dfrun run computes. */
#include "dfrun/model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Number of values of s, or -1 if it does not fit in int64_t. */
static int64_t numel_checked(const df_shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->nd; i++) {
        if (s->d[i] < 0 || (s->d[i] && n > INT64_MAX / s->d[i])) return -1;
        n *= s->d[i];
    }
    return n;
}

/* "x, t" into buf */
static const char *name_list(const char *const *names, int n, char *buf, size_t len) {
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, len - l, "%s%s", i ? ", " : "", names[i]);
    }
    return n ? buf : "none";
}

/* Every model input given once, nothing else, with its count of values. in_of[i]: the
 * given input of model input i. */
static df_status match_inputs(df_gfile *f, const df_model_io *io, const df_named_input *in, int nin,
                              int64_t batch, int *in_of) {
    char list[512], s[96];
    const char *path = df_gfile_path(f);
    for (int k = 0; k < nin; k++) {
        int i = 0;
        while (i < io->n_in && strcmp(io->in_name[i], in[k].name ? in[k].name : "")) i++;
        if (i == io->n_in)
            return df_seterr(DF_EINVAL, "%s: the model has no input '%s' (its inputs: %s)", path,
                             in[k].name ? in[k].name : "(null)",
                             name_list(io->in_name, io->n_in, list, sizeof list));
        for (int j = 0; j < k; j++)
            if (!strcmp(in[j].name, in[k].name))
                return df_seterr(DF_EINVAL, "%s: input '%s' given twice", path, in[k].name);
    }
    for (int i = 0; i < io->n_in; i++) {
        int k = 0;
        while (k < nin && strcmp(in[k].name, io->in_name[i])) k++;
        const df_shape *sh = &io->in[i]->shape;
        if (k == nin)
            return df_seterr(DF_EINVAL, "%s: the model's input '%s' %s is not given", path,
                             io->in_name[i], df_shape_str(sh, s, sizeof s));
        int64_t want = numel_checked(sh);
        if (want < 0)
            return df_seterr(DF_ERANGE, "%s: input '%s' %s at batch %lld: too many values", path,
                             io->in_name[i], df_shape_str(sh, s, sizeof s), (long long)batch);
        if (in[k].n != want || (want && !in[k].data))
            return df_seterr(DF_ESHAPE,
                             "%s: input '%s': %lld values given, its shape %s at batch %lld "
                             "holds %lld",
                             path, io->in_name[i], (long long)in[k].n,
                             df_shape_str(sh, s, sizeof s), (long long)batch, (long long)want);
        in_of[i] = k;
    }
    return DF_OK;
}

/* The value called name: a model output, a model input, or a node path. */
static df_node *find_value(df_graph *g, const df_model_io *io, const char *name) {
    for (int k = 0; k < io->n_out; k++)
        if (!strcmp(io->out_name[k], name)) return io->out[k];
    for (int k = 0; k < io->n_in; k++)
        if (!strcmp(io->in_name[k], name)) return io->in[k];
    return df_graph_find(g, name);
}

/* Feed input x from floats v [n]; int32 inputs rounded (each must be an integer in range). */
static df_status set_input(df_graph *g, df_node *x, const char *path, const char *name,
                           const float *v, int64_t n) {
    if (x->dtype != DF_I32) return df_set_input(g, x, v, n);
    int32_t *iv = malloc((size_t)(n ? n : 1) * sizeof(int32_t)); /* [n] */
    if (!iv) return df_seterr(DF_ENOMEM, "out of memory for input '%s'", name);
    for (int64_t j = 0; j < n; j++) {
        if (!(v[j] >= -2147483648.0f && v[j] < 2147483648.0f)) {
            free(iv);
            return df_seterr(DF_ERANGE,
                             "%s: input '%s' (int32): value %g at index %lld is not an int32", path,
                             name, v[j], (long long)j);
        }
        iv[j] = (int32_t)lrintf(v[j]);
    }
    df_status st = df_set_input(g, x, iv, n);
    free(iv);
    return st;
}

df_status df_model_values(df_gfile *f, df_params *ps, const df_named_input *in, int nin,
                          const char *const *names, int nout, int grads, int64_t batch,
                          df_graph **g, df_node **outs) {
    if (!f || !ps || !g || !outs || !names || (nin && !in) || nin < 0 || nout < 1)
        return df_seterr(DF_EINVAL, "df_model_values: NULL argument or no value requested");
    *g = NULL;
    if (batch < 1)
        return df_seterr(DF_EINVAL, "%s: batch %lld (expected >= 1: the inputs' first extent)",
                         df_gfile_path(f), (long long)batch);
    int fresh = df_params_count(ps) == 0; /* a new store: initialised from seed 0 below */
    df_graph *gr = df_graph_new(ps);
    if (!gr) return df_seterr(DF_ENOMEM, "out of memory");
    df_model_io io = {0};
    int in_of[DF_MAX_IO];
    char s[96], list[512];
    df_status st = df_gfile_build(f, gr, batch, &io);
    if (!st) st = match_inputs(f, &io, in, nin, batch, in_of);
    for (int i = 0; i < nout && !st; i++) {
        if (!names[i] || !(outs[i] = find_value(gr, &io, names[i])))
            st = df_seterr(DF_EINVAL,
                           "%s: no value named '%s' (model outputs: %s; inputs; or node paths as "
                           "printed by dfrun check)",
                           df_gfile_path(f), names[i] ? names[i] : "(null)",
                           name_list(io.out_name, io.n_out, list, sizeof list));
        else
            st = df_keep(gr, outs[i]);
    }
    if (!st && grads) {
        if (df_shape_numel(&outs[0]->shape) != 1 || outs[0]->dtype != DF_F32)
            st = df_seterr(DF_EINVAL,
                           "%s: gradients need the first value to be a scalar float; '%s' is %s "
                           "%s",
                           df_gfile_path(f), names[0], df_dtype_name(outs[0]->dtype),
                           df_shape_str(&outs[0]->shape, s, sizeof s));
        else
            st = df_backward(gr, outs[0], NULL, 0);
    }
    if (!st) st = df_compile(gr, NULL);
    if (!st && fresh) st = df_params_init(ps, 0);
    for (int i = 0; i < io.n_in && !st; i++)
        st = set_input(gr, io.in[i], df_gfile_path(f), io.in_name[i], in[in_of[i]].data,
                       in[in_of[i]].n);
    if (!st && grads) df_params_zero_grad(ps);
    if (!st) st = df_run(gr);
    if (st) {
        df_graph_free(gr);
        for (int i = 0; i < nout; i++) outs[i] = NULL;
        return st;
    }
    *g = gr;
    return DF_OK;
}
