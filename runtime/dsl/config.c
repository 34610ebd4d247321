/* The config schema: one table entry per key of the data, diffusion, sampler
 * and train sections (see config.h), typed setting from DSL values or text,
 * resolution of "auto" values, and YAML output. */
#include "dfrun/config.h"
#include "config_dval.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFF(f) offsetof(df_config, f)
#define BIG 1e12

static const df_config_key keys[] = {
    {"data.kind", DF_CK_ENUM, 0, 0, "mnist|digits|moons|ring8", "mnist",
     "training data: MNIST IDX files, procedural digits, or a 2-D toy", OFF(data.kind), 1},
    {"data.path", DF_CK_STR, 0, 0, NULL, "../shared/data/mnist",
     "directory of the MNIST IDX files (relative to the working directory; data.kind mnist)",
     OFF(data.path), 1},
    {"data.val_fraction", DF_CK_NUM, 0, 0.5, NULL, "0.05",
     "fraction of the examples held out for the validation loss", OFF(data.val_fraction), 1},
    {"data.n", DF_CK_INT, 1, 1e8, NULL, "20000",
     "examples generated for digits and the 2-D toys (not mnist)", OFF(data.n), 1},

    {"diffusion.schedule", DF_CK_ENUM, 0, 0, "vp_linear|ddpm_linear|cosine|poly", "vp_linear",
     "noise schedule: VP SDE with linear beta(t), or discrete DDPM linear, cosine, polynomial",
     OFF(diffusion.schedule), 1},
    {"diffusion.beta_min", DF_CK_NUM, 0, 1e3, NULL, "auto",
     "smallest beta: 0.1 for vp_linear, 1e-4 for ddpm_linear (those schedules only)",
     OFF(diffusion.beta_min), 1},
    {"diffusion.beta_max", DF_CK_NUM, 0, 1e3, NULL, "auto",
     "largest beta: 20 for vp_linear, 0.02 for ddpm_linear (those schedules only)",
     OFF(diffusion.beta_max), 1},
    {"diffusion.T", DF_CK_INT, 1, 1e6, NULL, "auto",
     "steps of a discrete schedule: 1000, or 10 for poly (not vp_linear)", OFF(diffusion.T), 1},
    {"diffusion.power", DF_CK_NUM, 0.01, 100, NULL, "2",
     "exponent of the poly schedule (poly only)", OFF(diffusion.power), 1},
    {"diffusion.predict", DF_CK_ENUM, 0, 0, "eps|score", "eps",
     "network target: the noise eps, or the score -eps/sigma (denoising score matching)",
     OFF(diffusion.predict), 1},
    {"diffusion.t_min", DF_CK_NUM, 0, 0.5, NULL, "0.001",
     "smallest diffusion time in training and the samplers' last time", OFF(diffusion.t_min), 1},
    {"diffusion.label_dropout", DF_CK_NUM, 0, 1, NULL, "0.1",
     "probability a training label is replaced by the null class (for guidance)",
     OFF(diffusion.label_dropout), 1},
    {"diffusion.null_class", DF_CK_INT, 0, 1e6, NULL, "10",
     "the label meaning 'no class' (unconditional and guided sampling)", OFF(diffusion.null_class),
     1},

    {"sampler.name", DF_CK_ENUM, 0, 0, "euler_maruyama|ddpm|ddim|pf_ode_heun|dpmpp_2m|pc_langevin",
     "euler_maruyama", "sampler used by dfrun sample", OFF(sampler.name), 1},
    {"sampler.steps", DF_CK_INT, 1, 1e6, NULL, "auto",
     "sampler steps: 1000 (euler_maruyama, ddpm), 50 (ddim, pf_ode_heun), 10 (dpmpp_2m), 500 "
     "(pc_langevin)",
     OFF(sampler.steps), 1},
    {"sampler.eta", DF_CK_NUM, 0, 1, NULL, "0",
     "DDIM noise: 0 deterministic, 1 like DDPM (ddim only)", OFF(sampler.eta), 1},
    {"sampler.guidance", DF_CK_NUM, -100, 100, NULL, "1",
     "classifier-free guidance weight w: (1-w) eps(x,t,null) + w eps(x,t,y); 1 = conditional",
     OFF(sampler.guidance), 1},
    {"sampler.snr", DF_CK_NUM, 0, 10, NULL, "0.16",
     "Langevin corrector signal-to-noise ratio (pc_langevin only)", OFF(sampler.snr), 1},
    {"sampler.corrector_steps", DF_CK_INT, 0, 100, NULL, "1",
     "Langevin corrector steps per predictor step (pc_langevin only)", OFF(sampler.corrector_steps),
     1},
    {"sampler.clip_x0", DF_CK_NUM, 0, 1e6, NULL, "0",
     "clip the predicted clean sample x0 to [-c, c] (images in [-1, 1]: 1; 0: off; ddpm, ddim, "
     "dpmpp_2m only)",
     OFF(sampler.clip_x0), 1},

    {"train.optimizer", DF_CK_ENUM, 0, 0, "sgd|adam|adamw", "adam",
     "optimizer: SGD with momentum, Adam, AdamW (decoupled weight decay)", OFF(train.optimizer), 1},
    {"train.lr", DF_CK_NUM, 0, 10, NULL, "2e-4", "peak learning rate", OFF(train.lr), 1},
    {"train.weight_decay", DF_CK_NUM, 0, 10, NULL, "0",
     "weight decay (L2 for sgd/adam, decoupled for adamw) of matrices and kernels",
     OFF(train.weight_decay), 1},
    {"train.betas", DF_CK_NUMS, 0, 0.999999, NULL, "[0.9, 0.999]",
     "Adam(W) moment decays [beta1, beta2] (adam, adamw)", OFF(train.betas), 2},
    {"train.eps", DF_CK_NUM, 1e-12, 1, NULL, "1e-8", "Adam(W) denominator epsilon (adam, adamw)",
     OFF(train.eps), 1},
    {"train.momentum", DF_CK_NUM, 0, 0.999999, NULL, "0.9", "SGD momentum (sgd only)",
     OFF(train.momentum), 1},
    {"train.warmup", DF_CK_INT, 0, BIG, NULL, "0", "steps of linear learning-rate warm-up",
     OFF(train.warmup), 1},
    {"train.lr_schedule", DF_CK_ENUM, 0, 0, "constant|cosine", "constant",
     "learning rate after warm-up: constant, or cosine decay to 0 at the last step",
     OFF(train.lr_schedule), 1},
    {"train.batch", DF_CK_INT, 1, 1e6, NULL, "128", "examples per optimizer step", OFF(train.batch),
     1},
    {"train.steps", DF_CK_INT, 0, BIG, NULL, "0",
     "budget in optimizer steps (0: none; with no budget at all, 1000 steps)", OFF(train.steps), 1},
    {"train.epochs", DF_CK_NUM, 0, 1e9, NULL, "0",
     "budget in passes over the training examples (0: none)", OFF(train.epochs), 1},
    {"train.minutes", DF_CK_NUM, 0, 1e9, NULL, "0", "budget in wall-clock minutes (0: none)",
     OFF(train.minutes), 1},
    {"train.ema", DF_CK_NUM, 0, 1, NULL, "0.999",
     "decay of the exponential moving average of the weights (sampling uses the EMA)",
     OFF(train.ema), 1},
    {"train.ema_warmup", DF_CK_BOOL, 0, 1, NULL, "true",
     "EMA warm-up: effective decay min(ema, (1 + n) / (10 + n)) after n updates",
     OFF(train.ema_warmup), 1},
    {"train.clip", DF_CK_NUM, 0, 1e9, NULL, "1", "global gradient-norm clipping (0: off)",
     OFF(train.clip), 1},
    {"train.precision", DF_CK_ENUM, 0, 0, "fp32|bf16", "fp32",
     "precision of the 3x3 convolutions' products in training and sampling (bf16: operands "
     "rounded to bf16, float32 sums; see README)",
     OFF(train.precision), 1},
    {"train.checkpoint_every", DF_CK_INT, 1, BIG, NULL, "500",
     "steps between checkpoints (each with a validation loss)", OFF(train.checkpoint_every), 1},
    {"train.sample_every", DF_CK_INT, 0, BIG, NULL, "0",
     "steps between sample grids and loss plots (0: only at the end)", OFF(train.sample_every), 1},
    {"train.log_every", DF_CK_INT, 1, BIG, NULL, "20", "steps between log.jsonl lines",
     OFF(train.log_every), 1},
    {"train.seed", DF_CK_INT, 0, 9007199254740992.0, NULL, "0",
     "seed of the initial weights, the data order and the noise", OFF(train.seed), 1},
};
#define NKEYS ((int)(sizeof keys / sizeof keys[0]))

const df_config_key *df_config_keys(int *n) {
    if (n) *n = NKEYS;
    return keys;
}

const df_config_key *df_config_find(const char *key) {
    for (int i = 0; key && i < NKEYS; i++)
        if (!strcmp(keys[i].key, key)) return &keys[i];
    return NULL;
}

static int choice_index(const char *choices, const char *name) {
    int i = 0;
    size_t l = strlen(name);
    for (const char *p = choices; p; p = strchr(p, '|'), p = p ? p + 1 : NULL, i++)
        if (!strncmp(p, name, l) && (p[l] == '|' || !p[l])) return i;
    return -1;
}

const char *df_config_choice(const char *key, int64_t v) {
    static _Thread_local char buf[64];
    const df_config_key *k = df_config_find(key);
    if (!k || k->type != DF_CK_ENUM || v < 0) return "?";
    const char *p = k->choices;
    for (int64_t i = 0; i < v && p; i++) p = strchr(p, '|'), p = p ? p + 1 : NULL;
    if (!p) return "?";
    snprintf(buf, sizeof buf, "%.*s", (int)strcspn(p, "|"), p);
    return buf;
}

int df_config_choice_index(const char *key, const char *name) {
    const df_config_key *k = df_config_find(key);
    return k && k->type == DF_CK_ENUM && name ? choice_index(k->choices, name) : -1;
}

static void *at(df_config *c, const df_config_key *k) {
    return (char *)c + k->offset;
}
static const void *cat(const df_config *c, const df_config_key *k) {
    return (const char *)c + k->offset;
}

static int is_auto(const df_config_key *k) {
    return !strcmp(k->def, "auto");
}

static void set_auto(df_config *c, const df_config_key *k) {
    if (k->type == DF_CK_NUM)
        *(double *)at(c, k) = NAN;
    else
        *(int64_t *)at(c, k) = DF_AUTO;
}

int df_config_set_dval(df_config *c, const df_config_key *k, const dval *d, char *err, int en) {
    char shown[128];
    dval_print(d, shown, sizeof shown);
    double x = d->kind == DV_INT ? (double)d->i : d->f;
    int isnum = d->kind == DV_INT || d->kind == DV_FLOAT;
    if (d->kind == DV_STR && !strcmp(d->s, "auto") && is_auto(k)) {
        set_auto(c, k);
        return 0;
    }
    switch (k->type) {
    case DF_CK_INT:
        if (d->kind != DV_INT || x < k->lo || x > k->hi) break;
        *(int64_t *)at(c, k) = d->i;
        return 0;
    case DF_CK_NUM:
        if (!isnum || !(x >= k->lo && x <= k->hi)) break;
        *(double *)at(c, k) = x;
        return 0;
    case DF_CK_BOOL:
        if (d->kind != DV_INT || (d->i != 0 && d->i != 1)) break;
        *(int64_t *)at(c, k) = d->i;
        return 0;
    case DF_CK_STR:
        if (d->kind != DV_STR || !d->s[0] || strlen(d->s) >= DF_CONFIG_STR) break;
        snprintf((char *)at(c, k), DF_CONFIG_STR, "%s", d->s);
        return 0;
    case DF_CK_ENUM: {
        int i = d->kind == DV_STR ? choice_index(k->choices, d->s) : -1;
        if (i < 0) break;
        *(int64_t *)at(c, k) = i;
        return 0;
    }
    case DF_CK_NUMS: {
        int ok = d->kind == DV_LIST && d->n == k->n;
        for (int j = 0; ok && j < d->n; j++) {
            const dval *it = &d->items[j];
            double y = it->kind == DV_INT ? (double)it->i : it->f;
            ok = (it->kind == DV_INT || it->kind == DV_FLOAT) && y >= k->lo && y <= k->hi;
        }
        if (!ok) break;
        for (int j = 0; j < d->n; j++)
            ((double *)at(c, k))[j] =
                d->items[j].kind == DV_INT ? (double)d->items[j].i : d->items[j].f;
        return 0;
    }
    }
    const char *a = is_auto(k) ? " or auto" : "";
    switch (k->type) {
    case DF_CK_INT:
        snprintf(err, en, "%s: expected an integer in [%g, %g]%s, found %s", k->key, k->lo, k->hi,
                 a, shown);
        break;
    case DF_CK_NUM:
        snprintf(err, en, "%s: expected a number in [%g, %g]%s, found %s", k->key, k->lo, k->hi, a,
                 shown);
        break;
    case DF_CK_BOOL:
        snprintf(err, en, "%s: expected true or false, found %s", k->key, shown);
        break;
    case DF_CK_STR:
        snprintf(err, en, "%s: expected a non-empty string, found %s", k->key, shown);
        break;
    case DF_CK_ENUM:
        snprintf(err, en, "%s: expected one of %s, found %s", k->key, k->choices, shown);
        break;
    case DF_CK_NUMS:
        snprintf(err, en, "%s: expected a list of %d numbers in [%g, %g], found %s", k->key, k->n,
                 k->lo, k->hi, shown);
        break;
    }
    return -1;
}

/* text -> dval: a number, bool, list of numbers, or a string */
static int parse_text(const char *text, dval *out) {
    char *e;
    memset(out, 0, sizeof *out);
    while (*text == ' ') text++;
    if (!strcmp(text, "true") || !strcmp(text, "false")) {
        *out = dval_int(text[0] == 't');
        return 0;
    }
    long long v = strtoll(text, &e, 10);
    if (*text && !*e) {
        *out = dval_int(v);
        return 0;
    }
    double f = strtod(text, &e);
    if (*text && !*e) {
        *out = dval_float(f);
        return 0;
    }
    if (text[0] == '[') {
        out->kind = DV_LIST;
        out->items = calloc(8, sizeof *out->items);
        const char *p = text + 1;
        while (*p == ' ') p++;
        while (*p && *p != ']' && out->n < 8) {
            double y = strtod(p, &e);
            if (e == p) return dval_free(out), -1;
            out->items[out->n++] = dval_float(y);
            p = e;
            while (*p == ' ' || *p == ',') p++;
        }
        if (*p != ']' || p[1]) return dval_free(out), -1;
        return 0;
    }
    *out = dval_str(text);
    return 0;
}

df_status df_config_set(df_config *c, const char *key, const char *text) {
    const df_config_key *k = df_config_find(key);
    if (!c || !k || !text)
        return df_seterr(DF_EINVAL, "unknown config key '%s'", key ? key : "(null)");
    dval d;
    char err[300];
    if (parse_text(text, &d))
        return df_seterr(DF_EINVAL, "%s: cannot read '%s' as a value", key, text);
    int r = df_config_set_dval(c, k, &d, err, sizeof err);
    dval_free(&d);
    if (r) return df_seterr(DF_EINVAL, "%s", err);
    c->set |= 1ull << (k - keys);
    return DF_OK;
}

void df_config_defaults(df_config *c) {
    memset(c, 0, sizeof *c);
    char err[300];
    for (int i = 0; i < NKEYS; i++) {
        dval d;
        if (is_auto(&keys[i]))
            set_auto(c, &keys[i]);
        else if (!parse_text(keys[i].def, &d)) {
            df_config_set_dval(c, &keys[i], &d, err, sizeof err);
            dval_free(&d);
        }
    }
}

/* Why a key does not apply with the others' values, or NULL if it does. */
static const char *not_applicable(const df_config *c, const char *key) {
    int64_t sch = c->diffusion.schedule, sn = c->sampler.name, o = c->train.optimizer;
    if (!strcmp(key, "diffusion.beta_min") || !strcmp(key, "diffusion.beta_max"))
        return sch <= 1 ? NULL : "it applies to the vp_linear and ddpm_linear schedules only";
    if (!strcmp(key, "diffusion.T")) return sch ? NULL : "vp_linear is continuous in time (no T)";
    if (!strcmp(key, "diffusion.power"))
        return sch == 3 ? NULL : "it applies to the poly schedule only";
    if (!strcmp(key, "sampler.eta")) return sn == 2 ? NULL : "it applies to the ddim sampler only";
    if (!strcmp(key, "sampler.snr") || !strcmp(key, "sampler.corrector_steps"))
        return sn == 5 ? NULL : "it applies to the pc_langevin sampler only";
    if (!strcmp(key, "sampler.clip_x0")) return sn != 3 ? NULL : "pf_ode_heun does not predict x0";
    if (!strcmp(key, "train.momentum")) return o == 0 ? NULL : "it applies to sgd only";
    if (!strcmp(key, "train.betas") || !strcmp(key, "train.eps"))
        return o ? NULL : "it applies to adam and adamw only";
    if (!strcmp(key, "data.path"))
        return c->data.kind == DF_DATA_MNIST ? NULL : "it applies to data.kind mnist only";
    if (!strcmp(key, "data.n"))
        return c->data.kind != DF_DATA_MNIST ? NULL : "MNIST has its own number of examples";
    return NULL;
}

df_status df_config_resolve(df_config *c) {
    for (int i = 0; i < NKEYS; i++) { /* a key given where it does not apply */
        const char *why = (c->set >> i & 1) ? not_applicable(c, keys[i].key) : NULL;
        if (why) {
            char v[200];
            df_config_get(c, keys[i].key, v, sizeof v);
            return df_seterr(DF_EINVAL, "%s = %s is not used: %s", keys[i].key, v, why);
        }
    }
    int64_t sch = c->diffusion.schedule;
    if (isnan(c->diffusion.beta_min)) c->diffusion.beta_min = sch == 0 ? 0.1 : 1e-4;
    if (isnan(c->diffusion.beta_max)) c->diffusion.beta_max = sch == 0 ? 20 : 0.02;
    if (c->diffusion.T == DF_AUTO) c->diffusion.T = sch == 3 ? 10 : 1000;
    if (sch <= 1 && !(c->diffusion.beta_min < c->diffusion.beta_max))
        return df_seterr(DF_EINVAL, "diffusion.beta_min (%g) must be below diffusion.beta_max (%g)",
                         c->diffusion.beta_min, c->diffusion.beta_max);
    if (c->sampler.steps == DF_AUTO) {
        static const int64_t def[] = {1000, 1000, 50, 50, 10, 500};
        c->sampler.steps = def[c->sampler.name];
    }
    return DF_OK;
}

df_status df_config_get(const df_config *c, const char *key, char *buf, size_t n) {
    const df_config_key *k = df_config_find(key);
    if (!c || !k || !buf) return df_seterr(DF_EINVAL, "unknown config key '%s'", key ? key : "");
    const void *p = cat(c, k);
    switch (k->type) {
    case DF_CK_INT:
        if (*(const int64_t *)p == DF_AUTO && is_auto(k))
            snprintf(buf, n, "auto");
        else
            snprintf(buf, n, "%lld", (long long)*(const int64_t *)p);
        break;
    case DF_CK_NUM:
        if (isnan(*(const double *)p))
            snprintf(buf, n, "auto");
        else
            snprintf(buf, n, "%.9g", *(const double *)p);
        break;
    case DF_CK_BOOL:
        snprintf(buf, n, "%s", *(const int64_t *)p ? "true" : "false");
        break;
    case DF_CK_ENUM:
        snprintf(buf, n, "%s", df_config_choice(key, *(const int64_t *)p));
        break;
    case DF_CK_STR: { /* a double-quoted YAML string */
        const char *s = p;
        size_t j = 0;
        if (n < 3) return df_seterr(DF_EINVAL, "df_config_get: buffer too small");
        buf[j++] = '"';
        for (; *s && j + 4 < n; s++) {
            if (*s == '"' || *s == '\\') buf[j++] = '\\';
            buf[j++] = (unsigned char)*s < 32 ? ' ' : *s;
        }
        buf[j++] = '"';
        buf[j] = 0;
        break;
    }
    case DF_CK_NUMS: {
        size_t j = snprintf(buf, n, "[");
        for (int i = 0; i < k->n && j < n; i++)
            j += snprintf(buf + j, n - j, "%s%.9g", i ? ", " : "", ((const double *)p)[i]);
        if (j < n) snprintf(buf + j, n - j, "]");
        break;
    }
    }
    return DF_OK;
}

/* append to a growing buffer */
static int put(char **out, size_t *len, size_t *cap, const char *s) {
    size_t l = strlen(s);
    if (*len + l + 1 > *cap) {
        char *p = realloc(*out, *cap = 2 * *cap + l);
        if (!p) return -1;
        *out = p;
    }
    memcpy(*out + *len, s, l + 1);
    *len += l;
    return 0;
}

char *df_config_yaml(const df_config *c, int flags) {
    size_t cap = 8192, len = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    out[0] = 0;
    char sec[32] = "";
    for (int i = 0; i < NKEYS; i++) {
        const df_config_key *k = &keys[i];
        const char *dot = strchr(k->key, '.');
        char v[DF_CONFIG_STR + 16], kv[DF_CONFIG_STR + 64], line[DF_CONFIG_STR + 512];
        int sl = (int)(dot - k->key);
        if (strncmp(sec, k->key, sl) || sec[sl]) {
            snprintf(sec, sizeof sec, "%.*s", sl, k->key);
            snprintf(line, sizeof line, "%s%s:\n", len ? "\n" : "", sec);
            if (put(&out, &len, &cap, line)) return free(out), NULL;
        }
        df_config_get(c, k->key, v, sizeof v);
        const char *why = not_applicable(c, k->key);
        snprintf(kv, sizeof kv, "%s%s: %s", why ? "# " : "", dot + 1, v);
        if (why) /* kept as a comment: loading the document gives the same config */
            snprintf(line, sizeof line, "  %-30s # not used: %s\n", kv, why);
        else if (flags & DF_YAML_DOCS)
            snprintf(line, sizeof line, "  %-30s # %s%s (default %s)\n", kv,
                     (flags & DF_YAML_MARK_SET) && (c->set >> i & 1) ? "[set] " : "", k->doc,
                     k->def);
        else
            snprintf(line, sizeof line, "  %s\n", kv);
        if (put(&out, &len, &cap, line)) return free(out), NULL;
    }
    return out;
}
