/*
 * aws/ratelimit: a token bucket for the per-model budgets of DESIGN.md
 * (judge.requests_per_minute, judge.tokens_per_minute). A bucket refills
 * continuously at rate_per_min and holds at most burst tokens. Requests take
 * tokens before they go; token budgets may also be charged afterwards with
 * what a call really used (the bucket then goes negative and later takers
 * wait until it has refilled).
 * Thread-safe: each call takes the bucket's lock. Time comes from the caller
 * (a clock reading in milliseconds), so tests drive it.
 */
#ifndef ASSAY_AWS_RATELIMIT_H
#define ASSAY_AWS_RATELIMIT_H

#include <pthread.h>
#include <stdint.h>

struct ratelimit {
    pthread_mutex_t lock;
    double rate_per_ms; /* 0: unlimited */
    double burst;
    double tokens;
    int64_t last_ms;
};

/* rate_per_min 0 means unlimited; burst 0 means one minute's worth. */
void ratelimit_init(struct ratelimit *r, double rate_per_min, double burst, int64_t now_ms);
void ratelimit_clear(struct ratelimit *r);
/*
 * Takes n tokens if the bucket holds them and returns 0; otherwise takes
 * nothing and returns how many milliseconds to wait before they will be there
 * (at least 1). A request for more than the burst is granted once the bucket
 * is full, so that no request waits forever.
 */
int64_t ratelimit_take(struct ratelimit *r, double n, int64_t now_ms);
/* Charges n tokens unconditionally (usage known after the fact). */
void ratelimit_charge(struct ratelimit *r, double n, int64_t now_ms);

#endif
