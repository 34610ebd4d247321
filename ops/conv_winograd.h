/* Winograd convolution for 3x3 kernels, stride 1, padding 1 (internal to
 * ops/conv.c). With F(4x4, 3x3) each 4 x 4 block of outputs ("tile") of one
 * image and channel comes from a 6 x 6 input patch: V = BT d B, then for
 * each of the 36 positions a product M = U V over the input channels
 * (U = G g GT, the transformed weights), then y = AT M A: 36 multiplications
 * per 16 outputs instead of 144. F(7x7, 3x3) (9 x 9 patches, 81 per 49) is
 * used instead, in the forward and both gradients, where its tiles fit the
 * plane well (sides 7, 14, 21) and the operands are float32. Pieces are
 * fixed runs of tiles (chosen from the shape alone) handed out dynamically;
 * every output is computed by one thread in a fixed order, so results don't
 * depend on the thread count. */
#ifndef DFRUN_CONV_WINOGRAD_H
#define DFRUN_CONV_WINOGRAD_H
#include "conv_direct.h"

/* 1 when this build has the kernel and the shape suits it (3x3, stride 1,
 * padding 1, at least 4 input channels: with 1 the direct kernel is faster),
 * whether or not the switch is on: scratch is sized for it either way. */
int wino_applies(const dconv_shape *c);
/* wino_applies and the switch is on. */
int wino_available(const dconv_shape *c);
/* Scratch floats needed. */
size_t wino_scratch_floats(const dconv_shape *c, int nthreads);
struct conv_pre;
/* The same contract as dconv_run, bf16 = 1: the products from operands
 * rounded to bf16, summed in float32 (flip = 1: w is [Cin, Cout, 3, 3] used
 * transposed and rotated, the data gradient of a stride-1 conv). pre: NULL,
 * or the op folded into the convolution's reading of x (conv_pre.h: a
 * groupnorm_silu or a nearest upsample; each piece computes it for one
 * channel of its rows at a time, so it never goes to memory). cache: a node's slot (df_exec_ctx) or
 * NULL: the transformed weights are kept there with a copy of w, and reused while w is unchanged.
 */
void wino_run(const dconv_shape *c, const float *x, const struct conv_pre *pre, const float *w,
              int flip, const dconv_epilogue *ep, float *y, float *scratch, int nthreads, int bf16,
              void **cache);
/* The output tile side shape c runs with (4 or 7), 0 when Winograd is off
 * or doesn't apply. With bf16, only F(4,3) convolutions (tile 4) use bf16
 * products; F(7,3) ones stay float32. */
int wino_tile(const dconv_shape *c);
/* Weight transforms computed so far (tests: a kept one is reused). */
long wino_weight_transforms(void);

/* The weight gradient (conv_winograd_bw.c) of the forward conv c, where
 * wino_applies; the same contract as dconv_bw_run. pre: NULL, or the op x is
 * read through (conv_pre.h), made for the images of the tiles being
 * transformed, one at a time, in a buffer of the thread's. */
int wino_bw_applies(const dconv_shape *c);
int wino_bw_available(const dconv_shape *c);
size_t wino_bw_scratch_floats(const dconv_shape *c, int nthreads);
void wino_bw_run(const dconv_shape *c, const float *x, const struct conv_pre *pre, const float *gy,
                 float *dw, float *scratch, int nthreads, int bf16);

/* bf16 products (conv_winograd_bf16.c): 1 when they use vdpbf16ps (the CPU
 * has AVX512_BF16 and emulation is not forced); wino_bf16_force_emulation(1)
 * makes them widen the bf16 pairs to float32 instead (tests compare both). */
int wino_bf16_native(void);
void wino_bf16_force_emulation(int on);

/* The switch: 0 off, 1 on (the tile size chosen per shape), 4 F(4,3) only,
 * 7 F(7,3) wherever Winograd applies (tests). 1 by default; DFRUN_WINOGRAD=
 * 0, 4 or 7 in the environment at the first convolution sets it, and
 * df_conv_set_winograd overrides both (other values mean 1). */
void df_conv_set_winograd(int mode);
int df_conv_winograd(void);

#endif
