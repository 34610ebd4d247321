/* dfrun: the command-line tool; dispatch only (the commands are in
 * tools/cli/, each a thin shell over the library). Only the CLI exits; the
 * library returns errors. */
#include "commands.h"
#include "dfrun/dist.h"
#include "dfrun/error.h"
#include <stdio.h>
#include <string.h>

/* cairo keeps fontconfig's caches for the life of the process (plots):
 * not a leak of ours, so LeakSanitizer builds are told. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libfontconfig.so\n";
}

static const char *usage_main =
    "usage: dfrun COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  check GRAPH.yaml   validate a graph file; print its nodes, parameters, FLOPs, memory\n"
    "  config GRAPH.yaml  print the resolved graph: includes inlined, every setting with its doc\n"
    "  viz GRAPH.yaml     write the graph in Graphviz DOT (optionally SVG)\n"
    "  train GRAPH.yaml   train the model (denoising score matching) into runs/\n"
    "  sample             sample from a trained run (PNG grid or .npy)\n"
    "  eval               score samples with a trained classifier (accuracy, Frechet distance)\n"
    "  bench GRAPH.yaml   time training steps and sampling forwards (img/s, GFLOP/s, memory)\n"
    "  run GRAPH.yaml     evaluate named values (and parameter gradients) on .npy inputs\n"
    "\n"
    "options of every command that reads a graph:\n"
    "  --set PATH=VALUE   override a setting, e.g. --set vars.ch=[64,128,256]\n"
    "  --batch B          batch size the graph is built for (default 128)\n"
    "  --threads T        threads (default: DFRUN_THREADS or the cores it may use)\n"
    "\n"
    "dfrun COMMAND --help describes a command.\n";

static int dispatch(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        fputs(usage_main, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "check")) return cmd_check(argc - 2, argv + 2);
    if (!strcmp(argv[1], "config")) return cmd_config(argc - 2, argv + 2);
    if (!strcmp(argv[1], "viz")) return cmd_viz(argc - 2, argv + 2);
    if (!strcmp(argv[1], "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(argv[1], "sample")) return cmd_sample(argc - 2, argv + 2);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(argv[1], "run")) return cmd_run(argc - 2, argv + 2);
    fprintf(stderr, "dfrun: unknown command '%s'\n\n%s", argv[1], usage_main);
    return 2;
}

/* Under mpirun every rank runs the command (train shares its batches); a
 * failing rank stops the whole job rather than leave the others waiting. */
int main(int argc, char **argv) {
    if (df_dist_init()) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return 1;
    }
    const df_dist *w = df_dist_world();
    if (df_dist_size(w) > 1 && argc > 1 && strcmp(argv[1], "train")) {
        /* every rank stops here alike: no abort needed */
        if (!df_dist_rank(w))
            fprintf(stderr,
                    "dfrun: only 'train' runs across ranks; run 'dfrun %s' as one process "
                    "(without mpirun)\n",
                    argv[1]);
        df_dist_finalize();
        return 2;
    }
    int r = dispatch(argc, argv);
    if (r && df_dist_size(w) > 1) {
        fprintf(stderr, "dfrun: rank %d failed: stopping every rank\n", df_dist_rank(w));
        df_dist_abort(r);
    }
    df_dist_finalize();
    return r;
}
