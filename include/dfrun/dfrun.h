/* dfrun: a dataflow-graph deep-learning runtime. Umbrella header: the
 * engine (graphs, autodiff, parameters, optimizers), I/O, the graph DSL and
 * config, diffusion maths, and the run layer (trainer, sampler, checkpoints,
 * evaluation, benchmarks). The kernel-level op.h is not part of it. */
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
#include "dfrun/plot.h"
#include "dfrun/config.h"
#include "dfrun/dsl.h"
#include "dfrun/model.h"
#include "dfrun/checkpoint.h"
#include "dfrun/train.h"
#include "dfrun/sample.h"
#include "dfrun/eval.h"
#include "dfrun/bench.h"
#include "dfrun/dist.h"
#endif
