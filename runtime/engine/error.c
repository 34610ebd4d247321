/* Thread-local last-error message. */
#include "dfrun/error.h"
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char g_msg[1024];

const char *df_errmsg(void) {
    return g_msg;
}

df_status df_seterr(df_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return code;
}

void df_clearerr(void) {
    g_msg[0] = 0;
}

const char *df_status_str(df_status s) {
    switch (s) {
    case DF_OK:
        return "ok";
    case DF_EINVAL:
        return "invalid argument";
    case DF_ESHAPE:
        return "shape mismatch";
    case DF_ENOMEM:
        return "out of memory";
    case DF_ERANGE:
        return "value out of range";
    case DF_ENONFINITE:
        return "non-finite value";
    case DF_ESTATE:
        return "invalid state";
    case DF_EIO:
        return "I/O error";
    }
    return "unknown error";
}
