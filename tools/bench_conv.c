/* conv2d forward and forward+backward on the UNet's shapes, next to
 * OpenBLAS's own sgemm rate on a 2048^3 product measured in the same run.
 *   bench_conv [--batch 128] [--threads T] [--iters N] */
#include "dfrun/dfrun.h"
#include "dfrun/op.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int os_threads(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Threads:", 8)) n = atoi(line + 8);
    if (f) fclose(f);
    return n;
}

static double sgemm_rate(int n, int reps) {
    float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4),
          *c = malloc((size_t)n * n * 4);
    df_rng r = df_rng_new(1);
    df_rng_uniform(&r, a, (int64_t)n * n);
    df_rng_uniform(&r, b, (int64_t)n * n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    double best = 1e30;
    for (int k = 0; k < reps; k++) {
        double t0 = df_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double t = df_seconds() - t0;
        if (t < best) best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * n * (double)n / best / 1e9;
}

typedef struct {
    const char *name;
    int cin, cout, hw, k, stride;
} shape_t;

/* Best-of-iters time of the conv nodes alone (fwd, bwd_data, bwd_weight) per
 * run of g: the minimum is the least noisy on a shared machine. */
static double time_convs(df_graph *g, int iters) {
    df_run(g);
    double best = 1e30;
    for (int i = 0; i < iters; i++) {
        df_profile(g, 1);
        if (df_run(g)) {
            fprintf(stderr, "bench_conv: %s\n", df_errmsg());
            exit(1);
        }
        double t = 0;
        for (int k = 0; k < df_graph_size(g); k++) {
            df_node *n = df_graph_node(g, k);
            if (n->op == DF_OP_CONV2D || n->op == DF_OP_CONV2D_BWD_DATA ||
                n->op == DF_OP_CONV2D_BWD_WEIGHT) {
                t += df_node_seconds(g, n);
                if (getenv("DF_VERBOSE"))
                    fprintf(stderr, "  %-18s %7.2f ms %6.1f GF/s\n", df_op_table[n->op]->name,
                            1e3 * df_node_seconds(g, n),
                            df_node_flops(n) / df_node_seconds(g, n) / 1e9);
            }
        }
        if (t < best) best = t;
    }
    df_profile(g, 0);
    return best;
}

static int bench_shape(const shape_t *s, int B, int iters, double peak, double *sum_ratio) {
    double res[2];
    for (int bwd = 0; bwd < 2; bwd++) {
        df_params *ps = df_params_new();
        df_graph *g = df_graph_new(ps);
        df_node *x = df_input(g, "x", DF_F32, df_shape4(B, s->cin, s->hw, s->hw));
        df_node *w =
            df_param(g, "w", df_shape4(s->cout, s->cin, s->k, s->k), (df_init){DF_INIT_KAIMING, 0});
        df_node *b = df_param(g, "b", df_shape1(s->cout), (df_init){DF_INIT_ZEROS, 0});
        df_node *y = df_conv2d(g, x, w, b, s->stride, s->k / 2);
        df_node *gy = df_input(g, "gy", DF_F32, y ? y->shape : df_shape1(1));
        df_node *l = df_sum_all(g, df_mul(g, y, gy)); /* d l / d y = gy */
        if (bwd ? df_backward(g, l, (df_node *[]){x, w}, 2) : df_keep(g, y)) {
            fprintf(stderr, "bench_conv: %s\n", df_errmsg());
            return 1;
        }
        if (df_compile(g, NULL)) {
            fprintf(stderr, "bench_conv: %s\n", df_errmsg());
            return 1;
        }
        df_params_init(ps, 1);
        df_rng r = df_rng_new(2);
        int64_t nx = df_shape_numel(&x->shape), ny = df_shape_numel(&y->shape);
        float *buf = malloc((size_t)(nx > ny ? nx : ny) * 4);
        df_rng_normal(&r, buf, nx);
        df_set_input(g, x, buf, nx);
        df_rng_normal(&r, buf, ny);
        df_set_input(g, gy, buf, ny);
        free(buf);
        double conv_flops = 2.0 * ny * s->cin * s->k * s->k;
        double t = time_convs(g, iters);
        res[bwd] = (bwd ? 3 : 1) * conv_flops / t / 1e9;
        df_graph_free(g);
        df_params_free(ps);
    }
    printf("%-28s %8.1f %7.0f%% %10.1f %7.0f%%\n", s->name, res[0], 100 * res[0] / peak, res[1],
           100 * res[1] / peak);
    *sum_ratio += res[1] / peak;
    return 0;
}

int main(int argc, char **argv) {
    int B = 128, T = 0, iters = 5;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--batch"))
            B = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads"))
            T = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--iters"))
            iters = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_conv [--batch B] [--threads T] [--iters N]\n");
            return 2;
        }
    }
    if (B < 1 || B > 4096 || iters < 1 || T < 0) {
        fprintf(stderr, "bench_conv: --batch must be 1..4096, --iters >= 1, --threads >= 0\n");
        return 2;
    }
    T = df_set_threads(T);
    printf("threads %d, OpenBLAS %s flavour, OS threads before: %d\n", T, df_blas_flavour(),
           os_threads());
    double peak = sgemm_rate(2048, 3);
    printf("OpenBLAS sgemm 2048^3: %.1f GFLOP/s\n\n", peak);
    shape_t shapes[] = {
        {"32ch 28x28 3x3", 32, 32, 28, 3, 1},        {"64ch 14x14 3x3", 64, 64, 14, 3, 1},
        {"128ch 7x7 3x3", 128, 128, 7, 3, 1},        {"32->64 28x28 3x3 s2", 32, 64, 28, 3, 2},
        {"64->128 14x14 3x3 s2", 64, 128, 14, 3, 2},
    };
    int n = sizeof shapes / sizeof shapes[0];
    printf("batch %d                     fwd GF/s  vs sgemm  fwd+bwd GF/s  vs sgemm\n", B);
    double sum = 0;
    for (int i = 0; i < n; i++)
        if (bench_shape(&shapes[i], B, iters, peak, &sum)) return 1;
    printf("\nmean fwd+bwd / sgemm: %.0f%% (target >= 70%%)\n", 100 * sum / n);
    printf("OS threads after: %d (OpenMP threads %d: no oversubscription if equal)\n", os_threads(),
           T);
    return 0;
}
