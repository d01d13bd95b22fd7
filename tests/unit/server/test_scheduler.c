/*
 * Unit tests for server/scheduler with a manual clock and a run function the
 * test controls: catch-up after downtime runs once, not once per missed
 * slot; the next slot counts from that run; a running entry is never started
 * again (by its schedule or on request); entries without `every` run on
 * request only; the last start is read back from a real store after a
 * restart; and the scheduler's own thread on a short interval never overlaps
 * runs.
 */
#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "server/golden.h"
#include "server/scheduler.h"
#include "server/store.h"
#include "tests/unit/test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIN_MS (60 * 1000)

struct harness {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int runs;        /* started */
    int running;     /* now */
    int max_running; /* ever at once */
    bool hold;       /* runs wait until released */
    int64_t sleep_ms;
    int64_t last_ms; /* what the store would say */
};

static void run_fn(void *ctx, const struct golden_spec *spec, const char *run_id)
{
    struct harness *h = ctx;
    CHECK(spec != NULL && strncmp(run_id, "gr-", 3) == 0);
    pthread_mutex_lock(&h->mu);
    h->runs++;
    h->running++;
    if (h->running > h->max_running)
        h->max_running = h->running;
    pthread_cond_broadcast(&h->cv);
    while (h->hold)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    if (h->sleep_ms) {
        struct timespec ts = {h->sleep_ms / 1000, (long)(h->sleep_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&h->mu);
    h->running--;
    pthread_mutex_unlock(&h->mu);
}

static int64_t last_fn(void *ctx, const struct golden_spec *spec)
{
    (void)spec;
    return ((struct harness *)ctx)->last_ms;
}

static void harness_init(struct harness *h)
{
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
}

static void harness_release(struct harness *h)
{
    pthread_mutex_lock(&h->mu);
    h->hold = false;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* Waits (bounded) until h->runs reaches n. */
static void wait_runs(struct harness *h, int n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&h->mu);
    while (h->runs < n && pthread_cond_timedwait(&h->cv, &h->mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&h->mu);
    REQUIRE(h->runs >= n);
}

static void spec_make(struct golden_spec *s, const char *name, int64_t every_s)
{
    golden_spec_init(s);
    s->name = xstrdup(name);
    s->dataset = xstrdup("datasets/support-qa.jsonl");
    s->target_model = xstrdup("m");
    s->every_s = every_s;
}

TEST_CASE(catch_up_runs_once)
{
    static volatile int64_t now = 1000LL * 1000 * 1000 * 1000;
    struct clock c;
    clock_manual_init(&c, &now);
    struct harness h;
    harness_init(&h);
    h.last_ms = now - 10 * MIN_MS - 5000; /* down for ten slots */
    struct golden_spec spec;
    spec_make(&spec, "support", 60);
    struct scheduler_options o = {
        .specs = &spec, .n_specs = 1, .run = run_fn, .last = last_fn, .ctx = &h, .clock = &c};
    struct scheduler *s = scheduler_new(&o);
    REQUIRE(s != NULL);
    CHECK_INT_EQ(scheduler_tick(s), 1);
    wait_runs(&h, 1);
    scheduler_wait_idle(s);
    /* Once, not ten times; the next slot counts from this run. */
    CHECK_INT_EQ(scheduler_tick(s), 0);
    CHECK_INT_EQ(scheduler_tick(s), 0);
    int64_t last = 0;
    CHECK(!scheduler_entry_running(s, 0, &last));
    CHECK(last == now);
    now += MIN_MS - 1;
    CHECK_INT_EQ(scheduler_tick(s), 0);
    now += 1;
    CHECK_INT_EQ(scheduler_tick(s), 1);
    wait_runs(&h, 2);
    scheduler_free(s);
    CHECK_INT_EQ(h.runs, 2);
    golden_spec_clear(&spec);
}

TEST_CASE(first_run_at_once)
{
    static volatile int64_t now = 5000000;
    struct clock c;
    clock_manual_init(&c, &now);
    struct harness h;
    harness_init(&h);
    struct golden_spec spec;
    spec_make(&spec, "support", 3600);
    struct scheduler_options o = {
        .specs = &spec, .n_specs = 1, .run = run_fn, .last = last_fn, .ctx = &h, .clock = &c};
    struct scheduler *s = scheduler_new(&o);
    CHECK_INT_EQ(scheduler_tick(s), 1);
    scheduler_free(s);
    CHECK_INT_EQ(h.runs, 1);
    golden_spec_clear(&spec);
}

TEST_CASE(never_overlaps)
{
    static volatile int64_t now = 7000000;
    struct clock c;
    clock_manual_init(&c, &now);
    struct harness h;
    harness_init(&h);
    h.hold = true;
    struct golden_spec specs[2];
    spec_make(&specs[0], "a", 60);
    spec_make(&specs[1], "b", 0); /* on request only */
    struct scheduler_options o = {
        .specs = specs, .n_specs = 2, .run = run_fn, .ctx = &h, .clock = &c};
    struct scheduler *s = scheduler_new(&o);
    CHECK_INT_EQ(scheduler_tick(s), 1);
    wait_runs(&h, 1);
    CHECK(scheduler_entry_running(s, 0, NULL));
    /* Ten slots pass while the run holds: no second run of "a". */
    for (int i = 0; i < 10; i++) {
        now += MIN_MS;
        CHECK_INT_EQ(scheduler_tick(s), 0);
    }
    char *id = NULL;
    CHECK_INT_EQ(scheduler_trigger(s, "a", &id), ASSAY_ERR_BUSY);
    CHECK(id == NULL);
    CHECK_INT_EQ(scheduler_trigger(s, "nope", &id), ASSAY_ERR_NOT_FOUND);
    /* "b" has no schedule but runs on request, beside "a". */
    REQUIRE_INT_EQ(scheduler_trigger(s, "b", &id), ASSAY_OK);
    CHECK(id != NULL && strncmp(id, "gr-", 3) == 0);
    free(id);
    wait_runs(&h, 2);
    CHECK_INT_EQ(h.max_running, 2);
    harness_release(&h);
    scheduler_wait_idle(s);
    /* Overdue now: one run, then nothing until the next slot. */
    CHECK_INT_EQ(scheduler_tick(s), 1);
    wait_runs(&h, 3);
    scheduler_wait_idle(s);
    CHECK_INT_EQ(scheduler_tick(s), 0);
    scheduler_free(s);
    CHECK_INT_EQ(h.runs, 3);
    golden_spec_clear(&specs[0]);
    golden_spec_clear(&specs[1]);
}

TEST_CASE(last_run_from_store)
{
    static volatile int64_t now = 1700000000000LL;
    struct clock c;
    clock_manual_init(&c, &now);
    log_set_level(LOG_LEVEL_ERROR);
    struct store_sqlite_options o;
    store_sqlite_options_init(&o);
    char db[1024];
    snprintf(db, sizeof db, "%s/s.db", test_tmpdir());
    o.path = db;
    o.clock = &c;
    o.synchronous_full = 0;
    struct store *st = NULL;
    REQUIRE_INT_EQ(store_sqlite_open(&o, &st, NULL), ASSAY_OK);
    struct golden_spec spec;
    spec_make(&spec, "support", 3600);
    CHECK(golden_last_run_ms(st, &spec) == 0);
    struct store_golden_run r = {.run_id = "gr-1", .dataset = "support-qa|m", .status = "done"};
    REQUIRE_INT_EQ(store_golden_run_create(st, &r, NULL), ASSAY_OK);
    store_close(st);
    /* A restart two hours later: the entry is due once, from the stored start. */
    now += 2 * 3600 * 1000;
    REQUIRE_INT_EQ(store_sqlite_open(&o, &st, NULL), ASSAY_OK);
    CHECK(golden_last_run_ms(st, &spec) == now - 2 * 3600 * 1000);
    struct harness h;
    harness_init(&h);
    h.last_ms = golden_last_run_ms(st, &spec);
    struct scheduler_options so2 = {
        .specs = &spec, .n_specs = 1, .run = run_fn, .last = last_fn, .ctx = &h, .clock = &c};
    struct scheduler *s = scheduler_new(&so2);
    CHECK_INT_EQ(scheduler_tick(s), 1);
    scheduler_wait_idle(s);
    CHECK_INT_EQ(scheduler_tick(s), 0);
    scheduler_free(s);
    CHECK_INT_EQ(h.runs, 1);
    /* Another target model is another history. */
    free(spec.target_model);
    spec.target_model = xstrdup("other");
    CHECK(golden_last_run_ms(st, &spec) == 0);
    store_close(st);
    golden_spec_clear(&spec);
}

TEST_CASE(thread_short_interval)
{
    struct harness h;
    harness_init(&h);
    h.sleep_ms = 1300; /* longer than the interval */
    struct golden_spec spec;
    spec_make(&spec, "fast", 1);
    struct scheduler_options o = {
        .specs = &spec, .n_specs = 1, .run = run_fn, .ctx = &h, .tick_ms = 20};
    struct scheduler *s = scheduler_new(&o);
    REQUIRE_INT_EQ(scheduler_start(s, NULL), ASSAY_OK);
    wait_runs(&h, 3);
    scheduler_free(s);
    CHECK(h.runs >= 3);
    CHECK_INT_EQ(h.max_running, 1);
    golden_spec_clear(&spec);
}
