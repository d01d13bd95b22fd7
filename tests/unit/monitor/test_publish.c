/*
 * Unit tests for monitor/publish: aggregation exactness (per series, the
 * SampleCount, Sum, Min and Max CloudWatch computes from the published
 * Values/Counts equal the inputs'), period alignment, ModelId omission, the
 * tag cardinality bound, the batching figure, the outbox across a simulated
 * CloudWatch outage (a local peer that checks SigV4 for "monitoring" and
 * answers Throttling / 503 for a while), expiry past two weeks, EMF lines,
 * the QualityRegression gauge, the snapshot and shutdown flushing.
 */
#include "monitor/publish.h"

#include "aws/cloudwatch.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/rng.h"
#include "tests/support/fake_server.h"
#include "tests/support/sigv4_verify.h"
#include "tests/unit/test.h"

#include <math.h>
#include <pthread.h>
#include <zlib.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define PERIOD_MS 60000LL

/* A period start near the real clock (the peer checks signatures against it;
 * the publisher's own clock is the manual one below). */
static int64_t base_period(void)
{
    return publish_period_start_ms(clock_now_ms(NULL), 60) - 10 * PERIOD_MS;
}

/* --- Captured requests (the observe seam) ------------------------------- */

struct capture {
    json_t *requests; /* array of PutMetricData inputs */
};

static void observe(void *ctx, const json_t *req)
{
    struct capture *c = ctx;
    json_array_append_new(c->requests, json_deep_copy(req));
}

/* Totals per series, recomputed from datums as CloudWatch computes them. */
struct totals {
    double count, sum, min, max;
    int seen;
};

static void dims_key(const json_t *d, char *out, size_t size)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, json_string_value(json_object_get(d, "MetricName")));
    const json_t *dims = json_object_get(d, "Dimensions");
    for (size_t i = 0; i < json_array_size(dims); i++)
        buf_appendf(&b, "|%s=%s",
                    json_string_value(json_object_get(json_array_get(dims, i), "Name")),
                    json_string_value(json_object_get(json_array_get(dims, i), "Value")));
    snprintf(out, size, "%s", buf_cstr(&b));
    buf_clear(&b);
}

/* Adds datum d's statistics into t, as CloudWatch computes them. */
static void totals_add(struct totals *t, const json_t *d)
{
    double c = 0, s = 0, mn = INFINITY, mx = -INFINITY;
    const json_t *vals = json_object_get(d, "Values");
    const json_t *stats = json_object_get(d, "StatisticValues");
    if (vals) {
        const json_t *counts = json_object_get(d, "Counts");
        CHECK(json_array_size(vals) <= 150);
        for (size_t i = 0; i < json_array_size(vals); i++) {
            double v = json_number_value(json_array_get(vals, i));
            double k = counts ? json_number_value(json_array_get(counts, i)) : 1;
            c += k;
            s += v * k;
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
    } else if (stats) {
        c = json_number_value(json_object_get(stats, "SampleCount"));
        s = json_number_value(json_object_get(stats, "Sum"));
        mn = json_number_value(json_object_get(stats, "Minimum"));
        mx = json_number_value(json_object_get(stats, "Maximum"));
    } else {
        double v = json_number_value(json_object_get(d, "Value"));
        c = 1, s = v, mn = mx = v;
    }
    if (!t->seen) {
        t->min = mn, t->max = mx;
    }
    t->seen = 1;
    t->count += c;
    t->sum += s;
    t->min = mn < t->min ? mn : t->min;
    t->max = mx > t->max ? mx : t->max;
}

/* The totals of the series `key` over every captured datum. */
static struct totals series_totals(const json_t *requests, const char *key)
{
    struct totals t = {0};
    for (size_t r = 0; r < json_array_size(requests); r++) {
        const json_t *md = json_object_get(json_array_get(requests, r), "MetricData");
        for (size_t i = 0; i < json_array_size(md); i++) {
            char k[512];
            dims_key(json_array_get(md, i), k, sizeof k);
            if (strcmp(k, key) == 0)
                totals_add(&t, json_array_get(md, i));
        }
    }
    return t;
}

static size_t count_datums(const json_t *requests)
{
    size_t n = 0;
    for (size_t r = 0; r < json_array_size(requests); r++)
        n += json_array_size(json_object_get(json_array_get(requests, r), "MetricData"));
    return n;
}

struct rig {
    volatile int64_t now;
    struct clock clock;
    struct capture cap;
    struct publish *p;
};

static void rig_none(struct rig *r, const struct publish_options *extra)
{
    memset(r, 0, sizeof *r);
    r->now = base_period() + 1000;
    clock_manual_init(&r->clock, &r->now);
    r->cap.requests = json_array();
    struct publish_options o;
    if (extra)
        o = *extra;
    else {
        publish_options_init(&o);
        o.sink = PUBLISH_SINK_NONE;
    }
    o.clock = &r->clock;
    char errbuf[ASSAY_ERRBUF_SIZE];
    r->p = publish_new(&o, errbuf);
    REQUIRE(r->p != NULL);
    publish_observe_set(r->p, observe, &r->cap);
}

static void rig_end(struct rig *r)
{
    publish_free(r->p);
    json_decref(r->cap.requests);
}

/* ------------------------------------------------------------------------ */

TEST_CASE(aggregation_exact_per_series)
{
    struct rig r;
    rig_none(&r, NULL);
    struct rng g;
    rng_seed(&g, 7);
    enum { SERIES = 6, N = 20000 };
    struct totals want[SERIES] = {{0}};
    struct totals want_pass[SERIES] = {{0}};
    static const char *const apps[] = {"chat", "search", "support"};
    static const char *const rubrics[] = {"helpfulness", "faithfulness"};
    for (int i = 0; i < N; i++) {
        int s = (int)rng_below(&g, SERIES);
        /* Likert levels, continuous scores and values that are not binary
         * fractions (0.1, 1/3), spread over three periods */
        double score;
        switch (rng_below(&g, 3)) {
        case 0:
            score = (double)rng_below(&g, 5) / 4.0;
            break;
        case 1:
            score = rng_uniform(&g);
            break;
        default:
            score = (double)rng_below(&g, 11) / 10.0;
        }
        int pass = score >= 0.5;
        struct publish_verdict v = {apps[s % 3],
                                    rubrics[s / 3],
                                    NULL,
                                    score,
                                    pass,
                                    -1,
                                    r.now + (int64_t)rng_below(&g, 3) * PERIOD_MS};
        REQUIRE_INT_EQ(publish_verdict_add(r.p, &v), ASSAY_OK);
        struct totals *w = &want[s], *wp = &want_pass[s];
        if (!w->seen)
            w->min = w->max = score;
        if (!wp->seen)
            wp->min = wp->max = pass;
        w->seen = wp->seen = 1;
        w->count++, w->sum += score;
        w->min = score < w->min ? score : w->min;
        w->max = score > w->max ? score : w->max;
        wp->count++, wp->sum += pass;
        wp->min = pass < wp->min ? pass : wp->min;
        wp->max = pass > wp->max ? pass : wp->max;
    }
    r.now += 3 * PERIOD_MS;
    REQUIRE_INT_EQ(publish_tick(r.p, r.now, 0), ASSAY_OK);
    for (int s = 0; s < SERIES; s++) {
        char key[256];
        snprintf(key, sizeof key, "QualityScore|App=%s|Rubric=%s", apps[s % 3], rubrics[s / 3]);
        struct totals got = series_totals(r.cap.requests, key);
        CHECK(got.count == want[s].count); /* exact */
        CHECK(got.min == want[s].min);
        CHECK(got.max == want[s].max);
        /* the same sum up to the order of additions */
        CHECK_NEAR(got.sum, want[s].sum, 1e-12 * want[s].count);
        snprintf(key, sizeof key, "QualityPass|App=%s|Rubric=%s", apps[s % 3], rubrics[s / 3]);
        got = series_totals(r.cap.requests, key);
        CHECK(got.count == want_pass[s].count);
        CHECK(got.sum == want_pass[s].sum);
        CHECK(got.min == want_pass[s].min);
        CHECK(got.max == want_pass[s].max);
    }
    /* The snapshot has the same totals. */
    json_t *snap = publish_snapshot_json(r.p);
    const json_t *series = json_object_get(snap, "series");
    CHECK_INT_EQ(json_array_size(series), 2 * SERIES);
    json_decref(snap);
    rig_end(&r);
}

TEST_CASE(aggregation_exact_sum_for_binary_fractions)
{
    /* With scores that are binary fractions every sum is exact, so the
     * published Sum equals the inputs' bit for bit. */
    struct rig r;
    rig_none(&r, NULL);
    struct rng g;
    rng_seed(&g, 3);
    double want = 0;
    for (int i = 0; i < 5000; i++) {
        double score = (double)rng_below(&g, 65) / 64.0;
        want += score;
        struct publish_verdict v = {"chat", "helpfulness", "m1", score, -1, -1, r.now};
        REQUIRE_INT_EQ(publish_verdict_add(r.p, &v), ASSAY_OK);
    }
    r.now += PERIOD_MS;
    publish_tick(r.p, r.now, 0);
    struct totals got =
        series_totals(r.cap.requests, "QualityScore|App=chat|Rubric=helpfulness|ModelId=m1");
    CHECK(got.count == 5000);
    CHECK(got.sum == want);
    rig_end(&r);
}

TEST_CASE(period_alignment)
{
    struct rig r;
    rig_none(&r, NULL);
    int64_t p0 = base_period();
    struct publish_verdict v = {"chat", "helpfulness", NULL, 0.5, -1, -1, p0 + PERIOD_MS - 1};
    publish_verdict_add(r.p, &v);
    v.ts_ms = p0 + PERIOD_MS; /* the next period's first millisecond */
    publish_verdict_add(r.p, &v);
    v.ts_ms = p0; /* this period's first millisecond */
    publish_verdict_add(r.p, &v);
    CHECK_INT_EQ(publish_period_start_ms(p0 + 59999, 60), p0);
    CHECK_INT_EQ(publish_period_start_ms(p0 + 60000, 60), p0 + 60000);
    CHECK_INT_EQ(publish_period_start_ms(1764201234567LL, 300), 1764201000000LL);

    /* Inside the second period: only the first one is closed. */
    publish_tick(r.p, p0 + PERIOD_MS + 30000, 0);
    REQUIRE_INT_EQ(json_array_size(r.cap.requests), 1);
    const json_t *md = json_object_get(json_array_get(r.cap.requests, 0), "MetricData");
    REQUIRE_INT_EQ(json_array_size(md), 1);
    CHECK(json_number_value(json_object_get(json_array_get(md, 0), "Timestamp")) == p0 / 1000.0);
    struct totals t = {0};
    totals_add(&t, json_array_get(md, 0));
    CHECK(t.count == 2);

    /* At the boundary the second closes, stamped with its start. */
    publish_tick(r.p, p0 + 2 * PERIOD_MS, 0);
    REQUIRE_INT_EQ(json_array_size(r.cap.requests), 2);
    md = json_object_get(json_array_get(r.cap.requests, 1), "MetricData");
    CHECK(json_number_value(json_object_get(json_array_get(md, 0), "Timestamp")) ==
          (p0 + PERIOD_MS) / 1000.0);
    rig_end(&r);
}

TEST_CASE(model_id_omitted_when_absent)
{
    struct rig r;
    rig_none(&r, NULL);
    struct publish_verdict v = {"chat", "helpfulness", NULL, 0.75, 1, -1, r.now};
    publish_verdict_add(r.p, &v);
    v.model_id = "";
    publish_verdict_add(r.p, &v);
    v.model_id = "anthropic.claude-3-haiku";
    publish_verdict_add(r.p, &v);
    publish_tick(r.p, r.now + PERIOD_MS, 0);
    CHECK(series_totals(r.cap.requests, "QualityScore|App=chat|Rubric=helpfulness").count == 3);
    CHECK(series_totals(r.cap.requests,
                        "QualityScore|App=chat|Rubric=helpfulness|ModelId=anthropic.claude-3-haiku")
              .count == 1);
    /* no datum carries an empty ModelId */
    const json_t *md = json_object_get(json_array_get(r.cap.requests, 0), "MetricData");
    for (size_t i = 0; i < json_array_size(md); i++) {
        const json_t *dims = json_object_get(json_array_get(md, i), "Dimensions");
        for (size_t j = 0; j < json_array_size(dims); j++)
            CHECK(strlen(json_string_value(json_object_get(json_array_get(dims, j), "Value"))) > 0);
    }
    rig_end(&r);
}

TEST_CASE(tag_cardinality_bound_with_other)
{
    struct publish_options o;
    publish_options_init(&o);
    json_t *m = json_loads("{\"sink\":\"none\",\"tags\":[\"team\"],\"max_tag_values\":3}", 0, NULL);
    char errbuf[ASSAY_ERRBUF_SIZE];
    REQUIRE_INT_EQ(publish_options_from_json(&o, m, errbuf), ASSAY_OK);
    CHECK_INT_EQ(o.n_tags, 1);
    CHECK_INT_EQ(o.max_tag_values, 3);
    struct rig r;
    rig_none(&r, &o);
    for (int i = 0; i < 10; i++) {
        char team[16];
        snprintf(team, sizeof team, "t%d", i);
        struct publish_tag tags[] = {{"env", "prod"}, {"team", team}};
        struct publish_judge_call c = {"judge-m", "chat", tags, 2,    PUBLISH_CALL_OK,
                                       100 + i,   1000,   10,   r.now};
        REQUIRE_INT_EQ(publish_judge_call_add(r.p, &c), ASSAY_OK);
    }
    struct publish_judge_call untagged = {"judge-m", "chat", NULL, 0,    PUBLISH_CALL_OK,
                                          5,         7,      1,    r.now};
    publish_judge_call_add(r.p, &untagged);
    publish_tick(r.p, r.now + PERIOD_MS, 0);
    for (int i = 0; i < 3; i++) {
        char key[128];
        snprintf(key, sizeof key, "JudgeInputTokenCount|JudgeModelId=judge-m|team=t%d", i);
        CHECK(series_totals(r.cap.requests, key).sum == 1000);
    }
    struct totals other =
        series_totals(r.cap.requests, "JudgeInputTokenCount|JudgeModelId=judge-m|team=other");
    CHECK(other.count == 7);
    CHECK(other.sum == 7000);
    CHECK(
        series_totals(r.cap.requests, "JudgeInputTokenCount|JudgeModelId=judge-m|team=none").sum ==
        7);
    CHECK(
        series_totals(r.cap.requests, "JudgeInputTokenCount|JudgeModelId=judge-m|team=t3").count ==
        0);
    /* per App: everything */
    CHECK(series_totals(r.cap.requests, "JudgeInputTokenCount|JudgeModelId=judge-m|App=chat").sum ==
          10007);
    CHECK(series_totals(r.cap.requests, "JudgeInvocations|JudgeModelId=judge-m").count == 11);
    struct publish_counters pc;
    publish_counters_get(r.p, &pc);
    CHECK_INT_EQ(pc.tag_values_other, 7);
    rig_end(&r);

    /* a tag key that is a dimension assay uses is refused */
    json_t *bad = json_loads("{\"tags\":[\"App\"]}", 0, NULL);
    CHECK_INT_EQ(publish_options_from_json(&o, bad, errbuf), ASSAY_ERR_CONFIG);
    json_decref(bad);
    json_decref(m);
}

TEST_CASE(judge_call_metrics)
{
    struct rig r;
    rig_none(&r, NULL);
    enum publish_outcome outs[] = {PUBLISH_CALL_OK, PUBLISH_CALL_THROTTLED, PUBLISH_CALL_OK,
                                   PUBLISH_CALL_SERVER_ERROR, PUBLISH_CALL_CLIENT_ERROR};
    for (int i = 0; i < 5; i++) {
        struct publish_judge_call c = {"jm", "chat", NULL, 0, outs[i], 100.0 * (i + 1),
                                       10,   2,      r.now};
        publish_judge_call_add(r.p, &c);
    }
    publish_samples_add(r.p, "chat", 10, 4, 1, r.now);
    publish_golden_add(r.p, "ds", "helpfulness", "tm", 0.8, 0, r.now);
    publish_agreement_add(r.p, "ds", "helpfulness", "jm", 0.9, r.now);
    publish_tick(r.p, r.now + PERIOD_MS, 0);
    const json_t *q = r.cap.requests;
    struct totals t = series_totals(q, "JudgeInvocationThrottles|JudgeModelId=jm");
    CHECK(t.count == 5 && t.sum == 1);
    CHECK(series_totals(q, "JudgeInvocationServerErrors|JudgeModelId=jm").sum == 1);
    CHECK(series_totals(q, "JudgeInvocationClientErrors|JudgeModelId=jm").sum == 1);
    t = series_totals(q, "JudgeInvocationLatency|JudgeModelId=jm");
    CHECK(t.count == 5 && t.sum == 1500 && t.min == 100 && t.max == 500);
    CHECK(series_totals(q, "SamplesReceived|App=chat").sum == 10);
    CHECK(series_totals(q, "SamplesJudged|App=chat").sum == 4);
    CHECK(series_totals(q, "SamplesDropped|App=chat").sum == 1);
    CHECK(series_totals(q, "GoldenSetScore|Dataset=ds|Rubric=helpfulness|TargetModelId=tm").sum ==
          0.8);
    CHECK(series_totals(q, "GoldenSetRegression|Dataset=ds|Rubric=helpfulness|TargetModelId=tm")
              .count == 1);
    CHECK(series_totals(q, "JudgeAgreement|Dataset=ds|Rubric=helpfulness|JudgeModelId=jm").sum ==
          0.9);
    rig_end(&r);
}

TEST_CASE(regression_gauge_per_period)
{
    struct rig r;
    rig_none(&r, NULL);
    int64_t p0 = publish_period_start_ms(r.now, 60);
    struct publish_verdict v = {"chat", "helpfulness", "m", 0.2, -1, 0, r.now};
    publish_verdict_add(r.p, &v);
    /* raised and cleared within the second period: it still reports 1 */
    r.now = p0 + PERIOD_MS + 10;
    publish_tick(r.p, r.now, 0);
    publish_regression_set(r.p, "chat", "helpfulness", "m", 1, r.now);
    publish_regression_set(r.p, "chat", "helpfulness", "m", 0, r.now + 5);
    r.now = p0 + 2 * PERIOD_MS + 10;
    publish_tick(r.p, r.now, 0);
    r.now = p0 + 3 * PERIOD_MS + 10;
    publish_tick(r.p, r.now, 0);
    REQUIRE_INT_EQ(json_array_size(r.cap.requests), 3);
    double want[] = {0, 1, 0};
    for (int i = 0; i < 3; i++) {
        json_t *one = json_array();
        json_array_append(one, json_array_get(r.cap.requests, i));
        struct totals t =
            series_totals(one, "QualityRegression|App=chat|Rubric=helpfulness|ModelId=m");
        CHECK(t.count == 1);
        CHECK(t.max == want[i]);
        /* the {App, Rubric} roll-up the alarms watch */
        CHECK(series_totals(one, "QualityRegression|App=chat|Rubric=helpfulness").max == want[i]);
        json_decref(one);
    }
    rig_end(&r);
}

TEST_CASE(batching_10000_verdicts_over_50_series)
{
    struct rig r;
    rig_none(&r, NULL);
    struct rng g;
    rng_seed(&g, 1);
    for (int i = 0; i < 10000; i++) {
        char app[16];
        snprintf(app, sizeof app, "app%02d", i % 50);
        struct publish_verdict v = {
            app, "helpfulness", NULL, (double)rng_below(&g, 101) / 100.0, -1, -1, r.now};
        publish_verdict_add(r.p, &v);
    }
    publish_tick(r.p, r.now + PERIOD_MS, 0);
    size_t likert_requests = json_array_size(r.cap.requests);
    size_t likert_datums = count_datums(r.cap.requests);
    json_array_clear(r.cap.requests);
    /* the worst case: every score distinct (continuous judge) */
    for (int i = 0; i < 10000; i++) {
        char app[16];
        snprintf(app, sizeof app, "app%02d", i % 50);
        struct publish_verdict v = {app, "helpfulness",    NULL, rng_uniform(&g), -1,
                                    -1,  r.now + PERIOD_MS};
        publish_verdict_add(r.p, &v);
    }
    publish_tick(r.p, r.now + 2 * PERIOD_MS, 0);
    size_t cont_requests = json_array_size(r.cap.requests);
    size_t cont_datums = count_datums(r.cap.requests);
    printf("10,000 verdicts over 50 series in one period: scores in steps of 0.01 -> %zu datums, "
           "%zu PutMetricData request(s); all 10,000 scores distinct -> %zu datums, %zu "
           "request(s)\n",
           likert_datums, likert_requests, cont_datums, cont_requests);
    CHECK_INT_EQ(likert_requests, 1);
    CHECK_INT_EQ(likert_datums, 50);
    CHECK(cont_requests <= 3);
    rig_end(&r);
}

/* --- A fake CloudWatch --------------------------------------------------- */

struct peer {
    pthread_mutex_t lock;
    int hits, bad_sig;
    int fail_first;    /* answer the first n requests with an error */
    int fail_always;   /* answer every request with 503 */
    int reject_first;  /* answer the first n with InvalidParameterValue */
    int slow_first;    /* store the first n, then answer too late */
    json_t *delivered; /* the inputs answered 200 */
};

static int gunzip(const char *in, size_t n, struct buf *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 16) != Z_OK)
        return -1;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    int rc;
    do {
        buf_reserve(out, 65536);
        zs.next_out = (Bytef *)out->data + out->len;
        zs.avail_out = 65536;
        rc = inflate(&zs, Z_NO_FLUSH);
        out->len = (size_t)((char *)zs.next_out - out->data);
        out->data[out->len] = '\0';
    } while (rc == Z_OK);
    inflateEnd(&zs);
    return rc == Z_STREAM_END ? 0 : -1;
}

static void handler(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct peer *p = ctx;
    struct sigv4_verify_key key = {AKID, SECRET, "us-east-1", "monitoring"};
    char code[64], message[256];
    int ok = sigv4_verify(req, &key, clock_now_ms(NULL), code, sizeof code, message,
                          sizeof message) == 0;
    fake_response_header(resp, "Content-Type", "application/x-amz-json-1.0");
    pthread_mutex_lock(&p->lock);
    int n = p->hits++;
    if (!ok)
        p->bad_sig++;
    int fail = p->fail_always || n < p->fail_first;
    int reject = n < p->reject_first;
    fail |= reject;
    if (ok && !fail) {
        struct buf body = BUF_INIT;
        const char *enc = fake_request_header(req, "Content-Encoding");
        if (enc && strcmp(enc, "gzip") == 0)
            gunzip(req->body, req->body_len, &body);
        else
            buf_append(&body, req->body ? req->body : "", req->body_len);
        json_array_append_new(p->delivered, json_loads(buf_cstr(&body), 0, NULL));
        buf_clear(&body);
    }
    if (n < p->slow_first)
        resp->delay_ms = 1500;
    pthread_mutex_unlock(&p->lock);
    if (!ok) {
        fake_response_text(resp, 403, "{}");
    } else if (reject) {
        fake_response_header(resp, "x-amzn-query-error", "InvalidParameterValue;Sender");
        fake_response_text(resp, 400, "{\"__type\":\"x#InvalidParameterValueException\"}");
    } else if (fail && (n % 2 == 0 || p->fail_always)) {
        fake_response_header(resp, "x-amzn-query-error", "ServiceUnavailable;Receiver");
        fake_response_text(resp, 503, "{}");
    } else if (fail) {
        fake_response_header(resp, "x-amzn-query-error", "Throttling;Sender");
        fake_response_text(resp, 400,
                           "{\"__type\":\"x#Throttling\",\"message\":\"Rate exceeded\"}");
    } else {
        fake_response_text(resp, 200, "{}");
    }
}

static void no_sleep(void *ctx, int64_t ms)
{
    (void)ctx;
    (void)ms;
}

struct cw_rig {
    struct peer peer;
    struct fake_server *server;
    struct http_transport *t;
    struct creds_provider *creds;
    struct cloudwatch *cw;
};

static void cw_start(struct cw_rig *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->peer.lock, NULL);
    c->peer.delivered = json_array();
    c->server = fake_server_start(handler, &c->peer);
    REQUIRE(c->server);
    c->t = http_transport_new(NULL, NULL);
    REQUIRE(c->t);
    struct creds k;
    creds_init(&k);
    k.access_key_id = xstrdup(AKID);
    k.secret_access_key = xstrdup(SECRET);
    c->creds = creds_static_new(&k);
    creds_clear(&k);
    struct cloudwatch_options o = {.transport = c->t,
                                   .creds = c->creds,
                                   .region = "us-east-1",
                                   .endpoint = fake_server_url(c->server),
                                   .seed = 5,
                                   .sleep_ms = no_sleep};
    retry_policy_init(&o.retry);
    o.retry.max_attempts = 2;
    c->cw = cloudwatch_new(&o, NULL);
    REQUIRE(c->cw);
}

static void cw_stop(struct cw_rig *c)
{
    cloudwatch_free(c->cw);
    http_transport_free(c->t);
    creds_provider_free(c->creds);
    fake_server_stop(c->server);
    json_decref(c->peer.delivered);
    pthread_mutex_destroy(&c->peer.lock);
}

static void rig_cloudwatch(struct rig *r, struct cw_rig *c, struct publish_outbox *ob)
{
    struct publish_options o;
    publish_options_init(&o);
    o.sink = PUBLISH_SINK_CLOUDWATCH;
    o.cw = c->cw;
    o.outbox = ob;
    o.seed = 9;
    o.backoff_base_ms = 1000;
    o.backoff_max_ms = 60000;
    rig_none(r, &o);
}

/* Every (metric, dimensions, timestamp) delivered, with its count of values. */
static json_t *delivered_index(const json_t *delivered, int *dups)
{
    json_t *idx = json_object();
    *dups = 0;
    for (size_t r = 0; r < json_array_size(delivered); r++) {
        const json_t *md = json_object_get(json_array_get(delivered, r), "MetricData");
        for (size_t i = 0; i < json_array_size(md); i++) {
            const json_t *d = json_array_get(md, i);
            char k[512], full[600];
            dims_key(d, k, sizeof k);
            snprintf(full, sizeof full, "%s@%.0f", k,
                     json_number_value(json_object_get(d, "Timestamp")));
            if (json_object_get(idx, full))
                (*dups)++;
            struct totals t = {0};
            totals_add(&t, d);
            json_object_set_new(idx, full, json_real(t.count));
        }
    }
    return idx;
}

TEST_CASE(outbox_survives_outage_delivers_once_with_original_timestamps)
{
    struct cw_rig c;
    cw_start(&c);
    c.peer.fail_first = 7; /* 503, Throttling, 503, ... */
    struct rig r;
    struct publish_outbox *ob = publish_outbox_memory_new();
    rig_cloudwatch(&r, &c, ob);
    int64_t p0 = publish_period_start_ms(r.now, 60);
    /* five periods of verdicts, each closed and enqueued during the outage */
    for (int k = 0; k < 5; k++) {
        for (int i = 0; i < 20; i++) {
            struct publish_verdict v = {k % 2 ? "chat" : "search", "helpfulness", NULL,
                                        (double)(i % 5) / 4,       i % 2,         -1,
                                        p0 + k * PERIOD_MS + i};
            publish_verdict_add(r.p, &v);
        }
        r.now = p0 + (k + 1) * PERIOD_MS + 5;
        REQUIRE_INT_EQ(publish_tick(r.p, r.now, 0), ASSAY_OK);
        publish_deliver(r.p, r.now, 0);
    }
    /* the outage lasts while the peer keeps refusing; deliver when allowed */
    int rounds = 0;
    while (ob->count(ob->ctx) > 0 && rounds++ < 100) {
        r.now += 60000; /* past any backoff (capped at 60 s here) */
        publish_deliver(r.p, r.now, 0);
    }
    CHECK_INT_EQ(ob->count(ob->ctx), 0);
    CHECK_INT_EQ(c.peer.bad_sig, 0);
    struct publish_counters pc;
    publish_counters_get(r.p, &pc);
    CHECK_INT_EQ(pc.batches_enqueued, 5);
    CHECK_INT_EQ(pc.requests_sent, 5);
    CHECK(pc.requests_failed >= 1);
    CHECK_INT_EQ(pc.batches_expired, 0);
    /* every datum once, with its period's timestamp */
    int dups;
    json_t *idx = delivered_index(c.peer.delivered, &dups);
    CHECK_INT_EQ(dups, 0);
    CHECK_INT_EQ(json_object_size(idx), 5 * 2); /* QualityScore, QualityPass per period */
    for (int k = 0; k < 5; k++) {
        char key[256];
        snprintf(key, sizeof key, "QualityScore|App=%s|Rubric=helpfulness@%lld",
                 k % 2 ? "chat" : "search", (long long)((p0 + k * PERIOD_MS) / 1000));
        const json_t *n = json_object_get(idx, key);
        CHECK(n != NULL);
        CHECK(json_number_value(n) == 20);
    }
    json_decref(idx);
    rig_end(&r);
    cw_stop(&c);
}

static void capture_log(void *ctx, const char *line, size_t len)
{
    buf_append(ctx, line, len);
}

TEST_CASE(outbox_expiry_past_two_weeks)
{
    struct cw_rig c;
    cw_start(&c);
    c.peer.fail_always = 1;
    struct rig r;
    struct publish_outbox *ob = publish_outbox_memory_new();
    rig_cloudwatch(&r, &c, ob);
    struct publish_verdict v = {"chat", "helpfulness", NULL, 0.5, 1, -1, r.now};
    publish_verdict_add(r.p, &v);
    r.now += PERIOD_MS;
    publish_tick(r.p, r.now, 0);
    v.ts_ms = r.now;
    publish_verdict_add(r.p, &v);
    r.now += PERIOD_MS;
    publish_tick(r.p, r.now, 0);
    CHECK_INT_EQ(ob->count(ob->ctx), 2);
    CHECK_INT_EQ(publish_deliver(r.p, r.now, 0), ASSAY_ERR_HTTP_STATUS);
    CHECK_INT_EQ(ob->count(ob->ctx), 2);

    struct buf logs = BUF_INIT;
    log_set_sink(capture_log, &logs);
    /* thirteen days on: still kept */
    r.now += 13LL * 24 * 3600 * 1000;
    publish_deliver(r.p, r.now, 0);
    CHECK_INT_EQ(ob->count(ob->ctx), 2);
    /* past two weeks (less the margin) from the first period only */
    r.now += 1LL * 24 * 3600 * 1000 - 11 * 60 * 1000 - PERIOD_MS;
    c.peer.fail_always = 0;
    c.peer.fail_first = 0;
    int before = c.peer.hits;
    publish_deliver(r.p, r.now, 0);
    log_set_sink(NULL, NULL);
    struct publish_counters pc;
    publish_counters_get(r.p, &pc);
    CHECK_INT_EQ(pc.batches_expired, 1);
    CHECK_INT_EQ(pc.requests_sent, 1);
    CHECK_INT_EQ(ob->count(ob->ctx), 0);
    CHECK_INT_EQ(c.peer.hits - before, 1);
    CHECK(strstr(buf_cstr(&logs), "publish.batches_expired") != NULL);
    buf_clear(&logs);
    rig_end(&r);
    cw_stop(&c);
}

TEST_CASE(rejected_batch_is_dropped_not_retried)
{
    struct cw_rig c;
    cw_start(&c);
    c.peer.reject_first = 1;
    struct rig r;
    rig_cloudwatch(&r, &c, NULL);
    for (int k = 0; k < 2; k++) {
        struct publish_verdict v = {"chat", "helpfulness", NULL, 0.5, 1, -1, r.now};
        publish_verdict_add(r.p, &v);
        r.now += PERIOD_MS;
        publish_tick(r.p, r.now, 0);
    }
    CHECK_INT_EQ(publish_deliver(r.p, r.now, 0), ASSAY_OK);
    struct publish_counters pc;
    publish_counters_get(r.p, &pc);
    CHECK_INT_EQ(pc.batches_rejected, 1);
    CHECK_INT_EQ(pc.requests_sent, 1);
    CHECK_INT_EQ(c.peer.hits, 2); /* the invalid one was not retried */
    rig_end(&r);
    cw_stop(&c);
}

TEST_CASE(timed_out_request_is_sent_again_the_documented_duplicate)
{
    struct cw_rig c;
    cw_start(&c);
    c.peer.slow_first = 1;
    /* a client that gives up after 300 ms, one attempt */
    struct cloudwatch_options o = {.transport = c.t,
                                   .creds = c.creds,
                                   .region = "us-east-1",
                                   .endpoint = fake_server_url(c.server),
                                   .timeout_ms = 300,
                                   .sleep_ms = no_sleep};
    retry_policy_init(&o.retry);
    o.retry.max_attempts = 1;
    struct cloudwatch *fast = cloudwatch_new(&o, NULL);
    REQUIRE(fast);
    struct cloudwatch *keep = c.cw;
    c.cw = fast;
    struct rig r;
    rig_cloudwatch(&r, &c, NULL);
    struct publish_verdict v = {"chat", "helpfulness", NULL, 0.5, 1, -1, r.now};
    publish_verdict_add(r.p, &v);
    r.now += PERIOD_MS;
    publish_tick(r.p, r.now, 0);
    CHECK_INT_EQ(publish_deliver(r.p, r.now, 0), ASSAY_ERR_TIMEOUT);
    r.now += 120000;
    CHECK_INT_EQ(publish_deliver(r.p, r.now, 0), ASSAY_OK);
    /* CloudWatch stored the first request before the client gave up on it:
     * the datum arrived twice, the one case assay cannot tell apart */
    pthread_mutex_lock(&c.peer.lock);
    int dups;
    json_t *idx = delivered_index(c.peer.delivered, &dups);
    pthread_mutex_unlock(&c.peer.lock);
    CHECK_INT_EQ(dups, 2); /* QualityScore and QualityPass, once more each */
    json_decref(idx);
    rig_end(&r);
    c.cw = keep;
    cloudwatch_free(fast);
    cw_stop(&c);
}

TEST_CASE(stop_flushes_open_period)
{
    struct cw_rig c;
    cw_start(&c);
    struct rig r;
    rig_cloudwatch(&r, &c, NULL);
    struct publish_verdict v = {"chat", "helpfulness", NULL, 0.5, 1, -1, r.now};
    publish_verdict_add(r.p, &v);
    publish_stop(r.p, clock_mono_ms(&r.clock) + 5000);
    CHECK_INT_EQ(json_array_size(c.peer.delivered), 1);
    publish_stop(r.p, 0); /* idempotent */
    rig_end(&r);
    cw_stop(&c);
}

TEST_CASE(background_thread_ticks_and_delivers)
{
    struct cw_rig c;
    cw_start(&c);
    struct publish_options o;
    publish_options_init(&o);
    o.cw = c.cw;
    o.period_s = 1;
    o.tick_ms = 50;
    char errbuf[ASSAY_ERRBUF_SIZE];
    struct publish *p = publish_new(&o, errbuf);
    REQUIRE(p);
    REQUIRE_INT_EQ(publish_start(p, errbuf), ASSAY_OK);
    struct publish_verdict v = {"chat", "helpfulness", NULL, 0.5, 1, -1, 0};
    publish_verdict_add(p, &v);
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&c.peer.lock);
        size_t n = json_array_size(c.peer.delivered);
        pthread_mutex_unlock(&c.peer.lock);
        if (n)
            break;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    CHECK(json_array_size(c.peer.delivered) >= 1);
    publish_free(p);
    cw_stop(&c);
}

TEST_CASE(emf_lines_structure)
{
    char path[512];
    snprintf(path, sizeof path, "%s/emf.jsonl", test_tmpdir());
    struct publish_options o;
    publish_options_init(&o);
    o.sink = PUBLISH_SINK_EMF;
    o.emf_path = path;
    o.ns = "AssayTest";
    struct rig r;
    rig_none(&r, &o);
    double sum = 0;
    for (int i = 0; i < 250; i++) {
        double s = (double)(i % 7) / 6;
        sum += s;
        struct publish_verdict v = {"chat", "helpfulness", "m1", s, i % 2, -1, r.now};
        publish_verdict_add(r.p, &v);
    }
    struct publish_judge_call jc = {"jm", "chat", NULL, 0, PUBLISH_CALL_OK, 120, 300, 40, r.now};
    publish_judge_call_add(r.p, &jc);
    int64_t period = publish_period_start_ms(r.now, 60);
    publish_tick(r.p, r.now + PERIOD_MS, 0);
    publish_free(r.p);
    json_decref(r.cap.requests);

    FILE *f = fopen(path, "r");
    REQUIRE(f);
    char line[65536];
    int lines = 0;
    double got_sum = 0, got_count = 0, tokens = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *doc = json_loads(line, 0, &je);
        if (!doc)
            fprintf(stderr, "%s: %s\n", je.text, line);
        REQUIRE(doc != NULL);
        lines++;
        const json_t *aws = json_object_get(doc, "_aws");
        REQUIRE(json_is_object(aws));
        CHECK(json_integer_value(json_object_get(aws, "Timestamp")) == period);
        const json_t *dirs = json_object_get(aws, "CloudWatchMetrics");
        REQUIRE_INT_EQ(json_array_size(dirs), 1);
        const json_t *dir = json_array_get(dirs, 0);
        CHECK_STR_EQ(json_string_value(json_object_get(dir, "Namespace")), "AssayTest");
        const json_t *dsets = json_object_get(dir, "Dimensions");
        REQUIRE_INT_EQ(json_array_size(dsets), 1);
        const json_t *dset = json_array_get(dsets, 0);
        CHECK(json_array_size(dset) >= 1 && json_array_size(dset) <= 30);
        for (size_t i = 0; i < json_array_size(dset); i++)
            CHECK(json_is_string(json_object_get(doc, json_string_value(json_array_get(dset, i)))));
        const json_t *metrics = json_object_get(dir, "Metrics");
        CHECK(json_array_size(metrics) >= 1 && json_array_size(metrics) <= 100);
        int is_model = json_object_get(doc, "ModelId") != NULL;
        for (size_t i = 0; i < json_array_size(metrics); i++) {
            const json_t *m = json_array_get(metrics, i);
            const char *name = json_string_value(json_object_get(m, "Name"));
            REQUIRE(name && json_string_value(json_object_get(m, "Unit")));
            const json_t *val = json_object_get(doc, name);
            REQUIRE(val != NULL);
            if (json_is_array(val)) {
                CHECK(json_array_size(val) <= 100);
                if (strcmp(name, "QualityScore") == 0 && is_model)
                    for (size_t k = 0; k < json_array_size(val); k++) {
                        got_sum += json_number_value(json_array_get(val, k));
                        got_count++;
                    }
            } else {
                CHECK(json_is_number(val));
                if (strcmp(name, "JudgeInputTokenCount") == 0)
                    tokens += json_number_value(val);
            }
        }
        json_decref(doc);
    }
    fclose(f);
    CHECK(lines >= 3 + 2); /* 250 values need 3 lines per score series, plus judge lines */
    CHECK(got_count == 250);
    CHECK_NEAR(got_sum, sum, 1e-9);
    CHECK(tokens == 300);
}

TEST_CASE(options_and_refusals)
{
    struct publish_options o;
    publish_options_init(&o);
    char errbuf[ASSAY_ERRBUF_SIZE];
    json_t *m = json_loads("{\"sink\":\"cloudwatch\",\"period_s\":90}", 0, NULL);
    CHECK_INT_EQ(publish_options_from_json(&o, m, errbuf), ASSAY_ERR_CONFIG);
    CHECK(strstr(errbuf, "metrics.period_s") != NULL);
    json_decref(m);
    publish_options_init(&o);
    o.sink = PUBLISH_SINK_CLOUDWATCH; /* without a client */
    CHECK(publish_new(&o, errbuf) == NULL);
    o.sink = PUBLISH_SINK_NONE;
    struct publish *p = publish_new(&o, errbuf);
    REQUIRE(p);
    struct publish_verdict v = {"chat", NULL, NULL, 0.5, 1, -1, 0};
    CHECK_INT_EQ(publish_verdict_add(p, &v), ASSAY_ERR_INVALID_ARGUMENT);
    v.rubric = "r";
    v.score = NAN;
    CHECK_INT_EQ(publish_verdict_add(p, &v), ASSAY_ERR_INVALID_ARGUMENT);
    v.score = 1;
    v.app = "caf\xc3\xa9";
    CHECK_INT_EQ(publish_verdict_add(p, &v), ASSAY_ERR_INVALID_ARGUMENT);
    publish_free(p);
    publish_free(NULL);
    publish_outbox_free(NULL);
    publish_outbox_item_clear(NULL);
}
