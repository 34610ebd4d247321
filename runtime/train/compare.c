/* dfrun against its PyTorch peer, alternating in one session (see bench.h).
 * Each side runs in a child process of its own, so that each peak resident
 * set is its own: dfrun's in a fork() of this process (df_bench), the peer as
 * `python peer bench ...` with its JSON line read from a pipe. */
#define _GNU_SOURCE
#include "dfrun/bench.h"
#include "dfrun/runtime.h"
#include "parallel.h"
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* The value of "key": in a JSON line; NAN if absent. */
static double json_num(const char *s, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(s, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

/* Read all of fd into buf (NUL-terminated, truncated at cap - 1). */
static size_t read_all(int fd, char *buf, size_t cap) {
    size_t n = 0;
    for (;;) {
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        n += (size_t)k;
        if (n == cap - 1) break;
    }
    buf[n] = 0;
    return n;
}

static df_status wait_child(pid_t pid, const char *what) {
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR) return df_seterr(DF_EIO, "%s: waitpid: %s", what, strerror(errno));
    if (WIFSIGNALED(ws)) return df_seterr(DF_EIO, "%s was killed by signal %d", what, WTERMSIG(ws));
    if (WEXITSTATUS(ws))
        return df_seterr(DF_EIO, "%s failed (exit status %d)", what, WEXITSTATUS(ws));
    return DF_OK;
}

/* dfrun's side: df_bench in a forked child (on `threads` threads; 0: the
 * current count), the result through a pipe. */
static df_status run_ours(const df_compare_opts *o, int threads, df_bench_result *r) {
    int fd[2];
    if (pipe(fd)) return df_seterr(DF_EIO, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]), close(fd[1]);
        return df_seterr(DF_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(fd[0]);
        struct {
            df_status st;
            df_bench_result r;
            char msg[512];
        } out = {0};
        if (threads > 0) df_set_threads(threads);
        out.st = df_bench(o->graph, o->sets, o->nsets, o->batch, o->sample_batch, o->steps, &out.r);
        snprintf(out.msg, sizeof out.msg, "%s", out.st ? df_errmsg() : "");
        ssize_t w = write(fd[1], &out, sizeof out);
        _exit(w == (ssize_t)sizeof out ? 0 : 3);
    }
    close(fd[1]);
    struct {
        df_status st;
        df_bench_result r;
        char msg[512];
    } in;
    size_t got = 0;
    while (got < sizeof in) {
        ssize_t k = read(fd[0], (char *)&in + got, sizeof in - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd[0]);
    df_status st = wait_child(pid, "the dfrun benchmark");
    if (got != sizeof in) return st ? st : df_seterr(DF_EIO, "the dfrun benchmark gave no result");
    if (in.st) return df_seterr(in.st, "%s", in.msg);
    *r = in.r;
    return st;
}

/* The peer's side: python peer bench --threads T --batch B --steps N
 * --sample-batch S [--channels C], one JSON line on stdout. */
static df_status run_peer(const df_compare_opts *o, df_peer_result *r) {
    char th[16], b[24], st_[16], sb[24];
    snprintf(th, sizeof th, "%d", df_get_threads());
    snprintf(b, sizeof b, "%lld", (long long)o->batch);
    snprintf(st_, sizeof st_, "%d", o->steps);
    snprintf(sb, sizeof sb, "%lld", (long long)o->sample_batch);
    char *argv[16] = {(char *)o->python,
                      (char *)o->peer,
                      "bench",
                      "--threads",
                      th,
                      "--batch",
                      b,
                      "--steps",
                      st_,
                      "--sample-batch",
                      sb};
    int argc = 11;
    if (o->peer_channels) argv[argc++] = "--channels", argv[argc++] = (char *)o->peer_channels;
    argv[argc] = NULL;
    int fd[2];
    if (pipe(fd)) return df_seterr(DF_EIO, "pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    pid_t pid;
    int e = posix_spawn(&pid, o->python, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (e) {
        close(fd[0]);
        return df_seterr(DF_EIO, "cannot run the peer '%s %s': %s", o->python, o->peer,
                         strerror(e));
    }
    char out[8192];
    read_all(fd[0], out, sizeof out);
    close(fd[0]);
    df_status st = wait_child(pid, "the peer");
    if (st) return df_seterr(st, "%s (%s %s)", df_errmsg(), o->python, o->peer);
    const char *line = strrchr(out, '{');
    if (!line || isnan(json_num(line, "train_img_per_s")))
        return df_seterr(DF_EIO, "the peer printed no result line: '%.200s'", out);
    r->params = (int64_t)json_num(line, "params");
    r->train_img_per_s = json_num(line, "train_img_per_s");
    r->eval_img_per_s = json_num(line, "eval_img_per_s");
    r->peak_rss_mib = json_num(line, "peak_rss_mib");
    return DF_OK;
}

/* Both sides once, ours first in even rounds, and the same network size. */
static df_status run_pair(const df_compare_opts *o, int k, df_bench_result *ours,
                          df_peer_result *peer) {
    df_status st;
    if (k % 2 == 0) {
        if (!(st = run_ours(o, 0, ours))) st = run_peer(o, peer);
    } else {
        if (!(st = run_peer(o, peer))) st = run_ours(o, 0, ours);
    }
    if (!st && peer->params != ours->params)
        st = df_seterr(DF_EINVAL,
                       "the peer's network has %lld parameters, the graph's %lld: give the "
                       "peer's channels (--peer-channels)",
                       (long long)peer->params, (long long)ours->params);
    return st;
}

/* A competing single-threaded busy process (a user's other job). */
static pid_t start_busy(void) {
    pid_t pid = fork();
    if (pid == 0) {
        volatile unsigned long x = 0;
        for (;;) x++;
    }
    return pid;
}

df_status df_bench_compare(const df_compare_opts *o, df_compare_round_fn on_round, void *ctx) {
    if (!o || !o->graph || !o->python || !o->peer || o->rounds < 1)
        return df_seterr(DF_EINVAL, "df_bench_compare: graph, python, peer and rounds >= 1 needed");
    if (access(o->peer, R_OK))
        return df_seterr(DF_EIO, "the peer benchmark '%s' cannot be read: %s", o->peer,
                         strerror(errno));
    if (access(o->python, X_OK))
        return df_seterr(DF_EIO, "the peer's interpreter '%s' cannot be run: %s", o->python,
                         strerror(errno));
    df_status st = DF_OK;
    for (int k = 0; k < o->rounds && !st; k++) {
        df_bench_result ours, ours_q;
        df_peer_result peer, peer_q;
        /* alternate which side goes first: drifts in the machine's speed cancel */
        if (o->busy) /* both sides quiet first, in the same order */
            st = run_pair(o, k, &ours_q, &peer_q);
        pid_t busy = 0;
        if (!st && o->busy && (busy = start_busy()) < 0)
            st = df_seterr(DF_EIO, "fork: %s", strerror(errno));
        if (!st) st = run_pair(o, k, &ours, &peer);
        if (busy > 0) {
            kill(busy, SIGKILL);
            waitpid(busy, NULL, 0);
        }
        if (!st && on_round)
            on_round(ctx, k, &ours, &peer, o->busy ? &ours_q : NULL, o->busy ? &peer_q : NULL);
    }
    return st;
}

/* ---- the machine's own scaling ---- */
#define SPIN_LANES 64  /* independent multiply-adds per step: a few vector registers */
#define SPIN_PIECES 16 /* pieces per thread */
typedef struct {
    int64_t steps;    /* per piece */
    float mul, add;   /* set at run time: the compiler cannot fold the loop */
    float sink[1024]; /* per worker: keeps the arithmetic */
} spin_job;
static void spin_pieces(void *ctx, int64_t i0, int64_t i1, int worker) {
    spin_job *j = ctx;
    float a[SPIN_LANES], mul = j->mul, add = j->add;
    for (int l = 0; l < SPIN_LANES; l++) a[l] = 1.0f + (float)l * 1e-3f;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t r = 0; r < j->steps; r++)
            for (int l = 0; l < SPIN_LANES; l++) a[l] = a[l] * mul + add;
    float s = 0;
    for (int l = 0; l < SPIN_LANES; l++) s += a[l];
    j->sink[worker & 1023] = s;
}
/* seconds for n pieces of fn on t threads */
static double loop_time(int t, int64_t n, df_loop_fn fn, void *ctx) {
    df_set_threads(t);
    double t0 = df_seconds();
    df_parallel_for(n, 1, fn, ctx);
    return df_seconds() - t0;
}
double df_cpu_scaling(int threads) {
    int old = df_get_threads();
    static spin_job j; /* 4 KiB: off the stack */
    j.steps = 1 << 12;
    j.mul = 0.5f + (float)(threads > 0) * 0.25f, j.add = 0.25f; /* converges to 1, stays finite */
    double t = 0;
    while ((t = loop_time(1, 1, spin_pieces, &j)) < 2e-3 && j.steps < ((int64_t)1 << 40))
        j.steps *= 4;
    j.steps = (int64_t)((double)j.steps * 0.02 / (t > 0 ? t : 1e-9)) + 1; /* ~20 ms a piece */
    double t1 = loop_time(1, SPIN_PIECES, spin_pieces, &j);
    double tn = loop_time(threads, (int64_t)SPIN_PIECES * threads, spin_pieces, &j);
    df_set_threads(old);
    return tn > 0 ? threads * t1 / tn : 0;
}

/* ---- the memory's own scaling ---- */
#define TRIAD_FLOATS ((int64_t)24 << 20) /* 96 MiB an array: beyond any cache here */
#define TRIAD_PIECES 64
typedef struct {
    float *a, *b, *c;
} triad_job;
static void triad_pieces(void *ctx, int64_t p0, int64_t p1, int worker) {
    const triad_job *j = ctx;
    int64_t per = TRIAD_FLOATS / TRIAD_PIECES;
    (void)worker;
    for (int64_t i = p0 * per; i < p1 * per; i++) j->c[i] = j->a[i] + 1.5f * j->b[i];
}
double df_memory_scaling(int threads) {
    int old = df_get_threads();
    triad_job j = {malloc(TRIAD_FLOATS * 4), malloc(TRIAD_FLOATS * 4), malloc(TRIAD_FLOATS * 4)};
    double r = 0;
    if (j.a && j.b && j.c) {
        for (int64_t i = 0; i < TRIAD_FLOATS; i++) j.a[i] = 1, j.b[i] = 2, j.c[i] = 0;
        double t1 = 1e30, tn = 1e30;
        for (int k = 0; k < 3; k++) { /* the best of three of each */
            double a = loop_time(1, TRIAD_PIECES, triad_pieces, &j),
                   b = loop_time(threads, TRIAD_PIECES, triad_pieces, &j);
            t1 = a < t1 ? a : t1, tn = b < tn ? b : tn;
        }
        r = t1 / tn;
    }
    free(j.a), free(j.b), free(j.c); /* unmapped: a child fork()ed later doesn't share them */
    df_set_threads(old);
    return r;
}

df_status df_bench_scaling(const df_compare_opts *o, df_scaling_round_fn on_round, void *ctx) {
    if (!o || !o->graph || o->rounds < 1)
        return df_seterr(DF_EINVAL, "df_bench_scaling: graph and rounds >= 1 needed");
    int many = df_get_threads();
    df_status st = DF_OK;
    for (int k = 0; k < o->rounds && !st; k++) {
        df_bench_result one, all;
        double cpu = 0, mem = 0;
        /* alternate which goes first: drifts in the machine's speed cancel */
        if (k % 2 == 0) {
            if (!(st = run_ours(o, 1, &one)))
                cpu = df_cpu_scaling(many), mem = df_memory_scaling(many),
                st = run_ours(o, many, &all);
        } else {
            if (!(st = run_ours(o, many, &all)))
                cpu = df_cpu_scaling(many), mem = df_memory_scaling(many),
                st = run_ours(o, 1, &one);
        }
        if (!st && on_round) on_round(ctx, k, &one, &all, cpu, mem);
    }
    return st;
}
