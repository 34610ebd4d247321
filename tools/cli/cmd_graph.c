/* dfrun check, config and viz: inspecting a graph file. */
#include "args.h"
#include "commands.h"
#include "dfrun/dfrun.h"
#include "dfrun/dsl.h"
#include "dfrun/op.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    const char *graph, *out;
    args_multi sets;
    long long batch, threads;
    int backward, svg, quiet;
} opts;

typedef struct {
    df_params *ps;
    df_graph *g;
    df_model_io io;
    df_node *loss;
} built;

static int build(df_gfile *f, int64_t batch, int train, built *b) {
    b->ps = df_params_new();
    b->g = df_graph_new(b->ps);
    if (df_gfile_build(f, b->g, batch, &b->io)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return -1;
    }
    for (int i = 0; i < b->io.n_out; i++) df_keep(b->g, b->io.out[i]);
    if (train) {
        df_node *y = b->io.out[0];
        if (y->dtype != DF_F32) {
            fprintf(stderr, "dfrun: output '%s' is not float32: no training memory plan\n",
                    b->io.out_name[0]);
            return -1;
        }
        df_node *tgt = df_input(b->g, "target", DF_F32, y->shape);
        b->loss = df_shape_numel(&y->shape) == 1 ? y : df_mse_loss(b->g, y, tgt);
        if (df_graph_status(b->g) || df_backward(b->g, b->loss, NULL, 0)) {
            fprintf(stderr, "dfrun: %s\n",
                    df_graph_status(b->g) ? df_graph_errmsg(b->g) : df_errmsg());
            return -1;
        }
    }
    return 0;
}

static void unbuild(built *b) {
    df_graph_free(b->g);
    df_params_free(b->ps);
}

static void human(double v, const char *unit, char *buf, int n) {
    const char *p[] = {"", "K", "M", "G", "T"};
    int k = 0;
    while (v >= 1000 && k < 4) v /= 1000, k++;
    snprintf(buf, n, "%.3g %s%s", v, p[k], unit);
}
static void mib(double bytes, char *buf, int n) {
    snprintf(buf, n, "%.1f MiB", bytes / 1048576.0);
}

static void commas(long long v, char *buf, int n) {
    char t[32];
    snprintf(t, sizeof t, "%lld", v);
    int len = (int)strlen(t), k = 0;
    for (int i = 0; i < len && k < n - 1; i++) {
        if (i && (len - i) % 3 == 0 && k < n - 1) buf[k++] = ',';
        buf[k++] = t[i];
    }
    buf[k] = 0;
}

int cmd_check(int argc, char **argv) {
    opts o = {.batch = 128};
    int explain = 0;
    arg_spec sp[] = {
        {"GRAPH.yaml", A_POS, &o.graph, NULL, NULL, 0, 0, 0},
        {"--set", A_MULTI, &o.sets, "PATH=VALUE",
         "override a setting (repeatable), e.g. --set vars.ch=[64,128,256]", 0, 0, 0},
        {"--batch", A_INT, &o.batch, "B", "batch size for the memory plan (default 128)", 1,
         1 << 20, 0},
        {"--threads", A_INT, &o.threads, "T", "threads", 1, 1024, 0},
        {"--quiet", A_FLAG, &o.quiet, NULL, "totals only", 0, 0, 0},
        {"--explain", A_FLAG, &explain, NULL,
         "also print every setting of the data, diffusion, sampler and train sections with its "
         "value, default and doc",
         0, 0, 0},
    };
    cmd_spec cs = {
        "check", "GRAPH.yaml [options]",
        "Validates GRAPH.yaml and prints, per block, each node's path, op, output shape\n"
        "and parameters, then the totals: parameters, forward FLOPs per sample, and the\n"
        "planned training memory at batch B next to the total without buffer reuse.",
        sp, (int)(sizeof sp / sizeof sp[0])};
    int r = args_parse(&cs, argc, argv);
    if (r) return r == 1 ? 0 : r;
    if (!o.graph) return args_fail(&cs, "no graph file given");
    if (o.threads) df_set_threads((int)o.threads);
    df_gfile *f = df_gfile_load(o.graph, o.sets.v, o.sets.n);
    if (!f) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return 1;
    }
    built one = {0}, tr = {0};
    int rc = 1;
    if (build(f, 1, 0, &one)) goto out;
    int64_t nparam = df_params_numel(one.ps);
    double flops = df_graph_flops(one.g, 0);
    if (!o.quiet) {
        char prev[256] = "\x01";
        printf("%-44s %-12s %-22s %12s\n", "node", "op", "output (batch 1)", "parameters");
        for (int i = 0; i < df_graph_size(one.g); i++) {
            df_node *n = df_graph_node(one.g, i);
            const df_op_desc *d = df_op_table[n->op];
            if (n->op == DF_OP_PARAM) continue;
            char blk[256], shp[96], pc[32] = "";
            snprintf(blk, sizeof blk, "%s", n->name);
            char *dot = strrchr(blk, '.');
            if (dot)
                *dot = 0;
            else
                blk[0] = 0;
            if (strcmp(blk, prev)) {
                printf("%s\n", blk[0] ? blk : "(model)");
                snprintf(prev, sizeof prev, "%s", blk);
            }
            int64_t p = 0;
            for (int k = 0; k < n->n_in; k++)
                if (n->in[k]->op == DF_OP_PARAM) p += df_shape_numel(&n->in[k]->shape);
            if (p) commas(p, pc, sizeof pc);
            df_shape_str(&n->shape, shp, sizeof shp);
            printf("  %-42s %-12s %-22s %12s\n", dot ? dot + 1 : n->name, d->name, shp, pc);
        }
        printf("\n");
    }
    if (build(f, o.batch, 1, &tr)) goto out;
    df_compile_opts co = {.plan_only = 1};
    df_plan_stats st;
    if (df_compile(tr.g, &co) || df_plan_get_stats(tr.g, &st)) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        goto out;
    }
    char a[64], b[64], c[64], d[64];
    commas(nparam, a, sizeof a);
    printf("graph       %s%s\n", o.graph, o.sets.n ? " (with --set overrides)" : "");
    printf("inputs     ");
    for (int i = 0; i < one.io.n_in; i++) {
        char s[96];
        printf(" %s %s", one.io.in_name[i], df_shape_str(&one.io.in[i]->shape, s, sizeof s));
    }
    printf("\nparameters  %s (%s)\n", a, (mib(4.0 * nparam, b, sizeof b), b));
    human(flops, "FLOP", c, sizeof c);
    printf("forward     %s per sample\n", c);
    mib((double)st.planned_bytes, a, sizeof a);
    mib((double)st.naive_bytes, b, sizeof b);
    mib((double)st.scratch_bytes, c, sizeof c);
    mib((double)st.param_bytes, d, sizeof d);
    printf(
        "training    batch %lld: activations %s planned, %s without reuse (%.0f%%); workspace %s; "
        "parameters+gradients %s\n",
        o.batch, a, b, 100.0 * st.planned_bytes / (st.naive_bytes ? st.naive_bytes : 1), c, d);
    printf("nodes       %d forward, %d backward (%d in place, %d views)\n",
           st.n_nodes - st.n_backward, st.n_backward, st.n_inplace, st.n_views);
    if (explain) {
        char *y = df_config_yaml(df_gfile_config(f), DF_YAML_DOCS | DF_YAML_MARK_SET);
        printf("\n# settings (value  # [set] doc (default))\n%s", y ? y : "");
        free(y);
    }
    rc = 0;
out:
    unbuild(&one);
    unbuild(&tr);
    df_gfile_free(f);
    return rc;
}

int cmd_config(int argc, char **argv) {
    const char *graph = NULL;
    args_multi sets = {0};
    arg_spec sp[] = {
        {"GRAPH.yaml", A_POS, &graph, NULL, NULL, 0, 0, 0},
        {"--set", A_MULTI, &sets, "PATH=VALUE", "override a setting (repeatable)", 0, 0, 0},
    };
    cmd_spec c = {"config", "GRAPH.yaml [--set PATH=VALUE]...",
                  "Prints the resolved graph document: includes inlined, overrides applied, and\n"
                  "every setting with its value, doc and default (what a run stores as\n"
                  "config.yaml and in its checkpoints).",
                  sp, (int)(sizeof sp / sizeof sp[0])};
    int r = args_parse(&c, argc, argv);
    if (r) return r == 1 ? 0 : r;
    if (!graph) return args_fail(&c, "no graph file given");
    df_gfile *f = df_gfile_load(graph, sets.v, sets.n);
    char *doc = f ? df_gfile_resolved(f, NULL) : NULL;
    if (doc)
        fputs(doc, stdout);
    else
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
    free(doc);
    df_gfile_free(f);
    return doc ? 0 : 1;
}

/* ---- viz ---- */

/* run dot with a time limit; 0 on success */
static int render_svg(const char *dotpath, const char *svgpath, int seconds) {
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", svgpath, (int)getpid());
    pid_t pid = fork();
    if (pid == 0) {
        execlp("dot", "dot", "-Tsvg", dotpath, "-o", tmp, (char *)NULL);
        _exit(127);
    }
    int status = 0, done = 0;
    for (int t = 0; t < 10 * seconds && !done; t++) {
        done = waitpid(pid, &status, WNOHANG) == pid;
        if (!done) usleep(100000);
    }
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        unlink(tmp);
        fprintf(stderr,
                "dfrun: Graphviz's dot did not finish within %d s; draw fewer nodes with "
                "--depth 1, allow more with --timeout, or write DOT with -o FILE.dot\n",
                seconds);
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) || rename(tmp, svgpath)) {
        unlink(tmp);
        fprintf(stderr, "dfrun: 'dot -Tsvg' failed\n");
        return -1;
    }
    return 0;
}

int cmd_viz(int argc, char **argv) {
    opts o = {.batch = 1};
    long long depth = -1, timeout = 60;
    arg_spec sp[] = {
        {"GRAPH.yaml", A_POS, &o.graph, NULL, NULL, 0, 0, 0},
        {"-o|--out", A_STR, &o.out, "FILE",
         "output file (default: standard output; with --svg, GRAPH.svg)", 0, 0, 0},
        {"--backward", A_FLAG, &o.backward, NULL,
         "add the autodiff nodes of a training step (loss: MSE to a target)", 0, 0, 0},
        {"--depth", A_INT, &depth, "N",
         "collapse scopes deeper than N levels into one node each (0: every node; default: 0, or "
         "2 above 300 nodes)",
         0, 64, 0},
        {"--svg", A_FLAG, &o.svg, NULL, "render with Graphviz's 'dot' (Debian package 'graphviz')",
         0, 0, 0},
        {"--timeout", A_INT, &timeout, "S", "stop dot after S seconds (default 60)", 1, 86400, 0},
        {"--set", A_MULTI, &o.sets, "PATH=VALUE", "override a setting (repeatable)", 0, 0, 0},
        {"--batch", A_INT, &o.batch, "B", "batch size (default 1)", 1, 1 << 20, 0},
    };
    cmd_spec c = {"viz", "GRAPH.yaml [options]",
                  "Writes the static graph in Graphviz DOT: blocks as clusters, edges labelled\n"
                  "with shapes; large graphs collapsed to one node per block.",
                  sp, (int)(sizeof sp / sizeof sp[0])};
    int r = args_parse(&c, argc, argv);
    if (r) return r == 1 ? 0 : r;
    if (!o.graph) return args_fail(&c, "no graph file given");
    df_gfile *f = df_gfile_load(o.graph, o.sets.v, o.sets.n);
    if (!f) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        return 1;
    }
    built b = {0};
    int rc = 1;
    if (build(f, o.batch, o.backward, &b)) goto out;
    df_dot_opts d = {o.backward, (int)depth};
    if (depth < 0) { /* a readable default for large graphs */
        int shown = 0;
        for (int i = 0; i < df_graph_size(b.g); i++) {
            df_node *nd = df_graph_node(b.g, i);
            shown += nd->op != DF_OP_PARAM && (o.backward || !nd->is_backward);
        }
        d.depth = shown > 300 ? 2 : 0;
        if (d.depth)
            fprintf(stderr,
                    "dfrun: %d nodes: scopes below 2 levels drawn as one node each "
                    "(--depth 0 draws every node)\n",
                    shown);
    }
    char dotpath[1100] = "", svgpath[1100] = "";
    if (o.svg) {
        if (system("command -v dot >/dev/null 2>&1") != 0) {
            fprintf(stderr, "dfrun: --svg needs Graphviz's 'dot': install it with "
                            "'apt-get install graphviz' (or write DOT with -o FILE.dot)\n");
            goto out;
        }
        const char *base = o.out ? o.out : o.graph;
        snprintf(svgpath, sizeof svgpath, "%.1000s", base);
        char *ext = strrchr(svgpath, '.');
        if (ext && (!strcmp(ext, ".yaml") || !strcmp(ext, ".yml") || !strcmp(ext, ".dot") ||
                    !strcmp(ext, ".svg")))
            *ext = 0;
        strcat(svgpath, ".svg");
        snprintf(dotpath, sizeof dotpath, "%.1000s.tmp.dot", svgpath);
    }
    const char *path = o.svg ? dotpath : o.out;
    df_status st = path ? df_graph_save_dot(b.g, path, &d) : df_graph_write_dot(b.g, stdout, &d);
    if (st) {
        fprintf(stderr, "dfrun: %s\n", df_errmsg());
        goto out;
    }
    if (o.svg) {
        int bad = render_svg(dotpath, svgpath, (int)timeout);
        unlink(dotpath);
        if (bad) goto out;
        fprintf(stderr, "dfrun: wrote %s\n", svgpath);
    } else if (o.out)
        fprintf(stderr, "dfrun: wrote %s\n", o.out);
    rc = 0;
out:
    unbuild(&b);
    df_gfile_free(f);
    return rc;
}
