/*
 * aws/ratelimit: token buckets behind the Bedrock client's request and token
 * budgets.
 */
#include "aws/ratelimit.h"

#include <math.h>

void ratelimit_init(struct ratelimit *r, double rate_per_min, double burst, int64_t now_ms)
{
    pthread_mutex_init(&r->lock, NULL);
    r->rate_per_ms = rate_per_min > 0 ? rate_per_min / 60000.0 : 0;
    r->burst = burst > 0 ? burst : rate_per_min;
    r->tokens = r->burst;
    r->last_ms = now_ms;
}

void ratelimit_clear(struct ratelimit *r)
{
    if (r)
        pthread_mutex_destroy(&r->lock);
}

static void refill(struct ratelimit *r, int64_t now_ms)
{
    if (now_ms > r->last_ms) {
        r->tokens += (double)(now_ms - r->last_ms) * r->rate_per_ms;
        if (r->tokens > r->burst)
            r->tokens = r->burst;
        r->last_ms = now_ms;
    }
}

int64_t ratelimit_take(struct ratelimit *r, double n, int64_t now_ms)
{
    if (r->rate_per_ms <= 0)
        return 0;
    pthread_mutex_lock(&r->lock);
    refill(r, now_ms);
    double need = n < r->burst ? n : r->burst;
    int64_t wait = 0;
    if (r->tokens >= need) {
        r->tokens -= n;
    } else {
        wait = (int64_t)ceil((need - r->tokens) / r->rate_per_ms);
        if (wait < 1)
            wait = 1;
    }
    pthread_mutex_unlock(&r->lock);
    return wait;
}

void ratelimit_charge(struct ratelimit *r, double n, int64_t now_ms)
{
    if (r->rate_per_ms <= 0)
        return;
    pthread_mutex_lock(&r->lock);
    refill(r, now_ms);
    r->tokens -= n;
    pthread_mutex_unlock(&r->lock);
}
