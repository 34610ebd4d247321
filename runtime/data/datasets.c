/* Data sets: MNIST (from IDX files), the 2-D toys and procedural digits. */
#include "parallel.h"
#include "dfrun/data.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int exists(const char *p) {
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* dir/<stem> or dir/<stem>.gz */
static int find_file(const char *dir, const char *stem, char *out, int n) {
    snprintf(out, n, "%s/%s.gz", dir, stem);
    if (exists(out)) return 1;
    snprintf(out, n, "%s/%s", dir, stem);
    return exists(out);
}

df_status df_mnist_load(const char *dir, df_dataset *out) {
    if (!dir || !out) return df_seterr(DF_EINVAL, "df_mnist_load: NULL argument");
    memset(out, 0, sizeof *out);
    char ip[1024], lp[1024];
    const char *sets[2] = {"train", "t10k"};
    int found = 0;
    for (int s = 0; s < 2 && !found; s++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "%s-images-idx3-ubyte", sets[s]);
        snprintf(b, sizeof b, "%s-labels-idx1-ubyte", sets[s]);
        found = find_file(dir, a, ip, sizeof ip) && find_file(dir, b, lp, sizeof lp);
    }
    if (!found)
        return df_seterr(
            DF_EIO, "%s: no MNIST files ({train,t10k}-images-idx3-ubyte[.gz] and the labels)", dir);
    df_idx im, lb;
    df_status st = df_idx_load(ip, &im);
    if (st) return st;
    if ((st = df_idx_load(lp, &lb))) {
        df_idx_free(&im);
        return st;
    }
    if (im.ndim != 3 || lb.ndim != 1 || im.dims[0] != lb.dims[0]) {
        st = df_seterr(
            DF_EIO, "%s and %s: expected images [N, H, W] and labels [N] with the same N", ip, lp);
        goto done;
    }
    out->n = im.dims[0];
    out->h = im.dims[1];
    out->w = im.dims[2];
    out->x = malloc((size_t)im.n * 4);
    out->y = malloc((size_t)out->n * 4);
    if (!out->x || !out->y) {
        st = df_seterr(DF_ENOMEM, "out of memory for MNIST");
        goto done;
    }
    for (int64_t i = 0; i < im.n; i++) out->x[i] = im.data[i] / 127.5f - 1.0f;
    for (int64_t i = 0; i < out->n; i++) {
        if (lb.data[i] > 9) {
            st = df_seterr(DF_EIO, "%s: label %d at %lld is not a digit", lp, lb.data[i],
                           (long long)i);
            goto done;
        }
        out->y[i] = lb.data[i];
    }
    snprintf(out->source, sizeof out->source, "%.250s", ip);
done:
    df_idx_free(&im);
    df_idx_free(&lb);
    if (st) df_dataset_free(out);
    return st;
}

df_status df_toy_make(const char *kind, int64_t n, uint64_t seed, df_dataset *out) {
    if (!kind || !out || n < 1 || n > (1ll << 26))
        return df_seterr(DF_EINVAL, "df_toy_make: bad arguments (n = %lld)", (long long)n);
    memset(out, 0, sizeof *out);
    int moons = !strcmp(kind, "moons"), ring = !strcmp(kind, "ring8");
    if (!moons && !ring) return df_seterr(DF_EINVAL, "unknown toy data '%s' (moons, ring8)", kind);
    out->n = n;
    out->x = malloc((size_t)n * 2 * 4);
    out->y = calloc((size_t)n, 4);
    if (!out->x || !out->y) {
        df_dataset_free(out);
        return df_seterr(DF_ENOMEM, "out of memory");
    }
    df_rng r = df_rng_new(seed);
    float *u = malloc((size_t)n * 4 * 4);
    df_rng_uniform(&r, u, n);
    df_rng_normal(&r, u + n, 2 * n);
    for (int64_t i = 0; i < n; i++) {
        float *p = out->x + 2 * i, e0 = u[n + 2 * i], e1 = u[n + 2 * i + 1];
        if (moons) { /* two interleaved half circles, scaled to ~unit variance */
            double a = M_PI * u[i] * 2;
            int lower = a >= M_PI;
            double th = lower ? a - M_PI : a;
            double px = lower ? 1 - cos(th) : cos(th), py = lower ? 0.5 - sin(th) : sin(th);
            p[0] = (float)((px - 0.5) * 1.5 + 0.05 * e0);
            p[1] = (float)((py - 0.25) * 1.5 + 0.05 * e1);
            out->y[i] = lower;
        } else { /* 8 Gaussians on a circle of radius 2, std 0.1 */
            int m = (int)(u[i] * 8) & 7;
            double th = 2 * M_PI * m / 8;
            p[0] = (float)(2 * cos(th) + 0.1 * e0);
            p[1] = (float)(2 * sin(th) + 0.1 * e1);
            out->y[i] = m;
        }
    }
    free(u);
    snprintf(out->source, sizeof out->source, "toy %s (%lld points)", kind, (long long)n);
    return DF_OK;
}

/* strokes of each digit on a unit square: polylines of points (x, y), -1 ends a stroke */
static const float glyph[10][24] = {
    {.5f, 0, .15f, .2f, .15f, .8f, .5f, 1, .85f, .8f, .85f, .2f, .5f, 0, -1},
    {.35f, .2f, .55f, 0, .55f, 1, -1},
    {.15f, .2f, .5f, 0, .85f, .2f, .8f, .45f, .15f, 1, .85f, 1, -1},
    {.15f, .1f, .5f, 0, .85f, .2f, .5f, .5f, .85f, .8f, .5f, 1, .15f, .9f, -1},
    {.7f, 1, .7f, 0, .1f, .65f, .9f, .65f, -1},
    {.85f, 0, .2f, 0, .15f, .45f, .6f, .4f, .85f, .7f, .55f, 1, .15f, .9f, -1},
    {.75f, 0, .3f, .3f, .15f, .75f, .5f, 1, .85f, .75f, .5f, .5f, .2f, .65f, -1},
    {.15f, 0, .85f, 0, .4f, 1, -1},
    {.5f, .5f, .2f, .25f, .5f, 0, .8f, .25f, .5f, .5f, .15f, .75f, .5f, 1, .85f, .75f, .5f, .5f,
     -1},
    {.8f, .35f, .5f, .5f, .15f, .3f, .5f, 0, .85f, .25f, .8f, .6f, .4f, 1, -1},
};

typedef struct {
    df_dataset *out;
    uint64_t key;
} digits_job;
/* digits [i0, i1), each from its own Philox stream */
static void digits_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const digits_job *j = ctx;
    df_dataset *out = j->out;
    const df_rng r = {j->key, 0};
    (void)worker;
    for (int64_t i = i0; i < i1; i++) {
        df_rng ri = {r.key ^ 0x5bd1e995u, (uint64_t)i * 16};
        float u[8];
        df_rng_uniform(&ri, u, 8);
        int c = (int)(u[0] * 10) % 10;
        /* affine: scale, rotation, shear, translation; thickness */
        double sc = 16 + 5 * u[1], rot = (u[2] - 0.5) * 0.5, sh = (u[3] - 0.5) * 0.5;
        double tx = 14 + (u[4] - 0.5) * 4, ty = 14 + (u[5] - 0.5) * 4, th = 0.9 + 1.1 * u[6];
        double ca = cos(rot), sa = sin(rot);
        float *img = out->x + i * 784;
        for (int k = 0; k < 784; k++) img[k] = -1.0f;
        const float *g = glyph[c];
        for (int k = 0; g[k + 2] >= 0 && g[k] >= 0; k += 2) {
            double x0 = g[k] - 0.5, y0 = g[k + 1] - 0.5, x1 = g[k + 2] - 0.5, y1 = g[k + 3] - 0.5;
            /* map both ends */
            double X0 = tx + sc * (ca * (x0 + sh * y0) - sa * y0),
                   Y0 = ty + sc * (sa * (x0 + sh * y0) + ca * y0);
            double X1 = tx + sc * (ca * (x1 + sh * y1) - sa * y1),
                   Y1 = ty + sc * (sa * (x1 + sh * y1) + ca * y1);
            for (int py = 0; py < 28; py++)
                for (int px = 0; px < 28; px++) { /* distance to the segment */
                    double vx = X1 - X0, vy = Y1 - Y0, wx = px - X0, wy = py - Y0;
                    double L = vx * vx + vy * vy, t = L > 0 ? (wx * vx + wy * vy) / L : 0;
                    t = t < 0 ? 0 : t > 1 ? 1 : t;
                    double dx = wx - t * vx, dy = wy - t * vy, d = sqrt(dx * dx + dy * dy);
                    double v = d < th ? 1.0 : d < th + 1 ? th + 1 - d : 0.0;
                    float val = (float)(2 * v - 1);
                    if (val > img[py * 28 + px]) img[py * 28 + px] = val;
                }
        }
        out->y[i] = c;
    }
}

df_status df_digits_make(int64_t n, uint64_t seed, df_dataset *out) {
    if (!out || n < 1 || n > (1ll << 24))
        return df_seterr(DF_EINVAL, "df_digits_make: bad arguments");
    memset(out, 0, sizeof *out);
    out->n = n;
    out->h = out->w = 28;
    out->x = malloc((size_t)n * 784 * 4);
    out->y = malloc((size_t)n * 4);
    if (!out->x || !out->y) {
        df_dataset_free(out);
        return df_seterr(DF_ENOMEM, "out of memory");
    }
    df_rng r = df_rng_new(seed);
    df_parallel_for(n, 64, digits_piece, &(digits_job){out, r.key});
    snprintf(out->source, sizeof out->source, "procedural digits (%lld)", (long long)n);
    return DF_OK;
}

void df_dataset_free(df_dataset *d) {
    if (!d) return;
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof *d);
}
