/* safetensors read/write (see io.h). The header parser accepts exactly the
 * JSON subset the format uses and rejects everything else with a message. */
#define _GNU_SOURCE
#include "dfrun/io.h"
#include "atomic.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER (100u << 20)

struct df_st_file {
    unsigned char *buf;     /* the header (8-byte length + JSON) */
    unsigned char *data;    /* the data section, 64-byte aligned */
    size_t size;            /* of the whole file */
    unsigned char **copies; /* aligned copies of tensors whose offset is not a multiple of 4 */
    int ncopies;
    df_st_tensor *t;
    char **names;
    int n, cap;
    char **meta; /* key, value pairs */
    int nmeta;
};

/* ---------- writing ---------- */

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static const char *st_dtype(df_dtype t) {
    return t == DF_I32 ? "I32" : "F32";
}

df_status df_st_save(const char *path, const df_st_tensor *t, int n, const char *const *meta,
                     int nmeta) {
    if (!path || (n > 0 && !t) || n < 0 || nmeta < 0 || (nmeta > 0 && !meta))
        return df_seterr(DF_EINVAL, "df_st_save: bad arguments");
    /* header in memory */
    char *hdr = NULL;
    size_t hlen = 0;
    FILE *h = open_memstream(&hdr, &hlen);
    if (!h) return df_seterr(DF_ENOMEM, "df_st_save: out of memory");
    fputc('{', h);
    if (nmeta) {
        fputs("\"__metadata__\":{", h);
        for (int k = 0; k < nmeta; k++) {
            if (k) fputc(',', h);
            json_str(h, meta[2 * k] ? meta[2 * k] : "");
            fputc(':', h);
            json_str(h, meta[2 * k + 1] ? meta[2 * k + 1] : "");
        }
        fputc('}', h);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (!t[i].name || !t[i].data) {
            fclose(h);
            free(hdr);
            return df_seterr(DF_EINVAL, "df_st_save: tensor %d has no name or data", i);
        }
        uint64_t bytes = (uint64_t)df_shape_numel(&t[i].shape) * 4;
        if (i || nmeta) fputc(',', h);
        json_str(h, t[i].name);
        fprintf(h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype(t[i].dtype));
        for (int j = 0; j < t[i].shape.nd; j++)
            fprintf(h, "%s%lld", j ? "," : "", (long long)t[i].shape.d[j]);
        fprintf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                (unsigned long long)(off + bytes));
        off += bytes;
    }
    fputc('}', h);
    fclose(h);
    while (hlen % 8) { /* pad with spaces so data starts 8-aligned */
        char *p = realloc(hdr, hlen + 1);
        if (!p) {
            free(hdr);
            return df_seterr(DF_ENOMEM, "df_st_save: out of memory");
        }
        hdr = p;
        hdr[hlen++] = ' ';
    }

    df_atomic a;
    df_status st = df_atomic_open(&a, path);
    if (!st) {
        unsigned char le[8];
        for (int k = 0; k < 8; k++) le[k] = (unsigned char)((uint64_t)hlen >> (8 * k));
        int ok = fwrite(le, 1, 8, a.f) == 8 && fwrite(hdr, 1, hlen, a.f) == hlen;
        for (int i = 0; ok && i < n; i++) {
            size_t bytes = (size_t)df_shape_numel(&t[i].shape) * 4;
            ok = fwrite(t[i].data, 1, bytes, a.f) == bytes;
        }
        st = df_atomic_close(&a, ok);
    }
    free(hdr);
    return st;
}

/* ---------- reading ---------- */

typedef struct {
    const char *p, *end, *path;
    int depth;
} jp;

static df_status jerr(jp *j, const char *what) {
    return df_seterr(DF_EIO, "'%s': bad safetensors header: %s", j->path, what);
}
static void ws(jp *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
        j->p++;
}
static int eat(jp *j, char c) {
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}
/* a JSON string into a malloc'd buffer */
static char *jstr(jp *j) {
    ws(j);
    if (j->p >= j->end || *j->p != '"') return NULL;
    j->p++;
    size_t cap = 32, n = 0;
    char *s = malloc(cap);
    while (s && j->p < j->end && *j->p != '"') {
        unsigned c = (unsigned char)*j->p++;
        if (c < 0x20) break;
        if (c == '\\') {
            if (j->p >= j->end) break;
            char e = *j->p++;
            if (e == 'n')
                c = '\n';
            else if (e == 't')
                c = '\t';
            else if (e == 'r')
                c = '\r';
            else if (e == 'b')
                c = '\b';
            else if (e == 'f')
                c = '\f';
            else if (e == '"' || e == '\\' || e == '/')
                c = (unsigned char)e;
            else if (e == 'u' && j->end - j->p >= 4) {
                char hx[5] = {j->p[0], j->p[1], j->p[2], j->p[3], 0}, *ep;
                c = (unsigned)strtoul(hx, &ep, 16);
                if (*ep || c == 0 || c > 0x7f) c = '?'; /* names are ASCII in practice */
                j->p += 4;
            } else
                break;
        }
        if (n + 2 > cap) {
            char *t = realloc(s, cap *= 2);
            if (!t) break;
            s = t;
        }
        s[n++] = (char)c;
    }
    if (!s || j->p >= j->end || *j->p != '"') {
        free(s);
        return NULL;
    }
    j->p++;
    s[n] = 0;
    return s;
}
static int juint(jp *j, uint64_t *v) {
    ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return 0;
    uint64_t x = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (x > (UINT64_MAX - 9) / 10) return 0;
        x = x * 10 + (uint64_t)(*j->p++ - '0');
    }
    *v = x;
    return 1;
}
/* [u, u, ...] with at most max entries */
static int jarr(jp *j, uint64_t *v, int max) {
    int n = 0;
    if (!eat(j, '[')) return -1;
    if (eat(j, ']')) return 0;
    do {
        if (n >= max || !juint(j, &v[n])) return -1;
        n++;
    } while (eat(j, ','));
    return eat(j, ']') ? n : -1;
}

static df_status add_tensor(df_st_file *f, char *name) {
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 64;
        df_st_tensor *t = realloc(f->t, cap * sizeof *t);
        if (!t) return df_seterr(DF_ENOMEM, "out of memory");
        f->t = t;
        char **nm = realloc(f->names, cap * sizeof *nm);
        if (!nm) return df_seterr(DF_ENOMEM, "out of memory");
        f->names = nm;
        f->cap = cap;
    }
    f->names[f->n] = name;
    memset(&f->t[f->n], 0, sizeof f->t[f->n]);
    f->t[f->n].name = name;
    f->n++;
    return DF_OK;
}

static df_status parse_header(df_st_file *f, jp *j, size_t data_size, const unsigned char *data) {
    if (!eat(j, '{')) return jerr(j, "expected '{'");
    if (eat(j, '}')) goto end;
    do {
        char *key = jstr(j);
        if (!key) return jerr(j, "expected a quoted name");
        if (!eat(j, ':')) {
            free(key);
            return jerr(j, "expected ':'");
        }
        if (!eat(j, '{')) {
            free(key);
            return jerr(j, "expected '{' after a name");
        }
        if (!strcmp(key, "__metadata__")) {
            free(key);
            if (!eat(j, '}')) do {
                    char *k = jstr(j), *v = NULL;
                    if (!k || !eat(j, ':') || !(v = jstr(j))) {
                        free(k);
                        return jerr(j, "metadata must map strings to strings");
                    }
                    char **m = realloc(f->meta, (f->nmeta + 1) * 2 * sizeof *m);
                    if (!m) {
                        free(k);
                        free(v);
                        return df_seterr(DF_ENOMEM, "out of memory");
                    }
                    f->meta = m;
                    m[2 * f->nmeta] = k;
                    m[2 * f->nmeta + 1] = v;
                    f->nmeta++;
                } while (eat(j, ','));
            else
                continue;
            if (!eat(j, '}')) return jerr(j, "expected '}' after metadata");
            continue;
        }
        if (add_tensor(f, key)) {
            free(key);
            return DF_ENOMEM;
        }
        df_st_tensor *t = &f->t[f->n - 1];
        int have = 0;
        uint64_t offs[2] = {0, 0}, dims[DF_MAX_DIMS + 1];
        int nd = -1;
        do {
            char *fld = jstr(j);
            if (!fld || !eat(j, ':')) {
                free(fld);
                return jerr(j, "expected a field name and ':'");
            }
            if (!strcmp(fld, "dtype")) {
                char *dt = jstr(j);
                if (!dt || (strcmp(dt, "F32") && strcmp(dt, "I32"))) {
                    df_seterr(DF_EIO, "'%s': tensor '%s' has dtype %s (supported: F32, I32)",
                              j->path, key, dt ? dt : "?");
                    free(dt);
                    free(fld);
                    return DF_EIO;
                }
                t->dtype = strcmp(dt, "F32") ? DF_I32 : DF_F32;
                free(dt);
                have |= 1;
            } else if (!strcmp(fld, "shape")) {
                nd = jarr(j, dims, DF_MAX_DIMS + 1);
                if (nd < 0 || nd > DF_MAX_DIMS) {
                    free(fld);
                    return jerr(j, "shape must be a list of at most 6 integers");
                }
                have |= 2;
            } else if (!strcmp(fld, "data_offsets")) {
                if (jarr(j, offs, 2) != 2) {
                    free(fld);
                    return jerr(j, "data_offsets must be [begin, end]");
                }
                have |= 4;
            } else {
                free(fld);
                return jerr(j, "unknown field in a tensor entry");
            }
            free(fld);
        } while (eat(j, ','));
        if (!eat(j, '}') || have != 7)
            return jerr(j, "a tensor entry needs dtype, shape, data_offsets");
        t->shape.nd = nd ? nd : 1;
        t->shape.d[0] = 1;
        uint64_t numel = 1;
        for (int k = 0; k < nd; k++) {
            if (dims[k] == 0 || dims[k] > (1ull << 40) || numel > (1ull << 40))
                return jerr(j, "tensor extent out of range");
            t->shape.d[k] = (int64_t)dims[k];
            numel *= dims[k];
        }
        if (offs[0] > offs[1] || offs[1] > data_size || offs[1] - offs[0] != numel * 4) {
            df_seterr(DF_EIO,
                      "'%s': tensor '%s': data_offsets [%llu, %llu] do not match its shape "
                      "(%llu bytes) or the data size %zu (file truncated?)",
                      j->path, key, (unsigned long long)offs[0], (unsigned long long)offs[1],
                      (unsigned long long)(numel * 4), data_size);
            return DF_EIO;
        }
        if (offs[0] % 4) { /* legal but unaligned for float reads: keep an aligned copy */
            unsigned char **c = realloc(f->copies, (f->ncopies + 1) * sizeof *c);
            if (!c) return df_seterr(DF_ENOMEM, "out of memory");
            f->copies = c;
            if (!(c[f->ncopies] = malloc(numel * 4)))
                return df_seterr(DF_ENOMEM, "'%s': cannot allocate %llu bytes", j->path,
                                 (unsigned long long)(numel * 4));
            memcpy(c[f->ncopies], data + offs[0], numel * 4);
            t->data = c[f->ncopies++];
        } else
            t->data = data + offs[0];
    } while (eat(j, ','));
    if (!eat(j, '}')) return jerr(j, "expected ',' or '}'");
end:
    ws(j);
    if (j->p != j->end) return jerr(j, "trailing bytes after the header object");
    return DF_OK;
}

df_st_file *df_st_load(const char *path) {
    if (!path) {
        df_seterr(DF_EINVAL, "df_st_load: path is NULL");
        return NULL;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        df_seterr(DF_EIO, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    df_st_file *f = calloc(1, sizeof *f);
    struct stat sb;
    if (!f || fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        df_seterr(DF_EIO, "'%s' is not a regular file", path);
        goto fail;
    }
    f->size = (size_t)sb.st_size;
    if (f->size < 8) {
        df_seterr(DF_EIO, "'%s' is too short for a safetensors file (%zu bytes)", path, f->size);
        goto fail;
    }
    unsigned char le[8];
    if (fread(le, 1, 8, fp) != 8) {
        df_seterr(DF_EIO, "'%s': read failed", path);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int k = 0; k < 8; k++) hlen |= (uint64_t)le[k] << (8 * k);
    if (hlen > MAX_HEADER || hlen > f->size - 8) {
        df_seterr(DF_EIO,
                  "'%s': header length %llu exceeds the file (%zu bytes): not a "
                  "safetensors file, or truncated",
                  path, (unsigned long long)hlen, f->size);
        goto fail;
    }
    size_t dsize = f->size - 8 - (size_t)hlen;
    f->buf = malloc(hlen + 1);
    f->data = aligned_alloc(64, (dsize + 64) / 64 * 64); /* tensors start aligned */
    if (!f->buf || !f->data) {
        df_seterr(DF_ENOMEM, "'%s': cannot allocate %zu bytes", path, f->size);
        goto fail;
    }
    if (fread(f->buf, 1, hlen, fp) != hlen || fread(f->data, 1, dsize, fp) != dsize) {
        df_seterr(DF_EIO, "'%s': read failed", path);
        goto fail;
    }
    jp j = {(const char *)f->buf, (const char *)f->buf + hlen, path, 0};
    if (parse_header(f, &j, dsize, f->data)) goto fail;
    fclose(fp);
    return f;
fail:
    fclose(fp);
    df_st_free(f);
    return NULL;
}

void df_st_free(df_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->names[i]);
    for (int i = 0; i < 2 * f->nmeta; i++) free(f->meta[i]);
    free(f->names);
    free(f->t);
    free(f->meta);
    for (int i = 0; i < f->ncopies; i++) free(f->copies[i]);
    free(f->copies);
    free(f->buf);
    free(f->data);
    free(f);
}

int df_st_count(const df_st_file *f) {
    return f ? f->n : 0;
}
const df_st_tensor *df_st_at(const df_st_file *f, int i) {
    return (f && i >= 0 && i < f->n) ? &f->t[i] : NULL;
}
const df_st_tensor *df_st_find(const df_st_file *f, const char *name) {
    for (int i = 0; f && name && i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}
const char *df_st_meta(const df_st_file *f, const char *key) {
    for (int i = 0; f && key && i < f->nmeta; i++)
        if (!strcmp(f->meta[2 * i], key)) return f->meta[2 * i + 1];
    return NULL;
}
