/* Whole-network benchmark: the canonical UNet (tools/unet.c) trained with
 * Adam at batch B and evaluated at the sampling batch, timed after a
 * warm-up; prints JSON with the same fields as ../shared/bench/torch_ref.py.
 *   bench_unet [--batch 128] [--threads T] [--steps 10] [--sample-batch 256]
 *              [--channels 32,64,128] [--params] */
#include "unet.h"
#include "dfrun/op.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static int usage(const char *msg) {
    fprintf(stderr,
            "bench_unet: %s\nusage: bench_unet [--batch B] [--threads T] [--steps N] "
            "[--sample-batch S] [--channels a,b,c] [--params] [--profile]\n",
            msg);
    return 2;
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *e;
    long v = strtol(s, &e, 10);
    if (!*s || *e || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

typedef struct {
    df_graph *g;
    unet_io io;
    df_node *eps, *loss;
} net;

static int build(net *n, df_params *ps, const unet_cfg *c, int B, int train) {
    n->g = df_graph_new(ps);
    unet_build(n->g, c, B, &n->io);
    if (train) {
        n->eps = df_input(n->g, "eps", DF_F32, df_shape4(B, 1, 28, 28));
        n->loss = df_mse_loss(n->g, n->io.out, n->eps);
        df_keep(n->g, n->loss);
    } else if (n->io.out) {
        df_keep(n->g, n->io.out);
    }
    if (df_graph_status(n->g)) {
        fprintf(stderr, "bench_unet: %s\n", df_graph_errmsg(n->g));
        return -1;
    }
    if ((train && df_backward(n->g, n->loss, NULL, 0)) || df_compile(n->g, NULL)) {
        fprintf(stderr, "bench_unet: %s\n", df_errmsg());
        return -1;
    }
    return 0;
}

static void feed(net *n, df_rng *r, int B) {
    float *buf = malloc((size_t)B * 784 * 4);
    int32_t *lab = malloc((size_t)B * 4);
    df_rng_normal(r, buf, (int64_t)B * 784);
    df_set_input(n->g, n->io.x, buf, (int64_t)B * 784);
    if (n->eps) df_set_input(n->g, n->eps, buf, (int64_t)B * 784);
    df_rng_uniform(r, buf, B);
    df_set_input(n->g, n->io.t, buf, B);
    df_rng_randint(r, lab, B, 11);
    df_set_input(n->g, n->io.y, lab, B);
    free(buf);
    free(lab);
}

/* one more run of g, timed per op, printed by op */
static void profile_run(df_graph *g, const char *what) {
    double sec[DF_OP_COUNT] = {0}, fl[DF_OP_COUNT] = {0}, tot = 0;
    df_profile(g, 1);
    df_run(g);
    for (int k = 0; k < df_graph_size(g); k++) {
        df_node *nd = df_graph_node(g, k);
        if (nd->dead) continue; /* fused into another node */
        sec[nd->op] += df_node_seconds(g, nd);
        fl[nd->op] += df_node_flops(nd);
        tot += df_node_seconds(g, nd);
    }
    df_profile(g, 0);
    fprintf(stderr, "%s by op (%.3f s):\n", what, tot);
    for (int op = 0; op < DF_OP_COUNT; op++)
        if (sec[op] > 0.001 * tot)
            fprintf(stderr, "  %-20s %7.1f ms %5.1f%% %7.1f GF/s\n", df_op_table[op]->name,
                    1e3 * sec[op], 100 * sec[op] / tot, fl[op] / sec[op] / 1e9);
}

int main(int argc, char **argv) {
    int B = 128, T = 0, steps = 10, SB = 256, params_only = 0, profile = 0;
    unet_cfg c = unet_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--params"))
            params_only = 1;
        else if (!strcmp(a, "--profile"))
            profile = 1;
        else if (!v)
            return usage("missing value");
        else if (!strcmp(a, "--batch")) {
            if (parse_int(v, 1, 65536, &B)) return usage("bad --batch");
            i++;
        } else if (!strcmp(a, "--threads")) {
            if (parse_int(v, 1, 1024, &T)) return usage("bad --threads");
            i++;
        } else if (!strcmp(a, "--steps")) {
            if (parse_int(v, 1, 100000, &steps)) return usage("bad --steps");
            i++;
        } else if (!strcmp(a, "--sample-batch")) {
            if (parse_int(v, 1, 65536, &SB)) return usage("bad --sample-batch");
            i++;
        } else if (!strcmp(a, "--channels")) {
            int n = 0;
            char *s = strdup(v), *tok, *save;
            for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (n >= 4 || parse_int(tok, 8, 4096, &c.ch[n])) {
                    free(s);
                    return usage("bad --channels");
                }
                n++;
            }
            free(s);
            if (n < 1) return usage("bad --channels");
            c.nlevels = n;
            i++;
        } else
            return usage("unknown option");
    }
    T = df_set_threads(T);
    df_params *ps = df_params_new();
    net tr = {0}, ev = {0};
    if (params_only) {
        tr.g = df_graph_new(ps);
        unet_build(tr.g, &c, 1, &tr.io);
        if (df_graph_status(tr.g)) {
            fprintf(stderr, "%s\n", df_graph_errmsg(tr.g));
            return 1;
        }
        printf("{\"params\": %lld}\n", (long long)df_params_numel(ps));
        return 0;
    }
    if (build(&tr, ps, &c, B, 1) || build(&ev, ps, &c, SB, 0)) return 1;
    df_params_init(ps, 0);
    df_opt_config oc = df_opt_defaults(DF_OPT_ADAM);
    df_optim *opt = df_optim_new(ps, &oc);
    df_rng r = df_rng_new(1);
    feed(&tr, &r, B);
    feed(&ev, &r, SB);
    /* warm-up */
    if (df_run(tr.g) || df_optim_step(opt, -1)) {
        fprintf(stderr, "%s\n", df_errmsg());
        return 1;
    }
    double t0 = df_seconds();
    for (int s = 0; s < steps; s++) {
        if (df_run(tr.g)) {
            fprintf(stderr, "%s\n", df_errmsg());
            return 1;
        }
        df_optim_step(opt, -1);
    }
    double tr_s = (df_seconds() - t0) / steps;
    if (profile) profile_run(tr.g, "train step");
    if (profile) profile_run(ev.g, "sampling forward");
    df_run(ev.g);
    int evn = steps / 2 > 2 ? steps / 2 : 2;
    t0 = df_seconds();
    for (int s = 0; s < evn; s++) df_run(ev.g);
    double ev_s = (df_seconds() - t0) / evn;
    df_plan_stats st, se;
    df_plan_get_stats(tr.g, &st);
    df_plan_get_stats(ev.g, &se);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double fl = df_graph_flops(tr.g, 0) / B;
    printf("{\"params\": %lld, \"channels\": [", (long long)df_params_numel(ps));
    for (int i = 0; i < c.nlevels; i++) printf("%s%d", i ? ", " : "", c.ch[i]);
    printf("], \"batch\": %d, \"threads\": %d, \"train_step_s\": %.4f, \"train_img_per_s\": %.1f, "
           "\"eval_batch\": %d, \"eval_s\": %.4f, \"eval_img_per_s\": %.1f, "
           "\"fwd_gflop_per_img\": %.3f, \"train_gflop_per_s\": %.1f, "
           "\"train_planned_mib\": %.1f, \"train_naive_mib\": %.1f, \"eval_planned_mib\": %.1f, "
           "\"scratch_mib\": %.1f, \"peak_rss_mib\": %.0f, \"loss\": %.4f}\n",
           B, T, tr_s, B / tr_s, SB, ev_s, SB / ev_s, fl / 1e9, 3 * fl * B / tr_s / 1e9,
           st.planned_bytes / 1048576.0, st.naive_bytes / 1048576.0, se.planned_bytes / 1048576.0,
           st.scratch_bytes / 1048576.0, ru.ru_maxrss / 1024.0, *(float *)df_data(tr.loss));
    df_optim_free(opt);
    df_graph_free(tr.g);
    df_graph_free(ev.g);
    df_params_free(ps);
    return 0;
}
