/* Fuzz targets of the readers (libFuzzer's entry point). Each target is
 * built twice: with clang's -fsanitize=fuzzer for fuzzing (tools/fuzz.sh),
 * and with replay.c's main to run the saved corpus and every crash found so
 * far in the normal and sanitizer test builds. */
#ifndef DFRUN_FUZZ_H
#define DFRUN_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a file (the readers take paths): one per process, rewritten
 * for every input. NULL if it cannot be written. */
static inline const char *fuzz_file(const uint8_t *data, size_t size, const char *ext) {
    static char path[128];
    snprintf(path, sizeof path, "/tmp/dfrun_fuzz_%d%s", (int)getpid(), ext);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    size_t k = size ? fwrite(data, 1, size, f) : 0;
    fclose(f);
    return k == size ? path : NULL;
}

#endif
