/* Counter-based random numbers (Philox4x32-10). Element i of a draw depends
 * only on (key, stream, counter + i): results are bitwise identical whatever
 * the thread count or the order of generation. */
#ifndef DFRUN_RNG_H
#define DFRUN_RNG_H
#include <stdint.h>

typedef struct {
    uint64_t key;     /* the seed */
    uint64_t counter; /* advanced by every draw: the generator's whole state */
} df_rng;

/* Generator for seed. */
df_rng df_rng_new(uint64_t seed);
/* Philox4x32-10 on a full 128-bit counter and 64-bit key (Random123's). */
void df_philox4(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* The raw block: 4 words for (key, ctr) = philox4({ctr lo, ctr hi, 0, 0}, key). */
void df_philox(uint64_t key, uint64_t ctr, uint32_t out[4]);
/* Fill out[0..n) with U[0,1) / N(0,1) / U{0..k-1} values; advances rng->counter
 * by n (in parallel pieces for large n). NULL arguments or n <= 0: nothing. */
void df_rng_uniform(df_rng *rng, float *out, int64_t n);
void df_rng_normal(df_rng *rng, float *out, int64_t n);
void df_rng_randint(df_rng *rng, int32_t *out, int64_t n, int32_t k);
/* 64-bit FNV-1a hash of a string (to key a stream on a name). */
uint64_t df_hash_str(const char *s);

#endif
