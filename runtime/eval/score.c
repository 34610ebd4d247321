/* Scoring generated digits with a trained classifier (see eval.h): accuracy on
 * the requested labels, and the Frechet distance between the classifier
 * features of the samples and of as many real digits, next to the floor
 * between two disjoint sets of real digits of that count. */
#include "dfrun/checkpoint.h"
#include "dfrun/data.h"
#include "dfrun/eval.h"
#include "dfrun/model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_BATCH 250

/* The logits' argmax pred [n] and the features feat [n, d] of images
 * imgs [n, 1, h, w] through the classifier m (batch B). */
static df_status classify(df_model *m, const float *imgs, int64_t n, int32_t *pred, float *feat,
                          int d) {
    int64_t B = m->batch, dim = m->dim, C = m->out->shape.d[1];
    float *buf = calloc((size_t)(B * dim), sizeof(float)); /* [B, 1, h, w] */
    if (!buf) return df_seterr(DF_ENOMEM, "out of memory for a classifier batch");
    df_status st = DF_OK;
    for (int64_t b0 = 0; b0 < n && !st; b0 += B) {
        int64_t k = n - b0 < B ? n - b0 : B;
        memcpy(buf, imgs + b0 * dim, (size_t)(k * dim) * sizeof(float));
        if ((st = df_set_input(m->g, m->x, buf, B * dim)) || (st = df_run(m->g))) break;
        const float *l = df_data(m->out), *fe = df_data(m->features); /* [B, C], [B, d] */
        for (int64_t i = 0; i < k; i++) {
            int best = 0;
            for (int c = 1; c < C; c++)
                if (l[i * C + c] > l[i * C + best]) best = c;
            pred[b0 + i] = best;
            memcpy(feat + (b0 + i) * d, fe + i * d, (size_t)d * sizeof(float));
        }
    }
    free(buf);
    return st;
}

/* The checkpoint's model must be a classifier with logits and features
 * [B, d], reading images x [B, 1, h, w]. */
static df_status check_model(const df_model *m, const char *path, int h, int w) {
    char s[96];
    const df_shape *xs = &m->x->shape;
    if (!m->classifier)
        return df_seterr(DF_EINVAL,
                         "%s: not a classifier (its model has an input 't'); dfrun eval needs one "
                         "trained on e.g. graphs/mnist_classifier.yaml",
                         path);
    if (!m->features || m->features->dtype != DF_F32 || m->features->shape.nd != 2 ||
        m->features->shape.d[0] != m->batch)
        return df_seterr(
            DF_EINVAL,
            "%s: the classifier needs an output 'features' [B, d] next to its logits%s%s", path,
            m->features ? ", got " : "",
            m->features ? df_shape_str(&m->features->shape, s, sizeof s) : "");
    if (xs->nd != 4 || xs->d[0] != m->batch || xs->d[1] != 1 || xs->d[2] != h || xs->d[3] != w)
        return df_seterr(DF_ESHAPE,
                         "%s: the classifier's input x is %s; samples [N, 1, %d, %d] need x "
                         "[B, 1, %d, %d]",
                         path, df_shape_str(xs, s, sizeof s), h, w, h, w);
    return DF_OK;
}

df_status df_eval_samples(const char *classifier, const float *x, int64_t n, int h, int w,
                          const int32_t *labels, const char *data_dir, df_eval_result *r) {
    if (!classifier || !x || !data_dir || !r)
        return df_seterr(DF_EINVAL, "df_eval_samples: NULL argument");
    memset(r, 0, sizeof *r);
    r->accuracy = r->real_accuracy = r->frechet = r->floor = NAN;
    if (n < 2)
        return df_seterr(DF_EINVAL, "scoring needs at least 2 samples (a covariance), got %lld",
                         (long long)n);
    if (h < 1 || w < 1)
        return df_seterr(DF_ESHAPE, "samples of %d x %d pixels (expected positive extents)", h, w);

    char path[4096], notice[512];
    const char *cp = df_ckpt_path(classifier, path, sizeof path);
    df_ckpt c;
    df_status st = df_ckpt_open(cp, &c);
    if (st) return st;
    df_gfile *f = df_ckpt_graph(&c, NULL, NULL, 0, notice, sizeof notice);
    df_params *ps = df_params_new();
    df_model m = {0};
    df_dataset real = {0};
    float *fs = NULL, *fr = NULL;        /* features [n, d], [2 nr, d] */
    int32_t *pred = NULL, *predr = NULL; /* [n], [2 nr] */
    if (!f) {
        st = DF_EINVAL;
        goto out;
    }
    if (!ps) {
        st = df_seterr(DF_ENOMEM, "out of memory");
        goto out;
    }
    if ((st = df_model_build(&m, f, ps, EVAL_BATCH, DF_MODEL_INFER)) ||
        (st = check_model(&m, cp, h, w)) || (st = df_ckpt_load_params(&c, ps, DF_WEIGHTS_EMA)))
        goto out;
    if ((st = df_mnist_load(data_dir, &real))) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", df_errmsg());
        st = df_seterr(st, "%s (real digits are needed for the Frechet distance)", msg);
        goto out;
    }
    if (real.h != h || real.w != w) {
        st = df_seterr(DF_ESHAPE, "%s: real digits of %d x %d pixels, the samples are %d x %d",
                       real.source, real.h, real.w, h, w);
        goto out;
    }
    int64_t nr = real.n < 2 * n ? real.n / 2 : n; /* real digits per half */
    if (nr < 2) {
        st = df_seterr(DF_EINVAL,
                       "%s: %lld real digits, at least 4 are needed (two sets of 2 or more for "
                       "the Frechet distance and its floor)",
                       real.source, (long long)real.n);
        goto out;
    }
    int d = (int)m.features->shape.d[1];
    fs = malloc((size_t)(n * d) * sizeof(float));
    fr = malloc((size_t)(2 * nr * d) * sizeof(float));
    pred = malloc((size_t)n * sizeof(int32_t));
    predr = malloc((size_t)(2 * nr) * sizeof(int32_t));
    if (!fs || !fr || !pred || !predr) {
        st = df_seterr(DF_ENOMEM, "out of memory for the features of %lld samples",
                       (long long)(n + 2 * nr));
        goto out;
    }
    if ((st = classify(&m, x, n, pred, fs, d)) || (st = classify(&m, real.x, 2 * nr, predr, fr, d)))
        goto out;
    int64_t right = 0, rr = 0;
    for (int64_t i = 0; i < 2 * nr; i++) rr += predr[i] == real.y[i];
    if (labels)
        for (int64_t i = 0; i < n; i++) right += pred[i] == labels[i];
    r->n_real = 2 * nr;
    r->real_accuracy = (double)rr / (2 * nr);
    r->n = n;
    if (labels) r->accuracy = (double)right / n;
    r->frechet = df_frechet(fs, n, fr, nr, d);
    r->floor = df_frechet(fr, nr, fr + nr * d, nr, d);
    if (isnan(r->frechet) || isnan(r->floor))
        st = df_seterr(DF_ENONFINITE,
                       "the Frechet distance of %d classifier features is NaN (non-finite "
                       "features, or out of memory for its %d x %d matrices)",
                       d, d, d);
out:
    free(fs), free(fr), free(pred), free(predr);
    df_dataset_free(&real);
    df_model_free(&m);
    df_params_free(ps);
    df_gfile_free(f);
    df_ckpt_close(&c);
    return st;
}
