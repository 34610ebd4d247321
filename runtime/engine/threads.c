/* Thread count for the kernels (dfrun's pool, parallel.h). OpenBLAS runs
 * single-threaded inside the kernels' pieces. */
#define _GNU_SOURCE
#include "dfrun/runtime.h"
#include <cblas.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

static int g_threads;

int df_set_threads(int n) {
    if (n <= 0) {
        const char *e = getenv("DFRUN_THREADS");
        n = e ? atoi(e) : 0;
        cpu_set_t cs; /* the cores this process may run on (mpirun --bind-to, taskset) */
        if (n <= 0 && sched_getaffinity(0, sizeof cs, &cs) == 0) n = CPU_COUNT(&cs);
        if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
        if (n <= 0) n = 1;
    }
    if (n > 1024) n = 1024;
    g_threads = n;
    openblas_set_num_threads(1);
    return n;
}

int df_get_threads(void) {
    if (!g_threads) df_set_threads(0);
    return g_threads;
}

const char *df_blas_flavour(void) {
    switch (openblas_get_parallel()) {
    case 0:
        return "serial";
    case 1:
        return "pthreads";
    case 2:
        return "openmp";
    }
    return "unknown";
}
