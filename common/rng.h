/*
 * common/rng: a small deterministic pseudo-random generator (xoshiro256**,
 * seeded through splitmix64) for the bootstrap and the simulations. The same
 * seed gives the same stream on every platform. Not for secrets.
 * The caller holds the struct; one generator belongs to one thread.
 */
#ifndef ASSAY_COMMON_RNG_H
#define ASSAY_COMMON_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4];
};

/* Seeds the generator; every seed, 0 included, gives a valid state. */
void rng_seed(struct rng *r, uint64_t seed);
/* The next 64 random bits. */
uint64_t rng_next(struct rng *r);
/* Uniform in [0, 1), 53 bits of precision. */
double rng_uniform(struct rng *r);
/* Uniform integer in [0, n); n must be > 0. Unbiased (rejection). */
uint64_t rng_below(struct rng *r, uint64_t n);
/* Standard normal deviate (polar Box-Muller; no cached second value). */
double rng_normal(struct rng *r);
/* Exponential deviate with mean 1. */
double rng_exponential(struct rng *r);

#endif
