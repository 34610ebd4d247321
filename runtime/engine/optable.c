/* The op table, generated from oplist.h. */
#include "dfrun/op.h"
#include <stdio.h>
#include <string.h>

const df_op_desc *const df_op_table[DF_OP_COUNT] = {
#define DF_OPDEF(E, s) [DF_OP_##E] = &df_opdesc_##s,
#include "dfrun/oplist.h"
#undef DF_OPDEF
};

int df_op_by_name(const char *name) {
    for (int i = 0; name && i < DF_OP_COUNT; i++)
        if (!strcmp(df_op_table[i]->name, name)) return i;
    return -1;
}

df_status df_shape_err(const df_node *n, const char *what, const df_shape *got) {
    char b[96];
    (void)n;
    return df_seterr(DF_ESHAPE, "expected %s, got %s", what, df_shape_str(got, b, sizeof b));
}
