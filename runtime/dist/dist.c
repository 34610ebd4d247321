/* Distributed context (see dist.h): MPI only when started by mpirun. */
#include "dist_internal.h"
#include <stdlib.h>

static df_dist g_world = {.size = 1, .local = 1}, g_self = {.size = 1, .local = 1};

int df_dist_built(void) {
#ifdef DFRUN_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

#ifdef DFRUN_HAVE_MPI
static int g_inited; /* MPI_Init_thread called here (so finalize here) */

static void setup(df_dist *d, MPI_Comm comm) {
    MPI_Comm sh;
    d->comm = comm;
    MPI_Comm_rank(comm, &d->rank);
    MPI_Comm_size(comm, &d->size);
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &sh);
    MPI_Comm_size(sh, &d->local);
    MPI_Comm_free(&sh);
}

static int mpi_active(void) {
    int on = 0, off = 0;
    MPI_Initialized(&on);
    MPI_Finalized(&off);
    return on && !off;
}
#endif

df_status df_dist_init(void) {
#ifdef DFRUN_HAVE_MPI
    int on = 0;
    MPI_Initialized(&on);
    if (!on) {
        if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_RANK"))
            return DF_OK; /* not started by mpirun: one rank, no MPI */
        int provided = 0;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return df_seterr(DF_EIO, "MPI_Init_thread failed");
        g_inited = 1;
    }
    if (g_world.comm != MPI_COMM_WORLD) {
        setup(&g_world, MPI_COMM_WORLD);
        setup(&g_self, MPI_COMM_SELF);
    }
#endif
    return DF_OK;
}

void df_dist_finalize(void) {
#ifdef DFRUN_HAVE_MPI
    if (g_inited && mpi_active()) MPI_Finalize();
    g_inited = 0;
#endif
}

void df_dist_abort(int code) {
#ifdef DFRUN_HAVE_MPI
    if (mpi_active()) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}

const df_dist *df_dist_world(void) {
    return &g_world;
}
const df_dist *df_dist_self(void) {
    return &g_self;
}
int df_dist_rank(const df_dist *d) {
    return d ? d->rank : 0;
}
int df_dist_size(const df_dist *d) {
    return d ? d->size : 1;
}
int df_dist_local_size(const df_dist *d) {
    return d ? d->local : 1;
}

df_status df_dist_sum(const df_dist *d, double *x, int n) {
    if (!d || d->size < 2) return DF_OK;
#ifdef DFRUN_HAVE_MPI
    if (MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, d->comm) != MPI_SUCCESS)
        return df_seterr(DF_EIO, "MPI_Allreduce failed");
#else
    (void)x, (void)n;
#endif
    return DF_OK;
}

df_status df_dist_bcast(const df_dist *d, void *buf, size_t bytes, int root) {
    if (!d || d->size < 2) return DF_OK;
#ifdef DFRUN_HAVE_MPI
    if (MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, d->comm) != MPI_SUCCESS)
        return df_seterr(DF_EIO, "MPI_Bcast failed");
#else
    (void)buf, (void)bytes, (void)root;
#endif
    return DF_OK;
}
