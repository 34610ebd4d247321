/* The distributed context's representation (internal to runtime/dist). */
#ifndef DFRUN_DIST_INTERNAL_H
#define DFRUN_DIST_INTERNAL_H
#include "dfrun/dist.h"
#ifdef DFRUN_HAVE_MPI
#include <mpi.h>
#endif

struct df_dist {
    int rank, size, local;
#ifdef DFRUN_HAVE_MPI
    MPI_Comm comm;
#endif
};

#endif
