/* Writing images: PNG grids of [-1, 1] grayscale images. */
#ifndef DFRUN_IMAGE_H
#define DFRUN_IMAGE_H
#include "dfrun/error.h"
#include <stdint.h>

/* imgs [n, h, w] in [-1, 1] laid out in rows of `cols` images with a 2-pixel
 * gap, scaled by `zoom`; written atomically (temporary file, rename). */
df_status df_png_grid(const char *path, const float *imgs, int64_t n, int h, int w, int cols,
                      int zoom);

#endif
