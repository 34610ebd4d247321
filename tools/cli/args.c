/* The argument parser (see args.h). */
#include "args.h"
#include "dfrun/config.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int name_is(const char *names, const char *a) {
    size_t l = strlen(a);
    for (const char *p = names; p; p = strchr(p, '|'), p = p ? p + 1 : NULL)
        if (!strncmp(p, a, l) && (p[l] == '|' || !p[l])) return 1;
    return 0;
}

void args_usage(const cmd_spec *c, void *file) {
    FILE *f = file;
    fprintf(f, "usage: dfrun %s %s\n\n%s\n", c->name, c->synopsis, c->about);
    for (int i = 0; i < c->n; i++) {
        const arg_spec *s = &c->specs[i];
        if (s->type == A_POS) continue;
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", s->name, s->meta ? " " : "", s->meta ? s->meta : "");
        fprintf(f, "  %-22s %s\n", left, s->help);
    }
    fprintf(f, "  %-22s %s\n", "-h, --help", "this text");
}

int args_fail(const cmd_spec *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dfrun %s: ", c->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n");
    args_usage(c, stderr);
    return 2;
}

int args_config_choice(const cmd_spec *c, const char *flag, const char *key, const char *v,
                       char *buf, size_t n) {
    if (n) buf[0] = 0;
    if (!v) return 0;
    const df_config_key *k = df_config_find(key);
    if (k && k->choices && df_config_choice_index(key, v) < 0) {
        char list[256];
        snprintf(list, sizeof list, "%s", k->choices);
        char *bar = strchr(list, '|');
        if (bar && !strchr(bar + 1, '|')) /* two choices: "a or b" */
            return args_fail(c, "%s: expected %.*s or %s, got '%s'", flag, (int)(bar - list), list,
                             bar + 1, v);
        return args_fail(c, "%s: expected one of %s, got '%s'", flag, list, v);
    }
    snprintf(buf, n, "%s=%s", key, v);
    return 0;
}

static int value(cmd_spec *c, arg_spec *s, const char *flag, const char *v) {
    char *e;
    errno = 0;
    switch (s->type) {
    case A_STR:
        if (!v[0]) return args_fail(c, "%s: expected %s, got an empty string", flag, s->meta);
        *(const char **)s->dest = v;
        return 0;
    case A_INT: {
        long long x = strtoll(v, &e, 10);
        if (!*v || *e || errno || x < s->lo || x > s->hi)
            return args_fail(c, "%s: expected an integer from %.0f to %.0f, got '%s'", flag, s->lo,
                             s->hi, v);
        *(long long *)s->dest = x;
        return 0;
    }
    case A_NUM: {
        double x = strtod(v, &e);
        if (!*v || *e || !(x >= s->lo && x <= s->hi))
            return args_fail(c, "%s: expected a number from %g to %g, got '%s'", flag, s->lo, s->hi,
                             v);
        *(double *)s->dest = x;
        return 0;
    }
    case A_MULTI: {
        args_multi *m = s->dest;
        if (m->n == ARGS_MAX_MULTI)
            return args_fail(c, "%s: at most %d of them", flag, ARGS_MAX_MULTI);
        if (s->meta && strchr(s->meta, '=') && (!strchr(v, '=') || v[0] == '='))
            return args_fail(c, "%s: expected %s, got '%s'", flag, s->meta, v);
        m->v[m->n++] = v;
        return 0;
    }
    default:
        return 0;
    }
}

int args_parse(cmd_spec *c, int argc, char **argv) {
    arg_spec *pos = NULL;
    for (int i = 0; i < c->n; i++)
        if (c->specs[i].type == A_POS) pos = &c->specs[i];
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            args_usage(c, stdout);
            return 1;
        }
        if (a[0] == '-' && a[1]) {
            char flag[64];
            const char *eq = strchr(a, '='), *v = NULL;
            snprintf(flag, sizeof flag, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
            arg_spec *s = NULL;
            for (int k = 0; k < c->n && !s; k++)
                if (c->specs[k].type != A_POS && name_is(c->specs[k].name, flag)) s = &c->specs[k];
            if (!s) return args_fail(c, "unknown option '%s'", flag);
            s->given = 1;
            if (s->type == A_FLAG) {
                if (eq) return args_fail(c, "%s takes no value", flag);
                *(int *)s->dest = 1;
                continue;
            }
            if (eq)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else
                return args_fail(c, "%s needs a value (%s)", flag, s->meta);
            if (value(c, s, flag, v)) return 2;
            continue;
        }
        if (!pos || pos->given) return args_fail(c, "unexpected argument '%s'", a);
        pos->given = 1;
        *(const char **)pos->dest = a;
    }
    return 0;
}

int args_given(const cmd_spec *c, const char *name) {
    for (int i = 0; i < c->n; i++)
        if (name_is(c->specs[i].name, name)) return c->specs[i].given;
    return 0;
}
