/* IDX loading (gzip and raw, truncated and corrupt files), the real MNIST
 * test set when ../shared/data/mnist exists, the toys and procedural digits. */
#include "harness.h"
#include "dfrun/data.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#ifndef DFRUN_SOURCE_DIR
#define DFRUN_SOURCE_DIR "."
#endif

static char dir[] = "/tmp/dfrun_data_XXXXXX";

static void write_bytes(const char *path, const unsigned char *b, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, b, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

static size_t make_idx(unsigned char *b, int n, int h, int w) {
    unsigned char hdr[16] = {0, 0, 8, 3,
                             0, 0, 0, (unsigned char)n,
                             0, 0, 0, (unsigned char)h,
                             0, 0, 0, (unsigned char)w};
    memcpy(b, hdr, 16);
    for (int i = 0; i < n * h * w; i++) b[16 + i] = (unsigned char)(i * 37);
    return 16 + (size_t)n * h * w;
}

static void test_idx(void **state) {
    (void)state;
    unsigned char b[4096];
    size_t len = make_idx(b, 3, 5, 4);
    char p[512];
    for (int gz = 0; gz < 2; gz++) {
        snprintf(p, sizeof p, "%s/a%d.idx", dir, gz);
        write_bytes(p, b, len, gz);
        df_idx x;
        assert_int_equal(df_idx_load(p, &x), DF_OK);
        assert_int_equal(x.ndim, 3);
        assert_int_equal(x.dims[0], 3);
        assert_int_equal(x.dims[2], 4);
        assert_memory_equal(x.data, b + 16, 60);
        df_idx_free(&x);
        /* every truncation fails with a message naming the file */
        for (size_t cut = 0; cut < len; cut += 7) {
            write_bytes(p, b, cut, gz);
            assert_int_not_equal(df_idx_load(p, &x), DF_OK);
            assert_non_null(strstr(df_errmsg(), p));
        }
    }
    df_idx x;
    snprintf(p, sizeof p, "%s/bad.idx", dir);
    unsigned char c[sizeof b];
    memcpy(c, b, len);
    c[2] = 0x0d; /* float type */
    write_bytes(p, c, len, 0);
    assert_int_equal(df_idx_load(p, &x), DF_EIO);
    assert_non_null(strstr(df_errmsg(), "0x0d"));
    memcpy(c, b, len);
    c[0] = 0x1f; /* junk magic */
    write_bytes(p, c, len, 0);
    assert_int_equal(df_idx_load(p, &x), DF_EIO);
    assert_non_null(strstr(df_errmsg(), "not an IDX file"));
    write_bytes(p, b, len, 0);
    FILE *f = fopen(p, "ab");
    fputc(1, f);
    fclose(f);
    assert_int_equal(df_idx_load(p, &x), DF_EIO);
    assert_non_null(strstr(df_errmsg(), "longer"));
    /* corrupt gzip: flip bytes in the deflate stream */
    snprintf(p, sizeof p, "%s/c.idx.gz", dir);
    write_bytes(p, b, len, 1);
    f = fopen(p, "r+b");
    fseek(f, 20, SEEK_SET);
    fputc(0xff, f);
    fputc(0x00, f);
    fclose(f);
    df_status st = df_idx_load(p, &x);
    if (st == DF_OK) df_idx_free(&x); /* a flip may land in data bytes only */
    assert_int_equal(df_idx_load("/nonexistent/x.idx", &x), DF_EIO);
    /* a header promising 2 GiB (256 x 256 x 32768) over 17 bytes: truncated,
     * and the buffer grows with the data instead of taking 2 GiB at once
     * (the fuzzer's input, tests/fuzz/crashes/idx/) */
    unsigned char big[33] = {0, 0, 8, 3, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0x80, 0};
    write_bytes(p, big, sizeof big, 0);
    assert_int_equal(df_idx_load(p, &x), DF_EIO);
    assert_non_null(strstr(df_errmsg(), "truncated: 17 of 2147483648 data bytes"));
}

static void test_real_mnist(void **state) {
    (void)state;
    char d[512];
    snprintf(d, sizeof d, "%s/../shared/data/mnist", DFRUN_SOURCE_DIR);
    df_dataset ds;
    if (df_mnist_load(d, &ds)) {
        fprintf(stderr, "note: no MNIST at %s (%s); real-data check skipped\n", d, df_errmsg());
        skip();
    }
    assert_int_equal(ds.n, 10000);
    assert_int_equal(ds.h, 28);
    int hist[10] = {0};
    double m = 0;
    for (int64_t i = 0; i < ds.n; i++) hist[ds.y[i]]++;
    for (int64_t i = 0; i < ds.n * 784; i++) {
        assert_true(ds.x[i] >= -1 && ds.x[i] <= 1);
        m += ds.x[i];
    }
    m /= ds.n * 784.0;
    for (int k = 0; k < 10; k++) assert_true(hist[k] > 800 && hist[k] < 1200);
    assert_true(m > -0.8 && m < -0.7); /* ~13% ink */
    df_dataset_free(&ds);
}

static void test_toys_and_digits(void **state) {
    (void)state;
    df_dataset t;
    assert_int_equal(df_toy_make("ring8", 8000, 1, &t), DF_OK);
    int hit[8] = {0};
    for (int64_t i = 0; i < t.n; i++) {
        double a = atan2(t.x[2 * i + 1], t.x[2 * i]), r = hypot(t.x[2 * i], t.x[2 * i + 1]);
        int m = ((int)lround(a / (2 * M_PI / 8)) + 8) % 8;
        assert_true(fabs(r - 2) < 0.6);
        hit[m]++;
    }
    for (int k = 0; k < 8; k++) assert_true(hit[k] > 800);
    df_dataset_free(&t);
    assert_int_equal(df_toy_make("moons", 1000, 1, &t), DF_OK);
    df_dataset_free(&t);
    assert_int_equal(df_toy_make("spiral", 10, 1, &t), DF_EINVAL);
    assert_int_equal(df_digits_make(500, 3, &t), DF_OK);
    int cls[10] = {0};
    for (int64_t i = 0; i < t.n; i++) {
        cls[t.y[i]]++;
        double ink = 0;
        for (int k = 0; k < 784; k++) ink += t.x[i * 784 + k] > 0;
        assert_true(ink > 20 && ink < 400);
    }
    for (int k = 0; k < 10; k++) assert_true(cls[k] > 20);
    df_dataset_free(&t);
}

int main(void) {
    assert_non_null(mkdtemp(dir));
    const struct CMUnitTest t[] = {cmocka_unit_test(test_idx), cmocka_unit_test(test_real_mnist),
                                   cmocka_unit_test(test_toys_and_digits)};
    int r = cmocka_run_group_tests_name("data", t, NULL, NULL);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) r |= 0;
    return r;
}
