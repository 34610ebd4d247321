/* Bucketed gradient allreduce overlapping the backward pass (see dist.h). */
#include "dist_internal.h"
#include <stdlib.h>

#include "dfrun/runtime.h"

#ifdef DFRUN_HAVE_MPI
struct df_gradsync {
    const df_dist *d;
    df_params *ps;
    df_graph *g;
    int np, nb, next, flags, active; /* active: between begin and finish */
    size_t *lo, *hi;                 /* [nb] element range of each bucket in the gradient block */
    int *npar, *pending;             /* [nb] parameters with a gradient node; not yet produced */
    int *bucket_of;                  /* [np] */
    MPI_Request *req;                /* [nb] */
    float scale;
    double t_first;
    df_gradsync_stats st;
};

static void start(df_gradsync *s, int b) {
    float *x = df_params_grad(s->ps) + s->lo[b];
    int n = (int)(s->hi[b] - s->lo[b]);
    if (s->scale != 1.0f)
        for (int i = 0; i < n; i++) x[i] *= s->scale;
    if (b == 0) s->t_first = df_seconds();
    MPI_Iallreduce(MPI_IN_PLACE, x, n, MPI_FLOAT, MPI_SUM, s->d->comm, &s->req[b]);
}

/* a gradient node ran: start the buckets now complete, in order; progress */
static void on_node(void *ctx, df_node *n) {
    df_gradsync *s = ctx;
    if (!s->active) return; /* another run of the graph (validation) */
    if (n->storage == DF_STORE_GRAD && n->param >= 0 && n->param < s->np) {
        s->pending[s->bucket_of[n->param]]--;
        while ((s->flags & DF_SYNC_OVERLAP) && s->next < s->nb && s->pending[s->next] <= 0)
            start(s, s->next++);
    }
    if (s->next) { /* Open MPI advances non-blocking collectives inside MPI calls */
        int done;
        MPI_Testall(s->next, s->req, &done, MPI_STATUSES_IGNORE);
    }
}

df_gradsync *df_gradsync_new(const df_dist *d, df_params *ps, df_graph *g, size_t bucket_bytes,
                             int flags) {
    df_gradsync *s = calloc(1, sizeof *s);
    int np = df_params_count(ps);
    if (!s || np < 1) return free(s), df_seterr(DF_EINVAL, "gradient sync: no parameters"), NULL;
    *s = (df_gradsync){.d = d, .ps = ps, .g = g, .np = np, .flags = flags, .scale = 1};
    s->lo = calloc(np, sizeof *s->lo), s->hi = calloc(np, sizeof *s->hi);
    s->npar = calloc(np, sizeof(int)), s->pending = calloc(np, sizeof(int));
    s->bucket_of = calloc(np, sizeof(int)), s->req = calloc(np, sizeof *s->req);
    if (!s->lo || !s->hi || !s->npar || !s->pending || !s->bucket_of || !s->req)
        return df_gradsync_free(s), df_seterr(DF_ENOMEM, "out of memory"), NULL;
    size_t acc = 0; /* buckets from the last parameter (first gradient) down */
    for (int i = np - 1; i >= 0; i--) {
        const df_param_info *p = df_params_info(ps, i);
        if (acc == 0) s->hi[s->nb] = p->offset + (size_t)p->numel;
        s->lo[s->nb] = p->offset;
        s->bucket_of[i] = s->nb;
        acc += (size_t)p->numel * 4;
        if (acc >= bucket_bytes || i == 0) s->nb++, acc = 0;
    }
    for (int i = 0; i < df_graph_size(g); i++) {
        const df_node *n = df_graph_node(g, i);
        if (n->storage == DF_STORE_GRAD && n->param >= 0 && n->param < np)
            s->npar[s->bucket_of[n->param]]++;
    }
    for (int b = 0; b < s->nb; b++) {
        s->req[b] = MPI_REQUEST_NULL;
        s->st.bytes += (double)(s->hi[b] - s->lo[b]) * 4;
    }
    s->st.buckets = s->nb;
    df_on_node(g, on_node, s);
    return s;
}

void df_gradsync_free(df_gradsync *s) {
    if (!s) return;
    if (s->g) df_on_node(s->g, NULL, NULL);
    free(s->lo), free(s->hi), free(s->npar), free(s->pending), free(s->bucket_of), free(s->req);
    free(s);
}

void df_gradsync_begin(df_gradsync *s, float scale) {
    if (!s) return;
    for (int b = 0; b < s->nb; b++) s->pending[b] = s->npar[b];
    s->next = 0;
    s->active = 1;
    s->scale = scale;
    s->t_first = 0;
}

df_status df_gradsync_finish(df_gradsync *s) {
    if (!s) return DF_OK;
    double t0 = df_seconds();
    s->active = 0;
    if (s->flags & DF_SYNC_PROBE) {
        MPI_Barrier(s->d->comm);
        double tb = df_seconds();
        s->st.skew_s += tb - t0;
        t0 = tb;
    }
    while (s->next < s->nb) start(s, s->next++);
    int rc = MPI_Waitall(s->nb, s->req, MPI_STATUSES_IGNORE);
    double t1 = df_seconds();
    s->st.steps++;
    s->st.wait_s += t1 - t0;
    s->st.window_s += t1 - s->t_first;
    return rc == MPI_SUCCESS ? DF_OK : df_seterr(DF_EIO, "MPI_Waitall failed");
}

df_gradsync_stats df_gradsync_get_stats(const df_gradsync *s) {
    return s ? s->st : (df_gradsync_stats){0};
}
#else
df_gradsync *df_gradsync_new(const df_dist *d, df_params *ps, df_graph *g, size_t bucket_bytes,
                             int flags) {
    (void)d, (void)ps, (void)g, (void)bucket_bytes, (void)flags;
    return df_seterr(DF_ESTATE, "dfrun was built without MPI"), NULL;
}
void df_gradsync_free(df_gradsync *s) {
    (void)s;
}
void df_gradsync_begin(df_gradsync *s, float scale) {
    (void)s, (void)scale;
}
df_status df_gradsync_finish(df_gradsync *s) {
    (void)s;
    return DF_OK;
}
df_gradsync_stats df_gradsync_get_stats(const df_gradsync *s) {
    (void)s;
    return (df_gradsync_stats){0};
}
#endif
