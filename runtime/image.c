/* PNG grids (libpng) and .npy files. */
#include "dfrun/image.h"
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static df_status finish(FILE *f, const char *tmp, const char *path, int ok) {
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return df_seterr(DF_EIO, "cannot write '%s': %s", path, strerror(e));
    }
    return DF_OK;
}

df_status df_png_grid(const char *path, const float *imgs, int64_t n, int h, int w, int cols,
                      int zoom) {
    if (!path || !imgs || n < 1 || h < 1 || w < 1 || cols < 1 || zoom < 1 || zoom > 16)
        return df_seterr(DF_EINVAL, "df_png_grid: bad arguments");
    int rows = (int)((n + cols - 1) / cols), gap = 2;
    int64_t W = (int64_t)cols * (w * zoom + gap) + gap, H = (int64_t)rows * (h * zoom + gap) + gap;
    if (W > 30000 || H > 30000)
        return df_seterr(DF_EINVAL, "df_png_grid: image too large (%lldx%lld)", (long long)W,
                         (long long)H);
    unsigned char *pix = malloc((size_t)(W * H));
    if (!pix) return df_seterr(DF_ENOMEM, "out of memory");
    memset(pix, 40, (size_t)(W * H));
    for (int64_t k = 0; k < n; k++) {
        int r = (int)(k / cols), c = (int)(k % cols);
        for (int y = 0; y < h * zoom; y++)
            for (int x = 0; x < w * zoom; x++) {
                float v = imgs[k * h * w + (y / zoom) * w + x / zoom];
                v = v < -1 ? -1 : v > 1 ? 1 : v;
                pix[(gap + r * (h * zoom + gap) + y) * W + gap + c * (w * zoom + gap) + x] =
                    (unsigned char)((v + 1) * 127.5f + 0.5f);
            }
    }
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%.1000s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(pix);
        return df_seterr(DF_EIO, "cannot create '%s': %s", tmp, strerror(errno));
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int ok = png && info;
    if (ok && setjmp(png_jmpbuf(png)))
        ok = 0;
    else if (ok) {
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8, PNG_COLOR_TYPE_GRAY,
                     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        for (int64_t y = 0; y < H; y++) png_write_row(png, pix + y * W);
        png_write_end(png, NULL);
    }
    png_destroy_write_struct(&png, &info);
    free(pix);
    return finish(f, tmp, path, ok);
}

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
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%.1000s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return df_seterr(DF_EIO, "cannot create '%s': %s", tmp, strerror(errno));
    unsigned short hl = (unsigned short)(k + pad + 1);
    int ok = fwrite("\x93NUMPY\x01\x00", 1, 8, f) == 8 && fputc(hl & 0xff, f) != EOF &&
             fputc(hl >> 8, f) != EOF && fwrite(hdr, 1, k, f) == (size_t)k;
    for (int i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && fwrite(data, 4, (size_t)n, f) == (size_t)n;
    return finish(f, tmp, path, ok);
}
