/* Setting a config key from a DSL value (internal to the DSL). */
#ifndef DFRUN_CONFIG_DVAL_H
#define DFRUN_CONFIG_DVAL_H
#include "dfrun/config.h"
#include "expr.h"

/* Check d against k's type and range and store it; -1 with err set (naming
 * the key, what was expected and what was found). "auto" is accepted for
 * keys whose default is auto. */
int df_config_set_dval(df_config *c, const df_config_key *k, const dval *d, char *err, int en);

#endif
