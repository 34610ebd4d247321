/* What the processor is and which of the instruction sets dfrun can use it
 * has, read at run time (see runtime.h). */
#include "dfrun/runtime.h"
#include <stdio.h>
#include <string.h>

static int has(const char *flags, const char *f) {
    size_t n = strlen(f);
    for (const char *p = flags; (p = strstr(p, f)); p += n)
        if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || !p[n])) return 1;
    return 0;
}

int df_cpu_has_bf16(void) {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

const char *df_cpu_summary(void) {
    static char out[256];
    if (out[0]) return out;
    char model[128] = "unknown processor", line[4096], flags[4096] = "";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        char *v = strchr(line, ':');
        if (!v) continue;
        v += v[1] == ' ' ? 2 : 1;
        v[strcspn(v, "\n")] = 0;
        if (!strncmp(line, "model name", 10) && !strcmp(model, "unknown processor"))
            snprintf(model, sizeof model, "%s", v);
        if (!strncmp(line, "flags", 5) && !flags[0]) snprintf(flags, sizeof flags, "%s", v);
    }
    if (f) fclose(f);
    snprintf(out, sizeof out, "%s;%s%s%s%s", model, has(flags, "avx512f") ? " avx512f" : "",
             has(flags, "avx512_bf16") ? " avx512_bf16" : "",
             has(flags, "amx_tile") ? " amx_tile" : "", has(flags, "amx_bf16") ? " amx_bf16" : "");
    return out;
}
