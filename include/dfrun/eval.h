/* Scoring samples with a trained classifier: accuracy on the requested
 * labels and the Frechet distance between classifier features of the
 * samples and of real digits, next to the real-vs-real floor. */
#ifndef DFRUN_EVAL_H
#define DFRUN_EVAL_H
#include "dfrun/error.h"
#include <stdint.h>

/* ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) of two feature
 * sets [n1, d] and [n2, d]. */
double df_frechet(const float *f1, int64_t n1, const float *f2, int64_t n2, int d);

typedef struct {
    int64_t n_real;       /* real digits classified */
    double real_accuracy; /* the classifier's accuracy on them */
    int64_t n;            /* samples */
    double accuracy;      /* on the requested labels (NaN without labels) */
    double frechet;       /* samples vs n real digits */
    double floor;         /* real vs real, the same count */
} df_eval_result;

/* Score samples x [n, 1, 28, 28] (labels [n] or NULL) with the classifier
 * checkpoint (a file or a run directory) against real MNIST in data_dir. */
df_status df_eval_samples(const char *classifier, const float *x, int64_t n, int h, int w,
                          const int32_t *labels, const char *data_dir, df_eval_result *r);

#endif
