/* dfrun sample: flags to generator options, then the library's sampler. */
#include "args.h"
#include "commands.h"
#include "dfrun/dfrun.h"
#include "dfrun/sample.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cmd_sample(int argc, char **argv) {
    const char *run = NULL, *ckpt = NULL, *graph = NULL, *out = NULL, *sampler = NULL;
    const char *weights = "ema", *traj = NULL, *precision = NULL;
    long long steps = 0, n = 0, per_class = 0, klass = 0, seed = 0, batch = 0, threads = 0;
    double guidance = 0;
    args_multi sets = {0};
    arg_spec sp[] = {
        {"--run", A_STR, &run, "DIR", "a run directory (default: the latest run under runs/)", 0, 0,
         0},
        {"--ckpt", A_STR, &ckpt, "FILE", "a checkpoint file (it holds its graph and settings)", 0,
         0, 0},
        {"--graph", A_STR, &graph, "GRAPH.yaml", "check this graph file against the checkpoint's",
         0, 0, 0},
        {"--out", A_STR, &out, "FILE", ".png grid (default samples.png in the run) or .npy", 0, 0,
         0},
        {"--sampler", A_STR, &sampler, "NAME",
         "euler_maruyama, ddpm, ddim, pf_ode_heun, dpmpp_2m, pc_langevin", 0, 0, 0},
        {"--steps", A_INT, &steps, "N", "sampler steps (default: the run's, or the sampler's)", 1,
         1e6, 0},
        {"--n", A_INT, &n, "N", "number of samples (default 64)", 1, 1e6, 0},
        {"--per-class", A_INT, &per_class, "N", "N of each class 0..9 in order (a row each)", 1,
         1e5, 0},
        {"--class", A_INT, &klass, "K", "all samples of class K", 0, 9, 0},
        {"--guidance", A_NUM, &guidance, "W", "classifier-free guidance weight (1: conditional)",
         -100, 100, 0},
        {"--weights", A_STR, &weights, "ema|raw", "EMA weights (default) or the raw ones", 0, 0, 0},
        {"--trajectory", A_STR, &traj, "FILE.png", "the reverse process at several times", 0, 0, 0},
        {"--seed", A_INT, &seed, "S", "seed of the initial noise (default 0)", 0, 9e15, 0},
        {"--batch", A_INT, &batch, "B", "forward batch (default 200, or 2 x the samples if fewer)",
         1, 65536, 0},
        {"--threads", A_INT, &threads, "T", "threads", 1, 1024, 0},
        {"--precision", A_STR, &precision, "fp32|bf16",
         "products of the 3x3 convolutions (train.precision; bf16: see README)", 0, 0, 0},
        {"--set", A_MULTI, &sets, "PATH=VALUE", "override a stored setting (repeatable)", 0, 0, 0},
    };
    cmd_spec c = {"sample", "[--run DIR | --ckpt FILE] [options]",
                  "Samples from a trained model. The checkpoint carries the resolved graph and\n"
                  "settings, so nothing else is needed.",
                  sp, (int)(sizeof sp / sizeof sp[0])};
    int r = args_parse(&c, argc, argv);
    if (r) return r == 1 ? 0 : r;
    if (run && ckpt) return args_fail(&c, "give --run or --ckpt, not both");
    char pset[64];
    if (args_config_choice(&c, "--precision", "train.precision", precision, pset, sizeof pset))
        return 2;
    if (!!n + !!per_class + args_given(&c, "--class") > 1)
        return args_fail(&c, "give one of --n, --per-class, --class");
    if (strcmp(weights, "ema") && strcmp(weights, "raw"))
        return args_fail(&c, "--weights: expected ema or raw, got '%s'", weights);
    if (sampler && df_sampler_by_name(sampler) < 0)
        return args_fail(&c,
                         "--sampler: unknown '%s' (euler_maruyama, ddpm, ddim, pf_ode_heun, "
                         "dpmpp_2m, pc_langevin)",
                         sampler);
    char dir[1100], fs[4][96], op[1200];
    if (!run && !ckpt) {
        if (df_ckpt_latest_run("runs", dir, sizeof dir)) {
            fprintf(stderr,
                    "dfrun: %s; train first (dfrun train GRAPH.yaml) or give --run/--ckpt\n",
                    df_errmsg());
            return 1;
        }
        fprintf(stderr, "dfrun: sampling from the latest run, %s\n", dir);
        run = dir;
    }
    int nf = 0;
    if (sampler) {
        snprintf(fs[nf++], 96, "sampler.name=%s", sampler);
        if (!steps) snprintf(fs[nf++], 96, "sampler.steps=auto");
    }
    if (steps) snprintf(fs[nf++], 96, "sampler.steps=%lld", steps);
    if (pset[0]) snprintf(fs[nf++], 96, "%s", pset);
    for (int i = 0; i < nf && sets.n < ARGS_MAX_MULTI; i++) sets.v[sets.n++] = fs[i];
    if (threads) df_set_threads((int)threads);
    int64_t count = per_class ? 10 * per_class : n ? n : 64;
    df_gen_opts go = {run ? run : ckpt,
                      graph,
                      sets.v,
                      sets.n,
                      strcmp(weights, "raw") ? DF_WEIGHTS_EMA : DF_WEIGHTS_RAW,
                      batch,
                      count};
    df_generator *g = df_generator_open(&go);
    if (!g) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return 1;
    }
    if (df_generator_notice(g)[0]) fprintf(stderr, "dfrun: %s\n", df_generator_notice(g));
    const df_model *m = df_generator_model(g);
    const df_config *cfg = df_generator_config(g);
    int32_t *lab = NULL;
    float *x = malloc((size_t)(count * m->dim) * 4);
    int rc = 1;
    if ((per_class || args_given(&c, "--class")) && !m->y) {
        fprintf(stderr, "dfrun: this model has no class input 'y': --per-class/--class do not "
                        "apply\n");
        goto out;
    }
    if (m->y && (lab = malloc((size_t)count * 4)))
        for (int64_t i = 0; i < count; i++)
            lab[i] = per_class                   ? (int32_t)(i / per_class)
                     : args_given(&c, "--class") ? (int32_t)klass
                                                 : (int32_t)(i % 10);
    if (!x || (m->y && !lab)) {
        fprintf(stderr, "dfrun: out of memory for %lld samples\n", (long long)count);
        goto out;
    }
    double w = args_given(&c, "--guidance") ? guidance : cfg->sampler.guidance;
    df_gen_request q = {count, lab, NULL, &w, (uint64_t)seed, NULL, NULL};
    double t0 = df_seconds();
    df_status st = traj ? df_generate_trajectory(g, &q, x, traj) : df_generate(g, &q, x);
    if (!st && traj) fprintf(stderr, "dfrun: trajectory (noise to samples) -> %s\n", traj);
    if (out)
        snprintf(op, sizeof op, "%s", out);
    else if (run)
        snprintf(op, sizeof op, "%s/samples.png", run);
    else {
        const char *sl = strrchr(ckpt, '/');
        snprintf(op, sizeof op, "%.*s/samples.png", sl ? (int)(sl - ckpt) : 1, sl ? ckpt : ".");
    }
    if (!st) st = df_save_samples(op, x, count, &m->x->shape, per_class ? (int)per_class : 10);
    if (st) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        goto out;
    }
    fprintf(stderr,
            "dfrun: %lld samples with %s (%lld steps, guidance %g, %s weights) in %.1f s "
            "-> %s\n",
            (long long)count, df_sampler_name((int)cfg->sampler.name),
            (long long)cfg->sampler.steps, w, weights, df_seconds() - t0, op);
    rc = 0;
out:
    free(x);
    free(lab);
    df_generator_free(g);
    return rc;
}
