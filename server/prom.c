/*
 * server/prom: counters and histograms for GET /metrics, rendered in the
 * Prometheus text format 0.0.4. Recorded by server/http_api and the worker.
 */
#include "server/prom.h"

#include "common/alloc.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLLECTORS 8

static const double http_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05,   0.1,   0.25,   0.5,   1,    2.5};
#define N_HTTP_BUCKETS (sizeof http_buckets / sizeof http_buckets[0])
static const double judge_buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define N_JUDGE_BUCKETS (sizeof judge_buckets / sizeof judge_buckets[0])
#define MAX_BUCKETS 16

struct hist {
    uint64_t counts[MAX_BUCKETS]; /* per bucket (not cumulative) */
    uint64_t count;
    double sum;
};

struct series {
    char *l1; /* first label value */
    int l2;   /* second label (status code), or 0 */
    uint64_t v[4];
    struct hist h;
};

struct family {
    struct series *s;
    size_t n, cap;
};

struct prom {
    pthread_mutex_t mu;
    struct family requests;  /* l1 route, l2 code, v[0] count */
    struct family durations; /* l1 route, h */
    struct family samples;   /* l1 app, v: received, sampled, dropped, duplicates */
    struct family judge;     /* l1 outcome, h */
    uint64_t tokens_in, tokens_out;
    struct {
        prom_collect_fn fn;
        void *ctx;
    } collectors[MAX_COLLECTORS];
    size_t n_collectors;
};

struct prom *prom_new(void)
{
    struct prom *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

static void family_clear(struct family *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->s[i].l1);
    free(f->s);
}

void prom_free(struct prom *p)
{
    if (!p)
        return;
    family_clear(&p->requests);
    family_clear(&p->durations);
    family_clear(&p->samples);
    family_clear(&p->judge);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* The series for (l1, l2), created when new; "_other" past the cap. Under mu. */
static struct series *series_get(struct family *f, const char *l1, int l2)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < f->n; i++)
            if (f->s[i].l2 == l2 && strcmp(f->s[i].l1, l1) == 0)
                return &f->s[i];
        if (f->n < PROM_LABELSETS_MAX)
            break;
        l1 = "_other";
    }
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->s = xrealloc(f->s, f->cap * sizeof *f->s);
    }
    struct series *s = &f->s[f->n++];
    memset(s, 0, sizeof *s);
    s->l1 = xstrdup(l1);
    s->l2 = l2;
    return s;
}

static void hist_observe(struct hist *h, const double *bounds, size_t nb, double x)
{
    size_t i = 0;
    while (i < nb && x > bounds[i])
        i++;
    h->counts[i]++; /* i == nb: the +Inf bucket */
    h->count++;
    h->sum += x;
}

void prom_request_observe(struct prom *p, const char *route, int status, double seconds)
{
    pthread_mutex_lock(&p->mu);
    series_get(&p->requests, route, status)->v[0]++;
    hist_observe(&series_get(&p->durations, route, 0)->h, http_buckets, N_HTTP_BUCKETS, seconds);
    pthread_mutex_unlock(&p->mu);
}

void prom_samples_add(struct prom *p, const char *app, int64_t received, int64_t sampled,
                      int64_t dropped, int64_t duplicates)
{
    pthread_mutex_lock(&p->mu);
    struct series *s = series_get(&p->samples, app, 0);
    s->v[0] += (uint64_t)(received > 0 ? received : 0);
    s->v[1] += (uint64_t)(sampled > 0 ? sampled : 0);
    s->v[2] += (uint64_t)(dropped > 0 ? dropped : 0);
    s->v[3] += (uint64_t)(duplicates > 0 ? duplicates : 0);
    pthread_mutex_unlock(&p->mu);
}

void prom_judge_observe(struct prom *p, const char *outcome, double seconds, int64_t input_tokens,
                        int64_t output_tokens)
{
    pthread_mutex_lock(&p->mu);
    hist_observe(&series_get(&p->judge, outcome, 0)->h, judge_buckets, N_JUDGE_BUCKETS, seconds);
    p->tokens_in += (uint64_t)(input_tokens > 0 ? input_tokens : 0);
    p->tokens_out += (uint64_t)(output_tokens > 0 ? output_tokens : 0);
    pthread_mutex_unlock(&p->mu);
}

void prom_collector_add(struct prom *p, prom_collect_fn fn, void *ctx)
{
    pthread_mutex_lock(&p->mu);
    if (p->n_collectors < MAX_COLLECTORS) {
        p->collectors[p->n_collectors].fn = fn;
        p->collectors[p->n_collectors].ctx = ctx;
        p->n_collectors++;
    }
    pthread_mutex_unlock(&p->mu);
}

void prom_append_label_value(struct buf *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            buf_append_str(out, "\\\\");
        else if (*v == '"')
            buf_append_str(out, "\\\"");
        else if (*v == '\n')
            buf_append_str(out, "\\n");
        else
            buf_append_char(out, *v);
    }
}

static void append_double(struct buf *out, double x)
{
    if (isinf(x))
        buf_append_str(out, x > 0 ? "+Inf" : "-Inf");
    else
        buf_appendf(out, "%.17g", x);
}

static void render_hist(struct buf *out, const char *name, const char *label,
                        const struct series *s, const double *bounds, size_t nb)
{
    uint64_t cum = 0;
    for (size_t i = 0; i <= nb; i++) {
        cum += s->h.counts[i];
        buf_appendf(out, "%s_bucket{%s=\"", name, label);
        prom_append_label_value(out, s->l1);
        buf_append_str(out, "\",le=\"");
        append_double(out, i < nb ? bounds[i] : INFINITY);
        buf_appendf(out, "\"} %llu\n", (unsigned long long)cum);
    }
    buf_appendf(out, "%s_sum{%s=\"", name, label);
    prom_append_label_value(out, s->l1);
    buf_append_str(out, "\"} ");
    append_double(out, s->h.sum);
    buf_appendf(out, "\n%s_count{%s=\"", name, label);
    prom_append_label_value(out, s->l1);
    buf_appendf(out, "\"} %llu\n", (unsigned long long)s->h.count);
}

static void render_app_counter(struct buf *out, const struct family *f, int k, const char *name,
                               const char *help)
{
    buf_appendf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (size_t i = 0; i < f->n; i++) {
        buf_appendf(out, "%s{app=\"", name);
        prom_append_label_value(out, f->s[i].l1);
        buf_appendf(out, "\"} %llu\n", (unsigned long long)f->s[i].v[k]);
    }
}

void prom_render(struct prom *p, struct buf *out)
{
    pthread_mutex_lock(&p->mu);
    buf_append_str(out, "# HELP assay_http_requests_total HTTP requests answered, by route and "
                        "status code.\n# TYPE assay_http_requests_total counter\n");
    for (size_t i = 0; i < p->requests.n; i++) {
        const struct series *s = &p->requests.s[i];
        buf_append_str(out, "assay_http_requests_total{route=\"");
        prom_append_label_value(out, s->l1);
        buf_appendf(out, "\",code=\"%d\"} %llu\n", s->l2, (unsigned long long)s->v[0]);
    }
    buf_append_str(out, "# HELP assay_http_request_duration_seconds Time from the request's "
                        "headers to its answer.\n"
                        "# TYPE assay_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < p->durations.n; i++)
        render_hist(out, "assay_http_request_duration_seconds", "route", &p->durations.s[i],
                    http_buckets, N_HTTP_BUCKETS);
    render_app_counter(out, &p->samples, 0, "assay_samples_received_total",
                       "New samples stored (durable); duplicates are counted apart.");
    render_app_counter(out, &p->samples, 1, "assay_samples_sampled_total",
                       "Samples chosen for judging.");
    render_app_counter(out, &p->samples, 2, "assay_samples_dropped_total",
                       "Samples chosen but not judged: over max_judged_per_minute.");
    render_app_counter(out, &p->samples, 3, "assay_samples_duplicate_total",
                       "Samples whose (app, id) was already stored.");
    buf_append_str(out, "# HELP assay_judge_duration_seconds Judge calls, by outcome.\n"
                        "# TYPE assay_judge_duration_seconds histogram\n");
    for (size_t i = 0; i < p->judge.n; i++)
        render_hist(out, "assay_judge_duration_seconds", "outcome", &p->judge.s[i], judge_buckets,
                    N_JUDGE_BUCKETS);
    buf_appendf(out,
                "# HELP assay_judge_tokens_total Tokens of judge calls.\n"
                "# TYPE assay_judge_tokens_total counter\n"
                "assay_judge_tokens_total{direction=\"input\"} %llu\n"
                "assay_judge_tokens_total{direction=\"output\"} %llu\n",
                (unsigned long long)p->tokens_in, (unsigned long long)p->tokens_out);
    size_t nc = p->n_collectors;
    pthread_mutex_unlock(&p->mu);
    /* Collectors are only ever added before serving, so reading them unlocked is safe. */
    for (size_t i = 0; i < nc; i++)
        p->collectors[i].fn(p->collectors[i].ctx, out);
}
