/* The YAML graph DSL: a graph file describes the model (with reusable
 * blocks, variables, arithmetic, repetition and named values), the data, the
 * diffusion process, the sampler and the training. See graphs/README.md. */
#ifndef DFRUN_DSL_H
#define DFRUN_DSL_H
#include "dfrun/config.h"
#include "dfrun/graph.h"

typedef struct df_gfile df_gfile;

/* Load and validate a graph file. sets: "path=value" overrides applied
 * before validation ("vars.ch=[64,128,256]"). NULL on error; df_errmsg()
 * says what, where (file:line:col) and what was expected. */
df_gfile *df_gfile_load(const char *path, const char *const *sets, int nsets);
/* The same from text in memory (a checkpoint's stored graph); name is used
 * in messages. Includes are relative to the working directory. */
df_gfile *df_gfile_load_text(const char *text, const char *name, const char *const *sets,
                             int nsets);
void df_gfile_free(df_gfile *f);

/* The resolved document (malloc'd YAML): includes inlined, overrides
 * applied, every config key with its value and doc (cfg: the file's own if
 * NULL). Loading it gives the same model and config. */
char *df_gfile_resolved(const df_gfile *f, const df_config *cfg);

#define DF_MAX_IO 16
typedef struct {
    int n_in, n_out;
    const char *in_name[DF_MAX_IO];
    df_node *in[DF_MAX_IO];
    const char *out_name[DF_MAX_IO];
    df_node *out[DF_MAX_IO];
} df_model_io;

/* Build the model into g for batch size `batch`. Errors name file:line:col
 * and the node path. */
df_status df_gfile_build(df_gfile *f, df_graph *g, int64_t batch, df_model_io *io);

/* The file's typed and resolved config (data, diffusion, sampler, train),
 * --set overrides applied. */
const df_config *df_gfile_config(const df_gfile *f);
/* The file's path. */
const char *df_gfile_path(const df_gfile *f);

#endif
