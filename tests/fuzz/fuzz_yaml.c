/* Graph files: YAML, the DSL (vars, blocks, expressions, settings), building
 * the model, and the resolved document. */
#include "dfrun/dfrun.h"
#include "fuzz.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    df_gfile *f = df_gfile_load_text(text, "fuzz.yaml", NULL, 0);
    free(text);
    if (!f) return 0;
    df_params *ps = df_params_new();
    df_graph *g = df_graph_new(ps);
    df_model_io io;
    df_gfile_build(f, g, 1, &io);
    char *doc = df_gfile_resolved(f, NULL);
    if (doc) { /* the resolved document loads back */
        df_gfile *r = df_gfile_load_text(doc, "resolved", NULL, 0);
        if (!r) abort();
        df_gfile_free(r);
    }
    free(doc);
    df_graph_free(g);
    df_params_free(ps);
    df_gfile_free(f);
    return 0;
}
