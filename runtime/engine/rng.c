/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
 * Element i of a draw is a pure function of (key, counter + i). */
#include "dfrun/rng.h"
#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void df_philox4(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void df_philox(uint64_t key, uint64_t ctr, uint32_t out[4]) {
    uint32_t c[4] = {(uint32_t)ctr, (uint32_t)(ctr >> 32), 0, 0};
    uint32_t k[2] = {(uint32_t)key, (uint32_t)(key >> 32)};
    df_philox4(c, k, out);
}

df_rng df_rng_new(uint64_t seed) {
    df_rng r = {seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull, 0};
    return r;
}

uint64_t df_hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; s && *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static inline float u01(uint32_t w) {
    return (float)(w >> 8) * (1.0f / 16777216.0f);
}

void df_rng_uniform(df_rng *rng, float *out, int64_t n) {
    if (!rng || !out || n <= 0) return;
    uint64_t key = rng->key, base = rng->counter;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        uint32_t w[4];
        df_philox(key, base + (uint64_t)i, w);
        out[i] = u01(w[0]);
    }
    rng->counter += (uint64_t)n;
}

void df_rng_normal(df_rng *rng, float *out, int64_t n) {
    if (!rng || !out || n <= 0) return;
    uint64_t key = rng->key, base = rng->counter;
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) {
        uint32_t w[4];
        df_philox(key, base + (uint64_t)i, w);
        double u1 = ((double)(w[0] >> 8) + 1.0) * (1.0 / 16777216.0); /* (0, 1] */
        double u2 = (double)(w[1] >> 8) * (1.0 / 16777216.0);
        out[i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
    rng->counter += (uint64_t)n;
}

void df_rng_randint(df_rng *rng, int32_t *out, int64_t n, int32_t k) {
    if (!rng || !out || n <= 0) return;
    uint64_t key = rng->key, base = rng->counter;
    if (k < 1) k = 1;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        uint32_t w[4];
        df_philox(key, base + (uint64_t)i, w);
        out[i] = (int32_t)(((uint64_t)w[0] * (uint64_t)k) >> 32);
    }
    rng->counter += (uint64_t)n;
}
