/* A run directory's log.jsonl and the loss history behind loss.png
 * (internal to the trainer). */
#ifndef DFRUN_RUNLOG_H
#define DFRUN_RUNLOG_H
#include "dfrun/error.h"
#include <stdint.h>
#include <stdio.h>

typedef struct {
    double *step, *loss; /* training loss at each log line */
    int n, cap;
    double *vstep, *vloss; /* validation loss at each checkpoint */
    int nv, capv;
} df_history;

/* Open dir/log.jsonl: a new run truncates it; a resumed one keeps the lines
 * up to `step` (drops those written after the checkpoint) and reads them
 * into h. */
df_status df_runlog_open(const char *dir, int resume, int64_t step, FILE **out, df_history *h);
/* One line: {"step", "loss", "lr", "grad_norm", "img_per_s"[, "val_loss"]}; val NaN = none. */
void df_runlog_write(FILE *f, df_history *h, int64_t step, double loss, double lr, double gn,
                     double ips, double val);
void df_history_free(df_history *h);
/* dir/loss.png: training and validation loss against step, log-scale y. */
df_status df_history_plot(const df_history *h, const char *path, const char *title);

#endif
