/* dfrun eval: a trained classifier's accuracy on generated digits, and the
 * Frechet distance of their classifier features to real digits' (df_eval_samples). */
#include "args.h"
#include "commands.h"
#include "dfrun/eval.h"
#include "dfrun/io.h"
#include "dfrun/runtime.h"
#include <stdio.h>
#include <stdlib.h>

int cmd_eval(int argc, char **argv) {
    const char *run = NULL, *samples = NULL, *data = "../shared/data/mnist";
    long long per_class = 0, threads = 0;
    arg_spec specs[] = {
        {"SAMPLES.npy", A_POS, &samples, NULL, NULL, 0, 0, 0},
        {"--classifier", A_STR, &run, "RUN", "the classifier's run directory or checkpoint", 0, 0,
         0},
        {"--per-class", A_INT, &per_class, "N",
         "the samples are classes 0..9 in order, N each (for the accuracy)", 1, 1e9, 0},
        {"--data", A_STR, &data, "DIR", "real MNIST digits (default ../shared/data/mnist)", 0, 0,
         0},
        {"--threads", A_INT, &threads, "T",
         "threads (default: DFRUN_THREADS or the cores it may use)", 1, 1024, 0},
    };
    cmd_spec c = {
        "eval", "--classifier RUN SAMPLES.npy [options]",
        "Scores generated digits with a classifier trained by dfrun train (e.g. on\n"
        "graphs/mnist_classifier.yaml, EMA weights): accuracy on the requested labels and the\n"
        "Frechet distance between the classifier features of the samples and of as many real\n"
        "digits, next to the floor between two disjoint sets of real digits of that count.\n",
        specs, sizeof specs / sizeof specs[0]};
    int a = args_parse(&c, argc, argv);
    if (a) return a == 1 ? 0 : 2;
    if (!run || !samples)
        return args_fail(&c, "eval needs --classifier RUN and a samples .npy file");
    if (threads) df_set_threads((int)threads);

    df_npy s;
    if (df_npy_read(samples, &s)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return 1;
    }
    int rc = 1;
    int64_t n = s.nd ? s.shape[0] : 0;
    int32_t *labels = NULL; /* [n] with --per-class */
    df_eval_result r;
    if (s.nd != 4 || s.shape[1] != 1 || s.shape[2] > 65536 || s.shape[3] > 65536) {
        fprintf(stderr, "dfrun: %s: expected samples [N, 1, H, W] (as written by dfrun sample)\n",
                samples);
        goto out;
    }
    if (per_class && per_class * 10 != n) {
        fprintf(stderr, "dfrun: --per-class %lld means %lld samples, the file has %lld\n",
                per_class, per_class * 10, (long long)n);
        goto out;
    }
    if (per_class) {
        if (!(labels = malloc((size_t)n * sizeof(int32_t)))) {
            fprintf(stderr, "dfrun: out of memory\n");
            goto out;
        }
        for (int64_t i = 0; i < n; i++) labels[i] = (int32_t)(i / per_class);
    }
    if (df_eval_samples(run, s.data, n, (int)s.shape[2], (int)s.shape[3], labels, data, &r)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        goto out;
    }
    printf("classifier  %s (accuracy on %lld real digits: %.2f%%)\n", run, (long long)r.n_real,
           100.0 * r.real_accuracy);
    if (labels)
        printf("accuracy    %.2f%% of %lld samples classified as their requested digit\n",
               100.0 * r.accuracy, (long long)r.n);
    printf(
        "frechet     %.3f (samples vs %lld real digits); floor %.3f (real vs real, same count)\n",
        r.frechet, (long long)(r.n_real / 2), r.floor);
    rc = 0;
out:
    free(labels);
    df_npy_free(&s);
    return rc;
}
