/* IDX reading (zlib's gzread reads gzip and raw files alike). */
#include "dfrun/data.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_MAX_BYTES (1ll << 31)

df_status df_idx_load(const char *path, df_idx *out) {
    if (!path || !out) return df_seterr(DF_EINVAL, "df_idx_load: NULL argument");
    memset(out, 0, sizeof *out);
    FILE *probe = fopen(path, "rb");
    if (!probe) return df_seterr(DF_EIO, "%s: cannot open: %s", path, strerror(errno));
    fclose(probe);
    gzFile f = gzopen(path, "rb");
    if (!f) return df_seterr(DF_EIO, "%s: cannot open", path);
    unsigned char h[4];
    df_status st = DF_OK;
    int k = gzread(f, h, 4);
    if (k != 4) {
        st = df_seterr(DF_EIO, "%s: too short for an IDX header (%d bytes)%s", path, k < 0 ? 0 : k,
                       k < 0 ? " (corrupt gzip data)" : "");
        goto out;
    }
    if (h[0] || h[1]) {
        st = df_seterr(DF_EIO, "%s: not an IDX file (magic %02x %02x, expected 00 00)", path, h[0],
                       h[1]);
        goto out;
    }
    if (h[2] != 0x08) {
        st = df_seterr(DF_EIO, "%s: IDX element type 0x%02x, expected 0x08 (unsigned byte)", path,
                       h[2]);
        goto out;
    }
    if (h[3] < 1 || h[3] > 4) {
        st = df_seterr(DF_EIO, "%s: IDX with %d dimensions, expected 1 to 4", path, h[3]);
        goto out;
    }
    out->ndim = h[3];
    int64_t n = 1;
    for (int i = 0; i < out->ndim; i++) {
        unsigned char b[4];
        if (gzread(f, b, 4) != 4) {
            st = df_seterr(DF_EIO, "%s: truncated IDX header", path);
            goto out;
        }
        uint32_t d = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (d < 1 || d > (1u << 28)) {
            st = df_seterr(DF_EIO, "%s: IDX extent %u of dimension %d out of range", path, d, i);
            goto out;
        }
        out->dims[i] = (int32_t)d;
        n *= d;
        if (n > IDX_MAX_BYTES) {
            st = df_seterr(DF_EIO, "%s: IDX data of more than 2 GiB", path);
            goto out;
        }
    }
    out->n = n;
    /* The buffer grows as data arrives (doubling from 16 MiB), so a short
     * file whose header promises 2 GiB costs what it holds, not 2 GiB. */
    int64_t got = 0, cap = 0;
    while (got < n) {
        if (got == cap) {
            int64_t ncap = cap ? 2 * cap : (int64_t)1 << 24;
            if (ncap > n) ncap = n;
            unsigned char *p = realloc(out->data, (size_t)ncap);
            if (!p) {
                st = df_seterr(DF_ENOMEM, "%s: cannot allocate %lld bytes", path, (long long)ncap);
                goto out;
            }
            out->data = p, cap = ncap;
        }
        int want = cap - got > (1 << 30) ? (1 << 30) : (int)(cap - got);
        int r = gzread(f, out->data + got, (unsigned)want);
        if (r <= 0) break;
        got += r;
    }
    if (got != n) {
        int errnum = 0;
        const char *zmsg = gzerror(f, &errnum);
        st = df_seterr(DF_EIO, "%s: truncated: %lld of %lld data bytes%s%s", path, (long long)got,
                       (long long)n, errnum < 0 ? "; " : "", errnum < 0 ? zmsg : "");
        goto out;
    }
    unsigned char extra;
    if (gzread(f, &extra, 1) == 1) {
        st = df_seterr(DF_EIO,
                       "%s: %lld bytes of data expected from the header, but the file is longer",
                       path, (long long)n);
        goto out;
    }
out:
    gzclose(f);
    if (st) df_idx_free(out);
    return st;
}

void df_idx_free(df_idx *x) {
    if (!x) return;
    free(x->data);
    memset(x, 0, sizeof *x);
}
