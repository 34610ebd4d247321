/* .npy arrays. */
#include "dfrun/dfrun.h"
#include "fuzz.h"

static volatile double sink; /* the reads are not optimised away */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_file(data, size, ".npy");
    df_npy a;
    if (!p || df_npy_read(p, &a)) return 0;
    for (int64_t k = 0; k < a.n; k++) sink += a.data[k];
    df_npy_free(&a);
    return 0;
}
