/* Plots (cairo): a loss curve read back with libpng (size, not blank, the
 * series colours drawn), a scatter plot, edge cases (no points, one point,
 * equal values, NaN/Inf, bad arguments) and failed writes that leave the
 * previous file intact. */
#include "harness.h"
#include "dfrun/plot.h"
#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[] = "/tmp/dfrun_plot_XXXXXX";

typedef struct {
    int w, h;
    unsigned char *rgb;
} image;

static int read_png(const char *path, image *im) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&pi, path)) return -1;
    pi.format = PNG_FORMAT_RGB;
    im->w = (int)pi.width;
    im->h = (int)pi.height;
    im->rgb = malloc(PNG_IMAGE_SIZE(pi));
    if (im->rgb && png_image_finish_read(&pi, NULL, im->rgb, 0, NULL)) return 0;
    free(im->rgb);
    png_image_free(&pi);
    return -1;
}

static int distinct_colours(const image *im) {
    unsigned char *seen = calloc(1 << 21, 1); /* one bit per 24-bit colour */
    int n = 0;
    for (int i = 0; i < im->w * im->h; i++) {
        const unsigned char *p = im->rgb + 3 * i;
        unsigned c = (unsigned)p[0] << 16 | (unsigned)p[1] << 8 | p[2];
        if (!(seen[c >> 3] & (1 << (c & 7)))) n++;
        seen[c >> 3] |= (unsigned char)(1 << (c & 7));
    }
    free(seen);
    return n;
}

/* Pixels within tol of the colour r, g, b in every channel. */
static int count_colour(const image *im, int r, int g, int b, int tol) {
    int n = 0;
    for (int i = 0; i < im->w * im->h; i++) {
        const unsigned char *p = im->rgb + 3 * i;
        n += abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol;
    }
    return n;
}

/* Pixels tinted blue (translucent dots of the first series colour). */
static int count_bluish(const image *im) {
    int n = 0;
    for (int i = 0; i < im->w * im->h; i++) n += im->rgb[3 * i + 2] - im->rgb[3 * i] > 40;
    return n;
}

/* The same, only inside the rectangle [x0, x1) x [y0, y1). */
static int count_colour_in(const image *im, int x0, int y0, int x1, int y1, const int *rgb) {
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            const unsigned char *p = im->rgb + 3 * (y * im->w + x);
            n += abs(p[0] - rgb[0]) <= 8 && abs(p[1] - rgb[1]) <= 8 && abs(p[2] - rgb[2]) <= 8;
        }
    return n;
}

static char *path_in(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static void assert_png(const char *path, int w, int h) {
    image im;
    assert_int_equal(read_png(path, &im), 0);
    assert_int_equal(im.w, w);
    assert_int_equal(im.h, h);
    assert_true(distinct_colours(&im) > 4); /* axes and text at least */
    free(im.rgb);
}

static const int blue[3] = {31, 119, 180}, orange[3] = {255, 127, 14};

static void test_loss_curve(void **state) {
    (void)state;
    double x[200], y[200], vx[5], vy[5];
    for (int i = 0; i < 200; i++) {
        x[i] = 10.0 * i;
        y[i] = 2.0 * exp(-i / 30.0) + 0.03 * (1 + 0.3 * sin(i * 1.7));
    }
    for (int i = 0; i < 5; i++) {
        vx[i] = 500.0 * i;
        vy[i] = 2.2 * exp(-i * 50 / 30.0) + 0.04;
    }
    df_plot_series s[2] = {{"training loss", x, y, 200}, {"validation loss", vx, vy, 5}};
    df_plot_opts o = {.title = "toy_ring: loss", .xlabel = "step", .ylabel = "loss", .log_y = 1};
    const char *p = path_in("loss.png");
    assert_int_equal(df_plot_lines(p, s, 2, &o), DF_OK);
    image im;
    assert_int_equal(read_png(p, &im), 0);
    assert_int_equal(im.w, 800);
    assert_int_equal(im.h, 500);
    assert_true(distinct_colours(&im) > 50);
    assert_true(count_colour(&im, 255, 255, 255, 0) > im.w * im.h / 2); /* white background */
    assert_true(count_colour(&im, 0, 0, 0, 60) > 300);                  /* text and axes */
    /* the curves themselves, not just the legend (top-right quarter) */
    assert_true(count_colour_in(&im, 0, 0, im.w / 2, im.h, blue) > 200);
    assert_true(count_colour_in(&im, 0, 0, im.w / 2, im.h, orange) > 100);
    free(im.rgb);
    /* linear axis and a custom size */
    o.log_y = 0, o.width = 320, o.height = 200;
    p = path_in("loss_small.png");
    assert_int_equal(df_plot_lines(p, s, 2, &o), DF_OK);
    assert_png(p, 320, 200);
}

static void test_scatter(void **state) {
    (void)state;
    float xy[2 * 2000];
    for (int i = 0; i < 2000; i++) {
        xy[2 * i] = (float)(2 * cos(i * 0.01) + 0.1 * sin(i * 7.1));
        xy[2 * i + 1] = (float)(2 * sin(i * 0.01) + 0.1 * cos(i * 5.3));
    }
    df_plot_opts o = {.title = "samples", .xlabel = "x", .ylabel = "y"};
    const char *p = path_in("scatter.png");
    assert_int_equal(df_plot_scatter(p, xy, 2000, -3, 3, &o), DF_OK);
    image im;
    assert_int_equal(read_png(p, &im), 0);
    assert_int_equal(im.w, 600);
    assert_int_equal(im.h, 600);
    assert_true(distinct_colours(&im) > 50);
    assert_true(count_bluish(&im) > 2000); /* translucent blue dots */
    free(im.rgb);
    p = path_in("scatter_auto.png");
    assert_int_equal(df_plot_scatter(p, xy, 2000, 0, 0, NULL), DF_OK); /* automatic range */
    assert_png(p, 600, 600);
}

static void test_edge_cases(void **state) {
    (void)state;
    const char *p = path_in("edge.png");
    double x[4] = {0, 1, 2, 3}, y[4] = {1, 1, 1, 1}, bad[4] = {NAN, INFINITY, -INFINITY, NAN};
    double mixed[4] = {0.5, NAN, -1, 0};
    df_plot_opts lin = {.title = "t"}, lg = {.log_y = 1};
    for (int k = 0; k < 2; k++) {
        const df_plot_opts *o = k ? &lg : &lin;
        df_plot_series s[4] = {{"a", x, y, 0}, {"b", x, y, 1}, {"c", x, y, 4}, {NULL, x, bad, 4}};
        assert_int_equal(df_plot_lines(p, NULL, 0, o), DF_OK);  /* no series */
        assert_int_equal(df_plot_lines(p, s, 1, o), DF_OK);     /* no points */
        assert_int_equal(df_plot_lines(p, s + 1, 1, o), DF_OK); /* one point */
        assert_int_equal(df_plot_lines(p, s + 2, 1, o), DF_OK); /* all equal */
        assert_int_equal(df_plot_lines(p, s + 3, 1, o), DF_OK); /* all NaN/Inf */
        assert_int_equal(df_plot_lines(p, s, 4, o), DF_OK);
        s[3].y = mixed; /* NaN, and non-positive on the log axis */
        assert_int_equal(df_plot_lines(p, s + 3, 1, o), DF_OK);
        s[3].x = bad;
        assert_int_equal(df_plot_lines(p, s + 3, 1, o), DF_OK);
        assert_png(p, 800, 500);
    }
    double tiny[2] = {1e-300, 1e-250}, huge[2] = {1e99, -1e99};
    df_plot_series ext[2] = {{"tiny", x, tiny, 2}, {"huge", x, huge, 2}};
    assert_int_equal(df_plot_lines(p, ext, 1, &lg), DF_OK);
    assert_int_equal(df_plot_lines(p, ext, 2, &lin), DF_OK);
    assert_int_equal(df_plot_lines(p, ext, 2, NULL), DF_OK);

    float pts[6] = {0.5f, 0.5f, NAN, 1, INFINITY, -INFINITY};
    assert_int_equal(df_plot_scatter(p, NULL, 0, -1, 1, NULL), DF_OK);
    assert_int_equal(df_plot_scatter(p, NULL, 0, 0, 0, NULL), DF_OK);
    assert_int_equal(df_plot_scatter(p, pts, 1, 0, 0, NULL), DF_OK); /* one point, auto range */
    assert_int_equal(df_plot_scatter(p, pts, 3, 0, 0, &lin), DF_OK);
    assert_int_equal(df_plot_scatter(p, pts, 3, NAN, 1, &lin), DF_OK);
    assert_int_equal(df_plot_scatter(p, pts, 3, -0.25, 0.75, &lin), DF_OK);
    assert_png(p, 600, 600);

    /* bad arguments */
    df_plot_series s = {"a", x, y, 4}, nox = {"a", NULL, y, 4}, neg = {"a", x, y, -1};
    df_plot_opts small = {.width = 50};
    assert_int_equal(df_plot_lines(NULL, &s, 1, NULL), DF_EINVAL);
    assert_int_equal(df_plot_lines("", &s, 1, NULL), DF_EINVAL);
    assert_int_equal(df_plot_lines(p, NULL, 1, NULL), DF_EINVAL);
    assert_int_equal(df_plot_lines(p, &s, -1, NULL), DF_EINVAL);
    assert_int_equal(df_plot_lines(p, &s, DF_PLOT_MAX_SERIES + 1, NULL), DF_EINVAL);
    assert_int_equal(df_plot_lines(p, &nox, 1, NULL), DF_EINVAL);
    assert_non_null(strstr(df_errmsg(), p));
    assert_int_equal(df_plot_lines(p, &neg, 1, NULL), DF_EINVAL);
    assert_int_equal(df_plot_lines(p, &s, 1, &small), DF_EINVAL);
    assert_non_null(strstr(df_errmsg(), "50"));
    assert_int_equal(df_plot_scatter(NULL, pts, 1, 0, 1, NULL), DF_EINVAL);
    assert_int_equal(df_plot_scatter(p, NULL, 3, 0, 1, NULL), DF_EINVAL);
    assert_int_equal(df_plot_scatter(p, pts, -1, 0, 1, NULL), DF_EINVAL);
    assert_int_equal(df_plot_scatter(p, pts, 1, 0, 1, &small), DF_EINVAL);
}

static unsigned char *slurp(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    rewind(f);
    unsigned char *b = malloc((size_t)*len);
    if (b && fread(b, 1, (size_t)*len, f) != (size_t)*len) free(b), b = NULL;
    fclose(f);
    return b;
}

static int temp_files_left(void) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static void test_failed_writes(void **state) {
    (void)state;
    double x[3] = {0, 1, 2}, y[3] = {3, 1, 2};
    df_plot_series s = {"loss", x, y, 3};
    assert_int_equal(df_plot_lines("/nonexistent_dir/x.png", &s, 1, NULL), DF_EIO);
    assert_non_null(strstr(df_errmsg(), "/nonexistent_dir/x.png"));
    assert_int_equal(df_plot_scatter("/nonexistent_dir/x.png", NULL, 0, 0, 1, NULL), DF_EIO);
    assert_non_null(strstr(df_errmsg(), "/nonexistent_dir/x.png"));

    /* a good file survives later failed writes to the same path */
    const char *p = path_in("keep.png");
    assert_int_equal(df_plot_lines(p, &s, 1, NULL), DF_OK);
    long len0, len1;
    unsigned char *before = slurp(p, &len0);
    assert_non_null(before);
    assert_int_equal(df_plot_lines(p, &s, -3, NULL), DF_EINVAL);
    assert_int_equal(df_plot_scatter(p, NULL, 5, 0, 1, NULL), DF_EINVAL);
    unsigned char *after = slurp(p, &len1);
    assert_non_null(after);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, (size_t)len0);
    free(before);
    free(after);
    assert_png(p, 800, 500);

    /* the rename fails (the target is a directory): the temporary file goes */
    char *d = path_in("adir.png");
    assert_int_equal(mkdir(d, 0755), 0);
    assert_int_equal(df_plot_lines(d, &s, 1, NULL), DF_EIO);
    assert_non_null(strstr(df_errmsg(), d));
    struct stat st;
    assert_int_equal(stat(d, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(temp_files_left(), 0);
}

int main(void) {
    assert_non_null(mkdtemp(dir));
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_loss_curve), cmocka_unit_test(test_scatter),
        cmocka_unit_test(test_edge_cases), cmocka_unit_test(test_failed_writes)};
    int r = cmocka_run_group_tests_name("plot", t, NULL, NULL);
    if (!getenv("DFRUN_KEEP_PLOTS")) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd)) r |= 0;
    } else
        printf("plots kept in %s\n", dir);
    return r;
}
