/* A YAML document as a small tree with source positions (from libyaml),
 * guarded against hostile input: file size, nesting depth and node count
 * (alias expansion) are bounded. Internal to the DSL. */
#ifndef DFRUN_YDOC_H
#define DFRUN_YDOC_H
#include "dfrun/error.h"
#include <stddef.h>
#include <stdint.h>

typedef enum { YN_SCALAR, YN_SEQ, YN_MAP } yn_kind;

typedef struct yn {
    yn_kind kind;
    const char *file;  /* owned by the document */
    int line, col;     /* 1-based */
    char *s;           /* scalar text */
    int plain;         /* unquoted scalar */
    int n;             /* items (seq) or pairs (map) */
    struct yn **items; /* seq items, or map values */
    struct yn **keys;  /* map keys (scalars) */
    int64_t size;      /* nodes in the subtree, aliases expanded (while loading) */
} yn;

typedef struct ydoc ydoc;

/* Parse a file (NULL root for an empty document). NULL on error with
 * df_errmsg() = "file:line:col: what". */
ydoc *ydoc_load_file(const char *path);
/* Parse text given in memory; name is used in messages. */
ydoc *ydoc_load_string(const char *text, size_t len, const char *name);
void ydoc_free(ydoc *d);
yn *ydoc_root(ydoc *d);
/* Value of key in a map, or NULL. */
yn *yn_get(const yn *map, const char *key);
/* A new scalar node owned by d (for --set overrides). */
yn *ydoc_new_scalar(ydoc *d, const char *text, const char *file, int line, int col);
/* Replace the value at a dotted path (creating maps as needed); -1 on error. */
int ydoc_set_path(ydoc *d, const char *path, yn *value);
/* Same with the value given as YAML text ("[64,128,256]", "3", "adam"). */
int ydoc_set_path_text(ydoc *d, const char *path, const char *text);

/* Emitting a document (one top-level map) as YAML text. */
typedef struct yemit yemit;
yemit *yemit_new(void);
/* A scalar (plain = 0: quoted, a string). */
void yemit_scalar(yemit *e, const char *s, int plain);
/* A whole subtree. */
void yemit_node(yemit *e, const yn *n);
void yemit_map_begin(yemit *e);
void yemit_map_end(yemit *e);
/* Close the document and return its text (malloc'd), or NULL. */
char *yemit_finish(yemit *e);

#define YDOC_MAX_BYTES (16u << 20)
#define YDOC_MAX_DEPTH 64
#define YDOC_MAX_NODES 1000000

#endif
