/* dfrun: a dataflow-graph deep-learning runtime. Umbrella header. */
#ifndef DFRUN_H
#define DFRUN_H
#include "dfrun/error.h"
#include "dfrun/tensor.h"
#include "dfrun/params.h"
#include "dfrun/graph.h"
#include "dfrun/rng.h"
#include "dfrun/optim.h"
#include "dfrun/runtime.h"
#include "dfrun/io.h"
#include "dfrun/data.h"
#include "dfrun/image.h"
#include "dfrun/diffusion.h"
#endif
