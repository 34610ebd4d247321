/* dfrun bench: training and inference throughput of a graph file's model on
 * random data (df_bench), as one line of JSON. */
#include "args.h"
#include "commands.h"
#include "dfrun/bench.h"
#include "dfrun/runtime.h"
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    double lo[7], hi[7]; /* train, sample, memory ratios; under load: kept of quiet, dfrun's
                            train and sample, the peer's train and sample */
} ratio_span;

static void span(ratio_span *s, int k, int j, double r) {
    if (!k || r < s->lo[j]) s->lo[j] = r;
    if (!k || r > s->hi[j]) s->hi[j] = r;
}

static void on_round(void *ctx, int k, const df_bench_result *o, const df_peer_result *p,
                     const df_bench_result *oq, const df_peer_result *pq) {
    ratio_span *s = ctx;
    double r[3] = {o->train_img_per_s / p->train_img_per_s, o->eval_img_per_s / p->eval_img_per_s,
                   o->peak_rss_mib / p->peak_rss_mib};
    for (int j = 0; j < 3; j++) span(s, k, j, r[j]);
    if (oq)
        printf("round %d  quiet: dfrun train %6.1f sample %6.1f img/s, peer train %6.1f sample "
               "%6.1f img/s\n",
               k + 1, oq->train_img_per_s, oq->eval_img_per_s, pq->train_img_per_s,
               pq->eval_img_per_s);
    char head[32];
    snprintf(head, sizeof head, oq ? "   busy" : "round %d", k + 1);
    printf("%-7s  dfrun: train %6.1f img/s  sample %6.1f img/s  peak %5.0f MiB\n", head,
           o->train_img_per_s, o->eval_img_per_s, o->peak_rss_mib);
    printf("         peer:  train %6.1f img/s  sample %6.1f img/s  peak %5.0f MiB\n",
           p->train_img_per_s, p->eval_img_per_s, p->peak_rss_mib);
    printf("         dfrun/peer: train %.2fx  sample %.2fx  memory %.2fx\n", r[0], r[1], r[2]);
    if (oq) {
        double kept[4] = {
            o->train_img_per_s / oq->train_img_per_s, o->eval_img_per_s / oq->eval_img_per_s,
            p->train_img_per_s / pq->train_img_per_s, p->eval_img_per_s / pq->eval_img_per_s};
        for (int j = 0; j < 4; j++) span(s, k, 3 + j, kept[j]);
        printf("         share of quiet kept under load: dfrun train %.0f%% sample %.0f%%, peer "
               "train %.0f%% sample %.0f%%\n",
               100 * kept[0], 100 * kept[1], 100 * kept[2], 100 * kept[3]);
    }
    fflush(stdout);
}

static int compare(const df_compare_opts *o) {
    ratio_span s;
    printf("dfrun %s against %s %s, %d threads, batch %lld, sample batch %lld, %d rounds%s\n"
           "cpu: %s\n",
           o->graph, o->python, o->peer, df_get_threads(), (long long)o->batch,
           (long long)o->sample_batch, o->rounds, o->busy ? ", with a competing busy process" : "",
           df_cpu_summary());
    if (df_bench_compare(o, on_round, &s)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return 1;
    }
    printf("dfrun/peer over %d rounds: train %.2f-%.2fx  sample %.2f-%.2fx  memory %.2f-%.2fx\n",
           o->rounds, s.lo[0], s.hi[0], s.lo[1], s.hi[1], s.lo[2], s.hi[2]);
    if (o->busy)
        printf("under load, share of quiet kept over %d rounds: dfrun train %.0f-%.0f%% sample "
               "%.0f-%.0f%%, peer train %.0f-%.0f%% sample %.0f-%.0f%%\n",
               o->rounds, 100 * s.lo[3], 100 * s.hi[3], 100 * s.lo[4], 100 * s.hi[4], 100 * s.lo[5],
               100 * s.hi[5], 100 * s.lo[6], 100 * s.hi[6]);
    return 0;
}

static void on_scaling(void *ctx, int k, const df_bench_result *one, const df_bench_result *many,
                       double cpu, double mem) {
    ratio_span *s = ctx;
    double r[4] = {many->train_img_per_s / one->train_img_per_s,
                   many->eval_img_per_s / one->eval_img_per_s, cpu, mem};
    for (int j = 0; j < 4; j++) span(s, k, j, r[j]);
    printf("round %d  1 thread: train %6.1f img/s  sample %6.1f img/s\n", k + 1,
           one->train_img_per_s, one->eval_img_per_s);
    printf("         %d threads: train %6.1f img/s  sample %6.1f img/s\n", many->threads,
           many->train_img_per_s, many->eval_img_per_s);
    printf("         scaling: train %.2fx  sample %.2fx  (arithmetic alone: %.2fx, memory "
           "alone: %.2fx)\n",
           r[0], r[1], r[2], r[3]);
    fflush(stdout);
}

static int scaling(const df_compare_opts *o) {
    ratio_span s;
    printf("dfrun %s on 1 and %d threads, batch %lld, sample batch %lld, %d rounds\ncpu: %s\n",
           o->graph, df_get_threads(), (long long)o->batch, (long long)o->sample_batch, o->rounds,
           df_cpu_summary());
    if (df_bench_scaling(o, on_scaling, &s)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return 1;
    }
    printf("1 -> %d threads over %d rounds: train %.2f-%.2fx  sample %.2f-%.2fx  (the machine: "
           "arithmetic alone %.2f-%.2fx, memory alone %.2f-%.2fx)\n",
           df_get_threads(), o->rounds, s.lo[0], s.hi[0], s.lo[1], s.hi[1], s.lo[2], s.hi[2],
           s.lo[3], s.hi[3]);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    const char *graph = NULL, *precision = NULL, *peer = NULL, *python = "/usr/bin/python3",
               *peer_channels = NULL;
    long long batch = 128, sample_batch = 256, steps = 10, threads = 0, rounds = 3;
    int do_compare = 0, busy = 0, do_scaling = 0;
    args_multi sets = {0};
    arg_spec specs[] = {
        {"GRAPH.yaml", A_POS, &graph, NULL, NULL, 0, 0, 0},
        {"--batch", A_INT, &batch, "B", "training batch (default 128)", 1, 65536, 0},
        {"--sample-batch", A_INT, &sample_batch, "S", "inference batch (default 256)", 1, 65536, 0},
        {"--steps", A_INT, &steps, "N", "timed training steps (default 10; forwards: N/2, >= 2)", 1,
         100000, 0},
        {"--threads", A_INT, &threads, "T",
         "threads (default: DFRUN_THREADS or the cores it may use)", 1, 1024, 0},
        {"--precision", A_STR, &precision, "fp32|bf16",
         "products of the 3x3 convolutions (train.precision; bf16: see README)", 0, 0, 0},
        {"--set", A_MULTI, &sets, "PATH=VALUE", "override a value of the graph file", 0, 0, 0},
        {"--compare", A_FLAG, &do_compare, NULL,
         "also run the PyTorch peer, alternating, and print the ratios", 0, 0, 0},
        {"--scaling", A_FLAG, &do_scaling, NULL,
         "run on 1 thread and on T, alternating, and print the ratios", 0, 0, 0},
        {"--rounds", A_INT, &rounds, "N",
         "runs of each side with --compare or --scaling (default 3)", 1, 100, 0},
        {"--busy", A_FLAG, &busy, NULL,
         "with --compare: a competing busy process runs meanwhile (a shared machine)", 0, 0, 0},
        {"--peer", A_STR, &peer, "SCRIPT",
         "the peer (default: $DFRUN_PEER, else ../shared/bench/torch_ref.py)", 0, 0, 0},
        {"--python", A_STR, &python, "PATH", "the peer's interpreter (default /usr/bin/python3)", 0,
         0, 0},
        {"--peer-channels", A_STR, &peer_channels, "C1,C2,C3",
         "the peer's channels when the graph's differ from its default", 0, 0, 0},
    };
    cmd_spec c = {
        "bench", "GRAPH.yaml [options]",
        "Times training steps (forward, backward, optimizer) at batch B and sampling forwards at\n"
        "batch S on random data after a warm-up; prints img/s, GFLOP/s, planned and peak memory.\n"
        "--compare runs the PyTorch peer (../shared/bench/torch_ref.py) too, alternating, each "
        "run\n"
        "in a process of its own, and prints dfrun/peer ratios; --scaling does the same with\n"
        "1 thread against T.\n",
        specs, sizeof specs / sizeof specs[0]};
    int a = args_parse(&c, argc, argv);
    if (a) return a == 1 ? 0 : 2;
    if (!graph) return args_fail(&c, "no graph file given");
    char ps[64];
    if (args_config_choice(&c, "--precision", "train.precision", precision, ps, sizeof ps))
        return 2;
    if (ps[0] && sets.n < ARGS_MAX_MULTI) sets.v[sets.n++] = ps;
    if (threads) df_set_threads((int)threads);
    if (!peer) peer = getenv("DFRUN_PEER") ? getenv("DFRUN_PEER") : "../shared/bench/torch_ref.py";
    if (do_compare && do_scaling) return args_fail(&c, "give --compare or --scaling, not both");
    if (do_scaling) {
        if (busy) return args_fail(&c, "--busy goes with --compare");
        df_compare_opts o = {.graph = graph,
                             .sets = sets.v,
                             .nsets = sets.n,
                             .batch = batch,
                             .sample_batch = sample_batch,
                             .steps = (int)steps,
                             .rounds = (int)rounds};
        return scaling(&o);
    }
    if (do_compare) {
        df_compare_opts o = {graph,       sets.v, sets.n, batch, sample_batch, (int)steps,
                             (int)rounds, busy,   python, peer,  peer_channels};
        return compare(&o);
    }
    if (busy) return args_fail(&c, "--busy goes with --compare");
    df_bench_result r;
    if (df_bench(graph, sets.v, sets.n, batch, sample_batch, (int)steps, &r)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return 1;
    }
    printf("{\"graph\": \"");
    for (const unsigned char *p = (const unsigned char *)graph; *p; p++) /* a JSON string */
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 32)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    printf("\", \"params\": %lld, \"batch\": %lld, \"threads\": %d, \"train_step_s\": %.4f, "
           "\"train_img_per_s\": %.1f, \"train_gflop_per_s\": %.1f, \"eval_batch\": %lld, "
           "\"eval_s\": %.4f, \"eval_img_per_s\": %.1f, \"fwd_gflop_per_img\": %.4f, "
           "\"train_planned_mib\": %.1f, \"train_no_reuse_mib\": %.1f, "
           "\"eval_planned_mib\": %.1f, \"peak_rss_mib\": %.0f, \"precision\": \"%s\", "
           "\"cpu\": \"%s\"}\n",
           (long long)r.params, (long long)r.batch, r.threads, r.train_step_s, r.train_img_per_s,
           r.train_gflop_per_s, (long long)r.eval_batch, r.eval_s, r.eval_img_per_s,
           r.fwd_gflop_per_img, r.train_planned_mib, r.train_no_reuse_mib, r.eval_planned_mib,
           r.peak_rss_mib, r.precision, df_cpu_summary());
    return 0;
}
