/*
 * monitor/publish: per-period aggregation of assay's metrics and their
 * delivery to CloudWatch (through an outbox), EMF lines or nowhere. Called by
 * the service's workers (events), by its own thread (periods, delivery) and
 * by the /metrics handler (snapshot). The contract is in publish.h; the
 * design in docs/internals/PUBLISH.md.
 */
#include "monitor/publish.h"

#include "aws/cloudwatch.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/rng.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DIMS 4
#define EMF_MAX_METRICS 100 /* MetricDefinition objects per directive (EMF spec) */
#define EMF_MAX_VALUES 100  /* values per metric member (EMF spec) */
#define REGRESSION_BACKFILL 60

enum kind { KIND_DIST, KIND_SUM };

struct metric_def {
    const char *name;
    const char *unit;
    enum kind kind;
};

static const struct metric_def M_SCORE = {"QualityScore", "None", KIND_DIST};
static const struct metric_def M_PASS = {"QualityPass", "None", KIND_DIST};
static const struct metric_def M_REGRESSION = {"QualityRegression", "None", KIND_DIST};
static const struct metric_def M_INVOCATIONS = {"JudgeInvocations", "Count", KIND_DIST};
static const struct metric_def M_LATENCY = {"JudgeInvocationLatency", "Milliseconds", KIND_DIST};
static const struct metric_def M_THROTTLES = {"JudgeInvocationThrottles", "Count", KIND_DIST};
static const struct metric_def M_CLIENT_ERR = {"JudgeInvocationClientErrors", "Count", KIND_DIST};
static const struct metric_def M_SERVER_ERR = {"JudgeInvocationServerErrors", "Count", KIND_DIST};
static const struct metric_def M_IN_TOKENS = {"JudgeInputTokenCount", "Count", KIND_SUM};
static const struct metric_def M_OUT_TOKENS = {"JudgeOutputTokenCount", "Count", KIND_SUM};
static const struct metric_def M_RECEIVED = {"SamplesReceived", "Count", KIND_SUM};
static const struct metric_def M_JUDGED = {"SamplesJudged", "Count", KIND_SUM};
static const struct metric_def M_DROPPED = {"SamplesDropped", "Count", KIND_SUM};
static const struct metric_def M_GOLDEN = {"GoldenSetScore", "None", KIND_DIST};
static const struct metric_def M_GOLDEN_REG = {"GoldenSetRegression", "None", KIND_DIST};
static const struct metric_def M_AGREEMENT = {"JudgeAgreement", "None", KIND_DIST};

/* Names a tag key may not take: they are dimensions or members already. */
static const char *const reserved_names[] = {"App",     "Rubric",        "ModelId", "JudgeModelId",
                                             "Dataset", "TargetModelId", "_aws",    NULL};

/* One aggregate: a metric, a dimension set and a period (period_ms -1 for the
 * lifetime totals of the snapshot). */
struct agg {
    struct agg *next; /* hash chain */
    uint64_t hash;
    char *key;    /* period, metric and dimensions */
    char *dimkey; /* dimensions only (EMF grouping) */
    int64_t period_ms;
    const struct metric_def *m;
    size_t n_dims;
    char *dim_name[MAX_DIMS];
    char *dim_value[MAX_DIMS];
    double count, sum, min, max;
    double *values; /* KIND_DIST: distinct values, ascending */
    double *counts;
    size_t n_values, cap_values;
};

struct table {
    struct agg **slots;
    size_t n_slots, n;
    struct buf scratch; /* table_get's key */
};

struct regression_series {
    char *app, *rubric, *model_id; /* model_id may be NULL */
    int state;                     /* 1 in alarm */
    int hit;                       /* in alarm at some moment since next_period_ms */
    int64_t next_period_ms;        /* first period not yet reported */
};

struct tag_values {
    char *key;
    char **values;
    size_t n;
};

struct emf_out {
    FILE *f;
    int owned;
};

struct publish {
    enum publish_sink sink;
    char *ns;
    int64_t period_s;
    size_t max_tag_values;
    const struct clock *clock;
    int64_t tick_ms;

    pthread_mutex_t lock; /* aggregation: tables, series, tags, counters */
    struct table periods;
    struct table totals;
    struct regression_series *series;
    size_t n_series, cap_series;
    struct tag_values tags[PUBLISH_MAX_TAGS];
    size_t n_tags;
    struct publish_counters counters;
    publish_observe_fn observe;
    void *observe_ctx;

    pthread_mutex_t sink_lock; /* the sink: EMF file, outbox delivery, backoff */
    struct cloudwatch *cw;
    struct publish_outbox *outbox;
    struct emf_out emf;
    int64_t backoff_base_ms, backoff_max_ms;
    int64_t next_attempt_ms;
    int failures;
    struct rng rng;

    pthread_mutex_t thread_lock;
    pthread_cond_t thread_cond;
    pthread_t thread;
    int started, stopping, stopped;
};

/* ------------------------------------------------------------------------ */
/* Memory outbox                                                            */

void publish_outbox_item_clear(struct publish_outbox_item *it)
{
    if (!it)
        return;
    free(it->body);
    it->body = NULL;
    it->len = 0;
}

struct mem_item {
    struct mem_item *next;
    int64_t id, period_ms;
    char *body;
    size_t len;
};

struct mem_outbox {
    pthread_mutex_t lock;
    struct mem_item *head, *tail;
    int64_t next_id;
    size_t n;
};

static enum assay_err mem_enqueue(void *ctx, const char *body, size_t len, int64_t period_ms)
{
    struct mem_outbox *m = ctx;
    struct mem_item *it = xcalloc(1, sizeof *it);
    it->body = xmemdup(body, len + 1);
    it->body[len] = '\0';
    it->len = len;
    it->period_ms = period_ms;
    pthread_mutex_lock(&m->lock);
    it->id = ++m->next_id;
    if (m->tail)
        m->tail->next = it;
    else
        m->head = it;
    m->tail = it;
    m->n++;
    pthread_mutex_unlock(&m->lock);
    return ASSAY_OK;
}

static enum assay_err mem_peek(void *ctx, struct publish_outbox_item *out)
{
    struct mem_outbox *m = ctx;
    enum assay_err err = ASSAY_ERR_NOT_FOUND;
    pthread_mutex_lock(&m->lock);
    if (m->head) {
        out->id = m->head->id;
        out->period_ms = m->head->period_ms;
        out->len = m->head->len;
        out->body = xmemdup(m->head->body, m->head->len + 1);
        err = ASSAY_OK;
    }
    pthread_mutex_unlock(&m->lock);
    return err;
}

static void mem_remove_if(struct mem_outbox *m, int (*pred)(const struct mem_item *, int64_t),
                          int64_t arg, size_t *removed)
{
    struct mem_item **pp = &m->head, *prev = NULL;
    while (*pp) {
        struct mem_item *it = *pp;
        if (pred(it, arg)) {
            *pp = it->next;
            if (m->tail == it)
                m->tail = prev;
            free(it->body);
            free(it);
            m->n--;
            if (removed)
                (*removed)++;
        } else {
            prev = it;
            pp = &it->next;
        }
    }
}

static int has_id(const struct mem_item *it, int64_t id)
{
    return it->id == id;
}

static int older_than(const struct mem_item *it, int64_t cutoff)
{
    return it->period_ms < cutoff;
}

static enum assay_err mem_ack(void *ctx, int64_t id)
{
    struct mem_outbox *m = ctx;
    pthread_mutex_lock(&m->lock);
    mem_remove_if(m, has_id, id, NULL);
    pthread_mutex_unlock(&m->lock);
    return ASSAY_OK;
}

static enum assay_err mem_drop_older_than(void *ctx, int64_t cutoff_ms, size_t *dropped)
{
    struct mem_outbox *m = ctx;
    size_t n = 0;
    pthread_mutex_lock(&m->lock);
    mem_remove_if(m, older_than, cutoff_ms, &n);
    pthread_mutex_unlock(&m->lock);
    if (dropped)
        *dropped += n;
    return ASSAY_OK;
}

static size_t mem_count(void *ctx)
{
    struct mem_outbox *m = ctx;
    pthread_mutex_lock(&m->lock);
    size_t n = m->n;
    pthread_mutex_unlock(&m->lock);
    return n;
}

static void mem_destroy(void *ctx)
{
    struct mem_outbox *m = ctx;
    if (!m)
        return;
    while (m->head) {
        struct mem_item *next = m->head->next;
        free(m->head->body);
        free(m->head);
        m->head = next;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

struct publish_outbox *publish_outbox_memory_new(void)
{
    struct mem_outbox *m = xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    struct publish_outbox *ob = xcalloc(1, sizeof *ob);
    *ob = (struct publish_outbox){mem_enqueue, mem_peek,    mem_ack, mem_drop_older_than,
                                  mem_count,   mem_destroy, m};
    return ob;
}

void publish_outbox_free(struct publish_outbox *ob)
{
    if (!ob)
        return;
    if (ob->destroy)
        ob->destroy(ob->ctx);
    free(ob);
}

/* ------------------------------------------------------------------------ */
/* Aggregates                                                               */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void agg_free(struct agg *a)
{
    if (!a)
        return;
    free(a->key);
    free(a->dimkey);
    for (size_t i = 0; i < a->n_dims; i++) {
        free(a->dim_name[i]);
        free(a->dim_value[i]);
    }
    free(a->values);
    free(a->counts);
    free(a);
}

static void table_clear(struct table *t)
{
    for (size_t i = 0; i < t->n_slots; i++)
        while (t->slots[i]) {
            struct agg *next = t->slots[i]->next;
            agg_free(t->slots[i]);
            t->slots[i] = next;
        }
    free(t->slots);
    buf_clear(&t->scratch);
    memset(t, 0, sizeof *t);
}

static void table_grow(struct table *t)
{
    size_t n_slots = t->n_slots ? t->n_slots * 2 : 256;
    struct agg **slots = xcalloc(n_slots, sizeof *slots);
    for (size_t i = 0; i < t->n_slots; i++)
        while (t->slots[i]) {
            struct agg *a = t->slots[i];
            t->slots[i] = a->next;
            a->next = slots[a->hash & (n_slots - 1)];
            slots[a->hash & (n_slots - 1)] = a;
        }
    free(t->slots);
    t->slots = slots;
    t->n_slots = n_slots;
}

/* Appends the key of (period, metric, dims) to b: "PERIOD\x1fMETRIC" then "\x1fNAME=VALUE" per dim.
 */
static void key_append(struct buf *b, int64_t period_ms, const char *metric,
                       const char *const *names, const char *const *values, size_t n_dims)
{
    buf_append_int(b, period_ms);
    buf_append_char(b, '\x1f');
    buf_append_str(b, metric);
    for (size_t k = 0; k < n_dims; k++) {
        buf_append_char(b, '\x1f');
        buf_append_str(b, names[k]);
        buf_append_char(b, '=');
        buf_append_str(b, values[k]);
    }
}

/*
 * The aggregate for (period, metric, dims), created when absent. Called for
 * every sample and verdict, so the key is built without printf in a buffer
 * that table keeps (t->scratch).
 */
static struct agg *table_get(struct table *t, int64_t period_ms, const struct metric_def *m,
                             const char *const *names, const char *const *values, size_t n_dims)
{
    struct buf *key = &t->scratch;
    buf_reset(key);
    key_append(key, period_ms, m->name, names, values, n_dims);
    uint64_t h = fnv1a(buf_cstr(key));
    struct agg *a = NULL;
    if (t->n_slots)
        for (a = t->slots[h & (t->n_slots - 1)]; a; a = a->next)
            if (a->hash == h && strcmp(a->key, buf_cstr(key)) == 0)
                return a;
    if (t->n + 1 > t->n_slots)
        table_grow(t);
    a = xcalloc(1, sizeof *a);
    a->hash = h;
    a->key = xstrdup(buf_cstr(key));
    /* The dimensions alone: the key past "PERIOD\x1fMETRIC". */
    const char *dk = strchr(a->key, '\x1f');
    dk = dk ? strchr(dk + 1, '\x1f') : NULL;
    a->dimkey = xstrdup(dk ? dk : "");
    a->period_ms = period_ms;
    a->m = m;
    a->n_dims = n_dims;
    for (size_t i = 0; i < n_dims; i++) {
        a->dim_name[i] = xstrdup(names[i]);
        a->dim_value[i] = xstrdup(values[i]);
    }
    a->next = t->slots[h & (t->n_slots - 1)];
    t->slots[h & (t->n_slots - 1)] = a;
    t->n++;
    return a;
}

static void agg_add(struct agg *a, double v, double count)
{
    if (a->count == 0) {
        a->min = a->max = v;
    } else {
        if (v < a->min)
            a->min = v;
        if (v > a->max)
            a->max = v;
    }
    a->count += count;
    a->sum += v * count;
    if (a->m->kind != KIND_DIST || a->period_ms < 0)
        return;
    size_t lo = 0, hi = a->n_values;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->values[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < a->n_values && a->values[lo] == v) {
        a->counts[lo] += count;
        return;
    }
    if (a->n_values == a->cap_values) {
        a->cap_values = a->cap_values ? a->cap_values * 2 : 8;
        a->values = xrealloc(a->values, a->cap_values * sizeof *a->values);
        a->counts = xrealloc(a->counts, a->cap_values * sizeof *a->counts);
    }
    memmove(a->values + lo + 1, a->values + lo, (a->n_values - lo) * sizeof *a->values);
    memmove(a->counts + lo + 1, a->counts + lo, (a->n_values - lo) * sizeof *a->counts);
    a->values[lo] = v;
    a->counts[lo] = count;
    a->n_values++;
}

int64_t publish_period_start_ms(int64_t ts_ms, int64_t period_s)
{
    int64_t p = period_s * 1000;
    int64_t q = ts_ms / p;
    if (ts_ms % p < 0)
        q--;
    return q * p;
}

static int64_t now_ms(const struct publish *p)
{
    return clock_now_ms(p->clock);
}

/* Adds one observation; p->lock held. */
static void add(struct publish *p, const struct metric_def *m, const char *const *names,
                const char *const *values, size_t n_dims, double v, int64_t ts_ms)
{
    if (ts_ms <= 0)
        ts_ms = now_ms(p);
    int64_t period = publish_period_start_ms(ts_ms, p->period_s);
    agg_add(table_get(&p->periods, period, m, names, values, n_dims), v, 1);
    agg_add(table_get(&p->totals, -1, m, names, values, n_dims), v, 1);
}

/* A dimension value CloudWatch accepts: 1-1024 printable ASCII characters,
 * not all blank. */
static int dim_value_ok(const char *s)
{
    if (!s || !*s || strlen(s) > CLOUDWATCH_MAX_DIMENSION_VALUE_LEN)
        return 0;
    int visible = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c < 0x20 || *c > 0x7e)
            return 0;
        if (*c != ' ')
            visible = 1;
    }
    return visible;
}

static int dim_name_ok(const char *s)
{
    return dim_value_ok(s) && strlen(s) <= CLOUDWATCH_MAX_NAME_LEN && s[0] != ':';
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */

void publish_options_init(struct publish_options *o)
{
    memset(o, 0, sizeof *o);
    o->sink = PUBLISH_SINK_CLOUDWATCH;
    o->ns = "Assay";
    o->period_s = 60;
    o->max_tag_values = PUBLISH_DEFAULT_MAX_TAG_VALUES;
}

static int reserved(const char *name)
{
    for (size_t i = 0; reserved_names[i]; i++)
        if (strcmp(reserved_names[i], name) == 0)
            return 1;
    return 0;
}

enum assay_err publish_options_from_json(struct publish_options *o, const json_t *metrics,
                                         char *errbuf)
{
    if (!metrics)
        return ASSAY_OK;
    if (!json_is_object(metrics))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "metrics: must be an object");
    const json_t *v;
    if ((v = json_object_get(metrics, "sink"))) {
        const char *s = json_string_value(v);
        if (s && strcmp(s, "cloudwatch") == 0)
            o->sink = PUBLISH_SINK_CLOUDWATCH;
        else if (s && strcmp(s, "emf") == 0)
            o->sink = PUBLISH_SINK_EMF;
        else if (s && strcmp(s, "none") == 0)
            o->sink = PUBLISH_SINK_NONE;
        else
            return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                    "metrics.sink: must be \"cloudwatch\", \"emf\" or \"none\"");
    }
    if ((v = json_object_get(metrics, "namespace"))) {
        if (!json_is_string(v) || cloudwatch_namespace_validate(json_string_value(v), NULL))
            return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                    "metrics.namespace: must be a CloudWatch namespace");
        o->ns = json_string_value(v);
    }
    if ((v = json_object_get(metrics, "period_s"))) {
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
        if (n < 1 || n > 86400 || (n > 60 && n % 60 != 0))
            return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                    "metrics.period_s: must be 1-60, or a multiple of 60");
        o->period_s = n;
    }
    if ((v = json_object_get(metrics, "emf_path"))) {
        if (!json_is_string(v) || !*json_string_value(v))
            return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                    "metrics.emf_path: must be a path or \"-\"");
        o->emf_path = json_string_value(v);
    }
    if ((v = json_object_get(metrics, "max_tag_values"))) {
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
        if (n < 1 || n > 1000)
            return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                    "metrics.max_tag_values: must be an integer from 1 to 1000");
        o->max_tag_values = (size_t)n;
    }
    if ((v = json_object_get(metrics, "tags"))) {
        if (!json_is_array(v) || json_array_size(v) > PUBLISH_MAX_TAGS)
            return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                    "metrics.tags: must be an array of at most %d tag keys",
                                    PUBLISH_MAX_TAGS);
        o->n_tags = 0;
        for (size_t i = 0; i < json_array_size(v); i++) {
            const char *k = json_string_value(json_array_get(v, i));
            if (!k || !dim_name_ok(k) || strlen(k) > 64 || reserved(k))
                return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                        "metrics.tags[%zu]: must be a tag key of 1-64 printable "
                                        "ASCII characters, not a dimension assay uses",
                                        i);
            for (size_t j = 0; j < o->n_tags; j++)
                if (strcmp(o->tags[j], k) == 0)
                    return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                            "metrics.tags[%zu]: \"%s\" is listed twice", i, k);
            o->tags[o->n_tags++] = k;
        }
    }
    return ASSAY_OK;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

struct publish *publish_new(const struct publish_options *o, char *errbuf)
{
    const char *ns = o->ns ? o->ns : "Assay";
    int64_t period_s = o->period_s ? o->period_s : 60;
    if (cloudwatch_namespace_validate(ns, errbuf) != ASSAY_OK)
        return NULL;
    if (period_s < 1 || period_s > 86400 || (period_s > 60 && period_s % 60 != 0)) {
        assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "period_s must be 1-60 or a multiple of 60");
        return NULL;
    }
    if (o->sink == PUBLISH_SINK_CLOUDWATCH && !o->cw) {
        assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "the cloudwatch sink needs a client");
        return NULL;
    }
    if (o->n_tags > PUBLISH_MAX_TAGS) {
        assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "at most %d tag keys", PUBLISH_MAX_TAGS);
        return NULL;
    }
    struct emf_out emf = {NULL, 0};
    if (o->sink == PUBLISH_SINK_EMF) {
        if (o->emf_out) {
            emf.f = o->emf_out;
        } else if (!o->emf_path || strcmp(o->emf_path, "-") == 0) {
            emf.f = stdout;
        } else {
            emf.f = fopen(o->emf_path, "a");
            if (!emf.f) {
                assay_errbuf_set(errbuf, ASSAY_ERR_IO, "%s: %s", o->emf_path, strerror(errno));
                return NULL;
            }
            emf.owned = 1;
        }
    }
    struct publish *p = xcalloc(1, sizeof *p);
    p->sink = o->sink;
    p->ns = xstrdup(ns);
    p->period_s = period_s;
    p->max_tag_values = o->max_tag_values ? o->max_tag_values : PUBLISH_DEFAULT_MAX_TAG_VALUES;
    p->clock = o->clock;
    p->tick_ms = o->tick_ms > 0 ? o->tick_ms : 1000;
    for (size_t i = 0; i < o->n_tags; i++)
        p->tags[i].key = xstrdup(o->tags[i]);
    p->n_tags = o->n_tags;
    p->cw = o->cw;
    p->emf = emf;
    if (p->sink == PUBLISH_SINK_CLOUDWATCH)
        p->outbox = o->outbox ? o->outbox : publish_outbox_memory_new();
    else
        publish_outbox_free(o->outbox);
    p->backoff_base_ms = o->backoff_base_ms > 0 ? o->backoff_base_ms : 1000;
    p->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 300000;
    rng_seed(&p->rng, o->seed ? o->seed : (uint64_t)clock_mono_ms(NULL));
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->sink_lock, NULL);
    pthread_mutex_init(&p->thread_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->thread_cond, &ca);
    pthread_condattr_destroy(&ca);
    return p;
}

void publish_free(struct publish *p)
{
    if (!p)
        return;
    publish_stop(p, 0);
    table_clear(&p->periods);
    table_clear(&p->totals);
    for (size_t i = 0; i < p->n_series; i++) {
        free(p->series[i].app);
        free(p->series[i].rubric);
        free(p->series[i].model_id);
    }
    free(p->series);
    for (size_t i = 0; i < p->n_tags; i++) {
        free(p->tags[i].key);
        for (size_t j = 0; j < p->tags[i].n; j++)
            free(p->tags[i].values[j]);
        free(p->tags[i].values);
    }
    if (p->emf.owned && p->emf.f)
        fclose(p->emf.f);
    publish_outbox_free(p->outbox);
    free(p->ns);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->sink_lock);
    pthread_mutex_destroy(&p->thread_lock);
    pthread_cond_destroy(&p->thread_cond);
    free(p);
}

void publish_observe_set(struct publish *p, publish_observe_fn fn, void *ctx)
{
    pthread_mutex_lock(&p->lock);
    p->observe = fn;
    p->observe_ctx = ctx;
    pthread_mutex_unlock(&p->lock);
}

/* ------------------------------------------------------------------------ */
/* Events                                                                   */

static int model_given(const char *model_id)
{
    return model_id && *model_id;
}

/* The series' QualityRegression state; p->lock held. */
static enum assay_err regression_update(struct publish *p, const char *app, const char *rubric,
                                        const char *model_id, int in_alarm, int64_t ts_ms)
{
    if (!model_given(model_id))
        model_id = NULL;
    struct regression_series *s = NULL;
    for (size_t i = 0; i < p->n_series && !s; i++) {
        struct regression_series *c = &p->series[i];
        if (strcmp(c->app, app) == 0 && strcmp(c->rubric, rubric) == 0 &&
            ((!c->model_id && !model_id) ||
             (c->model_id && model_id && strcmp(c->model_id, model_id) == 0)))
            s = c;
    }
    if (!s) {
        if (p->n_series == p->cap_series) {
            p->cap_series = p->cap_series ? p->cap_series * 2 : 16;
            p->series = xrealloc(p->series, p->cap_series * sizeof *p->series);
        }
        s = &p->series[p->n_series++];
        memset(s, 0, sizeof *s);
        s->app = xstrdup(app);
        s->rubric = xstrdup(rubric);
        s->model_id = model_id ? xstrdup(model_id) : NULL;
        s->next_period_ms = publish_period_start_ms(ts_ms > 0 ? ts_ms : now_ms(p), p->period_s);
    }
    s->state = in_alarm ? 1 : 0;
    s->hit |= s->state;
    return ASSAY_OK;
}

static enum assay_err check_ids(const char *a, const char *b, const char *c)
{
    if (!dim_value_ok(a) || !dim_value_ok(b) || (c && *c && !dim_value_ok(c)))
        return ASSAY_ERR_INVALID_ARGUMENT;
    return ASSAY_OK;
}

enum assay_err publish_verdict_add(struct publish *p, const struct publish_verdict *v)
{
    if (!p || !v || check_ids(v->app, v->rubric, v->model_id) || !isfinite(v->score))
        return ASSAY_ERR_INVALID_ARGUMENT;
    const char *names[] = {"App", "Rubric", "ModelId"};
    const char *values[] = {v->app, v->rubric, v->model_id};
    pthread_mutex_lock(&p->lock);
    p->counters.events++;
    /* The {App, Rubric} series holds every verdict of the pair (the alarms
     * watch it); {App, Rubric, ModelId} the ones that name a model. */
    add(p, &M_SCORE, names, values, 2, v->score, v->ts_ms);
    if (v->pass >= 0)
        add(p, &M_PASS, names, values, 2, v->pass ? 1 : 0, v->ts_ms);
    if (model_given(v->model_id)) {
        add(p, &M_SCORE, names, values, 3, v->score, v->ts_ms);
        if (v->pass >= 0)
            add(p, &M_PASS, names, values, 3, v->pass ? 1 : 0, v->ts_ms);
    }
    if (v->in_alarm >= 0)
        regression_update(p, v->app, v->rubric, v->model_id, v->in_alarm, v->ts_ms);
    pthread_mutex_unlock(&p->lock);
    return ASSAY_OK;
}

enum assay_err publish_regression_set(struct publish *p, const char *app, const char *rubric,
                                      const char *model_id, int in_alarm, int64_t ts_ms)
{
    if (!p || check_ids(app, rubric, model_id))
        return ASSAY_ERR_INVALID_ARGUMENT;
    pthread_mutex_lock(&p->lock);
    p->counters.events++;
    enum assay_err err = regression_update(p, app, rubric, model_id, in_alarm, ts_ms);
    pthread_mutex_unlock(&p->lock);
    return err;
}

/* The reported value of tag i for these tags: the sample's value while the
 * key has seen fewer than max_tag_values distinct ones, "none" when the
 * sample lacks the tag, else "other". p->lock held. */
static const char *tag_value(struct publish *p, size_t i, const struct publish_tag *tags,
                             size_t n_tags)
{
    struct tag_values *t = &p->tags[i];
    const char *v = NULL;
    for (size_t j = 0; j < n_tags && !v; j++)
        if (tags[j].key && strcmp(tags[j].key, t->key) == 0)
            v = tags[j].value;
    if (!v || !*v)
        return "none";
    if (!dim_value_ok(v) || strlen(v) > 256) {
        p->counters.tag_values_other++;
        return "other";
    }
    for (size_t j = 0; j < t->n; j++)
        if (strcmp(t->values[j], v) == 0)
            return t->values[j];
    if (t->n < p->max_tag_values) {
        t->values = xrealloc(t->values, (t->n + 1) * sizeof *t->values);
        t->values[t->n] = xstrdup(v);
        return t->values[t->n++];
    }
    p->counters.tag_values_other++;
    return "other";
}

enum assay_err publish_judge_call_add(struct publish *p, const struct publish_judge_call *c)
{
    if (!p || !c || !dim_value_ok(c->judge_model_id) || (c->app && !dim_value_ok(c->app)) ||
        !isfinite(c->latency_ms) || c->input_tokens < 0 || c->output_tokens < 0)
        return ASSAY_ERR_INVALID_ARGUMENT;
    const char *names[] = {"JudgeModelId", "App", NULL};
    const char *values[] = {c->judge_model_id, c->app, NULL};
    pthread_mutex_lock(&p->lock);
    p->counters.events++;
    add(p, &M_INVOCATIONS, names, values, 1, 1, c->ts_ms);
    add(p, &M_LATENCY, names, values, 1, c->latency_ms, c->ts_ms);
    add(p, &M_THROTTLES, names, values, 1, c->outcome == PUBLISH_CALL_THROTTLED, c->ts_ms);
    add(p, &M_CLIENT_ERR, names, values, 1, c->outcome == PUBLISH_CALL_CLIENT_ERROR, c->ts_ms);
    add(p, &M_SERVER_ERR, names, values, 1, c->outcome == PUBLISH_CALL_SERVER_ERROR, c->ts_ms);
    if (c->app) {
        add(p, &M_IN_TOKENS, names, values, 2, (double)c->input_tokens, c->ts_ms);
        add(p, &M_OUT_TOKENS, names, values, 2, (double)c->output_tokens, c->ts_ms);
    }
    for (size_t i = 0; i < p->n_tags; i++) {
        names[1] = p->tags[i].key;
        values[1] = tag_value(p, i, c->tags, c->n_tags);
        add(p, &M_IN_TOKENS, names, values, 2, (double)c->input_tokens, c->ts_ms);
        add(p, &M_OUT_TOKENS, names, values, 2, (double)c->output_tokens, c->ts_ms);
    }
    pthread_mutex_unlock(&p->lock);
    return ASSAY_OK;
}

enum assay_err publish_samples_add(struct publish *p, const char *app, int64_t received,
                                   int64_t judged, int64_t dropped, int64_t ts_ms)
{
    if (!p || !dim_value_ok(app) || received < 0 || judged < 0 || dropped < 0)
        return ASSAY_ERR_INVALID_ARGUMENT;
    const char *names[] = {"App"};
    const char *values[] = {app};
    pthread_mutex_lock(&p->lock);
    p->counters.events++;
    if (received)
        add(p, &M_RECEIVED, names, values, 1, (double)received, ts_ms);
    if (judged)
        add(p, &M_JUDGED, names, values, 1, (double)judged, ts_ms);
    if (dropped)
        add(p, &M_DROPPED, names, values, 1, (double)dropped, ts_ms);
    pthread_mutex_unlock(&p->lock);
    return ASSAY_OK;
}

enum assay_err publish_golden_add(struct publish *p, const char *dataset, const char *rubric,
                                  const char *target_model_id, double score, int regression,
                                  int64_t ts_ms)
{
    if (!p || check_ids(dataset, rubric, NULL) || !dim_value_ok(target_model_id) ||
        !isfinite(score))
        return ASSAY_ERR_INVALID_ARGUMENT;
    const char *names[] = {"Dataset", "Rubric", "TargetModelId"};
    const char *values[] = {dataset, rubric, target_model_id};
    pthread_mutex_lock(&p->lock);
    p->counters.events++;
    add(p, &M_GOLDEN, names, values, 3, score, ts_ms);
    if (regression >= 0)
        add(p, &M_GOLDEN_REG, names, values, 3, regression ? 1 : 0, ts_ms);
    pthread_mutex_unlock(&p->lock);
    return ASSAY_OK;
}

enum assay_err publish_agreement_add(struct publish *p, const char *dataset, const char *rubric,
                                     const char *judge_model_id, double agreement, int64_t ts_ms)
{
    if (!p || check_ids(dataset, rubric, NULL) || !dim_value_ok(judge_model_id) ||
        !isfinite(agreement))
        return ASSAY_ERR_INVALID_ARGUMENT;
    const char *names[] = {"Dataset", "Rubric", "JudgeModelId"};
    const char *values[] = {dataset, rubric, judge_model_id};
    pthread_mutex_lock(&p->lock);
    p->counters.events++;
    add(p, &M_AGREEMENT, names, values, 3, agreement, ts_ms);
    pthread_mutex_unlock(&p->lock);
    return ASSAY_OK;
}

/* ------------------------------------------------------------------------ */
/* Closing periods                                                          */

/* QualityRegression values of the periods before `boundary`; p->lock held. */
static void regression_close(struct publish *p, int64_t boundary)
{
    int64_t period = p->period_s * 1000;
    for (size_t i = 0; i < p->n_series; i++) {
        struct regression_series *s = &p->series[i];
        if (s->next_period_ms >= boundary)
            continue;
        if (boundary - s->next_period_ms > REGRESSION_BACKFILL * period)
            s->next_period_ms = boundary - REGRESSION_BACKFILL * period;
        const char *names[] = {"App", "Rubric", "ModelId"};
        const char *values[] = {s->app, s->rubric, s->model_id};
        for (int64_t t = s->next_period_ms; t < boundary; t += period) {
            double v = s->hit || s->state;
            s->hit = s->state;
            add(p, &M_REGRESSION, names, values, 2, v, t);
            if (s->model_id)
                add(p, &M_REGRESSION, names, values, 3, v, t);
        }
        s->next_period_ms = boundary;
    }
}

static int agg_cmp(const void *a, const void *b)
{
    const struct agg *x = *(struct agg *const *)a, *y = *(struct agg *const *)b;
    if (x->period_ms != y->period_ms)
        return x->period_ms < y->period_ms ? -1 : 1;
    int c = strcmp(x->dimkey, y->dimkey);
    return c ? c : strcmp(x->m->name, y->m->name);
}

struct closed {
    struct agg **aggs;
    size_t n;
    struct cloudwatch_dimension *dims; /* MAX_DIMS per datum */
    struct cloudwatch_datum *datums;
};

static void closed_clear(struct closed *c)
{
    for (size_t i = 0; i < c->n; i++)
        agg_free(c->aggs[i]);
    free(c->aggs);
    free(c->dims);
    free(c->datums);
    memset(c, 0, sizeof *c);
}

/* Unlinks the aggregates of periods ending at or before boundary; p->lock held. */
static void take_closed(struct publish *p, int64_t boundary, struct closed *out)
{
    struct table *t = &p->periods;
    int64_t period = p->period_s * 1000;
    size_t cap = 0;
    for (size_t i = 0; i < t->n_slots; i++) {
        struct agg **pp = &t->slots[i];
        while (*pp) {
            struct agg *a = *pp;
            if (a->period_ms + period <= boundary) {
                *pp = a->next;
                a->next = NULL;
                t->n--;
                if (out->n == cap) {
                    cap = cap ? cap * 2 : 64;
                    out->aggs = xrealloc(out->aggs, cap * sizeof *out->aggs);
                }
                out->aggs[out->n++] = a;
            } else {
                pp = &a->next;
            }
        }
    }
    if (out->n > 1)
        qsort(out->aggs, out->n, sizeof *out->aggs, agg_cmp);
}

static void datum_of(const struct agg *a, struct cloudwatch_dimension *dims,
                     struct cloudwatch_datum *d)
{
    for (size_t i = 0; i < a->n_dims; i++)
        dims[i] = (struct cloudwatch_dimension){a->dim_name[i], a->dim_value[i]};
    *d = (struct cloudwatch_datum){.metric_name = a->m->name,
                                   .dimensions = dims,
                                   .n_dimensions = a->n_dims,
                                   .timestamp_ms = a->period_ms,
                                   .unit = a->m->unit};
    if (a->m->kind == KIND_DIST) {
        d->kind = CLOUDWATCH_DATUM_VALUES;
        d->values = a->values;
        d->counts = a->counts;
        d->n_values = a->n_values;
    } else {
        d->kind = CLOUDWATCH_DATUM_STATISTICS;
        d->stats = (struct cloudwatch_statistic_set){a->count, a->sum, a->min, a->max};
    }
}

/* --- EMF ----------------------------------------------------------------- */

static void emf_number(struct buf *b, double v)
{
    json_t *n = json_real(v);
    cloudwatch_json_encode(n, b);
    json_decref(n);
}

/*
 * Writes the aggregates aggs[0..n) (one period, one dimension set) as EMF
 * lines: one directive, the dimensions and the metrics as members. A
 * distribution's values are repeated by their counts, at most 100 per member
 * and line; a counter carries its period total. Returns the lines written.
 */
static size_t emf_write_group(struct publish *p, struct agg **aggs, size_t n)
{
    size_t lines = 0;
    /* cursor per aggregate: index into values and how many of it are used */
    size_t *vi = xcalloc(n, sizeof *vi);
    double *used = xcalloc(n, sizeof *used);
    int *done = xcalloc(n, sizeof *done);
    struct buf b = BUF_INIT;
    for (;;) {
        size_t first = 0;
        while (first < n && done[first])
            first++;
        if (first == n)
            break;
        /* the metrics of this line: up to EMF_MAX_METRICS not yet done */
        size_t in_line[EMF_MAX_METRICS], k = 0;
        for (size_t i = first; i < n && k < EMF_MAX_METRICS; i++)
            if (!done[i])
                in_line[k++] = i;
        const struct agg *a0 = aggs[first];
        buf_reset(&b);
        buf_appendf(&b, "{\"_aws\":{\"Timestamp\":%lld,\"CloudWatchMetrics\":[{\"Namespace\":",
                    (long long)a0->period_ms);
        buf_append_char(&b, '"');
        buf_append_json_escaped(&b, p->ns, strlen(p->ns));
        buf_append_str(&b, "\",\"Dimensions\":[[");
        for (size_t d = 0; d < a0->n_dims; d++) {
            buf_append_str(&b, d ? ",\"" : "\"");
            buf_append_json_escaped(&b, a0->dim_name[d], strlen(a0->dim_name[d]));
            buf_append_char(&b, '"');
        }
        buf_append_str(&b, "]],\"Metrics\":[");
        for (size_t j = 0; j < k; j++) {
            const struct agg *a = aggs[in_line[j]];
            buf_appendf(&b, "%s{\"Name\":\"%s\",\"Unit\":\"%s\"%s}", j ? "," : "", a->m->name,
                        a->m->unit, p->period_s < 60 ? ",\"StorageResolution\":1" : "");
        }
        buf_append_str(&b, "]}]}");
        for (size_t d = 0; d < a0->n_dims; d++) {
            buf_append_str(&b, ",\"");
            buf_append_json_escaped(&b, a0->dim_name[d], strlen(a0->dim_name[d]));
            buf_append_str(&b, "\":\"");
            buf_append_json_escaped(&b, a0->dim_value[d], strlen(a0->dim_value[d]));
            buf_append_char(&b, '"');
        }
        for (size_t j = 0; j < k; j++) {
            size_t i = in_line[j];
            const struct agg *a = aggs[i];
            buf_appendf(&b, ",\"%s\":", a->m->name);
            if (a->m->kind == KIND_SUM) {
                emf_number(&b, a->sum);
                done[i] = 1;
                continue;
            }
            buf_append_char(&b, '[');
            size_t put = 0;
            while (put < EMF_MAX_VALUES && vi[i] < a->n_values) {
                if (put)
                    buf_append_char(&b, ',');
                emf_number(&b, a->values[vi[i]]);
                put++;
                if (++used[i] >= a->counts[vi[i]]) {
                    vi[i]++;
                    used[i] = 0;
                }
            }
            buf_append_char(&b, ']');
            if (vi[i] >= a->n_values)
                done[i] = 1;
        }
        buf_append_str(&b, "}\n");
        fwrite(b.data, 1, b.len, p->emf.f);
        lines++;
    }
    fflush(p->emf.f);
    buf_clear(&b);
    free(vi);
    free(used);
    free(done);
    return lines;
}

static size_t emf_write(struct publish *p, struct closed *c, const unsigned char *valid)
{
    size_t lines = 0, i = 0;
    struct agg **group = xcalloc(c->n ? c->n : 1, sizeof *group);
    while (i < c->n) {
        size_t n = 0, j = i;
        for (; j < c->n && c->aggs[j]->period_ms == c->aggs[i]->period_ms &&
               strcmp(c->aggs[j]->dimkey, c->aggs[i]->dimkey) == 0;
             j++)
            if (valid[j])
                group[n++] = c->aggs[j];
        if (n)
            lines += emf_write_group(p, group, n);
        i = j;
    }
    free(group);
    return lines;
}

/* --- tick ---------------------------------------------------------------- */

enum assay_err publish_tick(struct publish *p, int64_t now, int flush_all)
{
    if (!p)
        return ASSAY_ERR_INVALID_ARGUMENT;
    int64_t period = p->period_s * 1000;
    int64_t boundary = publish_period_start_ms(now, p->period_s);
    if (flush_all)
        boundary += period;
    struct closed c = {0};
    pthread_mutex_lock(&p->lock);
    regression_close(p, boundary);
    if (flush_all)
        boundary = INT64_MAX - period; /* every aggregate, also ones stamped ahead */
    take_closed(p, boundary, &c);
    publish_observe_fn observe = p->observe;
    void *observe_ctx = p->observe_ctx;
    pthread_mutex_unlock(&p->lock);
    if (c.n == 0)
        return ASSAY_OK;

    enum assay_err err = ASSAY_OK;
    /* A distribution with more distinct values than a datum takes goes out as
     * several datums of the same series and timestamp (CloudWatch merges them). */
    size_t n_slices = 0;
    for (size_t i = 0; i < c.n; i++)
        n_slices += c.aggs[i]->n_values > CLOUDWATCH_MAX_VALUES_PER_DATUM
                        ? (c.aggs[i]->n_values + CLOUDWATCH_MAX_VALUES_PER_DATUM - 1) /
                              CLOUDWATCH_MAX_VALUES_PER_DATUM
                        : 1;
    c.dims = xcalloc(c.n * MAX_DIMS, sizeof *c.dims);
    c.datums = xcalloc(n_slices, sizeof *c.datums);
    unsigned char *valid = xcalloc(c.n, 1);
    size_t n_valid = 0, n_invalid = 0;
    for (size_t i = 0; i < c.n; i++) {
        char detail[ASSAY_ERRBUF_SIZE];
        struct cloudwatch_datum d;
        datum_of(c.aggs[i], c.dims + i * MAX_DIMS, &d);
        /* A period under a minute is only kept apart at high resolution;
         * at the standard 60 s CloudWatch would merge a minute's periods. */
        if (p->period_s < 60)
            d.storage_resolution = 1;
        size_t n_values = d.n_values;
        if (d.kind == CLOUDWATCH_DATUM_VALUES && n_values > CLOUDWATCH_MAX_VALUES_PER_DATUM)
            d.n_values = CLOUDWATCH_MAX_VALUES_PER_DATUM;
        if (cloudwatch_datum_validate(&d, i, now, detail) != ASSAY_OK) {
            LOG_WARN("publish.datum_refused", LOG_S("metric", d.metric_name),
                     LOG_I("timestamp_ms", d.timestamp_ms), LOG_S("detail", detail));
            n_invalid++;
            continue;
        }
        valid[i] = 1;
        if (d.kind != CLOUDWATCH_DATUM_VALUES) {
            c.datums[n_valid++] = d;
            continue;
        }
        for (size_t off = 0; off < n_values; off += CLOUDWATCH_MAX_VALUES_PER_DATUM) {
            struct cloudwatch_datum s = d;
            s.values = d.values + off;
            s.counts = d.counts + off;
            s.n_values = n_values - off < CLOUDWATCH_MAX_VALUES_PER_DATUM
                             ? n_values - off
                             : CLOUDWATCH_MAX_VALUES_PER_DATUM;
            c.datums[n_valid++] = s;
        }
    }

    size_t emf_lines = 0, enqueued = 0;
    struct cloudwatch_batches batches;
    cloudwatch_batches_init(&batches);
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    if (n_valid && (observe || p->sink == PUBLISH_SINK_CLOUDWATCH)) {
        err = cloudwatch_batches_plan(p->ns, c.datums, n_valid, NULL, &batches, errbuf);
        if (err != ASSAY_OK)
            LOG_ERROR("publish.plan_failed", LOG_S("detail", errbuf));
        for (size_t b = 0; err == ASSAY_OK && b < batches.n_batches; b++) {
            const struct cloudwatch_batch *bt = &batches.batches[b];
            json_t *req =
                cloudwatch_put_metric_data_json(p->ns, batches.datums + bt->first, bt->count);
            if (observe)
                observe(observe_ctx, req);
            if (p->sink == PUBLISH_SINK_CLOUDWATCH) {
                int64_t oldest = INT64_MAX;
                for (size_t k = 0; k < bt->count; k++)
                    if (batches.datums[bt->first + k].timestamp_ms < oldest)
                        oldest = batches.datums[bt->first + k].timestamp_ms;
                struct buf body = BUF_INIT;
                cloudwatch_json_encode(req, &body);
                err = p->outbox->enqueue(p->outbox->ctx, body.data, body.len, oldest);
                if (err != ASSAY_OK)
                    LOG_ERROR("publish.enqueue_failed", LOG_S("error", assay_err_name(err)),
                              LOG_I("datums", bt->count));
                else
                    enqueued++;
                buf_clear(&body);
            }
            json_decref(req);
        }
    }
    if (p->sink == PUBLISH_SINK_EMF && n_valid) {
        pthread_mutex_lock(&p->sink_lock);
        emf_lines = emf_write(p, &c, valid);
        if (ferror(p->emf.f)) {
            LOG_ERROR("publish.emf_write_failed", LOG_I("lines", emf_lines));
            clearerr(p->emf.f);
            err = ASSAY_ERR_IO;
        }
        pthread_mutex_unlock(&p->sink_lock);
    }
    pthread_mutex_lock(&p->lock);
    p->counters.datums += n_valid;
    p->counters.datums_invalid += n_invalid;
    p->counters.batches_enqueued += enqueued;
    p->counters.emf_lines += emf_lines;
    pthread_mutex_unlock(&p->lock);
    cloudwatch_batches_clear(&batches);
    free(valid);
    closed_clear(&c);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Delivery                                                                 */

static int64_t backoff_ms(struct publish *p)
{
    int64_t cap = p->backoff_base_ms;
    for (int i = 1; i < p->failures && cap < p->backoff_max_ms; i++)
        cap *= 2;
    if (cap > p->backoff_max_ms)
        cap = p->backoff_max_ms;
    return (int64_t)rng_below(&p->rng, (uint64_t)cap + 1);
}

enum assay_err publish_deliver(struct publish *p, int64_t now, size_t max_requests)
{
    if (!p)
        return ASSAY_ERR_INVALID_ARGUMENT;
    if (p->sink != PUBLISH_SINK_CLOUDWATCH)
        return ASSAY_OK;
    enum assay_err err = ASSAY_OK;
    size_t sent = 0, expired = 0, rejected = 0, failed = 0;
    pthread_mutex_lock(&p->sink_lock);
    if (now < p->next_attempt_ms) {
        err = ASSAY_ERR_BUSY;
        goto out;
    }
    err = p->outbox->drop_older_than(p->outbox->ctx, now - PUBLISH_MAX_AGE_MS, &expired);
    if (err != ASSAY_OK)
        goto out;
    if (expired)
        LOG_WARN("publish.batches_expired", LOG_I("batches", expired),
                 LOG_S("reason", "older than CloudWatch's two-week window"));
    while (max_requests == 0 || sent < max_requests) {
        struct publish_outbox_item it = {0};
        err = p->outbox->peek(p->outbox->ctx, &it);
        if (err == ASSAY_ERR_NOT_FOUND) {
            err = ASSAY_OK;
            break;
        }
        if (err != ASSAY_OK)
            break;
        json_t *input = json_loadb(it.body, it.len, 0, NULL);
        struct cloudwatch_result res;
        memset(&res, 0, sizeof res);
        if (!input) {
            res.err = ASSAY_ERR_INVALID_ARGUMENT;
            snprintf(res.errbuf, sizeof res.errbuf, "outbox item is not JSON");
        } else {
            cloudwatch_call(p->cw, "PutMetricData", input, NULL, &res);
        }
        json_decref(input);
        if (res.err == ASSAY_OK) {
            err = p->outbox->ack(p->outbox->ctx, it.id);
            sent++;
            p->failures = 0;
        } else if (res.err == ASSAY_ERR_INVALID_ARGUMENT) {
            /* Another attempt cannot fix it; keeping it would block the rest. */
            LOG_ERROR("publish.batch_rejected", LOG_I("outbox_id", it.id),
                      LOG_I("period_ms", it.period_ms), LOG_S("code", res.error_code),
                      LOG_S("detail", res.errbuf));
            err = p->outbox->ack(p->outbox->ctx, it.id);
            rejected++;
        } else {
            err = res.err;
            failed++;
            p->failures++;
            int64_t wait = backoff_ms(p);
            p->next_attempt_ms = now + wait;
            LOG_WARN("publish.delivery_failed", LOG_I("outbox_id", it.id),
                     LOG_S("error", assay_err_name(res.err)), LOG_I("status", res.status),
                     LOG_S("code", res.error_code), LOG_I("retry_in_ms", wait),
                     LOG_I("pending", p->outbox->count(p->outbox->ctx)));
        }
        publish_outbox_item_clear(&it);
        if (err != ASSAY_OK)
            break;
    }
out:
    pthread_mutex_unlock(&p->sink_lock);
    pthread_mutex_lock(&p->lock);
    p->counters.requests_sent += sent;
    p->counters.batches_expired += expired;
    p->counters.batches_rejected += rejected;
    p->counters.requests_failed += failed;
    pthread_mutex_unlock(&p->lock);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Thread                                                                   */

static void *run(void *arg)
{
    struct publish *p = arg;
    pthread_mutex_lock(&p->thread_lock);
    while (!p->stopping) {
        pthread_mutex_unlock(&p->thread_lock);
        int64_t now = now_ms(p);
        publish_tick(p, now, 0);
        publish_deliver(p, now, 0);
        pthread_mutex_lock(&p->thread_lock);
        if (p->stopping)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += p->tick_ms / 1000;
        ts.tv_nsec += (p->tick_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->thread_cond, &p->thread_lock, &ts);
    }
    pthread_mutex_unlock(&p->thread_lock);
    return NULL;
}

enum assay_err publish_start(struct publish *p, char *errbuf)
{
    if (!p)
        return ASSAY_ERR_INVALID_ARGUMENT;
    pthread_mutex_lock(&p->thread_lock);
    enum assay_err err = ASSAY_OK;
    if (!p->started && !p->stopped) {
        if (pthread_create(&p->thread, NULL, run, p) != 0)
            err = assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "cannot start the thread");
        else
            p->started = 1;
    }
    pthread_mutex_unlock(&p->thread_lock);
    return err;
}

void publish_stop(struct publish *p, int64_t deadline_ms)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->thread_lock);
    if (p->stopped) {
        pthread_mutex_unlock(&p->thread_lock);
        return;
    }
    p->stopping = 1;
    p->stopped = 1;
    int started = p->started;
    pthread_cond_broadcast(&p->thread_cond);
    pthread_mutex_unlock(&p->thread_lock);
    if (started)
        pthread_join(p->thread, NULL);
    int64_t now = now_ms(p);
    publish_tick(p, now, 1);
    if (p->sink != PUBLISH_SINK_CLOUDWATCH)
        return;
    pthread_mutex_lock(&p->sink_lock);
    p->next_attempt_ms = 0; /* shutdown: one attempt now, whatever the backoff */
    pthread_mutex_unlock(&p->sink_lock);
    for (;;) {
        enum assay_err err = publish_deliver(p, now_ms(p), 0);
        if (err == ASSAY_OK || clock_mono_ms(p->clock) >= deadline_ms)
            break;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    size_t left = p->outbox->count(p->outbox->ctx);
    if (left)
        LOG_WARN("publish.undelivered_at_stop", LOG_I("batches", left));
}

/* ------------------------------------------------------------------------ */
/* Introspection                                                            */

void publish_counters_get(struct publish *p, struct publish_counters *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->counters;
    pthread_mutex_unlock(&p->lock);
}

json_t *publish_snapshot_json(struct publish *p)
{
    json_t *series = json_array();
    pthread_mutex_lock(&p->lock);
    struct agg **all = xcalloc(p->totals.n ? p->totals.n : 1, sizeof *all);
    size_t n = 0;
    for (size_t i = 0; i < p->totals.n_slots; i++)
        for (struct agg *a = p->totals.slots[i]; a; a = a->next)
            all[n++] = a;
    if (n > 1)
        qsort(all, n, sizeof *all, agg_cmp);
    for (size_t i = 0; i < n; i++) {
        const struct agg *a = all[i];
        json_t *dims = json_object();
        for (size_t d = 0; d < a->n_dims; d++)
            json_object_set_new(dims, a->dim_name[d], json_string(a->dim_value[d]));
        json_array_append_new(series,
                              json_pack("{s:s, s:s, s:o, s:f, s:f, s:f, s:f}", "metric", a->m->name,
                                        "unit", a->m->unit, "dimensions", dims, "count", a->count,
                                        "sum", a->sum, "min", a->min, "max", a->max));
    }
    struct publish_counters c = p->counters;
    pthread_mutex_unlock(&p->lock);
    free(all);
    json_t *counters =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "events",
                  (json_int_t)c.events, "datums", (json_int_t)c.datums, "batches_enqueued",
                  (json_int_t)c.batches_enqueued, "requests_sent", (json_int_t)c.requests_sent,
                  "requests_failed", (json_int_t)c.requests_failed, "batches_expired",
                  (json_int_t)c.batches_expired, "batches_rejected", (json_int_t)c.batches_rejected,
                  "datums_invalid", (json_int_t)c.datums_invalid, "emf_lines",
                  (json_int_t)c.emf_lines, "tag_values_other", (json_int_t)c.tag_values_other);
    return json_pack("{s:o, s:o}", "series", series, "counters", counters);
}
