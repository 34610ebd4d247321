/* The one argument parser of every dfrun command: a command is a table of
 * options; usage text is generated from it; bad flags give a message naming
 * the flag, what was expected and what was found, then the usage, exit 2. */
#ifndef DFRUN_CLI_ARGS_H
#define DFRUN_CLI_ARGS_H
#include <stddef.h>

#define ARGS_MAX_MULTI 64

typedef enum {
    A_FLAG,  /* int* set to 1 */
    A_STR,   /* const char** (non-empty) */
    A_INT,   /* long long* within [lo, hi] */
    A_NUM,   /* double* within [lo, hi] */
    A_MULTI, /* args_multi*: repeatable (--set PATH=VALUE, --in NAME=FILE) */
    A_POS    /* const char**: the positional argument (one) */
} arg_type;

typedef struct {
    const char *v[ARGS_MAX_MULTI];
    int n;
} args_multi;

typedef struct {
    const char *name; /* "--steps" ("-o|--out" for an alias), or the positional's meta */
    arg_type type;
    void *dest;
    const char *meta; /* "N", "DIR", "PATH=VALUE" */
    const char *help;
    double lo, hi;
    int given; /* set by the parser */
} arg_spec;

typedef struct {
    const char *name;     /* "train" */
    const char *synopsis; /* "GRAPH.yaml [options]" */
    const char *about;    /* paragraph under the usage line */
    arg_spec *specs;
    int n;
} cmd_spec;

/* Parse argv (after the command word). 0: parsed; 1: --help printed (exit
 * 0); 2: an error was printed with the usage (exit 2). */
int args_parse(cmd_spec *c, int argc, char **argv);
/* Print the usage of a command to f. */
void args_usage(const cmd_spec *c, void *file);
/* Was option `name` given? */
int args_given(const cmd_spec *c, const char *name);
/* Print "dfrun: message" and the usage, return 2 (for checks after parsing). */
int args_fail(const cmd_spec *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A flag that sets an enum config key (--precision for train.precision):
 * NULL or one of the key's choices: 0; else args_fail naming them (2). When
 * valid and given, "key=value" is written to buf for the --set list. */
int args_config_choice(const cmd_spec *c, const char *flag, const char *key, const char *v,
                       char *buf, size_t n);

#endif
