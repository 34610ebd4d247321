/* Error reporting. Library functions never abort on bad input: they return a
 * df_status (or NULL) and leave a message readable with df_errmsg(). */
#ifndef DFRUN_ERROR_H
#define DFRUN_ERROR_H

typedef enum {
    DF_OK = 0,
    DF_EINVAL,     /* bad argument (NULL, out-of-range attribute, unknown name) */
    DF_ESHAPE,     /* shape mismatch between nodes */
    DF_ENOMEM,     /* allocation failed */
    DF_ERANGE,     /* a value out of range at run time (class index, label) */
    DF_ENONFINITE, /* NaN or Inf where a finite value is required (loss) */
    DF_ESTATE,     /* call out of order (run before compile, graph frozen) */
    DF_EIO         /* file I/O */
} df_status;

/* The message of the last error set on this thread ("" if none). */
const char *df_errmsg(void);

/* Set the thread's last error (printf-style) and return code. */
df_status df_seterr(df_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clear the thread's last error. */
void df_clearerr(void);

/* Short name of a status code ("shape mismatch", ...). */
const char *df_status_str(df_status s);

#endif
