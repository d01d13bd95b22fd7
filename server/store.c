/*
 * server/store: the backend-independent half of the store interface. Checks
 * the arguments every backend would check, dispatches through the backend's
 * vtable, turns the asynchronous insert into the blocking one, and owns the
 * output containers' memory (an arena per container). Backends live in
 * store_<name>.c and implement server/store_private.h.
 */
#include "server/store_private.h"

#include "common/alloc.h"
#include "judges/verdict.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ arena */

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[]; /* cap bytes */
};

#define ARENA_BLOCK_BYTES 4096u

void *store_arena_alloc(void **mem, size_t n)
{
    struct arena_block *b = *mem;
    size_t need = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (need == 0)
        need = sizeof(max_align_t);
    if (!b || b->cap - b->used < need) {
        size_t cap = need > ARENA_BLOCK_BYTES ? need : ARENA_BLOCK_BYTES;
        struct arena_block *nb = xmalloc(sizeof *nb + cap);
        nb->used = 0;
        nb->cap = cap;
        if (b && need > ARENA_BLOCK_BYTES) {
            /* A large allocation gets its own block behind the current one,
             * so the current block's free space stays usable. */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            *mem = nb;
        }
        b = nb;
    }
    void *p = (char *)b->data + b->used;
    b->used += need;
    return p;
}

const char *store_arena_memdup(void **mem, const void *p, size_t n)
{
    if (!p)
        return NULL;
    char *q = store_arena_alloc(mem, n + 1);
    if (n)
        memcpy(q, p, n);
    q[n] = '\0';
    return q;
}

const char *store_arena_strdup(void **mem, const char *s)
{
    return s ? store_arena_memdup(mem, s, strlen(s)) : NULL;
}

void store_arena_free(void *mem)
{
    struct arena_block *b = mem;
    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
}

/* ------------------------------------------------------------------ names */

const char *store_job_state_name(enum store_job_state st)
{
    switch (st) {
    case STORE_JOB_QUEUED:
        return "queued";
    case STORE_JOB_JUDGING:
        return "judging";
    case STORE_JOB_DONE:
        return "done";
    case STORE_JOB_FAILED:
        return "failed";
    }
    return "unknown";
}

const char *store_sample_status_name(enum store_sample_status st)
{
    switch (st) {
    case STORE_STATUS_QUEUED:
        return "queued";
    case STORE_STATUS_JUDGING:
        return "judging";
    case STORE_STATUS_DONE:
        return "done";
    case STORE_STATUS_FAILED:
        return "failed";
    case STORE_STATUS_NOT_SAMPLED:
        return "not_sampled";
    }
    return "unknown";
}

void store_verdict_from(struct store_verdict *out, const struct verdict *v, int attempts)
{
    memset(out, 0, sizeof *out);
    out->rubric = v->rubric;
    out->rubric_version = v->rubric_version;
    out->judge = v->judge;
    out->unscorable = v->outcome != VERDICT_SCORED;
    if (out->unscorable) {
        out->reason = v->reason ? v->reason : "unknown";
        out->detail = v->detail[0] ? v->detail : NULL;
    } else {
        out->score = v->score;
        out->raw_score = v->raw_score;
        out->pass = v->pass;
    }
    out->reasoning = v->reasoning;
    out->latency_ms = v->latency_ms;
    out->input_tokens = v->usage.input_tokens;
    out->output_tokens = v->usage.output_tokens;
    out->cache_read_tokens = v->usage.cache_read_input_tokens;
    out->cache_write_tokens = v->usage.cache_write_input_tokens;
    out->attempts = attempts;
}

/* ------------------------------------------------------------- containers */

void store_job_batch_clear(struct store_job_batch *b)
{
    if (!b)
        return;
    free(b->jobs);
    store_arena_free(b->mem_);
    memset(b, 0, sizeof *b);
}

void store_series_list_clear(struct store_series_list *l)
{
    if (!l)
        return;
    free(l->series);
    store_arena_free(l->mem_);
    memset(l, 0, sizeof *l);
}

void store_alarm_list_clear(struct store_alarm_list *l)
{
    if (!l)
        return;
    free(l->alarms);
    store_arena_free(l->mem_);
    memset(l, 0, sizeof *l);
}

void store_sample_info_clear(struct store_sample_info *i)
{
    if (!i)
        return;
    free(i->jobs);
    store_arena_free(i->mem_);
    memset(i, 0, sizeof *i);
}

void store_outbox_list_clear(struct store_outbox_list *l)
{
    if (!l)
        return;
    free(l->items);
    store_arena_free(l->mem_);
    memset(l, 0, sizeof *l);
}

void store_golden_run_list_clear(struct store_golden_run_list *l)
{
    if (!l)
        return;
    free(l->runs);
    store_arena_free(l->mem_);
    memset(l, 0, sizeof *l);
}

void store_golden_item_list_clear(struct store_golden_item_list *l)
{
    if (!l)
        return;
    free(l->items);
    store_arena_free(l->mem_);
    memset(l, 0, sizeof *l);
}

/* --------------------------------------------------------------- dispatch */

static enum assay_err bad(char *errbuf, const char *what)
{
    return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "store: %s", what);
}

static enum assay_err check_samples(const struct store_sample *samples, size_t n, char *errbuf)
{
    if (!samples || n == 0)
        return bad(errbuf, "no samples");
    for (size_t i = 0; i < n; i++) {
        const struct store_sample *x = &samples[i];
        if (!x->app || !x->app[0] || !x->id || !x->id[0])
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "store: sample %zu has no app or id", i);
        if (x->doc && x->doc_len > INT32_MAX)
            return assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE, "store: sample %zu is too large",
                                    i);
        if (x->sampled && (!x->doc || x->doc_len == 0))
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "store: sampled sample %zu has no document", i);
        if (x->sampled && x->n_rubrics && !x->rubrics)
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "store: sample %zu has no rubric list", i);
        for (size_t r = 0; x->sampled && r < x->n_rubrics; r++)
            if (!x->rubrics[r] || !x->rubrics[r][0])
                return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                        "store: sample %zu has an empty rubric", i);
    }
    return ASSAY_OK;
}

enum assay_err store_sample_insert_async(struct store *s, struct store_sample *samples, size_t n,
                                         store_insert_cb cb, void *ctx, char *errbuf)
{
    if (!s || !cb)
        return bad(errbuf, "no store or callback");
    enum assay_err err = check_samples(samples, n, errbuf);
    if (err != ASSAY_OK)
        return err;
    return s->ops->sample_insert_async(s, samples, n, cb, ctx, errbuf);
}

/* The blocking insert waits on its own completion. */
struct insert_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fired;
    enum assay_err err;
    char *errbuf;
};

static void insert_fired(void *ctx, enum assay_err err, const char *detail)
{
    struct insert_wait *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->err = err;
    if (err != ASSAY_OK && w->errbuf && detail)
        assay_errbuf_set(w->errbuf, err, "%s", detail);
    w->fired = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

enum assay_err store_sample_insert(struct store *s, struct store_sample *samples, size_t n,
                                   char *errbuf)
{
    struct insert_wait w = {.fired = 0, .err = ASSAY_OK, .errbuf = errbuf};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    enum assay_err err = store_sample_insert_async(s, samples, n, insert_fired, &w, errbuf);
    if (err == ASSAY_OK) {
        pthread_mutex_lock(&w.mu);
        while (!w.fired)
            pthread_cond_wait(&w.cv, &w.mu);
        err = w.err;
        pthread_mutex_unlock(&w.mu);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return err;
}

enum assay_err store_sample_insert_group(struct store *s, struct store_insert *reqs, size_t n,
                                         uint64_t *ticket, char *errbuf)
{
    if (ticket)
        *ticket = 0;
    if (!s || (n && !reqs))
        return bad(errbuf, "no store or requests");
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        reqs[i].errbuf[0] = '\0';
        reqs[i].err = check_samples(reqs[i].samples, reqs[i].n, reqs[i].errbuf);
        any |= reqs[i].err == ASSAY_OK;
    }
    if (!any)
        return ASSAY_OK;
    if (!s->ops->sample_insert_group) {
        for (size_t i = 0; i < n; i++)
            if (reqs[i].err == ASSAY_OK)
                reqs[i].err = store_sample_insert(s, reqs[i].samples, reqs[i].n, reqs[i].errbuf);
        return ASSAY_OK;
    }
    return s->ops->sample_insert_group(s, reqs, n, ticket, errbuf);
}

enum assay_err store_sync(struct store *s, uint64_t ticket, char *errbuf)
{
    if (!s)
        return bad(errbuf, "no store");
    if (ticket == 0 || !s->ops->sync)
        return ASSAY_OK;
    return s->ops->sync(s, ticket, errbuf);
}

enum assay_err store_job_claim(struct store *s, size_t max, struct store_job_batch *out,
                               char *errbuf)
{
    if (!s || !out)
        return bad(errbuf, "no store or output");
    store_job_batch_clear(out);
    if (max == 0)
        return ASSAY_OK;
    return s->ops->job_claim(s, max, out, errbuf);
}

enum assay_err store_job_release(struct store *s, int64_t job_id, char *errbuf)
{
    if (!s)
        return bad(errbuf, "no store");
    return s->ops->job_release(s, job_id, errbuf);
}

enum assay_err store_queue_depth(struct store *s, int64_t *queued, int64_t *judging)
{
    int64_t q = 0, j = 0;
    if (!s)
        return ASSAY_ERR_INVALID_ARGUMENT;
    enum assay_err err = s->ops->queue_depth(s, &q, &j);
    if (queued)
        *queued = q;
    if (judging)
        *judging = j;
    return err;
}

static enum assay_err check_verdict(const struct store_verdict *v, char *errbuf)
{
    if (!v)
        return bad(errbuf, "no verdict");
    if (!v->rubric || !v->rubric[0])
        return bad(errbuf, "verdict has no rubric");
    if (v->unscorable && (!v->reason || !v->reason[0]))
        return bad(errbuf, "unscorable verdict has no reason");
    return ASSAY_OK;
}

static enum assay_err check_series(const struct store_series *x, char *errbuf)
{
    if (!x || !x->app || !x->rubric || !x->model_id || !x->state_json)
        return bad(errbuf, "series needs app, rubric, model_id and state");
    return ASSAY_OK;
}

static enum assay_err check_alarm(const struct store_alarm *a, char *errbuf)
{
    if (!a || !a->app || !a->rubric || !a->model_id)
        return bad(errbuf, "alarm needs app, rubric and model_id");
    return ASSAY_OK;
}

enum assay_err store_job_complete(struct store *s, const struct store_completion *c, int *recorded,
                                  char *errbuf)
{
    if (recorded)
        *recorded = 0;
    if (!s || !c)
        return bad(errbuf, "no store or completion");
    enum assay_err err = check_verdict(c->verdict, errbuf);
    if (err == ASSAY_OK && c->series)
        err = check_series(c->series, errbuf);
    if (err == ASSAY_OK && c->alarm)
        err = check_alarm(c->alarm, errbuf);
    if (err != ASSAY_OK)
        return err;
    int rec = 0;
    err = s->ops->job_complete(s, c, &rec, errbuf);
    if (recorded)
        *recorded = rec;
    return err;
}

enum assay_err store_sample_get(struct store *s, const char *app, const char *id,
                                struct store_sample_info *out, char *errbuf)
{
    if (!s || !id || !out)
        return bad(errbuf, "no store, id or output");
    store_sample_info_clear(out);
    return s->ops->sample_get(s, app, id, out, errbuf);
}

enum assay_err store_series_put(struct store *s, const struct store_series *series, char *errbuf)
{
    if (!s)
        return bad(errbuf, "no store");
    enum assay_err err = check_series(series, errbuf);
    return err != ASSAY_OK ? err : s->ops->series_put(s, series, errbuf);
}

enum assay_err store_series_get(struct store *s, const char *app, const char *rubric,
                                const char *model_id, struct store_series_list *out, char *errbuf)
{
    if (!s || !app || !rubric || !model_id || !out)
        return bad(errbuf, "series_get needs app, rubric, model_id and output");
    store_series_list_clear(out);
    return s->ops->series_get(s, app, rubric, model_id, out, errbuf);
}

enum assay_err store_series_list(struct store *s, struct store_series_list *out, char *errbuf)
{
    if (!s || !out)
        return bad(errbuf, "no store or output");
    store_series_list_clear(out);
    return s->ops->series_list(s, out, errbuf);
}

enum assay_err store_alarm_append(struct store *s, const struct store_alarm *alarm,
                                  int64_t *alarm_id, char *errbuf)
{
    if (!s)
        return bad(errbuf, "no store");
    enum assay_err err = check_alarm(alarm, errbuf);
    return err != ASSAY_OK ? err : s->ops->alarm_append(s, alarm, alarm_id, errbuf);
}

enum assay_err store_alarm_list(struct store *s, int64_t since_ms, size_t limit,
                                struct store_alarm_list *out, char *errbuf)
{
    if (!s || !out)
        return bad(errbuf, "no store or output");
    store_alarm_list_clear(out);
    return s->ops->alarm_list(s, since_ms, limit, out, errbuf);
}

enum assay_err store_outbox_enqueue(struct store *s, const void *payload, size_t len,
                                    int64_t created_ms, int64_t *item_id, char *errbuf)
{
    if (!s || (!payload && len))
        return bad(errbuf, "no store or payload");
    return s->ops->outbox_enqueue(s, payload ? payload : "", len, created_ms, item_id, errbuf);
}

enum assay_err store_outbox_peek(struct store *s, size_t max, struct store_outbox_list *out,
                                 char *errbuf)
{
    if (!s || !out)
        return bad(errbuf, "no store or output");
    store_outbox_list_clear(out);
    if (max == 0)
        return ASSAY_OK;
    return s->ops->outbox_peek(s, max, out, errbuf);
}

enum assay_err store_outbox_delete(struct store *s, const int64_t *item_ids, size_t n, char *errbuf)
{
    if (!s || (!item_ids && n))
        return bad(errbuf, "no store or ids");
    if (n == 0)
        return ASSAY_OK;
    return s->ops->outbox_delete(s, item_ids, n, errbuf);
}

enum assay_err store_outbox_expire(struct store *s, int64_t cutoff_ms, int64_t *dropped,
                                   char *errbuf)
{
    int64_t d = 0;
    if (dropped)
        *dropped = 0;
    if (!s)
        return bad(errbuf, "no store");
    enum assay_err err = s->ops->outbox_expire(s, cutoff_ms, &d, errbuf);
    if (dropped)
        *dropped = d;
    return err;
}

enum assay_err store_outbox_count(struct store *s, int64_t *count)
{
    int64_t c = 0;
    if (!s)
        return ASSAY_ERR_INVALID_ARGUMENT;
    enum assay_err err = s->ops->outbox_count(s, &c);
    if (count)
        *count = c;
    return err;
}

enum assay_err store_golden_run_create(struct store *s, const struct store_golden_run *run,
                                       char *errbuf)
{
    if (!s || !run || !run->run_id || !run->dataset || !run->status)
        return bad(errbuf, "golden run needs run_id, dataset and status");
    return s->ops->golden_run_create(s, run, errbuf);
}

enum assay_err store_golden_run_update(struct store *s, const char *run_id, const char *status,
                                       int64_t done, int64_t total, const char *result_json,
                                       char *errbuf)
{
    if (!s || !run_id || !status)
        return bad(errbuf, "golden run update needs run_id and status");
    return s->ops->golden_run_update(s, run_id, status, done, total, result_json, errbuf);
}

enum assay_err store_golden_run_get(struct store *s, const char *run_id,
                                    struct store_golden_run_list *out, char *errbuf)
{
    if (!s || !run_id || !out)
        return bad(errbuf, "no store, run_id or output");
    store_golden_run_list_clear(out);
    return s->ops->golden_run_get(s, run_id, out, errbuf);
}

enum assay_err store_golden_run_latest(struct store *s, const char *dataset, const char *status,
                                       const char *except_run_id, struct store_golden_run_list *out,
                                       char *errbuf)
{
    if (!s || !dataset || !out)
        return bad(errbuf, "no store, dataset or output");
    store_golden_run_list_clear(out);
    return s->ops->golden_run_latest(s, dataset, status, except_run_id, out, errbuf);
}

enum assay_err store_golden_item_put(struct store *s, const struct store_golden_item *item,
                                     char *errbuf)
{
    if (!s || !item || !item->run_id || !item->item_id || !item->rubric)
        return bad(errbuf, "golden item needs run_id, item_id and rubric");
    return s->ops->golden_item_put(s, item, errbuf);
}

enum assay_err store_golden_item_list(struct store *s, const char *run_id,
                                      struct store_golden_item_list *out, char *errbuf)
{
    if (!s || !run_id || !out)
        return bad(errbuf, "no store, run_id or output");
    store_golden_item_list_clear(out);
    return s->ops->golden_item_list(s, run_id, out, errbuf);
}

enum assay_err store_retention_run(struct store *s, int64_t cutoff_ms, size_t max_samples,
                                   int64_t *deleted, char *errbuf)
{
    int64_t d = 0;
    if (deleted)
        *deleted = 0;
    if (!s)
        return bad(errbuf, "no store");
    if (max_samples == 0)
        return ASSAY_OK;
    enum assay_err err = s->ops->retention_run(s, cutoff_ms, max_samples, &d, errbuf);
    if (deleted)
        *deleted = d;
    return err;
}

void store_stats_get(struct store *s, struct store_stats *out)
{
    memset(out, 0, sizeof *out);
    if (s)
        s->ops->stats_get(s, out);
}

void store_close(struct store *s)
{
    if (s)
        s->ops->close(s);
}
