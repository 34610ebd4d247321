/* dfrun bench: training and inference throughput of a graph file's model on
 * random data (df_bench), as one line of JSON. */
#include "args.h"
#include "commands.h"
#include "dfrun/bench.h"
#include "dfrun/runtime.h"
#include <stdio.h>

int cmd_bench(int argc, char **argv) {
    const char *graph = NULL;
    long long batch = 128, sample_batch = 256, steps = 10, threads = 0;
    args_multi sets = {0};
    arg_spec specs[] = {
        {"GRAPH.yaml", A_POS, &graph, NULL, NULL, 0, 0, 0},
        {"--batch", A_INT, &batch, "B", "training batch (default 128)", 1, 65536, 0},
        {"--sample-batch", A_INT, &sample_batch, "S", "inference batch (default 256)", 1, 65536, 0},
        {"--steps", A_INT, &steps, "N", "timed training steps (default 10; forwards: N/2, >= 2)", 1,
         100000, 0},
        {"--threads", A_INT, &threads, "T", "threads (default: DFRUN_THREADS or all cores)", 1,
         1024, 0},
        {"--set", A_MULTI, &sets, "PATH=VALUE", "override a value of the graph file", 0, 0, 0},
    };
    cmd_spec c = {
        "bench", "GRAPH.yaml [options]",
        "Times training steps (forward, backward, optimizer) at batch B and sampling forwards at\n"
        "batch S on random data after a warm-up; prints img/s, GFLOP/s, planned and peak memory.\n"
        "Compare with /usr/bin/python3 ../shared/bench/torch_ref.py bench in the same session.\n",
        specs, sizeof specs / sizeof specs[0]};
    int a = args_parse(&c, argc, argv);
    if (a) return a == 1 ? 0 : 2;
    if (!graph) return args_fail(&c, "no graph file given");
    if (threads) df_set_threads((int)threads);
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
           "\"eval_planned_mib\": %.1f, \"peak_rss_mib\": %.0f}\n",
           (long long)r.params, (long long)r.batch, r.threads, r.train_step_s, r.train_img_per_s,
           r.train_gflop_per_s, (long long)r.eval_batch, r.eval_s, r.eval_img_per_s,
           r.fwd_gflop_per_img, r.train_planned_mib, r.train_no_reuse_mib, r.eval_planned_mib,
           r.peak_rss_mib);
    return 0;
}
