/* Test helpers shared by the op and graph tests (CMocka). */
#ifndef DFRUN_TEST_HARNESS_H
#define DFRUN_TEST_HARNESS_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "dfrun/dfrun.h"
#include "dfrun/op.h"

/* Deterministic test data (Philox keyed on seed). */
void dft_fill_uniform(float *x, int64_t n, float lo, float hi, uint64_t seed);
void dft_fill_int(int32_t *x, int64_t n, int32_t lo, int32_t hi_excl, uint64_t seed);

/* Max |got-ref| <= atol + rtol*|ref| elementwise, else print the worst element
 * and return nonzero. */
int dft_close(const float *got, const float *ref, int64_t n, float atol, float rtol,
              const char *what);

/* Live (not fused away) nodes of op in g for which keep is true (keep NULL: all). */
int dft_live(df_graph *g, int op, int (*keep)(const df_node *));

/* Record that op passed a forward check against a naive reference. */
void dft_mark_forward(int op);
/* Record that op passed a finite-difference gradient check. */
void dft_mark_grad(int op);
/* Whether op was recorded (for the coverage test). */
int dft_has_forward(int op);
int dft_has_grad(int op);

/* One input of a gradient check: a graph input of that dtype and shape,
 * filled uniformly in [lo, hi) (ints in [ilo, ihi)). wrt: check its gradient. */
typedef struct {
    const char *name;
    df_dtype dtype;
    df_shape shape;
    int wrt;
    float lo, hi;
    int32_t ilo, ihi;
} dft_input;

/* Builds the function under test from the inputs (nodes in the order given). */
typedef df_node *(*dft_build_fn)(df_graph *g, df_node **ins, void *ctx);

/* Gradient check: loss = sum(build(inputs) * R) with R random in [-1, 1);
 * compares autodiff gradients of every wrt input against central finite
 * differences (step h, loss accumulated in double), on up to max_elems
 * elements per input (0 = 64). Elements at a kink (one-sided differences
 * disagree) are skipped. Passes when |analytic - fd| <= tol * (|fd| + scale)
 * with scale = 0.1 * max|fd| of that input. On success marks every op of the
 * built forward as gradient-checked and every GRAD_ONLY op of its backward as
 * forward-checked. Returns 0 on success (prints the worst element otherwise).
 * The run is also repeated with memory reuse off: gradients must be bitwise equal. */
int dft_gradcheck(dft_build_fn build, void *ctx, const dft_input *ins, int n_in, uint64_t seed,
                  float h, double tol, int max_elems);

/* Build + compile + run a forward graph with given inputs; returns the output
 * copied into a malloc'd buffer (caller frees) or NULL on failure. */
float *dft_forward(dft_build_fn build, void *ctx, const dft_input *ins, int n_in, void *const *data,
                   df_shape *out_shape);

#endif
