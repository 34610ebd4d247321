/* Direct convolution with AVX-512 register tiles (internal to ops/conv.c).
 * NCHW in and out; weights repacked per call to [group][Cin][KH][KW][32]
 * (32 output channels per group); input rows zero-padded per work item in
 * the thread's scratch. Each output is summed by one thread in a fixed order
 * (ci, kh, kw): results don't depend on the thread count. */
#ifndef DFRUN_CONV_DIRECT_H
#define DFRUN_CONV_DIRECT_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t B, Cin, H, W, Cout, KH, KW, s, p, Ho, Wo;
} dconv_shape;

/* What a forward adds to each output after the sum: bias[co] (NULL: none),
 * then add: nothing (NULL), the same element of a tensor [B, Cout, Ho, Wo],
 * or (per_channel) one value per image and channel, add[b * Cout + co]. The
 * sums are rounded as ((conv + bias) + add), as the separate ops would. */
typedef struct {
    const float *bias, *add;
    int per_channel;
} dconv_epilogue;

/* 1 when this build and shape use the direct kernel. */
int dconv_available(const dconv_shape *c);
/* Scratch floats needed. */
size_t dconv_scratch_floats(const dconv_shape *c, int nthreads);
/* y [B, Cout, Ho, Wo] = conv(x [B, Cin, H, W], w) + the epilogue (NULL:
 * none). With flip = 0, w is [Cout, Cin, KH, KW]; with flip = 1, w is
 * [Cin, Cout, KH, KW] used transposed and rotated 180 degrees (the data
 * gradient of a stride-1 conv). nthreads: the thread count the scratch was
 * sized for. */
void dconv_run(const dconv_shape *c, const float *x, const float *w, int flip,
               const dconv_epilogue *ep, float *y, float *scratch, int nthreads);

/* 1 when the weight-gradient kernel applies (3x3 kernels). */
int dconv_bw_available(const dconv_shape *c);
size_t dconv_bw_scratch_floats(const dconv_shape *c, int nthreads);
/* dw [Cout, Cin, 3, 3] = sum over images and pixels of gy x (the weight
 * gradient of the forward conv c), in fixed image chunks summed in order. */
void dconv_bw_run(const dconv_shape *c, const float *x, const float *gy, float *dw, float *scratch,
                  int nthreads);

/* Data gradient of a strided (s >= 2) forward conv c, by output phase:
 * dx [B, Cin, H, W] from gy [B, Cout, Ho, Wo] and w [Cout, Cin, KH, KW]. */
int dconv_bd_available(const dconv_shape *c);
size_t dconv_bd_scratch_floats(const dconv_shape *c, int nthreads);
void dconv_bd_run(const dconv_shape *c, const float *gy, const float *w, float *dx, float *scratch,
                  int nthreads);

#endif
