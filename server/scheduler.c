/*
 * server/scheduler: the golden-set schedule (see scheduler.h). Each run gets
 * a thread of its own, joined before the entry's next run or at the end.
 */
#include "server/scheduler.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "server/golden.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct entry {
    struct scheduler *s;
    const struct golden_spec *spec;
    int64_t last_ms; /* start of the last run, 0: never */
    bool running;
    bool joinable;
    pthread_t th;
    char *run_id; /* the run in progress (owned by its thread's start) */
};

struct scheduler {
    struct scheduler_options opt;
    const struct clock *clock;
    struct entry *entries;
    size_t n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    bool started;
    pthread_t loop;
};

const char *scheduler_entry_name(const struct golden_spec *spec)
{
    return spec->name ? spec->name : spec->dataset;
}

struct scheduler *scheduler_new(const struct scheduler_options *opt)
{
    if (!opt || !opt->run || (opt->n_specs && !opt->specs))
        return NULL;
    struct scheduler *s = xcalloc(1, sizeof *s);
    s->opt = *opt;
    if (!s->opt.tick_ms)
        s->opt.tick_ms = 1000;
    s->clock = opt->clock ? opt->clock : clock_system();
    s->n = opt->n_specs;
    s->entries = xcalloc(s->n ? s->n : 1, sizeof *s->entries);
    for (size_t i = 0; i < s->n; i++) {
        s->entries[i].s = s;
        s->entries[i].spec = &opt->specs[i];
        s->entries[i].last_ms = opt->last ? opt->last(opt->ctx, &opt->specs[i]) : 0;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    return s;
}

static void *run_thread(void *arg)
{
    struct entry *e = arg;
    struct scheduler *s = e->s;
    LOG_INFO("scheduler.run_started", LOG_S("entry", scheduler_entry_name(e->spec)),
             LOG_S("run_id", e->run_id));
    s->opt.run(s->opt.ctx, e->spec, e->run_id);
    pthread_mutex_lock(&s->mu);
    free(e->run_id);
    e->run_id = NULL;
    e->running = false;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Starts e under the lock; the caller checked it is not running. */
static void start_locked(struct entry *e, int64_t now_ms, char **run_id)
{
    if (e->joinable) {
        pthread_join(e->th, NULL); /* finished: running is false */
        e->joinable = false;
    }
    e->running = true;
    e->last_ms = now_ms;
    e->run_id = golden_run_id_new(e->s->clock);
    if (run_id)
        *run_id = xstrdup(e->run_id);
    if (pthread_create(&e->th, NULL, run_thread, e) != 0) {
        LOG_ERROR("scheduler.thread_failed", LOG_S("entry", scheduler_entry_name(e->spec)));
        free(e->run_id);
        e->run_id = NULL;
        e->running = false;
        return;
    }
    e->joinable = true;
}

size_t scheduler_tick(struct scheduler *s)
{
    size_t started = 0;
    int64_t now = clock_now_ms(s->clock);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n && !s->stopping; i++) {
        struct entry *e = &s->entries[i];
        int64_t every_ms = e->spec->every_s * 1000;
        if (every_ms <= 0 || e->running)
            continue;
        if (e->last_ms != 0 && now - e->last_ms < every_ms)
            continue;
        if (e->last_ms != 0 && now - e->last_ms >= 2 * every_ms)
            LOG_INFO("scheduler.catch_up", LOG_S("entry", scheduler_entry_name(e->spec)),
                     LOG_I("missed_slots", (now - e->last_ms) / every_ms - 1));
        start_locked(e, now, NULL);
        started += e->running;
    }
    pthread_mutex_unlock(&s->mu);
    return started;
}

enum assay_err scheduler_trigger(struct scheduler *s, const char *name, char **run_id)
{
    *run_id = NULL;
    enum assay_err err = ASSAY_ERR_NOT_FOUND;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++) {
        struct entry *e = &s->entries[i];
        if (strcmp(scheduler_entry_name(e->spec), name) != 0)
            continue;
        if (s->stopping)
            err = ASSAY_ERR_CANCELLED;
        else if (e->running)
            err = ASSAY_ERR_BUSY;
        else {
            start_locked(e, clock_now_ms(s->clock), run_id);
            err = e->running ? ASSAY_OK : ASSAY_ERR_INTERNAL;
            if (err != ASSAY_OK) {
                free(*run_id);
                *run_id = NULL;
            }
        }
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return err;
}

bool scheduler_entry_running(struct scheduler *s, size_t i, int64_t *last_ms)
{
    pthread_mutex_lock(&s->mu);
    bool r = i < s->n && s->entries[i].running;
    if (last_ms)
        *last_ms = i < s->n ? s->entries[i].last_ms : 0;
    pthread_mutex_unlock(&s->mu);
    return r;
}

void scheduler_wait_idle(struct scheduler *s)
{
    pthread_mutex_lock(&s->mu);
    for (;;) {
        bool busy = false;
        for (size_t i = 0; i < s->n; i++)
            busy |= s->entries[i].running;
        if (!busy)
            break;
        pthread_cond_wait(&s->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
}

static void *loop_thread(void *arg)
{
    struct scheduler *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        pthread_mutex_unlock(&s->mu);
        scheduler_tick(s);
        pthread_mutex_lock(&s->mu);
        if (s->stopping)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (s->opt.tick_ms % 1000) * 1000000;
        ts.tv_sec += (time_t)(s->opt.tick_ms / 1000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

enum assay_err scheduler_start(struct scheduler *s, char *errbuf)
{
    pthread_mutex_lock(&s->mu);
    bool already = s->started;
    s->started = true;
    pthread_mutex_unlock(&s->mu);
    if (already)
        return ASSAY_OK;
    if (pthread_create(&s->loop, NULL, loop_thread, s) != 0) {
        pthread_mutex_lock(&s->mu);
        s->started = false;
        pthread_mutex_unlock(&s->mu);
        return assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "scheduler: cannot start a thread");
    }
    return ASSAY_OK;
}

void scheduler_free(struct scheduler *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    bool started = s->started;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (started)
        pthread_join(s->loop, NULL);
    scheduler_wait_idle(s);
    for (size_t i = 0; i < s->n; i++)
        if (s->entries[i].joinable)
            pthread_join(s->entries[i].th, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->entries);
    free(s);
}
