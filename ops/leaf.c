/* Leaves: graph inputs and parameters have no kernel; the planner gives
 * inputs an arena buffer and parameters their slot in the store. */
#include "dfrun/op.h"

const df_op_desc df_opdesc_input = {.name = "input", .flags = DF_OPF_LEAF};
const df_op_desc df_opdesc_param = {.name = "param", .flags = DF_OPF_LEAF};
