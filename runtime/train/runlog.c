/* log.jsonl and loss.png of a run directory (see runlog.h). */
#define _GNU_SOURCE
#include "runlog.h"
#include "atomic.h"
#include "dfrun/plot.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int push(double **a, double **b, int *n, int *cap, double x, double y) {
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 256;
        double *na = realloc(*a, c * sizeof **a);
        if (na) *a = na;
        double *nb = na ? realloc(*b, c * sizeof **b) : NULL;
        if (nb) *b = nb;
        if (!na || !nb) return -1;
        *cap = c;
    }
    (*a)[*n] = x;
    (*b)[*n] = y;
    (*n)++;
    return 0;
}

static void record(df_history *h, double step, double loss, double val) {
    push(&h->step, &h->loss, &h->n, &h->cap, step, loss);
    if (!isnan(val)) push(&h->vstep, &h->vloss, &h->nv, &h->capv, step, val);
}

static double field(const char *line, const char *key) {
    const char *p = strstr(line, key);
    return p ? strtod(p + strlen(key), NULL) : NAN;
}

df_status df_runlog_open(const char *dir, int resume, int64_t step, FILE **out, df_history *h) {
    char path[1200];
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    memset(h, 0, sizeof *h);
    char *kept = NULL;
    size_t klen = 0;
    FILE *old = resume ? fopen(path, "r") : NULL;
    if (old) { /* keep the lines up to the checkpoint's step */
        FILE *mem = open_memstream(&kept, &klen);
        char line[1024];
        while (mem && fgets(line, sizeof line, old)) {
            double s = field(line, "\"step\": ");
            if (!(s <= (double)step)) continue;
            fputs(line, mem);
            record(h, s, field(line, "\"loss\": "), field(line, "\"val_loss\": "));
        }
        if (mem) fclose(mem);
        fclose(old);
    }
    df_atomic a; /* the kept lines replace the log atomically */
    df_status st = df_atomic_open(&a, path);
    if (!st) st = df_atomic_close(&a, !klen || fwrite(kept, 1, klen, a.f) == klen);
    free(kept);
    if (st) return st;
    *out = fopen(path, "a");
    if (!*out) return df_seterr(DF_EIO, "cannot write '%s': %s", path, strerror(errno));
    return DF_OK;
}

void df_runlog_write(FILE *f, df_history *h, int64_t step, double loss, double lr, double gn,
                     double ips, double val) {
    fprintf(f,
            "{\"step\": %lld, \"loss\": %.6f, \"lr\": %.3g, \"grad_norm\": %.4f, \"img_per_s\": "
            "%.1f",
            (long long)step, loss, lr, gn, ips);
    if (!isnan(val)) fprintf(f, ", \"val_loss\": %.6f", val);
    fprintf(f, "}\n");
    fflush(f);
    record(h, (double)step, loss, val);
}

void df_history_free(df_history *h) {
    free(h->step), free(h->loss), free(h->vstep), free(h->vloss);
    memset(h, 0, sizeof *h);
}

df_status df_history_plot(const df_history *h, const char *path, const char *title) {
    df_plot_series s[2] = {{"training loss", h->step, h->loss, h->n},
                           {"validation loss", h->vstep, h->vloss, h->nv}};
    df_plot_opts o = {title, "step", "loss (log scale)", 1, 0, 0};
    return df_plot_lines(path, s, h->nv ? 2 : 1, &o);
}
