/*
 * server/worker: claims jobs from the store, runs them on the judges with a
 * bound on those in flight, writes verdicts back. Started by
 * server/cmd_serve; see worker.h for the contract.
 */
#include "server/worker.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "judges/redact.h"
#include "judges/rubric.h"
#include "monitor/publish.h"
#include "server/config.h"
#include "server/ingest_redact.h"
#include "server/prom.h"
#include "server/series.h"
#include "server/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLAIM_MAX 64

/* One job in flight: from its claim until its verdict is written. */
struct job {
    struct worker *w;
    int64_t job_id;
    char *app, *sample_id, *rubric, *trace_id, *model_id;
    int64_t started_ms;
    enum assay_err err;
    struct verdict v; /* moved out of the judge's callback */
    struct job *next; /* in the in-flight list, then the done queue */
    struct job *prev;
};

struct worker {
    struct worker_options o;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping, poked;
    int64_t deadline_ms;
    struct job *inflight; /* doubly linked */
    size_t n_inflight;
    struct job *done_head, *done_tail;
    int64_t judged;
    struct ingest_redact *own_redact; /* built when the options gave none */
    size_t released;
};

static void job_free(struct job *j)
{
    if (!j)
        return;
    free(j->app);
    free(j->sample_id);
    free(j->rubric);
    free(j->trace_id);
    free(j->model_id);
    verdict_clear(&j->v);
    free(j);
}

/* Under mu. */
static void inflight_remove(struct worker *w, struct job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        w->inflight = j->next;
    if (j->next)
        j->next->prev = j->prev;
    j->next = j->prev = NULL;
    w->n_inflight--;
}

/* The judge's callback, on the transport thread (or inline for local judges). */
static void on_judged(void *ctx, enum assay_err err, struct verdict *v)
{
    struct job *j = ctx;
    struct worker *w = j->w;
    j->err = err;
    j->v = *v;
    verdict_init(v);
    pthread_mutex_lock(&w->mu);
    inflight_remove(w, j);
    if (w->done_tail)
        w->done_tail->next = j;
    else
        w->done_head = j;
    w->done_tail = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static const struct redact_set *redact_for(const struct worker *w, const char *app)
{
    return ingest_redact_for(w->o.redact, app);
}

/* Writes one verdict back (worker thread). */
static void complete(struct worker *w, struct job *j)
{
    struct store_verdict sv;
    store_verdict_from(&sv, &j->v, j->v.attempts);
    int recorded = 0;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err;
    struct series_outcome so = {.in_alarm = -1};
    if (w->o.series) {
        struct series_job sj = {.job_id = j->job_id,
                                .app = j->app,
                                .rubric = j->rubric,
                                .model_id = j->model_id,
                                .verdict = &sv};
        err = series_job_complete(w->o.series, &sj, &recorded, &so, errbuf);
    } else {
        struct store_completion c = {.job_id = j->job_id, .verdict = &sv};
        err = store_job_complete(w->o.store, &c, &recorded, errbuf);
    }
    bool scored = j->v.outcome == VERDICT_SCORED;
    int64_t ms = clock_mono_ms(NULL) - j->started_ms;
    if (err != ASSAY_OK) {
        /* Left `judging`: the next start puts it back in the queue. */
        LOG_ERROR("job.not_recorded", LOG_I("job_id", j->job_id), LOG_S("app", j->app),
                  LOG_S("sample_id", j->sample_id), LOG_S("rubric", j->rubric),
                  LOG_S("trace_id", j->trace_id), LOG_S("error", assay_err_name(err)),
                  LOG_S("detail", errbuf));
        return;
    }
    if (w->o.prom)
        prom_judge_observe(w->o.prom, scored ? "ok" : "unscorable", (double)ms / 1000.0,
                           j->v.usage.input_tokens, j->v.usage.output_tokens);
    if (recorded) {
        pthread_mutex_lock(&w->mu);
        w->judged++;
        pthread_mutex_unlock(&w->mu);
        /* Counted once: only a verdict the store recorded reaches the metrics. */
        if (w->o.publish && scored) {
            struct publish_verdict pv = {.app = j->app,
                                         .rubric = j->rubric,
                                         .model_id = j->model_id,
                                         .score = j->v.score,
                                         .pass = j->v.pass ? 1 : 0,
                                         .in_alarm = so.in_alarm};
            publish_verdict_add(w->o.publish, &pv);
        }
        if (w->o.publish)
            publish_samples_add(w->o.publish, j->app, 0, 1, 0, 0);
    }
    if (scored)
        LOG_INFO("job.judged", LOG_I("job_id", j->job_id), LOG_S("app", j->app),
                 LOG_S("sample_id", j->sample_id), LOG_S("rubric", j->rubric),
                 LOG_S("trace_id", j->trace_id), LOG_F("score", j->v.score),
                 LOG_B("pass", j->v.pass), LOG_S("judge", j->v.judge), LOG_I("ms", ms),
                 LOG_I("attempts", j->v.attempts), LOG_B("recorded", recorded));
    else
        LOG_WARN("job.unscorable", LOG_I("job_id", j->job_id), LOG_S("app", j->app),
                 LOG_S("sample_id", j->sample_id), LOG_S("rubric", j->rubric),
                 LOG_S("trace_id", j->trace_id), LOG_S("reason", j->v.reason),
                 LOG_S("detail", j->v.detail), LOG_S("error", assay_err_name(j->err)),
                 LOG_I("ms", ms), LOG_B("recorded", recorded));
}

/* A verdict that needs no judge: the job cannot be graded as stored. */
static void fail_now(struct job *j, const struct rubric *r, const char *reason, const char *detail)
{
    struct verdict v;
    verdict_init(&v);
    verdict_set_unscorable(&v, reason, VERDICT_RETRY_NONE, detail);
    if (r)
        verdict_set_rubric(&v, r);
    else
        snprintf(v.rubric, sizeof v.rubric, "%s", j->rubric);
    on_judged(j, ASSAY_ERR_INVALID_ARGUMENT, &v);
    verdict_clear(&v);
}

/* Starts one claimed job (worker thread, mu not held). */
static void start_job(struct worker *w, const struct store_job *sj)
{
    struct job *j = xcalloc(1, sizeof *j);
    j->w = w;
    j->job_id = sj->job_id;
    j->app = xstrdup(sj->app);
    j->sample_id = xstrdup(sj->sample_id);
    j->rubric = xstrdup(sj->rubric);
    j->trace_id = sj->trace_id ? xstrdup(sj->trace_id) : NULL;
    j->model_id = sj->model_id ? xstrdup(sj->model_id) : NULL;
    j->started_ms = clock_mono_ms(NULL);
    verdict_init(&j->v);
    pthread_mutex_lock(&w->mu);
    j->next = w->inflight;
    if (w->inflight)
        w->inflight->prev = j;
    w->inflight = j;
    w->n_inflight++;
    pthread_mutex_unlock(&w->mu);

    const struct rubric *r = rubric_registry_find(w->o.rubrics, sj->rubric);
    if (!r) {
        fail_now(j, NULL, "unknown_rubric", "the rubric is not loaded in this process");
        return;
    }
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    json_error_t je;
    json_t *doc = json_loadb(sj->doc, sj->doc_len, 0, &je);
    struct judge_sample sample = {0};
    if (!doc || judge_sample_from_json(doc, &sample, errbuf) != ASSAY_OK) {
        json_decref(doc);
        fail_now(j, r, "invalid_sample", errbuf[0] ? errbuf : "the stored document is not JSON");
        return;
    }
    json_decref(doc);
    struct rubric_sample view = judge_sample_view(&sample);
    enum assay_err err =
        w->o.judge(w->o.judge_ctx, r, &view, redact_for(w, sj->app), on_judged, j, errbuf);
    judge_sample_clear(&sample);
    if (err == ASSAY_ERR_CANCELLED) {
        /* Shutting down: back to the queue. */
        pthread_mutex_lock(&w->mu);
        inflight_remove(w, j);
        pthread_mutex_unlock(&w->mu);
        store_job_release(w->o.store, j->job_id, NULL);
        job_free(j);
    } else if (err != ASSAY_OK) {
        fail_now(j, r, "judge_refused", errbuf);
    }
}

static void *run(void *arg)
{
    struct worker *w = arg;
    size_t max = w->o.max_concurrency;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        /* Verdicts first: they free slots. */
        while (w->done_head) {
            struct job *j = w->done_head;
            w->done_head = j->next;
            if (!w->done_head)
                w->done_tail = NULL;
            pthread_mutex_unlock(&w->mu);
            complete(w, j);
            job_free(j);
            pthread_mutex_lock(&w->mu);
        }
        if (w->stopping && (w->n_inflight == 0 || clock_mono_ms(NULL) >= w->deadline_ms))
            break;
        size_t room = w->stopping ? 0 : max - (w->n_inflight < max ? w->n_inflight : max);
        size_t claimed = 0;
        if (room > 0) {
            pthread_mutex_unlock(&w->mu);
            struct store_job_batch b = {0};
            char errbuf[ASSAY_ERRBUF_SIZE] = "";
            enum assay_err err =
                store_job_claim(w->o.store, room < CLAIM_MAX ? room : CLAIM_MAX, &b, errbuf);
            if (err != ASSAY_OK && err != ASSAY_ERR_CANCELLED)
                LOG_ERROR("worker.claim_failed", LOG_S("error", assay_err_name(err)),
                          LOG_S("detail", errbuf));
            for (size_t i = 0; i < b.n; i++)
                start_job(w, &b.jobs[i]);
            claimed = b.n;
            store_job_batch_clear(&b);
            pthread_mutex_lock(&w->mu);
        }
        if (claimed == 0 && !w->done_head && !w->poked) {
            int64_t wait_ms = w->o.idle_poll_ms;
            if (w->stopping)
                wait_ms = 20;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += wait_ms / 1000;
            ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
        w->poked = false;
    }
    /* Past the deadline: what still runs goes back to the queue. */
    for (struct job *j = w->inflight; j; j = j->next) {
        store_job_release(w->o.store, j->job_id, NULL);
        w->released++;
        LOG_WARN("job.released", LOG_I("job_id", j->job_id), LOG_S("app", j->app),
                 LOG_S("sample_id", j->sample_id), LOG_S("rubric", j->rubric),
                 LOG_S("trace_id", j->trace_id));
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

enum assay_err worker_start(const struct worker_options *o, struct worker **out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    *out = NULL;
    if (!o || !o->store || !o->cfg || !o->rubrics || !o->judge)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "worker: store, config, rubrics and judge are required");
    struct worker *w = xcalloc(1, sizeof *w);
    w->o = *o;
    if (w->o.max_concurrency == 0)
        w->o.max_concurrency =
            o->cfg->judge.max_concurrency > 0 ? (size_t)o->cfg->judge.max_concurrency : 64;
    if (w->o.idle_poll_ms <= 0)
        w->o.idle_poll_ms = 100;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (!w->o.redact) {
        if ((err = ingest_redact_new(o->cfg, &w->own_redact, errbuf)) != ASSAY_OK)
            goto out;
        w->o.redact = w->own_redact;
    }
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "worker: cannot start a thread");
        goto out;
    }
    w->started = true;
    LOG_INFO("worker.started", LOG_I("max_concurrency", w->o.max_concurrency));
    *out = w;
    w = NULL;
out:
    worker_free(w);
    return err;
}

void worker_poke(struct worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->poked = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

size_t worker_stop(struct worker *w, int64_t timeout_ms)
{
    if (!w || !w->started)
        return 0;
    pthread_mutex_lock(&w->mu);
    if (!w->stopping) {
        w->stopping = true;
        w->deadline_ms = clock_mono_ms(NULL) + timeout_ms;
    }
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    w->started = false;
    LOG_INFO("worker.stopped", LOG_I("judged", w->judged), LOG_I("released", w->released));
    return w->released;
}

void worker_free(struct worker *w)
{
    if (!w)
        return;
    worker_stop(w, 0);
    /* Late verdicts of released jobs, and jobs whose callback never came. */
    for (struct job *j = w->done_head, *n; j; j = n) {
        n = j->next;
        job_free(j);
    }
    for (struct job *j = w->inflight, *n; j; j = n) {
        n = j->next;
        job_free(j);
    }
    ingest_redact_free(w->own_redact);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

void worker_counts(struct worker *w, int64_t *judged, int64_t *in_flight)
{
    pthread_mutex_lock(&w->mu);
    if (judged)
        *judged = w->judged;
    if (in_flight)
        *in_flight = (int64_t)w->n_inflight;
    pthread_mutex_unlock(&w->mu);
}
