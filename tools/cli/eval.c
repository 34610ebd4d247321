/* dfrun eval: a trained classifier's accuracy on generated digits, and the
 * Frechet distance between the samples' and real digits' classifier features
 * (with the real-vs-real floor for the same count). */
#define _GNU_SOURCE
#include "dfrun/dfrun.h"
#include "dfrun/dsl.h"
#include "train.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage_eval =
    "usage: dfrun eval --classifier RUN SAMPLES.npy [--per-class N] [--data DIR] [--threads T]\n"
    "\n"
    "Scores generated digits with a classifier trained by dfrun train (e.g. on\n"
    "graphs/mnist_classifier.yaml): accuracy on the requested labels (with --per-class N the\n"
    "samples are classes 0..9 in order, N each) and the Frechet distance between the\n"
    "classifier features of the samples and of as many real digits, next to the floor\n"
    "between two disjoint sets of real digits of that count.\n";

/* read a float32 .npy: returns data, shape in shp/nd */
float *npy_read(const char *path, int64_t *shp, int *nd) {
    df_npy a;
    if (df_npy_read(path, &a)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return NULL;
    }
    *nd = a.nd;
    for (int i = 0; i < a.nd; i++) shp[i] = a.shape[i];
    return a.data;
}

/* symmetric eigen-decomposition by cyclic Jacobi: a (n x n) destroyed, v columns = vectors */
static void jacobi(double *a, int n, double *w, double *v) {
    for (int i = 0; i < n * n; i++) v[i] = 0;
    for (int i = 0; i < n; i++) v[i * n + i] = 1;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
        if (off < 1e-22) break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (fabs(apq) < 1e-300) continue;
                double th = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) {
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) {
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {
                    double vkp = v[k * n + p], vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < n; i++) w[i] = a[i * n + i];
}

/* symmetric PSD square root */
static void sqrtm(const double *a, int n, double *out) {
    double *t = malloc(sizeof(double) * n * n), *v = malloc(sizeof(double) * n * n),
           *w = malloc(sizeof(double) * n);
    memcpy(t, a, sizeof(double) * n * n);
    jacobi(t, n, w, v);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += v[i * n + k] * sqrt(fmax(w[k], 0)) * v[j * n + k];
            out[i * n + j] = s;
        }
    free(t), free(v), free(w);
}

static void moments(const float *f, int64_t n, int d, double *mu, double *cov) {
    for (int j = 0; j < d; j++) {
        mu[j] = 0;
        for (int64_t i = 0; i < n; i++) mu[j] += f[i * d + j];
        mu[j] /= n;
    }
    for (int a = 0; a < d; a++)
        for (int b = a; b < d; b++) {
            double s = 0;
            for (int64_t i = 0; i < n; i++) s += (f[i * d + a] - mu[a]) * (f[i * d + b] - mu[b]);
            cov[a * d + b] = cov[b * d + a] = s / (n > 1 ? n - 1 : 1);
        }
}

/* ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) */
static double frechet(const float *f1, int64_t n1, const float *f2, int64_t n2, int d) {
    double *m1 = calloc(d, 8), *m2 = calloc(d, 8), *c1 = calloc(d * d, 8), *c2 = calloc(d * d, 8);
    double *h = calloc(d * d, 8), *t = calloc(d * d, 8), *m = calloc(d * d, 8),
           *r = calloc(d * d, 8);
    moments(f1, n1, d, m1, c1);
    moments(f2, n2, d, m2, c2);
    sqrtm(c1, d, h);
    for (int i = 0; i < d; i++) /* t = h c2 */
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += h[i * d + k] * c2[k * d + j];
            t[i * d + j] = s;
        }
    for (int i = 0; i < d; i++) /* m = t h (symmetric PSD) */
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += t[i * d + k] * h[k * d + j];
            m[i * d + j] = s;
        }
    for (int i = 0; i < d; i++)
        for (int j = i + 1; j < d; j++)
            m[i * d + j] = m[j * d + i] = 0.5 * (m[i * d + j] + m[j * d + i]);
    sqrtm(m, d, r);
    double fd = 0;
    for (int i = 0; i < d; i++)
        fd += (m1[i] - m2[i]) * (m1[i] - m2[i]) + c1[i * d + i] + c2[i * d + i] - 2 * r[i * d + i];
    free(m1), free(m2), free(c1), free(c2), free(h), free(t), free(m), free(r);
    return fd;
}

/* logits' argmax and features of n images through the classifier graph (batch B) */
static int classify(df_graph *g, df_node *x, df_node *logits, df_node *feat, int64_t B,
                    const float *imgs, int64_t n, int32_t *pred, float *features, int d) {
    float *buf = calloc((size_t)(B * 784), 4);
    int64_t C = logits->shape.d[1];
    for (int64_t b0 = 0; b0 < n; b0 += B) {
        int64_t k = n - b0 < B ? n - b0 : B;
        memcpy(buf, imgs + b0 * 784, (size_t)(k * 784) * 4);
        df_set_input(g, x, buf, B * 784);
        if (df_run(g)) {
            fprintf(stderr, "dfrun: %s\n", df_errmsg());
            free(buf);
            return -1;
        }
        const float *l = df_data(logits), *fe = df_data(feat);
        for (int64_t i = 0; i < k; i++) {
            int best = 0;
            for (int c = 1; c < C; c++)
                if (l[i * C + c] > l[i * C + best]) best = c;
            pred[b0 + i] = best;
            memcpy(features + (b0 + i) * d, fe + i * d, (size_t)d * 4);
        }
    }
    free(buf);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    const char *run = NULL, *samples = NULL, *data = "../shared/data/mnist";
    long per_class = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_eval, stdout);
            return 0;
        } else if (!strcmp(a, "--classifier") && v)
            run = v, i++;
        else if (!strcmp(a, "--data") && v)
            data = v, i++;
        else if (!strcmp(a, "--threads") && v)
            df_set_threads(atoi(v)), i++;
        else if (!strcmp(a, "--per-class") && v) {
            char *e;
            per_class = strtol(v, &e, 10);
            if (*e || per_class < 1) {
                fprintf(stderr, "dfrun: --per-class: expected a positive integer, got '%s'\n\n%s",
                        v, usage_eval);
                return 2;
            }
            i++;
        } else if (a[0] == '-') {
            fprintf(stderr, "dfrun: unknown or incomplete option '%s'\n\n%s", a, usage_eval);
            return 2;
        } else if (!samples)
            samples = a;
        else {
            fprintf(stderr, "dfrun: unexpected argument '%s'\n\n%s", a, usage_eval);
            return 2;
        }
    }
    if (!run || !samples) {
        fprintf(stderr, "dfrun: eval needs --classifier RUN and a samples .npy file\n\n%s",
                usage_eval);
        return 2;
    }
    int64_t shp[6];
    int nd = 0;
    float *xs = npy_read(samples, shp, &nd);
    if (!xs) return 1;
    int64_t n = shp[0];
    if (nd != 4 || shp[1] != 1 || shp[2] != 28 || shp[3] != 28) {
        fprintf(stderr, "dfrun: %s: expected samples [N, 1, 28, 28]\n", samples);
        free(xs);
        return 1;
    }
    if (per_class && per_class * 10 != n) {
        fprintf(stderr, "dfrun: --per-class %ld means %ld samples, the file has %lld\n", per_class,
                per_class * 10, (long long)n);
        free(xs);
        return 1;
    }
    char ckpt[1200], graph[1200];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", run);
    df_st_file *cf = df_st_load(ckpt);
    const char *gp = cf ? df_st_meta(cf, "graph") : NULL;
    if (!gp) {
        fprintf(stderr, "dfrun: %s\n", cf ? "the checkpoint records no graph" : df_errmsg());
        df_st_free(cf);
        free(xs);
        return 1;
    }
    snprintf(graph, sizeof graph, "%s", gp);
    int rc = 1;
    df_gfile *f = df_gfile_load(graph, NULL, 0);
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_model_io io;
    df_dataset real = {0};
    float *fs = NULL, *fr = NULL;
    int32_t *pred = NULL, *predr = NULL;
    int64_t B = 250;
    if (!f || df_gfile_build(f, g, B, &io)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        goto out;
    }
    df_node *feat = NULL;
    for (int i = 0; i < io.n_out; i++)
        if (!strcmp(io.out_name[i], "features")) feat = io.out[i];
    if (!feat || io.out[0]->shape.nd != 2) {
        fprintf(stderr, "dfrun: %s: a classifier with outputs [logits, features] is needed\n",
                graph);
        goto out;
    }
    df_keep(g, io.out[0]);
    df_keep(g, feat);
    if (df_compile(g, NULL)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        goto out;
    }
    for (int i = 0; i < df_params_count(ps); i++) { /* EMA weights */
        const df_param_info *p = df_params_info(ps, i);
        char nm[600];
        snprintf(nm, sizeof nm, "ema.%s", p->name);
        const df_st_tensor *t = df_st_find(cf, nm);
        if (!t || !df_shape_eq(&t->shape, &p->shape)) {
            fprintf(stderr, "dfrun: %s: missing or misshapen '%s'\n", ckpt, nm);
            goto out;
        }
        memcpy(df_param_data(ps, i), t->data, (size_t)p->numel * 4);
    }
    if (df_mnist_load(data, &real)) {
        fprintf(stderr, "dfrun: %s (real digits are needed for the Frechet distance)\n",
                df_errmsg());
        goto out;
    }
    int d = (int)feat->shape.d[1];
    int64_t nr = real.n < 2 * n ? real.n / 2 : n;
    fs = malloc((size_t)(n * d) * 4);
    fr = malloc((size_t)(2 * nr * d) * 4);
    pred = malloc((size_t)n * 4);
    predr = malloc((size_t)(2 * nr) * 4);
    if (classify(g, io.in[0], io.out[0], feat, B, xs, n, pred, fs, d) ||
        classify(g, io.in[0], io.out[0], feat, B, real.x, 2 * nr, predr, fr, d))
        goto out;
    int64_t right = 0, rr = 0;
    for (int64_t i = 0; i < 2 * nr; i++) rr += predr[i] == real.y[i];
    if (per_class)
        for (int64_t i = 0; i < n; i++) right += pred[i] == i / per_class;
    double fd = frechet(fs, n, fr, nr, d), floor_ = frechet(fr, nr, fr + nr * d, nr, d);
    printf("classifier  %s (accuracy on %lld real digits: %.2f%%)\n", run, (long long)(2 * nr),
           100.0 * rr / (2 * nr));
    if (per_class)
        printf("accuracy    %.2f%% of %lld samples classified as their requested digit\n",
               100.0 * right / n, (long long)n);
    printf(
        "frechet     %.3f (samples vs %lld real digits); floor %.3f (real vs real, same count)\n",
        fd, (long long)nr, floor_);
    rc = 0;
out:
    free(xs), free(fs), free(fr), free(pred), free(predr);
    df_dataset_free(&real);
    df_graph_free(g);
    df_params_free(ps);
    df_gfile_free(f);
    df_st_free(cf);
    return rc;
}

/* ---------------- dfrun run ---------------- */

static const char *usage_run =
    "usage: dfrun run GRAPH.yaml --ckpt FILE [--in NAME=FILE.npy]... --out NAME=FILE.npy...\n"
    "                 [--grads FILE.safetensors] [--ema] [--set PATH=VALUE]...\n"
    "\n"
    "Evaluates named values of GRAPH's model (model outputs, or any node path such as\n"
    "mid.attn.proj) on the given inputs; the batch size is the inputs' first extent. With\n"
    "--grads, the first --out must be a scalar: the gradients of every parameter with\n"
    "respect to it are written to FILE.safetensors. --ema uses the EMA weights.\n";

int cmd_run(int argc, char **argv) {
    const char *graph = NULL, *ckpt = NULL, *grads = NULL, *ins[16], *outs[16], *sets[64];
    int nin = 0, nout = 0, nsets = 0, ema = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_run, stdout);
            return 0;
        } else if (!strcmp(a, "--ckpt") && v)
            ckpt = v, i++;
        else if (!strcmp(a, "--grads") && v)
            grads = v, i++;
        else if (!strcmp(a, "--ema"))
            ema = 1;
        else if (!strcmp(a, "--in") && v && nin < 16 && strchr(v, '='))
            ins[nin++] = v, i++;
        else if (!strcmp(a, "--out") && v && nout < 16 && strchr(v, '='))
            outs[nout++] = v, i++;
        else if (!strcmp(a, "--set") && v && nsets < 64)
            sets[nsets++] = v, i++;
        else if (a[0] == '-') {
            fprintf(stderr,
                    "dfrun: unknown or incomplete option '%s' (NAME=FILE for --in/--out)\n\n%s", a,
                    usage_run);
            return 2;
        } else if (!graph)
            graph = a;
        else {
            fprintf(stderr, "dfrun: unexpected argument '%s'\n\n%s", a, usage_run);
            return 2;
        }
    }
    if (!graph || !nout) {
        fprintf(stderr, "dfrun: run needs a graph file and at least one --out NAME=FILE.npy\n\n%s",
                usage_run);
        return 2;
    }
    float *data[16] = {0};
    int64_t shp[16][6];
    int nd[16];
    int64_t B = 0;
    for (int i = 0; i < nin; i++) {
        const char *eq = strchr(ins[i], '=');
        if (!(data[i] = npy_read(eq + 1, shp[i], &nd[i]))) return 1;
        if (!B)
            B = shp[i][0];
        else if (shp[i][0] != B) {
            fprintf(stderr, "dfrun: --in %s: first extent %lld differs from the others' %lld\n",
                    ins[i], (long long)shp[i][0], (long long)B);
            return 1;
        }
    }
    if (!B) B = 1;
    int rc = 1;
    df_gfile *f = df_gfile_load(graph, sets, nsets);
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_model_io io;
    df_node *on[16] = {0};
    if (!f || df_gfile_build(f, g, B, &io)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        goto out;
    }
    for (int i = 0; i < nout; i++) {
        char nm[256];
        snprintf(nm, sizeof nm, "%.*s", (int)(strchr(outs[i], '=') - outs[i]), outs[i]);
        for (int k = 0; k < io.n_out && !on[i]; k++)
            if (!strcmp(io.out_name[k], nm)) on[i] = io.out[k];
        for (int k = 0; k < io.n_in && !on[i]; k++)
            if (!strcmp(io.in_name[k], nm)) on[i] = io.in[k];
        if (!on[i]) on[i] = df_graph_find(g, nm);
        if (!on[i]) {
            fprintf(stderr,
                    "dfrun: --out %s: no value named '%s' (model outputs, inputs, or node paths as "
                    "printed by dfrun check)\n",
                    outs[i], nm);
            goto out;
        }
        df_keep(g, on[i]);
    }
    if (grads) {
        if (df_shape_numel(&on[0]->shape) != 1 || on[0]->dtype != DF_F32) {
            fprintf(stderr, "dfrun: --grads needs the first --out to be a scalar float value\n");
            goto out;
        }
        if (df_backward(g, on[0], NULL, 0)) {
            fprintf(stderr, "dfrun: %s\n", df_errmsg());
            goto out;
        }
    }
    if (df_compile(g, NULL)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        goto out;
    }
    if (ckpt) {
        df_st_file *cf = df_st_load(ckpt);
        if (!cf) {
            fprintf(stderr, "dfrun: %s\n", df_errmsg());
            goto out;
        }
        for (int i = 0; i < df_params_count(ps); i++) {
            const df_param_info *p = df_params_info(ps, i);
            char nm[600];
            snprintf(nm, sizeof nm, "%s%s", ema ? "ema." : "", p->name);
            const df_st_tensor *t = df_st_find(cf, nm);
            if (!t || !df_shape_eq(&t->shape, &p->shape)) {
                fprintf(stderr, "dfrun: %s: missing or misshapen '%s'\n", ckpt, nm);
                df_st_free(cf);
                goto out;
            }
            memcpy(df_param_data(ps, i), t->data, (size_t)p->numel * 4);
        }
        df_st_free(cf);
    } else
        df_params_init(ps, 0);
    for (int i = 0; i < io.n_in; i++) {
        int k;
        for (k = 0; k < nin; k++)
            if (!strncmp(ins[k], io.in_name[i], strlen(io.in_name[i])) &&
                ins[k][strlen(io.in_name[i])] == '=')
                break;
        if (k == nin) {
            fprintf(stderr, "dfrun: the model's input '%s' is not given (--in %s=FILE.npy)\n",
                    io.in_name[i], io.in_name[i]);
            goto out;
        }
        int64_t n = 1;
        for (int j = 0; j < nd[k]; j++) n *= shp[k][j];
        if (n != df_shape_numel(&io.in[i]->shape)) {
            char s1[96];
            fprintf(stderr, "dfrun: --in %s: %lld values, the input is %s at batch %lld\n", ins[k],
                    (long long)n, df_shape_str(&io.in[i]->shape, s1, sizeof s1), (long long)B);
            goto out;
        }
        if (io.in[i]->dtype == DF_I32) {
            int32_t *iv = malloc((size_t)n * 4);
            for (int64_t j = 0; j < n; j++) iv[j] = (int32_t)lrintf(data[k][j]);
            df_set_input(g, io.in[i], iv, n);
            free(iv);
        } else
            df_set_input(g, io.in[i], data[k], n);
    }
    if (df_run(g)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        goto out;
    }
    for (int i = 0; i < nout; i++) {
        const char *file = strchr(outs[i], '=') + 1;
        int64_t s6[6];
        for (int j = 0; j < on[i]->shape.nd; j++) s6[j] = on[i]->shape.d[j];
        float *vals = df_data(on[i]), *conv = NULL;
        if (on[i]->dtype == DF_I32) {
            int64_t n = df_shape_numel(&on[i]->shape);
            conv = malloc((size_t)n * 4);
            for (int64_t j = 0; j < n; j++) conv[j] = (float)((int32_t *)vals)[j];
            vals = conv;
        }
        df_status st = df_npy_write(file, vals, s6, on[i]->shape.nd);
        free(conv);
        if (st) {
            fprintf(stderr, "dfrun: %s\n", df_errmsg());
            goto out;
        }
    }
    if (grads) {
        int np = df_params_count(ps);
        df_st_tensor *t = calloc(np, sizeof *t);
        for (int i = 0; i < np; i++) {
            const df_param_info *p = df_params_info(ps, i);
            t[i] = (df_st_tensor){p->name, DF_F32, p->shape, df_param_grad(ps, i)};
        }
        df_status st = df_st_save(grads, t, np, NULL, 0);
        free(t);
        if (st) {
            fprintf(stderr, "dfrun: %s\n", df_errmsg());
            goto out;
        }
    }
    rc = 0;
out:
    for (int i = 0; i < nin; i++) free(data[i]);
    df_graph_free(g);
    df_params_free(ps);
    df_gfile_free(f);
    return rc;
}
