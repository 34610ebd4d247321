/* Thread count for OpenMP kernels and OpenBLAS. */
#include "dfrun/runtime.h"
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

static int g_threads;

int df_set_threads(int n) {
    if (n <= 0) {
        const char *e = getenv("DFRUN_THREADS");
        n = e ? atoi(e) : 0;
        if (n <= 0) n = omp_get_num_procs();
    }
    if (n > 1024) n = 1024;
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
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
