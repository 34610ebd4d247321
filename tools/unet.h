/* The canonical unet_mnist network (../shared/spec/unet_mnist.md) built with
 * the C API: the golden reference the YAML DSL must reproduce, and the model
 * of the whole-network benchmark. */
#ifndef DFRUN_TOOLS_UNET_H
#define DFRUN_TOOLS_UNET_H
#include "dfrun/dfrun.h"

typedef struct {
    int ch[4], nlevels; /* channels per level */
    int nres, groups, heads, tdim, emb, classes;
} unet_cfg;

/* Defaults of the spec: ch [32, 64, 128], 2 res blocks, 8 groups, 4 heads. */
unet_cfg unet_default(void);

typedef struct {
    df_node *x, *t, *y; /* inputs [B,1,28,28], [B], [B] int32 */
    df_node *out;       /* [B,1,28,28] */
} unet_io;

/* Build the network for batch B into g; returns the output (NULL on error,
 * df_graph_errmsg(g) says why). */
df_node *unet_build(df_graph *g, const unet_cfg *c, int64_t B, unet_io *io);

#endif
