/* PNG grids of grayscale images (libpng). */
#include "dfrun/image.h"
#include "atomic.h"
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    df_atomic a;
    if (df_atomic_open(&a, path)) {
        free(pix);
        return DF_EIO;
    }
    FILE *f = a.f;
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
    return df_atomic_close(&a, ok);
}
