/* The CLI's argument parser: lines of the input are the arguments (tools/fuzz.sh
 * runs it with -close_fd_mask=3: the usage text is not wanted). */
#include "args.h"
#include "fuzz.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    char *argv[64];
    int argc = 0;
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    for (char *s = text, *e; s && argc < 64; s = e ? e + 1 : NULL) {
        e = strchr(s, '\n');
        if (e) *e = 0;
        argv[argc++] = s;
    }
    const char *pos = NULL, *str = NULL;
    long long i = 0;
    double x = 0;
    int flag = 0;
    args_multi sets = {0};
    arg_spec sp[] = {
        {"GRAPH.yaml", A_POS, &pos, NULL, NULL, 0, 0, 0},
        {"--out|-o", A_STR, &str, "DIR", "a string", 0, 0, 0},
        {"--steps", A_INT, &i, "N", "an integer", 1, 1e12, 0},
        {"--lr", A_NUM, &x, "X", "a number", 0, 10, 0},
        {"--resume", A_FLAG, &flag, NULL, "a flag", 0, 0, 0},
        {"--set", A_MULTI, &sets, "PATH=VALUE", "repeatable", 0, 0, 0},
    };
    cmd_spec c = {"fuzz", "[options]", "The parser under fuzzing.", sp, 6};
    args_parse(&c, argc, argv);
    args_given(&c, "--steps");
    free(text);
    return 0;
}
