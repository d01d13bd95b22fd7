/*
 * tests/support/mem_store: the in-memory store backend for HTTP API tests;
 * see mem_store.h.
 */
#include "tests/support/mem_store.h"

#include "common/alloc.h"
#include "server/store_private.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct mem_sample {
    char *app, *id, *doc, *trace_id, *model_id;
    bool sampled;
    int64_t received_ms;
    char **rubrics;
    size_t n_rubrics;
};

struct pending {
    struct store_sample *samples;
    size_t n;
    store_insert_cb cb;
    void *ctx;
    struct pending *next;
};

struct mem_store {
    struct store base;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool closing;
    struct pending *head, *tail;
    struct mem_sample *items;
    size_t n, cap;
    int64_t queued;
    enum assay_err fail_next;
};

static struct mem_sample *find(struct mem_store *m, const char *app, const char *id)
{
    for (size_t i = 0; i < m->n; i++)
        if ((!app || strcmp(m->items[i].app, app) == 0) && strcmp(m->items[i].id, id) == 0)
            return &m->items[i];
    return NULL;
}

/* Under mu: inserts one batch, all or nothing (nothing can fail midway here). */
static enum assay_err insert_locked(struct mem_store *m, struct store_sample *x, size_t n)
{
    if (m->fail_next != ASSAY_OK) {
        enum assay_err e = m->fail_next;
        m->fail_next = ASSAY_OK;
        return e;
    }
    for (size_t i = 0; i < n; i++) {
        struct mem_sample *old = find(m, x[i].app, x[i].id);
        x[i].duplicate = old != NULL;
        x[i].stored_sampled = old ? old->sampled : x[i].sampled;
        if (old)
            continue;
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 16;
            m->items = xrealloc(m->items, m->cap * sizeof *m->items);
        }
        struct mem_sample *s = &m->items[m->n++];
        memset(s, 0, sizeof *s);
        s->app = xstrdup(x[i].app);
        s->id = xstrdup(x[i].id);
        /* As the SQLite backend: no document (or an empty one) is no text. */
        s->doc = x[i].doc && x[i].doc_len ? xstrndup(x[i].doc, x[i].doc_len) : NULL;
        s->trace_id = x[i].trace_id ? xstrdup(x[i].trace_id) : NULL;
        s->model_id = x[i].model_id ? xstrdup(x[i].model_id) : NULL;
        s->sampled = x[i].sampled;
        s->received_ms = x[i].received_ms;
        if (x[i].sampled) {
            s->n_rubrics = x[i].n_rubrics;
            s->rubrics = xcalloc(x[i].n_rubrics ? x[i].n_rubrics : 1, sizeof *s->rubrics);
            for (size_t r = 0; r < x[i].n_rubrics; r++)
                s->rubrics[r] = xstrdup(x[i].rubrics[r]);
            m->queued += (int64_t)x[i].n_rubrics;
        }
    }
    return ASSAY_OK;
}

static void *writer(void *arg)
{
    struct mem_store *m = arg;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (!m->head && !m->closing)
            pthread_cond_wait(&m->cv, &m->mu);
        if (!m->head)
            break;
        struct pending *p = m->head;
        m->head = p->next;
        if (!m->head)
            m->tail = NULL;
        enum assay_err err = insert_locked(m, p->samples, p->n);
        pthread_mutex_unlock(&m->mu);
        p->cb(p->ctx, err, err == ASSAY_OK ? NULL : "injected failure");
        free(p);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

static enum assay_err m_insert(struct store *s, struct store_sample *samples, size_t n,
                               store_insert_cb cb, void *ctx, char *errbuf)
{
    struct mem_store *m = (struct mem_store *)s;
    struct pending *p = xcalloc(1, sizeof *p);
    p->samples = samples;
    p->n = n;
    p->cb = cb;
    p->ctx = ctx;
    pthread_mutex_lock(&m->mu);
    if (m->closing) {
        pthread_mutex_unlock(&m->mu);
        free(p);
        return assay_errbuf_set(errbuf, ASSAY_ERR_CANCELLED, "closing");
    }
    if (m->tail)
        m->tail->next = p;
    else
        m->head = p;
    m->tail = p;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return ASSAY_OK;
}

static enum assay_err m_depth(struct store *s, int64_t *queued, int64_t *judging)
{
    struct mem_store *m = (struct mem_store *)s;
    pthread_mutex_lock(&m->mu);
    *queued = m->queued;
    *judging = 0;
    pthread_mutex_unlock(&m->mu);
    return ASSAY_OK;
}

static enum assay_err m_sample_get(struct store *s, const char *app, const char *id,
                                   struct store_sample_info *out, char *errbuf)
{
    struct mem_store *m = (struct mem_store *)s;
    enum assay_err err = ASSAY_OK;
    pthread_mutex_lock(&m->mu);
    struct mem_sample *x = find(m, app, id);
    size_t matches = 0;
    for (size_t i = 0; !app && i < m->n; i++)
        matches += strcmp(m->items[i].id, id) == 0;
    if (!x) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_NOT_FOUND, "no such sample");
    } else if (matches > 1) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "ambiguous; add ?app=");
    } else {
        out->app = store_arena_strdup(&out->mem_, x->app);
        out->id = store_arena_strdup(&out->mem_, x->id);
        out->doc = store_arena_strdup(&out->mem_, x->doc);
        out->doc_len = x->doc ? strlen(x->doc) : 0;
        out->trace_id = store_arena_strdup(&out->mem_, x->trace_id);
        out->model_id = store_arena_strdup(&out->mem_, x->model_id);
        out->sampled = x->sampled;
        out->received_ms = x->received_ms;
        out->status = x->sampled ? STORE_STATUS_QUEUED : STORE_STATUS_NOT_SAMPLED;
        out->n_jobs = x->n_rubrics;
        out->jobs = xcalloc(x->n_rubrics + 1, sizeof *out->jobs); /* freed by the _clear */
        for (size_t r = 0; r < x->n_rubrics; r++) {
            out->jobs[r].rubric = store_arena_strdup(&out->mem_, x->rubrics[r]);
            out->jobs[r].state = STORE_JOB_QUEUED;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return err;
}

static enum assay_err m_series_list(struct store *s, struct store_series_list *out, char *errbuf)
{
    return ASSAY_OK;
}

static enum assay_err m_alarm_list(struct store *s, int64_t since_ms, size_t limit,
                                   struct store_alarm_list *out, char *errbuf)
{
    return ASSAY_OK;
}

static enum assay_err m_golden_run_get(struct store *s, const char *run_id,
                                       struct store_golden_run_list *out, char *errbuf)
{
    return assay_errbuf_set(errbuf, ASSAY_ERR_NOT_FOUND, "no such run");
}

static void m_close(struct store *s)
{
    struct mem_store *m = (struct mem_store *)s;
    pthread_mutex_lock(&m->mu);
    m->closing = true;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    for (size_t i = 0; i < m->n; i++) {
        struct mem_sample *x = &m->items[i];
        free(x->app);
        free(x->id);
        free(x->doc);
        free(x->trace_id);
        free(x->model_id);
        for (size_t r = 0; r < x->n_rubrics; r++)
            free(x->rubrics[r]);
        free(x->rubrics);
    }
    free(m->items);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static const struct store_ops mem_ops = {
    .sample_insert_async = m_insert,
    .queue_depth = m_depth,
    .sample_get = m_sample_get,
    .series_list = m_series_list,
    .alarm_list = m_alarm_list,
    .golden_run_get = m_golden_run_get,
    .close = m_close,
};

struct store *mem_store_new(void)
{
    struct mem_store *m = xcalloc(1, sizeof *m);
    m->base.ops = &mem_ops;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    pthread_create(&m->thread, NULL, writer, m);
    return &m->base;
}

void mem_store_set_queued(struct store *s, int64_t queued)
{
    struct mem_store *m = (struct mem_store *)s;
    pthread_mutex_lock(&m->mu);
    m->queued = queued;
    pthread_mutex_unlock(&m->mu);
}

void mem_store_fail_next(struct store *s, enum assay_err err)
{
    struct mem_store *m = (struct mem_store *)s;
    pthread_mutex_lock(&m->mu);
    m->fail_next = err;
    pthread_mutex_unlock(&m->mu);
}

size_t mem_store_count(struct store *s)
{
    struct mem_store *m = (struct mem_store *)s;
    pthread_mutex_lock(&m->mu);
    size_t n = m->n;
    pthread_mutex_unlock(&m->mu);
    return n;
}
