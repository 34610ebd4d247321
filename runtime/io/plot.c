/* Line and scatter plots drawn with cairo and written as PNG (see plot.h). */
#define _GNU_SOURCE
#include "dfrun/plot.h"
#include "atomic.h"
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define FONT "sans-serif"
#define MAX_TICKS 128
#define MARKER_MAX_POINTS 30 /* series this short also get markers */
#define MAX_MAGNITUDE 1e100  /* larger values are skipped like non-finite ones */

static const double palette[DF_PLOT_MAX_SERIES][3] = {
    {0.122, 0.467, 0.706}, /* blue: training loss */
    {1.000, 0.498, 0.055}, /* orange: validation loss */
    {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157}, {0.580, 0.404, 0.741},
    {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
};

typedef struct {
    double lo, hi; /* value range seen; empty when lo > hi */
} range;

typedef struct {
    double lo, hi; /* visible range in axis units (log10 of the value on a log axis) */
    double step;   /* spacing of labelled ticks in axis units */
    int log;
} axis;

typedef struct {
    double u;  /* position in axis units */
    int major; /* grid line and tick mark (else a minor tick) */
    int label;
} tick;

typedef struct {
    cairo_surface_t *surf;
    cairo_t *cr;
    int w, h;
    double l, t, r, b; /* plot area in pixels */
    axis x, y;
} canvas;

/* ---------- axes and ticks ---------- */

static int usable(double v) {
    return isfinite(v) && fabs(v) < MAX_MAGNITUDE;
}

static range range_empty(void) {
    return (range){INFINITY, -INFINITY};
}

static void range_add(range *r, double v) {
    r->lo = fmin(r->lo, v);
    r->hi = fmax(r->hi, v);
}

/* 1, 2 or 5 x 10^k, the smallest at least raw. */
static double nice_step(double raw) {
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/* Linear axis with about `target` tick intervals over r, widened by the
 * fraction pad of its span on each side, or to whole ticks when pad = 0. */
static axis axis_linear(range r, int target, double pad) {
    if (r.lo > r.hi) r = (range){0, 1};
    if (r.hi - r.lo <= 1e-9 * fmax(fabs(r.lo), fabs(r.hi))) {
        double d = r.lo == 0 ? 1 : 0.1 * fabs(r.lo);
        r = (range){r.lo - d, r.hi + d};
    }
    double span = r.hi - r.lo;
    axis a = {.lo = r.lo - pad * span, .hi = r.hi + pad * span};
    a.step = nice_step((a.hi - a.lo) / target);
    if (pad > 0) return a;
    a.lo = floor(r.lo / a.step) * a.step;
    a.hi = ceil(r.hi / a.step) * a.step;
    return a;
}

/* Log10 axis over positive values r, widened to whole decades. */
static axis axis_log(range r) {
    axis a = {.lo = -1, .hi = 0, .step = 1, .log = 1};
    if (r.lo <= r.hi) {
        a.lo = floor(log10(r.lo));
        a.hi = ceil(log10(r.hi));
    }
    if (a.hi == a.lo) a.lo -= 1, a.hi += 1;
    a.step = ceil((a.hi - a.lo) / 8);
    return a;
}

static double axis_unit(const axis *a, double v) {
    return a->log ? log10(v) : v;
}

static double axis_frac(const axis *a, double u) {
    return (u - a->lo) / (a->hi - a->lo);
}

/* Multiples of a->step within [lo, hi]. */
static int ticks_linear(const axis *a, tick *t) {
    double first = ceil(a->lo / a->step - 1e-9) * a->step;
    int n = 0;
    for (double u = first; u <= a->hi + 1e-9 * a->step && n < MAX_TICKS; u = first + n * a->step)
        t[n++] = (tick){u, 1, 1};
    return n;
}

/* Decades (every a->step-th labelled; only those when there are many), and
 * minor ticks at 2..9 x 10^k when there are few. */
static int ticks_log(const axis *a, tick *t) {
    int n = 0, minor = a->hi - a->lo <= 6;
    double by = a->hi - a->lo > 40 ? a->step : 1;
    for (double d = a->lo; d <= a->hi && n < MAX_TICKS - 8; d += by) {
        t[n++] = (tick){d, 1, fmod(d - a->lo, a->step) == 0};
        for (int m = 2; minor && m <= 9 && d < a->hi; m++) t[n++] = (tick){d + log10(m), 0, 0};
    }
    return n;
}

static int axis_ticks(const axis *a, tick *t) {
    return a->log ? ticks_log(a, t) : ticks_linear(a, t);
}

/* v with the given decimals, trailing zeros dropped ("1.50" -> "1.5"). */
static void fixed_label(char *buf, size_t n, double v, int decimals, const char *suffix) {
    int len = snprintf(buf, n, "%.*f", decimals, v);
    if (len <= 0 || (size_t)len >= n) return;
    while (decimals > 0 && buf[len - 1] == '0') buf[--len] = 0;
    if (buf[len - 1] == '.') buf[--len] = 0;
    snprintf(buf + len, n - (size_t)len, "%s", suffix);
}

/* Compact label: 0, 0.25, 500, 1500, 15k, 2.5M, 3e-12; 1e-2, 1e-1, 1, 10, 1e2 on log axes. */
static void tick_label(char *buf, size_t n, const axis *a, double u) {
    if (a->log) {
        int k = (int)lround(u);
        if (k == 0 || k == 1)
            snprintf(buf, n, "%s", k ? "10" : "1");
        else
            snprintf(buf, n, "1e%d", k);
        return;
    }
    double mag = fmax(fabs(a->lo), fabs(a->hi));
    double scale = mag >= 1e12  ? 1
                   : mag >= 1e6 ? 1e6
                   : mag >= 1e4 ? 1e3
                                : 1,
           step = a->step / scale;
    const char *suffix = scale == 1e6 ? "M" : scale == 1e3 ? "k" : "";
    double v = round(u / a->step) * step;
    int decimals = (int)fmax(0, -floor(log10(step) + 1e-9));
    int digits = (int)fmin(15, fmax(1, ceil(log10(mag / a->step)) + 1));
    if (fabs(v) < 1e-6 * step)
        snprintf(buf, n, "0");
    else if (decimals <= 4 && mag / scale < 1e6)
        fixed_label(buf, n, v, decimals, suffix);
    else
        snprintf(buf, n, "%.*g%s", digits, v, suffix);
}

/* ---------- text ---------- */

static void set_font(cairo_t *cr, double size, int bold) {
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double text_width(cairo_t *cr, const char *s) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* Draw s with its box anchored at (x, y): ax, ay = 0 left/top, 0.5 centre,
 * 1 right/bottom. The vertical box is the font's digit height. */
static void text_at(cairo_t *cr, double x, double y, const char *s, double ax, double ay) {
    cairo_text_extents_t d;
    cairo_text_extents(cr, "0", &d);
    cairo_move_to(cr, x - ax * text_width(cr, s), y - d.y_bearing - ay * d.height);
    cairo_show_text(cr, s);
}

/* ---------- frame ---------- */

static double px(const canvas *c, double u) {
    return c->l + axis_frac(&c->x, u) * (c->r - c->l);
}

static double py(const canvas *c, double u) {
    return c->b - axis_frac(&c->y, u) * (c->b - c->t);
}

/* Widest y tick label at the tick font size. */
static double ylabels_width(canvas *c) {
    tick t[MAX_TICKS];
    int n = axis_ticks(&c->y, t);
    double w = 0;
    char buf[32];
    set_font(c->cr, 12, 0);
    for (int i = 0; i < n; i++) {
        if (!t[i].label) continue;
        tick_label(buf, sizeof buf, &c->y, t[i].u);
        w = fmax(w, text_width(c->cr, buf));
    }
    return w;
}

/* Plot area from the margins needed by title, labels and tick labels. */
static void layout(canvas *c, const df_plot_opts *o) {
    int has_y = o && o->ylabel && o->ylabel[0], has_x = o && o->xlabel && o->xlabel[0];
    int has_t = o && o->title && o->title[0];
    c->l = 12 + (has_y ? 22 : 0) + ylabels_width(c) + 8;
    c->r = c->w - 24;
    c->t = has_t ? 42 : 16;
    c->b = c->h - (has_x ? 52 : 30);
}

static void draw_grid(const canvas *c, const tick *tx, int nx, const tick *ty, int ny) {
    cairo_t *cr = c->cr;
    cairo_set_line_width(cr, 1);
    for (int major = 0; major < 2; major++) {
        double g = major ? 0.87 : 0.95;
        cairo_set_source_rgb(cr, g, g, g);
        for (int i = 0; i < nx; i++)
            if (tx[i].major == major) {
                cairo_move_to(cr, round(px(c, tx[i].u)) + 0.5, c->t);
                cairo_line_to(cr, round(px(c, tx[i].u)) + 0.5, c->b);
            }
        for (int i = 0; i < ny; i++)
            if (ty[i].major == major) {
                cairo_move_to(cr, c->l, round(py(c, ty[i].u)) + 0.5);
                cairo_line_to(cr, c->r, round(py(c, ty[i].u)) + 0.5);
            }
        cairo_stroke(cr);
    }
}

static void draw_xticks(const canvas *c, const tick *t, int n) {
    cairo_t *cr = c->cr;
    char buf[32];
    for (int i = 0; i < n; i++) {
        double x = round(px(c, t[i].u)) + 0.5;
        cairo_move_to(cr, x, c->b);
        cairo_line_to(cr, x, c->b + (t[i].major ? 5 : 3));
        cairo_stroke(cr);
        if (!t[i].label) continue;
        tick_label(buf, sizeof buf, &c->x, t[i].u);
        text_at(cr, x, c->b + 8, buf, 0.5, 0);
    }
}

static void draw_yticks(const canvas *c, const tick *t, int n) {
    cairo_t *cr = c->cr;
    char buf[32];
    for (int i = 0; i < n; i++) {
        double y = round(py(c, t[i].u)) + 0.5;
        cairo_move_to(cr, c->l, y);
        cairo_line_to(cr, c->l - (t[i].major ? 5 : 3), y);
        cairo_stroke(cr);
        if (!t[i].label) continue;
        tick_label(buf, sizeof buf, &c->y, t[i].u);
        text_at(cr, c->l - 8, y, buf, 1, 0.5);
    }
}

static void draw_labels(const canvas *c, const df_plot_opts *o) {
    cairo_t *cr = c->cr;
    if (!o) return;
    cairo_set_source_rgb(cr, 0, 0, 0);
    set_font(cr, 13, 0);
    if (o->xlabel) text_at(cr, (c->l + c->r) / 2, c->h - 10, o->xlabel, 0.5, 1);
    if (o->ylabel) {
        cairo_save(cr);
        cairo_translate(cr, 12, (c->t + c->b) / 2);
        cairo_rotate(cr, -M_PI / 2);
        text_at(cr, 0, 0, o->ylabel, 0.5, 0);
        cairo_restore(cr);
    }
    set_font(cr, 15, 1);
    if (o->title) text_at(cr, (c->l + c->r) / 2, 14, o->title, 0.5, 0);
}

/* White background, grid, axes box, ticks, tick labels, axis labels, title. */
static void draw_frame(const canvas *c, const df_plot_opts *o) {
    cairo_t *cr = c->cr;
    tick tx[MAX_TICKS], ty[MAX_TICKS];
    int nx = axis_ticks(&c->x, tx), ny = axis_ticks(&c->y, ty);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    draw_grid(c, tx, nx, ty, ny);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_rectangle(cr, round(c->l) + 0.5, round(c->t) + 0.5, round(c->r) - round(c->l),
                    round(c->b) - round(c->t));
    cairo_stroke(cr);
    set_font(cr, 12, 0);
    draw_xticks(c, tx, nx);
    draw_yticks(c, ty, ny);
    draw_labels(c, o);
}

/* ---------- canvas ---------- */

static df_status check_opts(const char *fn, const char *path, const df_plot_opts *o) {
    if (!path || !path[0]) return df_seterr(DF_EINVAL, "%s: no file name given", fn);
    int w = o ? o->width : 0, h = o ? o->height : 0;
    if ((w && (w < 100 || w > 10000)) || (h && (h < 100 || h > 10000)))
        return df_seterr(DF_EINVAL, "%s('%s'): size %dx%d outside 100..10000", fn, path, w, h);
    return DF_OK;
}

/* A w x h image (unless o sets the size) to draw on. */
static df_status canvas_open(canvas *c, const char *fn, const char *path, const df_plot_opts *o,
                             int w, int h) {
    memset(c, 0, sizeof *c);
    c->w = o && o->width ? o->width : w;
    c->h = o && o->height ? o->height : h;
    c->surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, c->w, c->h);
    c->cr = cairo_create(c->surf);
    cairo_status_t cs = cairo_status(c->cr);
    if (cs == CAIRO_STATUS_SUCCESS) return DF_OK;
    cairo_destroy(c->cr);
    cairo_surface_destroy(c->surf);
    return df_seterr(cs == CAIRO_STATUS_NO_MEMORY ? DF_ENOMEM : DF_EIO,
                     "%s('%s'): cannot create a %dx%d image: %s", fn, path, c->w, c->h,
                     cairo_status_to_string(cs));
}

static cairo_status_t write_chunk(void *f, const unsigned char *data, unsigned int len) {
    return fwrite(data, 1, len, f) == len ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

/* Check the drawing, write the PNG atomically, free the canvas. */
static df_status canvas_save(canvas *c, const char *fn, const char *path) {
    cairo_status_t cs = cairo_status(c->cr);
    cairo_destroy(c->cr);
    cairo_surface_flush(c->surf);
    df_status st = DF_OK;
    df_atomic a;
    if (cs != CAIRO_STATUS_SUCCESS)
        st =
            df_seterr(DF_EIO, "%s('%s'): drawing failed: %s", fn, path, cairo_status_to_string(cs));
    else if ((st = df_atomic_open(&a, path)) == DF_OK) {
        cs = cairo_surface_write_to_png_stream(c->surf, write_chunk, a.f);
        st = df_atomic_close(&a, cs == CAIRO_STATUS_SUCCESS);
        if (cs != CAIRO_STATUS_SUCCESS)
            st = df_seterr(DF_EIO, "%s: cannot write '%s': %s (the previous file is untouched)", fn,
                           path, cairo_status_to_string(cs));
    }
    cairo_surface_destroy(c->surf);
    return st;
}

/* ---------- line plots ---------- */

static int point_ok(const df_plot_series *s, int i, int log_y) {
    return usable(s->x[i]) && usable(s->y[i]) && (!log_y || s->y[i] > 0);
}

static int count_points(const df_plot_series *s, int log_y) {
    int n = 0;
    for (int i = 0; i < s->n; i++) n += point_ok(s, i, log_y);
    return n;
}

static df_status check_series(const char *path, const df_plot_series *s, int nseries) {
    if (nseries < 0 || nseries > DF_PLOT_MAX_SERIES || (nseries > 0 && !s))
        return df_seterr(DF_EINVAL, "df_plot_lines('%s'): %d series (0..%d, not NULL)", path,
                         nseries, DF_PLOT_MAX_SERIES);
    for (int k = 0; k < nseries; k++)
        if (s[k].n < 0 || (s[k].n > 0 && (!s[k].x || !s[k].y)))
            return df_seterr(DF_EINVAL, "df_plot_lines('%s'): series %d has n = %d and %s", path, k,
                             s[k].n, s[k].n < 0 ? "a negative count" : "no x or y data");
    return DF_OK;
}

static void lines_axes(canvas *c, const df_plot_series *s, int nseries, int log_y) {
    range rx = range_empty(), ry = range_empty();
    for (int k = 0; k < nseries; k++)
        for (int i = 0; i < s[k].n; i++)
            if (point_ok(&s[k], i, log_y)) range_add(&rx, s[k].x[i]), range_add(&ry, s[k].y[i]);
    c->x = axis_linear(rx, 8, 0);
    c->y = log_y ? axis_log(ry) : axis_linear(ry, 6, 0.05);
}

/* Polyline through the usable points (broken at skipped ones), then markers. */
static void draw_series(const canvas *c, const df_plot_series *s, int k) {
    cairo_t *cr = c->cr;
    int pen = 0;
    cairo_set_source_rgb(cr, palette[k][0], palette[k][1], palette[k][2]);
    for (int i = 0; i < s->n; i++) {
        if (!point_ok(s, i, c->y.log)) {
            pen = 0;
            continue;
        }
        double x = px(c, s->x[i]), y = py(c, axis_unit(&c->y, s->y[i]));
        if (pen)
            cairo_line_to(cr, x, y);
        else
            cairo_move_to(cr, x, y);
        pen = 1;
    }
    cairo_stroke(cr);
    if (count_points(s, c->y.log) > MARKER_MAX_POINTS) return;
    for (int i = 0; i < s->n; i++) {
        if (!point_ok(s, i, c->y.log)) continue;
        cairo_new_sub_path(cr);
        cairo_arc(cr, px(c, s->x[i]), py(c, axis_unit(&c->y, s->y[i])), 4, 0, 2 * M_PI);
    }
    cairo_fill(cr);
}

typedef struct {
    double x, y, w, h; /* pixels */
} box;

static int in_box(const box *b, double x, double y) {
    return x >= b->x && x <= b->x + b->w && y >= b->y && y <= b->y + b->h;
}

/* How much of the series (points and samples along the segments) b covers. */
static int covered(const canvas *c, const df_plot_series *s, int nseries, const box *b) {
    int hits = 0;
    for (int k = 0; k < nseries; k++) {
        double x0 = 0, y0 = 0;
        for (int i = 0, prev = 0; i < s[k].n; i++) {
            int ok = point_ok(&s[k], i, c->y.log);
            double x = px(c, s[k].x[i]), y = py(c, axis_unit(&c->y, s[k].y[i]));
            for (int j = prev && ok ? 1 : 8; ok && j <= 8; j++)
                hits += in_box(b, x0 + (x - x0) * j / 8, y0 + (y - y0) * j / 8);
            prev = ok, x0 = x, y0 = y;
        }
    }
    return hits;
}

/* A w x h legend box in the plot corner covering the least data (top right,
 * top left, bottom right, bottom left on a tie). */
static box legend_place(const canvas *c, const df_plot_series *s, int nseries, double w, double h) {
    box best = {0};
    int least = -1;
    for (int corner = 0; corner < 4; corner++) {
        double x = corner & 1 ? c->l + 10 : c->r - 10 - w;
        double y = corner & 2 ? c->b - 10 - h : c->t + 10;
        box b = {round(x) + 0.5, round(y) + 0.5, w, h};
        int hits = covered(c, s, nseries, &b);
        if (least < 0 || hits < least) least = hits, best = b;
    }
    return best;
}

static void draw_legend_row(const canvas *c, const df_plot_series *s, int k, double x, double y) {
    cairo_t *cr = c->cr;
    cairo_set_source_rgb(cr, palette[k][0], palette[k][1], palette[k][2]);
    cairo_move_to(cr, x, y);
    cairo_line_to(cr, x + 26, y);
    cairo_stroke(cr);
    if (count_points(s, c->y.log) <= MARKER_MAX_POINTS) {
        cairo_arc(cr, x + 13, y, 4, 0, 2 * M_PI);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_at(cr, x + 32, y, s->label, 0, 0.5);
}

/* Boxed legend of the labelled series. */
static void draw_legend(const canvas *c, const df_plot_series *s, int nseries) {
    cairo_t *cr = c->cr;
    int rows = 0;
    double w = 0, row = 18, pad = 8;
    set_font(cr, 12, 0);
    for (int k = 0; k < nseries; k++)
        if (s[k].label) rows++, w = fmax(w, text_width(cr, s[k].label));
    if (!rows) return;
    box b = legend_place(c, s, nseries, pad + 32 + w + pad, 2 * pad + rows * row - 4);
    cairo_rectangle(cr, b.x, b.y, b.w, b.h);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    cairo_set_line_width(cr, 2);
    for (int k = 0, r = 0; k < nseries; k++)
        if (s[k].label)
            draw_legend_row(c, &s[k], k, b.x + pad, b.y + pad + row * r++ + row / 2 - 2);
}

df_status df_plot_lines(const char *path, const df_plot_series *s, int nseries,
                        const df_plot_opts *o) {
    canvas c;
    int log_y = o && o->log_y;
    df_status st = check_opts("df_plot_lines", path, o);
    if (!st) st = check_series(path, s, nseries);
    if (!st) st = canvas_open(&c, "df_plot_lines", path, o, 800, 500);
    if (st) return st;
    lines_axes(&c, s, nseries, log_y);
    layout(&c, o);
    draw_frame(&c, o);
    cairo_save(c.cr);
    cairo_rectangle(c.cr, c.l - 6, c.t - 6, c.r - c.l + 12, c.b - c.t + 12); /* whole markers */
    cairo_clip(c.cr);
    cairo_set_line_width(c.cr, 2);
    cairo_set_line_join(c.cr, CAIRO_LINE_JOIN_ROUND);
    for (int k = 0; k < nseries; k++) draw_series(&c, &s[k], k);
    cairo_restore(c.cr);
    draw_legend(&c, s, nseries);
    return canvas_save(&c, "df_plot_lines", path);
}

/* ---------- scatter plots ---------- */

static void scatter_axes(canvas *c, const float *xy, int64_t n, double lo, double hi) {
    range r = {lo, hi};
    if (!(usable(lo) && usable(hi) && lo < hi)) {
        r = range_empty();
        for (int64_t i = 0; i < n; i++)
            if (usable(xy[2 * i]) && usable(xy[2 * i + 1]))
                range_add(&r, xy[2 * i]), range_add(&r, xy[2 * i + 1]);
        c->x = axis_linear(r, 6, 0);
    } else {
        c->x = axis_linear(r, 6, 0);
        c->x.lo = lo, c->x.hi = hi; /* exactly the requested range */
    }
    c->y = c->x;
}

/* Square plot area centred in the space layout() leaves. */
static void make_square(canvas *c) {
    double side = fmin(c->r - c->l, c->b - c->t), cx = (c->l + c->r) / 2, cy = (c->t + c->b) / 2;
    if (c->r - c->l > side) c->l = cx - side / 2, c->r = cx + side / 2;
    if (c->b - c->t > side) c->t = cy - side / 2, c->b = cy + side / 2;
}

df_status df_plot_scatter(const char *path, const float *xy, int64_t n, double lo, double hi,
                          const df_plot_opts *o) {
    canvas c;
    df_status st = check_opts("df_plot_scatter", path, o);
    if (st) return st;
    if (n < 0 || (n > 0 && !xy))
        return df_seterr(DF_EINVAL, "df_plot_scatter('%s'): n = %lld with %s", path, (long long)n,
                         n < 0 ? "a negative count" : "no data");
    if ((st = canvas_open(&c, "df_plot_scatter", path, o, 600, 600))) return st;
    scatter_axes(&c, xy, n, lo, hi);
    layout(&c, o);
    make_square(&c);
    draw_frame(&c, o);
    cairo_rectangle(c.cr, c.l, c.t, c.r - c.l, c.b - c.t);
    cairo_clip(c.cr);
    cairo_set_source_rgba(c.cr, palette[0][0], palette[0][1], palette[0][2], 0.35);
    for (int64_t i = 0; i < n; i++) {
        if (!usable(xy[2 * i]) || !usable(xy[2 * i + 1])) continue;
        cairo_arc(c.cr, px(&c, xy[2 * i]), py(&c, xy[2 * i + 1]), 1.8, 0, 2 * M_PI);
        cairo_fill(c.cr);
    }
    return canvas_save(&c, "df_plot_scatter", path);
}
