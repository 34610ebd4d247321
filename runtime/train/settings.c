/* A config's optimizer settings (see config.h). */
#include "dfrun/config.h"

df_opt_config df_config_optim(const df_config *c) {
    int64_t k = c->train.optimizer; /* the table's order: sgd, adam, adamw */
    df_opt_config o =
        df_opt_defaults(k >= DF_OPT_SGD && k <= DF_OPT_ADAMW ? (df_opt_kind)k : DF_OPT_ADAM);
    o.lr = (float)c->train.lr;
    o.weight_decay = (float)c->train.weight_decay;
    o.beta1 = (float)c->train.betas[0];
    o.beta2 = (float)c->train.betas[1];
    o.eps = (float)c->train.eps;
    o.momentum = (float)c->train.momentum;
    return o;
}
