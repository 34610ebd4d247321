/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
 * Element i of a draw is a pure function of (key, counter + i). */
#include "dfrun/rng.h"
#include <math.h>
#include "parallel.h"

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

/* Draws [i0, i1) of one call: element i from Philox counter base + i. */
typedef struct {
    uint64_t key, base;
    void *out;
    int kind; /* 0 uniform, 1 normal, 2 integers below k */
    int32_t k;
} draw_job;
static void draw_piece(void *ctx, int64_t i0, int64_t i1, int worker) {
    const draw_job *j = ctx;
    float *f = j->out;
    int32_t *q = j->out;
    (void)worker;
    for (int64_t i = i0; i < i1; i++) {
        uint32_t w[4];
        df_philox(j->key, j->base + (uint64_t)i, w);
        if (j->kind == 0) {
            f[i] = u01(w[0]);
        } else if (j->kind == 1) {
            double u1 = ((double)(w[0] >> 8) + 1.0) * (1.0 / 16777216.0); /* (0, 1] */
            double u2 = (double)(w[1] >> 8) * (1.0 / 16777216.0);
            f[i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
        } else {
            q[i] = (int32_t)(((uint64_t)w[0] * (uint64_t)j->k) >> 32);
        }
    }
}
static void draw(df_rng *rng, void *out, int64_t n, int kind, int32_t k, int64_t big) {
    if (!rng || !out || n <= 0) return;
    draw_job j = {rng->key, rng->counter, out, kind, k};
    df_parallel_for(n, DF_PIECE_IF(n, n > big), draw_piece, &j);
    rng->counter += (uint64_t)n;
}

void df_rng_uniform(df_rng *rng, float *out, int64_t n) {
    draw(rng, out, n, 0, 0, 65536);
}
void df_rng_normal(df_rng *rng, float *out, int64_t n) {
    draw(rng, out, n, 1, 0, 16384);
}
void df_rng_randint(df_rng *rng, int32_t *out, int64_t n, int32_t k) {
    draw(rng, out, n, 2, k < 1 ? 1 : k, 65536);
}
