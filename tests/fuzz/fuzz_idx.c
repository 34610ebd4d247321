/* IDX files, gzip-compressed or raw. */
#include "dfrun/dfrun.h"
#include "fuzz.h"

static volatile double sink; /* the reads are not optimised away */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_file(data, size, ".idx");
    df_idx x;
    if (!p || df_idx_load(p, &x)) return 0;
    for (int64_t k = 0; k < x.n; k++) sink += x.data[k];
    df_idx_free(&x);
    return 0;
}
