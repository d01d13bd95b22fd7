/*
 * server/sampler: deterministic per-app sampling and the judged-per-minute
 * cost cap; called by server/http_api. See sampler.h for the rules.
 */
#include "server/sampler.h"

#include "common/alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct window {
    char *app;
    int64_t minute; /* epoch minute of the window */
    int64_t chosen; /* samples chosen for judging in it */
};

struct sampler {
    const struct clock *clk;
    pthread_mutex_t mu;
    struct window *w;
    size_t n, cap;
};

/*
 * FNV-1a over "app\0id", then the splitmix64 finaliser to spread the bits:
 * simple, fixed and with no seed, so that replicas agree. Not a defence
 * against a client choosing ids to be sampled (force does that openly).
 */
static uint64_t hash64(const char *app, const char *id)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)app; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    h = (h ^ 0) * 0x100000001b3ULL;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

double sampler_hash_unit(const char *app, const char *id)
{
    /* The top 53 bits give a double in [0, 1) exactly. */
    return (double)(hash64(app, id) >> 11) * (1.0 / 9007199254740992.0);
}

struct sampler *sampler_new(const struct clock *clk)
{
    struct sampler *s = xcalloc(1, sizeof *s);
    s->clk = clk;
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void sampler_free(struct sampler *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->w[i].app);
    free(s->w);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/*
 * The app's window, created on first use; called under mu. Apps served by
 * apps.default are open-ended, so past WINDOWS_PRUNE windows the stale ones
 * (an earlier minute) are dropped before a new one is added.
 */
#define WINDOWS_PRUNE 1024
static struct window *window_get(struct sampler *s, const char *app, int64_t minute)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->w[i].app, app) == 0)
            return &s->w[i];
    if (s->n >= WINDOWS_PRUNE) {
        size_t k = 0;
        for (size_t i = 0; i < s->n; i++) {
            if (s->w[i].minute == minute)
                s->w[k++] = s->w[i];
            else
                free(s->w[i].app);
        }
        s->n = k;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->w = xrealloc(s->w, s->cap * sizeof *s->w);
    }
    struct window *w = &s->w[s->n++];
    w->app = xstrdup(app);
    w->minute = 0;
    w->chosen = 0;
    return w;
}

enum sampler_decision sampler_decide(struct sampler *s, const struct config_app *cfg,
                                     const char *app, const char *id, bool force, bool negative,
                                     enum sampler_reason *reason)
{
    enum sampler_reason why = SAMPLER_BY_RATE;
    bool chosen;
    if (force) {
        chosen = true;
        why = SAMPLER_BY_FORCE;
    } else if (negative && cfg->sample_negative_feedback) {
        chosen = true;
        why = SAMPLER_BY_FEEDBACK;
    } else {
        chosen = cfg->sample_rate >= 1.0 ||
                 (cfg->sample_rate > 0.0 && sampler_hash_unit(app, id) < cfg->sample_rate);
    }
    if (reason)
        *reason = why;
    if (!chosen)
        return SAMPLER_NOT_SAMPLED;
    if (cfg->max_judged_per_minute <= 0)
        return SAMPLER_SAMPLED;

    enum sampler_decision d = SAMPLER_SAMPLED;
    int64_t minute = clock_now_ms(s->clk) / 60000;
    pthread_mutex_lock(&s->mu);
    struct window *w = window_get(s, app, minute);
    if (w->minute != minute) {
        w->minute = minute;
        w->chosen = 0;
    }
    if (w->chosen >= cfg->max_judged_per_minute && !force)
        d = SAMPLER_DROPPED;
    else
        w->chosen++;
    pthread_mutex_unlock(&s->mu);
    return d;
}

void sampler_release(struct sampler *s, const char *app, int64_t n)
{
    if (n <= 0)
        return;
    int64_t minute = clock_now_ms(s->clk) / 60000;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->w[i].app, app) == 0 && s->w[i].minute == minute) {
            s->w[i].chosen = s->w[i].chosen > n ? s->w[i].chosen - n : 0;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
}
