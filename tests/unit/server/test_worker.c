/*
 * Unit tests for server/worker over the real SQLite store in a temp dir, with
 * a fake judge behind the worker_judge_fn seam: concurrency bound, verdicts
 * written once, shutdown releasing jobs in flight, unknown rubrics.
 */
#include "server/worker.h"

#include "common/log.h"
#include "judges/rubric.h"
#include "judges/verdict.h"
#include "server/config.h"
#include "server/store.h"
#include "tests/unit/test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

struct held {
    judge_done_fn done;
    void *ctx;
    const struct rubric *r;
};

/* The fake judge: answers from its own thread after delay_ms, or holds calls. */
struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct held q[4096];
    size_t n, next;
    bool hold, quit;
    int in_flight, peak, calls;
    pthread_t thread;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void answer(struct fake *f, struct held h, bool cancelled)
{
    struct verdict v;
    verdict_init(&v);
    verdict_set_rubric(&v, h.r);
    verdict_set_judge(&v, "fake");
    if (cancelled)
        verdict_set_unscorable(&v, "cancelled", VERDICT_RETRY_NONE, "shutting down");
    else
        verdict_set_score(&v, h.r, h.r->scale.max);
    pthread_mutex_lock(&f->mu);
    f->in_flight--;
    pthread_mutex_unlock(&f->mu);
    h.done(h.ctx, cancelled ? ASSAY_ERR_CANCELLED : ASSAY_OK, &v);
    verdict_clear(&v);
}

static void *fake_thread(void *arg)
{
    struct fake *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->quit && (f->hold || f->next == f->n))
            pthread_cond_wait(&f->cv, &f->mu);
        if (f->quit)
            break;
        struct held h = f->q[f->next++];
        pthread_mutex_unlock(&f->mu);
        sleep_ms(2);
        answer(f, h, false);
        pthread_mutex_lock(&f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static enum assay_err fake_judge(void *ctx, const struct rubric *r, const struct rubric_sample *s,
                                 const struct redact_set *redact, judge_done_fn done,
                                 void *done_ctx, char *errbuf)
{
    struct fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->q[f->n++] = (struct held){done, done_ctx, r};
    f->calls++;
    if (++f->in_flight > f->peak)
        f->peak = f->in_flight;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return ASSAY_OK;
}

struct env {
    struct config *cfg;
    struct rubric_registry *rubrics;
    struct store *store;
    struct fake fake;
    struct worker *w;
};

static void env_open(struct env *e, bool hold)
{
    memset(e, 0, sizeof *e);
    log_set_level(LOG_LEVEL_ERROR);
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    const char *cfg = "{\"judge\":{\"max_concurrency\":4}}";
    REQUIRE_INT_EQ(config_parse(cfg, strlen(cfg), "t.json", NULL, NULL, &e->cfg, errbuf), ASSAY_OK);
    char dir[4096], path[4096];
    snprintf(dir, sizeof dir, "%s/rubrics", test_source_dir());
    REQUIRE_INT_EQ(rubric_registry_load(dir, &e->rubrics, errbuf), ASSAY_OK);
    snprintf(path, sizeof path, "%s/assay.db", test_tmpdir());
    struct store_sqlite_options so;
    store_sqlite_options_init(&so);
    so.path = path;
    so.synchronous_full = 0;
    REQUIRE_INT_EQ(store_sqlite_open(&so, &e->store, errbuf), ASSAY_OK);
    pthread_mutex_init(&e->fake.mu, NULL);
    pthread_cond_init(&e->fake.cv, NULL);
    e->fake.hold = hold;
    pthread_create(&e->fake.thread, NULL, fake_thread, &e->fake);
}

static void insert(struct env *e, int n, const char *rubric)
{
    const char *rubrics[] = {rubric, "helpfulness"};
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "s-%s-%d", rubric, i);
        const char *doc = "{\"app\":\"a\",\"output\":\"fine\",\"input\":\"q\"}";
        struct store_sample s = {.app = "a",
                                 .id = id,
                                 .doc = doc,
                                 .doc_len = strlen(doc),
                                 .sampled = true,
                                 .received_ms = 1,
                                 .rubrics = rubrics,
                                 .n_rubrics = strcmp(rubric, "helpfulness") ? 2 : 1};
        REQUIRE_INT_EQ(store_sample_insert(e->store, &s, 1, NULL), ASSAY_OK);
    }
}

static void start_worker(struct env *e)
{
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    struct worker_options o = {.store = e->store,
                               .cfg = e->cfg,
                               .rubrics = e->rubrics,
                               .judge = fake_judge,
                               .judge_ctx = &e->fake,
                               .idle_poll_ms = 10};
    REQUIRE_INT_EQ(worker_start(&o, &e->w, errbuf), ASSAY_OK);
}

static void env_close(struct env *e)
{
    worker_stop(e->w, 0);
    /* the judge's last callbacks before worker_free: cancel what it holds */
    pthread_mutex_lock(&e->fake.mu);
    e->fake.quit = true;
    pthread_cond_signal(&e->fake.cv);
    pthread_mutex_unlock(&e->fake.mu);
    pthread_join(e->fake.thread, NULL);
    while (e->fake.next < e->fake.n)
        answer(&e->fake, e->fake.q[e->fake.next++], true);
    worker_free(e->w);
    store_close(e->store);
    rubric_registry_free(e->rubrics);
    config_free(e->cfg);
    pthread_cond_destroy(&e->fake.cv);
    pthread_mutex_destroy(&e->fake.mu);
}

static int64_t wait_judged(struct env *e, int64_t want)
{
    int64_t judged = 0;
    for (int i = 0; i < 1000 && judged < want; i++) {
        worker_counts(e->w, &judged, NULL);
        if (judged < want)
            sleep_ms(10);
    }
    return judged;
}

TEST_CASE(judges_every_job_within_the_bound)
{
    struct env e;
    env_open(&e, false);
    insert(&e, 30, "coherence"); /* 60 jobs */
    start_worker(&e);
    CHECK_INT_EQ(wait_judged(&e, 60), 60);
    int64_t queued = -1, judging = -1;
    REQUIRE_INT_EQ(store_queue_depth(e.store, &queued, &judging), ASSAY_OK);
    CHECK_INT_EQ(queued, 0);
    CHECK_INT_EQ(judging, 0);
    CHECK(e.fake.peak <= 4);
    CHECK(e.fake.peak >= 2);
    CHECK_INT_EQ(e.fake.calls, 60);
    struct store_sample_info info = {0};
    REQUIRE_INT_EQ(store_sample_get(e.store, "a", "s-coherence-7", &info, NULL), ASSAY_OK);
    CHECK_INT_EQ(info.status, STORE_STATUS_DONE);
    REQUIRE_INT_EQ(info.n_jobs, 2);
    CHECK(info.jobs[0].has_verdict && info.jobs[1].has_verdict);
    CHECK_NEAR(info.jobs[0].verdict.score, 1.0, 1e-9);
    store_sample_info_clear(&info);
    /* jobs queued later are picked up after a poke */
    insert(&e, 5, "helpfulness");
    worker_poke(e.w);
    CHECK_INT_EQ(wait_judged(&e, 65), 65);
    env_close(&e);
}

TEST_CASE(stop_releases_jobs_in_flight)
{
    struct env e;
    env_open(&e, true); /* the judge holds every call */
    insert(&e, 10, "helpfulness");
    start_worker(&e);
    for (int i = 0; i < 200 && e.fake.calls < 4; i++)
        sleep_ms(5);
    CHECK_INT_EQ(e.fake.calls, 4); /* max_concurrency */
    CHECK_INT_EQ(worker_stop(e.w, 50), 4);
    int64_t queued = -1, judging = -1;
    REQUIRE_INT_EQ(store_queue_depth(e.store, &queued, &judging), ASSAY_OK);
    CHECK_INT_EQ(queued, 10);
    CHECK_INT_EQ(judging, 0);
    int64_t judged = -1;
    worker_counts(e.w, &judged, NULL);
    CHECK_INT_EQ(judged, 0);
    env_close(&e); /* late (cancelled) verdicts are dropped, not recorded */
    (void)judged;
}

TEST_CASE(unknown_rubric_fails_the_job)
{
    struct env e;
    env_open(&e, false);
    insert(&e, 1, "no-such-rubric");
    start_worker(&e);
    CHECK_INT_EQ(wait_judged(&e, 2), 2);
    struct store_sample_info info = {0};
    REQUIRE_INT_EQ(store_sample_get(e.store, "a", "s-no-such-rubric-0", &info, NULL), ASSAY_OK);
    int failed = 0;
    for (size_t i = 0; i < info.n_jobs; i++)
        if (strcmp(info.jobs[i].rubric, "no-such-rubric") == 0) {
            CHECK_INT_EQ(info.jobs[i].state, STORE_JOB_FAILED);
            CHECK(info.jobs[i].verdict.unscorable);
            CHECK_STR_EQ(info.jobs[i].verdict.reason, "unknown_rubric");
            failed++;
        }
    CHECK_INT_EQ(failed, 1);
    store_sample_info_clear(&info);
    CHECK_INT_EQ(e.fake.calls, 1); /* only the known rubric reached the judge */
    env_close(&e);
}
