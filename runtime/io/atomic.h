/* Atomic file writes shared by every writer of the library: write into a
 * temporary file next to the target, fsync, rename over the target, fsync
 * the directory. A failed or interrupted write never destroys the file it
 * would replace. Internal to the library. */
#ifndef DFRUN_IO_ATOMIC_H
#define DFRUN_IO_ATOMIC_H
#include "dfrun/error.h"
#include <stdio.h>

typedef struct {
    FILE *f;    /* write here */
    char *tmp;  /* "<path>.tmp.<pid>" */
    char *path; /* the target */
} df_atomic;

/* Open a temporary file for path; DF_EIO/DF_EINVAL with a message on failure. */
df_status df_atomic_open(df_atomic *a, const char *path);
/* Finish: ok = 0 (or any write error seen on the stream) discards the
 * temporary file and keeps the old target; else rename it into place. */
df_status df_atomic_close(df_atomic *a, int ok);

#endif
