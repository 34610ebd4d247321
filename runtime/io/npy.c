/* .npy arrays of float32: writing (atomic) and reading. */
#include "dfrun/io.h"
#include "dfrun/io.h"
#include "atomic.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

df_status df_npy_write(const char *path, const float *data, const int64_t *shape, int nd) {
    if (!path || !data || !shape || nd < 1 || nd > 8)
        return df_seterr(DF_EINVAL, "df_npy_write: bad arguments");
    char hdr[256];
    int k = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        k += snprintf(hdr + k, sizeof hdr - k, "%lld%s", (long long)shape[i],
                      nd == 1      ? ","
                      : i + 1 < nd ? ", "
                                   : "");
        n *= shape[i];
    }
    k += snprintf(hdr + k, sizeof hdr - k, "), }");
    int total = 10 + k + 1, pad = (64 - total % 64) % 64;
    df_atomic a;
    if (df_atomic_open(&a, path)) return DF_EIO;
    FILE *f = a.f;
    unsigned short hl = (unsigned short)(k + pad + 1);
    int ok = fwrite("\x93NUMPY\x01\x00", 1, 8, f) == 8 && fputc(hl & 0xff, f) != EOF &&
             fputc(hl >> 8, f) != EOF && fwrite(hdr, 1, k, f) == (size_t)k;
    for (int i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && fwrite(data, 4, (size_t)n, f) == (size_t)n;
    return df_atomic_close(&a, ok);
}

/* ---- reading: the header is a Python dict literal, parsed as one ---- */

typedef struct {
    const char *p, *end, *path;
    const char *base; /* header start, for offsets */
    char err[200];
} hp;

static int hfail(hp *h, const char *what) {
    if (!h->err[0])
        snprintf(h->err, sizeof h->err, "%s at header offset %ld", what,
                 (long)(10 + (h->p - h->base)));
    return -1;
}
static void ws(hp *h) {
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n')) h->p++;
}
static int lit(hp *h, char c) {
    ws(h);
    if (h->p < h->end && *h->p == c) return h->p++, 0;
    return -1;
}
/* a quoted string into buf */
static int str(hp *h, char *buf, int n) {
    ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"')) return hfail(h, "expected a string");
    char q = *h->p++;
    int k = 0;
    while (h->p < h->end && *h->p != q) {
        if (k >= n - 1) return hfail(h, "string too long");
        buf[k++] = *h->p++;
    }
    if (h->p >= h->end) return hfail(h, "unterminated string");
    h->p++;
    buf[k] = 0;
    return 0;
}
static int word(hp *h, const char *w) {
    ws(h);
    size_t l = strlen(w);
    if ((size_t)(h->end - h->p) >= l && !strncmp(h->p, w, l)) return h->p += l, 0;
    return -1;
}

static int shape_tuple(hp *h, df_npy *o) {
    if (lit(h, '(')) return hfail(h, "expected '(' opening the shape");
    o->nd = 0;
    for (;;) {
        if (!lit(h, ')')) return 0;
        ws(h);
        if (h->p >= h->end || *h->p < '0' || *h->p > '9') return hfail(h, "expected an extent");
        int64_t v = 0;
        while (h->p < h->end && *h->p >= '0' && *h->p <= '9')
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *h->p++ - '0', &v))
                return hfail(h, "extent too large");
        if (o->nd == DF_MAX_DIMS) return hfail(h, "more than 6 dimensions");
        o->shape[o->nd++] = v;
        if (lit(h, ',')) {
            if (!lit(h, ')')) return 0;
            return hfail(h, "expected ',' or ')' in the shape");
        }
    }
}

static int header(hp *h, df_npy *o) {
    int have_d = 0, have_f = 0, have_s = 0;
    char key[32], v[32];
    if (lit(h, '{')) return hfail(h, "the header is not a dict");
    while (lit(h, '}')) {
        if (str(h, key, sizeof key) || lit(h, ':')) return hfail(h, "expected 'key':");
        if (!strcmp(key, "descr") && !have_d++) {
            if (str(h, v, sizeof v)) return -1;
            if (strcmp(v, "<f4") && strcmp(v, "|f4") && strcmp(v, "=f4"))
                return hfail(h, "the dtype must be little-endian float32 ('<f4')");
        } else if (!strcmp(key, "fortran_order") && !have_f++) {
            if (!word(h, "True")) return hfail(h, "Fortran-ordered arrays are not supported");
            if (word(h, "False")) return hfail(h, "fortran_order must be False");
        } else if (!strcmp(key, "shape") && !have_s++) {
            if (shape_tuple(h, o)) return -1;
        } else
            return hfail(h, "unknown or repeated key in the header");
        if (lit(h, ',')) {
            if (lit(h, '}')) return hfail(h, "expected ',' or '}'");
            break;
        }
    }
    ws(h);
    if (h->p != h->end) return hfail(h, "text after the header dict");
    if (!have_d || !have_f || !have_s)
        return hfail(h, "the header lacks descr, fortran_order or shape");
    return 0;
}

df_status df_npy_read(const char *path, df_npy *o) {
    memset(o, 0, sizeof *o);
    if (!path) return df_seterr(DF_EINVAL, "df_npy_read: no path");
    FILE *f = fopen(path, "rb");
    if (!f) return df_seterr(DF_EIO, "cannot open '%s': %s", path, strerror(errno));
    unsigned char m[12];
    df_status st = DF_OK;
    char *hdr = NULL;
    if (fread(m, 1, 10, f) != 10 || memcmp(m, "\x93NUMPY", 6)) {
        st = df_seterr(DF_EINVAL, "%s: not a .npy file (bad magic at offset 0)", path);
        goto out;
    }
    size_t hl, pre = 10;
    if (m[6] == 1)
        hl = m[8] | (size_t)m[9] << 8;
    else if ((m[6] == 2 || m[6] == 3) && fread(m + 10, 1, 2, f) == 2)
        hl = m[8] | (size_t)m[9] << 8 | (size_t)m[10] << 16 | (size_t)m[11] << 24, pre = 12;
    else {
        st = df_seterr(DF_EINVAL, "%s: unsupported .npy version %d at offset 6", path, m[6]);
        goto out;
    }
    if (hl > (1u << 20) || !(hdr = malloc(hl + 1)) || fread(hdr, 1, hl, f) != hl) {
        st = df_seterr(DF_EINVAL, "%s: truncated or oversized header (%zu bytes at offset %zu)",
                       path, hl, pre);
        goto out;
    }
    hp h = {hdr, hdr + hl, path, hdr, ""};
    if (header(&h, o)) {
        st = df_seterr(DF_EINVAL, "%s: %s", path, h.err);
        goto out;
    }
    int64_t n = 1;
    for (int i = 0; i < o->nd; i++)
        if (__builtin_mul_overflow(n, o->shape[i], &n) || n > (INT64_MAX >> 3)) {
            st = df_seterr(DF_EINVAL, "%s: the shape's element count overflows", path);
            goto out;
        }
    long here = ftell(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, here, SEEK_SET);
    if (size - here != n * 4) {
        st =
            df_seterr(DF_EINVAL,
                      "%s: the header's shape needs %lld bytes of data at offset %ld, the file has "
                      "%ld",
                      path, (long long)(n * 4), here, size - here);
        goto out;
    }
    o->n = n;
    o->data = malloc(n ? (size_t)n * 4 : 4);
    if (!o->data) {
        st = df_seterr(DF_ENOMEM, "%s: out of memory for %lld values", path, (long long)n);
        goto out;
    }
    if (n && fread(o->data, 4, (size_t)n, f) != (size_t)n) {
        st = df_seterr(DF_EIO, "%s: read error", path);
        goto out;
    }
out:
    free(hdr);
    fclose(f);
    if (st) df_npy_free(o);
    return st;
}

void df_npy_free(df_npy *o) {
    if (!o) return;
    free(o->data);
    memset(o, 0, sizeof *o);
}
