/* The typed run configuration: every key of a graph file's data, diffusion,
 * sampler and train sections has one entry in one table (name, type, range,
 * default, one-line doc). The DSL validates those sections against the table
 * and fills a df_config (expressions and variables work in every section);
 * the trainer and the samplers read only the typed values. */
#ifndef DFRUN_CONFIG_H
#define DFRUN_CONFIG_H
#include "dfrun/error.h"
#include "dfrun/optim.h"
#include <stddef.h>
#include <stdint.h>

typedef enum {
    DF_CK_INT,  /* int64_t */
    DF_CK_NUM,  /* double */
    DF_CK_STR,  /* char[DF_CONFIG_STR] */
    DF_CK_ENUM, /* int64_t: index into choices */
    DF_CK_BOOL, /* int64_t: 0 or 1 */
    DF_CK_NUMS  /* double[n] */
} df_config_type;

#define DF_CONFIG_STR 512
#define DF_AUTO (-1) /* an "auto" integer/enum: derived when the config is resolved */

/* Enum values (indices into the table's choices). */
enum { DF_DATA_MNIST, DF_DATA_DIGITS, DF_DATA_MOONS, DF_DATA_RING8 };
enum { DF_PREDICT_EPS, DF_PREDICT_SCORE };
enum { DF_LR_CONSTANT, DF_LR_COSINE };

typedef struct {
    struct {
        int64_t kind; /* DF_DATA_* */
        char path[DF_CONFIG_STR];
        double val_fraction;
        int64_t n;
    } data;
    struct {
        int64_t schedule; /* df_sched_kind */
        double beta_min, beta_max;
        int64_t T;
        double power;
        int64_t predict; /* DF_PREDICT_* */
        double t_min, label_dropout;
        int64_t null_class;
    } diffusion;
    struct {
        int64_t name; /* df_sampler_kind */
        int64_t steps;
        double eta, guidance, snr;
        int64_t corrector_steps;
        double clip_x0;
    } sampler;
    struct {
        int64_t optimizer; /* df_opt_kind order: sgd, adam, adamw */
        double lr, weight_decay, betas[2], eps, momentum;
        int64_t warmup, lr_schedule, batch, steps;
        double epochs, minutes, ema;
        int64_t ema_warmup;
        double clip;
        int64_t precision; /* DF_PRECISION_* (graph.h) */
        int64_t checkpoint_every, sample_every, log_every, seed;
    } train;
    uint64_t set; /* bit i: key i of the table was given (not a default) */
} df_config;

typedef struct {
    const char *key; /* "train.lr" */
    df_config_type type;
    double lo, hi;       /* allowed range (numbers, list items) */
    const char *choices; /* DF_CK_ENUM: "adam|adamw|sgd" */
    const char *def;     /* default as YAML text; "auto": derived, the doc says how */
    const char *doc;     /* one line */
    size_t offset;       /* of the value in df_config */
    int n;               /* DF_CK_NUMS: number of items */
} df_config_key;

/* The table: *n entries. */
const df_config_key *df_config_keys(int *n);
/* Entry of a dotted key, or NULL. */
const df_config_key *df_config_find(const char *key);
/* Every key at its default ("auto" ones left as DF_AUTO / NaN). */
void df_config_defaults(df_config *c);
/* Fill "auto" values from the others (beta range from the schedule, sampler
 * steps from the sampler, ...) and reject keys given where they do not
 * apply (diffusion.T with vp_linear, sampler.eta without ddim, ...). */
df_status df_config_resolve(df_config *c);

/* Set a key from text ("1e-3", "cosine", "[0.9, 0.99]", "true", or "auto"
 * where the default is auto); the type and range are checked against the
 * table. */
df_status df_config_set(df_config *c, const char *key, const char *text);
/* The value of a key as YAML text into buf. */
df_status df_config_get(const df_config *c, const char *key, char *buf, size_t n);

/* The four sections as YAML text (malloc'd). flags: DF_YAML_DOCS adds each
 * key's doc and default as a comment, DF_YAML_MARK_SET marks keys that were
 * given ("[set]"). Keys that do not apply are written as comments. */
enum { DF_YAML_DOCS = 1, DF_YAML_MARK_SET = 2 };
char *df_config_yaml(const df_config *c, int flags);

/* Choice name of an enum key's value ("dpmpp_2m"), or "?". */
const char *df_config_choice(const char *key, int64_t v);
/* Index of a choice of an enum key, or -1. */
int df_config_choice_index(const char *key, const char *name);

/* The optimizer of the train section (kind, lr, betas, eps, momentum, weight decay). */
df_opt_config df_config_optim(const df_config *c);

#endif
