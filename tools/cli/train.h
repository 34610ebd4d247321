/* dfrun train / dfrun sample (tools/train.c). */
#ifndef DFRUN_TOOLS_TRAIN_H
#define DFRUN_TOOLS_TRAIN_H
int cmd_train(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_run(int argc, char **argv);
#include <stdint.h>
/* a float32 .npy file; shape into shp[0..*nd) (tools/eval.c) */
float *npy_read(const char *path, int64_t *shp, int *nd);
#endif
