/* All op tests in one process, then the coverage test: every op of the table
 * must have passed a forward check and (unless gradient-only or a leaf) a
 * finite-difference gradient check. Usage: test_ops [family ...] */
#include "harness.h"
#include <stdio.h>
#include <string.h>

#define DFT_FAMILIES                                                                               \
    X(conv)                                                                                        \
    X(winograd)                                                                                    \
    X(prenorm)                                                                                     \
    X(shape) X(elementwise) X(reduce) X(dense) X(embed) X(activation) X(norm) X(softmax) X(loss)

#define X(f) int dft_run_##f(void) __attribute__((weak));
DFT_FAMILIES
#undef X

static void test_coverage(void **state) {
    (void)state;
    int missing = 0;
    for (int op = 0; op < DF_OP_COUNT; op++) {
        const df_op_desc *d = df_op_table[op];
        if (d->flags & DF_OPF_LEAF) continue;
        if (!dft_has_forward(op)) {
            fprintf(stderr, "op '%s' has no passing forward check\n", d->name);
            missing++;
        }
        if (!(d->flags & DF_OPF_GRAD_ONLY) && !dft_has_grad(op)) {
            fprintf(stderr, "op '%s' has no passing gradient check\n", d->name);
            missing++;
        }
    }
    assert_int_equal(missing, 0);
}

int main(int argc, char **argv) {
    int fails = 0, all = argc < 2;
    df_set_threads(0);
    struct {
        const char *name;
        int (*fn)(void);
    } fams[] = {
#define X(f) {#f, dft_run_##f},
        DFT_FAMILIES
#undef X
    };
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
        int want = all;
        for (int a = 1; a < argc; a++) want |= !strcmp(argv[a], fams[i].name);
        if (!want) continue;
        if (!fams[i].fn) {
            fprintf(stderr, "op test family '%s' is missing\n", fams[i].name);
            fails++;
            continue;
        }
        fails += fams[i].fn();
    }
    if (all) {
        const struct CMUnitTest t[] = {cmocka_unit_test(test_coverage)};
        fails += cmocka_run_group_tests_name("coverage", t, NULL, NULL);
    }
    return fails ? 1 : 0;
}
