/* Atomic file writes (see atomic.h). */
#define _GNU_SOURCE
#include "atomic.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

df_status df_atomic_open(df_atomic *a, const char *path) {
    memset(a, 0, sizeof *a);
    if (!path || !path[0]) return df_seterr(DF_EINVAL, "no file name given (an empty path)");
    a->path = strdup(path);
    a->tmp = malloc(strlen(path) + 32);
    if (!a->path || !a->tmp) {
        free(a->path), free(a->tmp);
        return df_seterr(DF_ENOMEM, "out of memory");
    }
    sprintf(a->tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) a->f = fdopen(fd, "wb");
    if (!a->f) {
        int e = errno;
        if (fd >= 0) close(fd), unlink(a->tmp);
        df_status st = df_seterr(DF_EIO, "cannot create '%s': %s", a->tmp, strerror(e));
        free(a->path), free(a->tmp);
        a->path = a->tmp = NULL;
        return st;
    }
    return DF_OK;
}

static void sync_dir(const char *path) {
    char *d = strdup(path);
    if (!d) return;
    int dfd = open(dirname(d), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(d);
}

df_status df_atomic_close(df_atomic *a, int ok) {
    if (!a->f) return df_seterr(DF_EINVAL, "df_atomic_close: not open");
    int err = 0;
    ok = ok && !ferror(a->f);
    if (ok && (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0)) ok = 0, err = errno;
    if (fclose(a->f) != 0 && ok) ok = 0, err = errno;
    a->f = NULL;
    df_status st = DF_OK;
    if (!ok)
        st = df_seterr(DF_EIO, "writing '%s' failed%s%s (the previous '%s' is untouched)", a->tmp,
                       err ? ": " : "", err ? strerror(err) : "", a->path);
    else if (rename(a->tmp, a->path) != 0)
        st = df_seterr(DF_EIO, "cannot rename '%s' to '%s': %s", a->tmp, a->path, strerror(errno));
    if (st)
        unlink(a->tmp);
    else
        sync_dir(a->path);
    free(a->tmp), free(a->path);
    a->tmp = a->path = NULL;
    return st;
}
