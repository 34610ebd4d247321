/* Plots written as PNG (cairo): line plots such as loss curves (linear or
 * log10 y axis) and 2-D scatter plots of samples, with axes, ticks, labels,
 * title and legend. Files are written atomically (temporary file in the same
 * directory, fsync, rename): a failed write never destroys the file it would
 * replace. Errors name the file and the problem; nothing is printed. */
#ifndef DFRUN_PLOT_H
#define DFRUN_PLOT_H
#include "dfrun/error.h"
#include <stdint.h>

#define DF_PLOT_MAX_SERIES 8

typedef struct {
    const char *label;   /* legend text (NULL: not in the legend) */
    const double *x, *y; /* [n] points; non-finite or (log scale) non-positive ones are skipped */
    int n;
} df_plot_series;

typedef struct {
    const char *title, *xlabel, *ylabel; /* each may be NULL */
    int log_y;         /* log10 y axis: decade ticks (1e-2, 1e-1, 1) and minor ticks */
    int width, height; /* pixels in [100, 10000]; 0 = default */
} df_plot_opts;

/* Line plot of up to DF_PLOT_MAX_SERIES series in distinct colours (series 0
 * blue, 1 orange, ...); series of at most 30 points also get markers. o may
 * be NULL; default size 800 x 500. nseries = 0 or empty series draw empty
 * axes. DF_EINVAL on bad arguments, DF_EIO if the file cannot be written. */
df_status df_plot_lines(const char *path, const df_plot_series *s, int nseries,
                        const df_plot_opts *o);

/* Scatter plot of n 2-D points (xy[2i], xy[2i+1]) as small translucent dots,
 * equal aspect, range [lo, hi] on both axes (automatic unless lo < hi, both
 * finite); non-finite points are skipped. o->log_y is ignored; default size
 * 600 x 600. Errors as df_plot_lines. */
df_status df_plot_scatter(const char *path, const float *xy, int64_t n, double lo, double hi,
                          const df_plot_opts *o);

#endif
