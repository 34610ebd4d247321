/* Runs a fuzz target on saved inputs: each argument is a file or a
 * directory of files (the corpus and the crashes found so far). Exits 0 if
 * every input ran; the sanitizers abort on a memory error. */
#include "fuzz.h"
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return fprintf(stderr, "replay: cannot open %s\n", path), 1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    size_t k = buf && n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!buf || (long)k != (n > 0 ? n : 0)) return free(buf), 1;
    LLVMFuzzerTestOneInput(buf, k);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    int ran = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb)) continue; /* no crashes saved yet: fine */
        if (!S_ISDIR(sb.st_mode)) {
            bad |= run_file(argv[i]), ran++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
            bad |= run_file(p), ran++;
        }
        if (d) closedir(d);
    }
    fprintf(stderr, "replay: %d inputs\n", ran);
    return bad || !ran;
}
