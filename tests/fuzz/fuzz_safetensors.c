/* safetensors files and checkpoint metadata. */
#include "dfrun/dfrun.h"
#include "fuzz.h"

static volatile double sink; /* the reads are not optimised away */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_file(data, size, ".safetensors");
    df_ckpt c;
    if (!p || df_ckpt_open(p, &c)) return 0;
    for (int i = 0; i < df_st_count(c.st); i++) { /* touch every tensor's bytes */
        const df_st_tensor *t = df_st_at(c.st, i);
        int64_t n = df_shape_numel(&t->shape);
        for (int64_t k = 0; k < n; k++) sink += ((const float *)t->data)[k];
    }
    df_ckpt_close(&c);
    return 0;
}
