/* dfrun train: flags to config overrides, then the library's trainer. */
#include "args.h"
#include "commands.h"
#include "dfrun/dfrun.h"
#include "dfrun/train.h"
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile int g_stop;
static void on_sigint(int s) {
    (void)s;
    g_stop = 1;
}

static void on_event(void *ctx, const df_train_event *e) {
    int tty = *(int *)ctx;
    char of[48] = "";
    if (e->total) snprintf(of, sizeof of, "/%lld", (long long)e->total);
    switch (e->kind) {
    case DF_EV_NOTICE:
    case DF_EV_START:
        fprintf(stderr, "dfrun: %s\n", e->text);
        break;
    case DF_EV_LOG:
        if (tty)
            fprintf(stderr, "\r[%lld%s] loss %.4f  %.1f img/s  ETA %.0fs   ", (long long)e->step,
                    of, e->loss, e->img_per_s, e->eta_s);
        else
            fprintf(stderr, "step %lld%s loss %.4f lr %.2e grad %.3f %.1f img/s%s\n",
                    (long long)e->step, of, e->loss, e->lr, e->grad_norm, e->img_per_s,
                    isnan(e->val_loss) ? "" : " (checkpoint)");
        break;
    case DF_EV_CHECKPOINT:
        break;
    case DF_EV_SAMPLES:
        if (!tty) fprintf(stderr, "wrote %s\n", e->text);
        break;
    case DF_EV_DONE:
        fprintf(stderr, "%sdfrun: %s after %lld steps (%.1f s)\n", tty ? "\n" : "", e->text,
                (long long)e->step, e->elapsed_s);
        break;
    }
}

int cmd_train(int argc, char **argv) {
    const char *graph = NULL, *out = NULL, *data = NULL, *precision = NULL;
    long long steps = 0, batch = 0, seed = 0, threads = 0;
    double epochs = 0, minutes = 0;
    int resume = 0;
    args_multi sets = {0};
    arg_spec sp[] = {
        {"GRAPH.yaml", A_POS, &graph, NULL, NULL, 0, 0, 0},
        {"--out", A_STR, &out, "DIR", "run directory (default runs/<graph>/<time>, and latest)", 0,
         0, 0},
        {"--steps", A_INT, &steps, "N", "budget in optimizer steps (train.steps)", 1, 1e12, 0},
        {"--epochs", A_NUM, &epochs, "N", "budget in passes over the data (train.epochs)", 1e-6,
         1e9, 0},
        {"--minutes", A_NUM, &minutes, "M", "budget in wall-clock minutes (train.minutes)", 1e-6,
         1e9, 0},
        {"--batch", A_INT, &batch, "B", "batch size (train.batch)", 1, 1e6, 0},
        {"--seed", A_INT, &seed, "S", "seed (train.seed)", 0, 9007199254740992.0, 0},
        {"--threads", A_INT, &threads, "T",
         "threads (default: DFRUN_THREADS or the cores it may use)", 1, 1024, 0},
        {"--data", A_STR, &data, "DIR", "MNIST directory (an error if it has no MNIST files)", 0, 0,
         0},
        {"--resume", A_FLAG, &resume, NULL,
         "continue the run in --out (or the graph's latest) with its stored settings", 0, 0, 0},
        {"--precision", A_STR, &precision, "fp32|bf16",
         "products of the 3x3 convolutions (train.precision; bf16: see README)", 0, 0, 0},
        {"--set", A_MULTI, &sets, "PATH=VALUE", "override a setting (repeatable)", 0, 0, 0},
    };
    cmd_spec c = {"train", "GRAPH.yaml [options]",
                  "Trains the graph's model by denoising score matching (classifiers by\n"
                  "cross-entropy) with the file's data, diffusion and train sections. The run\n"
                  "directory gets config.yaml (the resolved graph), checkpoint.safetensors,\n"
                  "log.jsonl, loss.png and samples_<step>.png. Ctrl-C stops after the current\n"
                  "step and saves a checkpoint, as does SIGUSR1 (under mpirun, which kills\n"
                  "the ranks on Ctrl-C: kill -USR1 on mpirun's pid).",
                  sp, (int)(sizeof sp / sizeof sp[0])};
    int r = args_parse(&c, argc, argv);
    if (r) return r == 1 ? 0 : r;
    if (!graph && !(resume && out)) return args_fail(&c, "no graph file given");
    char pset[64];
    if (args_config_choice(&c, "--precision", "train.precision", precision, pset, sizeof pset))
        return 2;
    /* flags become overrides after the user's --set ones (flags win) */
    char fs[7][64];
    int nf = 0;
    if (steps || epochs > 0 || minutes > 0) {
        snprintf(fs[nf++], 64, "train.steps=%lld", steps);
        snprintf(fs[nf++], 64, "train.epochs=%.17g", epochs);
        snprintf(fs[nf++], 64, "train.minutes=%.17g", minutes);
    }
    if (batch) snprintf(fs[nf++], 64, "train.batch=%lld", batch);
    if (args_given(&c, "--seed")) snprintf(fs[nf++], 64, "train.seed=%lld", seed);
    if (pset[0]) snprintf(fs[nf++], 64, "%s", pset);
    for (int i = 0; i < nf && sets.n < ARGS_MAX_MULTI; i++) sets.v[sets.n++] = fs[i];
    if (threads) df_set_threads((int)threads);
    int tty = isatty(2);
    df_train_opts o = {graph,  sets.v, sets.n,  out,      NULL, data,
                       resume, 0,      &g_stop, on_event, &tty, NULL};
    df_trainer *t = df_trainer_new(&o);
    if (!t) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return 1;
    }
    signal(SIGINT, on_sigint);
    signal(SIGUSR1, on_sigint); /* mpirun forwards SIGUSR1 to every rank (Ctrl-C kills them) */
    df_status st = df_trainer_run(t);
    if (st)
        fprintf(stderr, "%sdfrun: %s\n", tty ? "\n" : "", df_errmsg());
    else
        fprintf(stderr, "dfrun: checkpoint %s\n", df_trainer_checkpoint(t));
    df_trainer_free(t);
    return st ? 1 : 0;
}
