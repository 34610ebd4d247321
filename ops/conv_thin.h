/* Thin 3x3 convolutions, stride 1, padding 1 (internal to ops/conv.c): one
 * input channel or at most THIN_OUT output channels, as a network's first
 * convolution (an image's one channel in) and its last (one channel out)
 * have. The direct and Winograd kernels put output channels in the vector
 * lanes or the rows of their register tiles, so there one channel would
 * fill one lane in sixteen or one row in eight; here the lanes are 16
 * pixels of an output row. (Measured at batch 128: with 2 or 3 channels in,
 * or 3 or more out, the direct or Winograd kernel is as fast or faster.)
 * Each output (and each image's share of a weight gradient) is summed by
 * one thread in a fixed order: results don't depend on the thread count. */
#ifndef DFRUN_CONV_THIN_H
#define DFRUN_CONV_THIN_H
#include "conv_direct.h"

#define THIN_OUT 2 /* output channels at most (else one input channel) */

struct conv_pre;
/* 1 when this build has the kernel and shape c suits it (3x3, stride 1,
 * padding 1, one input channel or at most THIN_OUT output channels, an
 * image's padded input planes of a bounded size). */
int thin_applies(const dconv_shape *c);
/* Scratch floats for thin_run. */
size_t thin_scratch_floats(const dconv_shape *c, int nthreads);
/* The same contract as wino_run (flip = 1: w is [Cin, Cout, 3, 3] used
 * transposed and rotated, the data gradient of a stride-1 conv; pre: NULL or
 * the op x is read through), float32. Each output is summed in (ci, kh, kw)
 * order, then the epilogue added. nthreads: the thread count the scratch
 * was sized for. */
void thin_run(const dconv_shape *c, const float *x, const struct conv_pre *pre, const float *w,
              int flip, const dconv_epilogue *ep, float *y, float *scratch, int nthreads);

/* Scratch floats for thin_bw_run. */
size_t thin_bw_scratch_floats(const dconv_shape *c, int nthreads);
/* dw [Cout, Cin, 3, 3] = the weight gradient of the forward conv c from x
 * (read through pre when not NULL) and gy: each image's sum over its pixels,
 * added in image order within chunks of images fixed by the shape, and the
 * chunks' sums added in order. */
void thin_bw_run(const dconv_shape *c, const float *x, const struct conv_pre *pre, const float *gy,
                 float *dw, float *scratch, int nthreads);

#endif
