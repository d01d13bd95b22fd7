/*
 * tests/integration/test_emulator_cloudwatch: build/assay-emulator's
 * CloudWatch and SNS services against assay's own client (aws/cloudwatch over
 * aws/http and aws/signer), and raw signed requests where the client would
 * refuse to send what the test needs. Each case starts the real emulator
 * (emulator_proc) and checks it stops cleanly (exit 0, so no leak under ASan).
 */
#include "tests/integration/emulator_proc.h"
#include "tests/unit/test.h"

#include "aws/cloudwatch.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/signer.h"
#include "aws/sigv4.h"
#include "common/alloc.h"
#include "common/clock.h"

#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <time.h>
#include <zlib.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define NS "AssayTest"
#define TOPIC "arn:aws:sns:us-east-1:123456789012:assay-alarms"

/* ---- assay's CloudWatch client, pointed at the emulator ---- */

struct cwc {
    struct http_transport *t;
    struct creds_provider *creds;
    struct cloudwatch *cw;
    struct clock clk;
    int64_t offset_ms; /* this client's clock error */
    int sleeps;        /* backoff waits the client asked for */
};

static int64_t offset_now(void *ctx)
{
    struct cwc *c = ctx;
    return clock_now_ms(NULL) + c->offset_ms;
}

static int64_t mono_now(void *ctx)
{
    (void)ctx;
    return clock_mono_ms(NULL);
}

/* Backoff without the wait: the test counts the waits instead. */
static void count_sleep(void *ctx, int64_t ms)
{
    (void)ms;
    struct cwc *c = ctx;
    c->sleeps++;
}

static void cwc_init(struct cwc *c, const struct emulator_proc *e, const char *secret,
                     int64_t offset_ms, int max_attempts)
{
    memset(c, 0, sizeof *c);
    c->offset_ms = offset_ms;
    c->clk.now_ms = offset_now;
    c->clk.mono_ms = mono_now;
    c->clk.ctx = c;
    struct http_transport_options o = {.clock = &c->clk};
    c->t = http_transport_new(&o, NULL);
    REQUIRE(c->t != NULL);
    struct creds cr;
    creds_init(&cr);
    cr.access_key_id = xstrdup(AKID);
    cr.secret_access_key = xstrdup(secret);
    c->creds = creds_static_new(&cr);
    creds_clear(&cr);
    struct cloudwatch_options co = {.transport = c->t,
                                    .creds = c->creds,
                                    .region = "us-east-1",
                                    .endpoint = e->url,
                                    .seed = 7,
                                    .sleep_ms = count_sleep,
                                    .sleep_ctx = c};
    retry_policy_init(&co.retry);
    co.retry.max_attempts = max_attempts;
    char errbuf[ASSAY_ERRBUF_SIZE];
    c->cw = cloudwatch_new(&co, errbuf);
    REQUIRE(c->cw != NULL);
}

static void cwc_clear(struct cwc *c)
{
    cloudwatch_free(c->cw);
    http_transport_free(c->t);
    creds_provider_free(c->creds);
}

/* The minute ten minutes ago, in ms: well inside the accepted window. */
static int64_t base_ms(void)
{
    return (clock_now_ms(NULL) / 60000 - 10) * 60000;
}

static const char *const stat_names[5] = {"SampleCount", "Sum", "Minimum", "Maximum", "Average"};

/*
 * Reads back one series' five statistics over [from_ms, to_ms) with period_s.
 * out[k] receives the statistic's Values array (new references), ascending.
 */
static void read_stats(struct cwc *c, const char *metric, const struct cloudwatch_dimension *dims,
                       size_t n_dims, int64_t period_s, int64_t from_ms, int64_t to_ms,
                       json_t *out[5])
{
    struct cloudwatch_metric_query q[5];
    static const char *const ids[5] = {"n", "s", "lo", "hi", "avg"};
    for (int k = 0; k < 5; k++)
        q[k] = (struct cloudwatch_metric_query){.id = ids[k],
                                                .ns = NS,
                                                .metric_name = metric,
                                                .dimensions = dims,
                                                .n_dimensions = n_dims,
                                                .period_s = period_s,
                                                .stat = stat_names[k]};
    json_t *results = NULL;
    struct cloudwatch_result res;
    REQUIRE_INT_EQ(cloudwatch_get_metric_data(c->cw, q, 5, from_ms, to_ms, "TimestampAscending",
                                              &results, &res),
                   ASSAY_OK);
    REQUIRE(json_array_size(results) == 5);
    for (int k = 0; k < 5; k++) {
        json_t *r = json_array_get(results, (size_t)k);
        CHECK_STR_EQ(json_string_value(json_object_get(r, "Id")), ids[k]);
        CHECK_STR_EQ(json_string_value(json_object_get(r, "StatusCode")), "Complete");
        out[k] = json_incref(json_object_get(r, "Values"));
    }
    json_decref(results);
}

static double at(const json_t *values, size_t i)
{
    return json_number_value(json_array_get(values, i));
}

static void free_stats(json_t *v[5])
{
    for (int k = 0; k < 5; k++)
        json_decref(v[k]);
}

/* ---- raw signed requests ---- */

struct raw {
    struct http_transport *t;
    struct creds_provider *creds;
    struct signer *signer;
};

static void raw_init(struct raw *r, const char *secret, const char *service)
{
    r->t = http_transport_new(NULL, NULL);
    REQUIRE(r->t != NULL);
    struct creds cr;
    creds_init(&cr);
    cr.access_key_id = xstrdup(AKID);
    cr.secret_access_key = xstrdup(secret);
    r->creds = creds_static_new(&cr);
    creds_clear(&cr);
    struct signer_options so = {
        .region = "us-east-1", .service = service, .creds = r->creds, .sign_body = 1};
    char errbuf[ASSAY_ERRBUF_SIZE];
    r->signer = signer_new(&so, errbuf);
    REQUIRE(r->signer != NULL);
}

static void raw_clear(struct raw *r)
{
    http_transport_free(r->t);
    signer_free(r->signer);
    creds_provider_free(r->creds);
}

/* POST / with body; target NULL sends a form (SNS), else a CloudWatch JSON 1.0 call. */
static void raw_send(struct raw *r, const struct emulator_proc *e, const char *target,
                     const char *body, http_sign_fn sign, struct http_response *resp)
{
    char url[96];
    snprintf(url, sizeof url, "%s/", e->url);
    struct http_request req;
    http_request_init(&req, "POST", url);
    if (target) {
        http_request_header_set(&req, "Content-Type", "application/x-amz-json-1.0");
        http_request_header_set(&req, "X-Amz-Target", target);
        http_request_header_set(&req, "x-amzn-query-mode", "true");
    } else {
        http_request_header_set(&req, "Content-Type",
                                "application/x-www-form-urlencoded; charset=utf-8");
    }
    buf_append_str(&req.body, body);
    signer_attach(r->signer, &req);
    if (sign)
        req.sign = sign;
    http_response_init(resp);
    CHECK_INT_EQ(http_transport_perform(r->t, &req, resp), ASSAY_OK);
    http_request_clear(&req);
}

static void code_of(const struct http_response *resp, char *code, size_t n)
{
    http_response_error_code(resp, code, n);
}

/* ---- CloudWatch ---- */

TEST_CASE(cloudwatch_put_get_exact)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct cwc c;
    cwc_init(&c, &e, SECRET, 0, 3);
    int64_t t0 = base_ms();
    /* Two series of one metric; the dimension order of a datum does not matter. */
    struct cloudwatch_dimension ab[] = {{"App", "chat"}, {"Rubric", "faithfulness"}};
    struct cloudwatch_dimension ba[] = {{"Rubric", "faithfulness"}, {"App", "chat"}};
    struct cloudwatch_dimension other[] = {{"App", "search"}, {"Rubric", "faithfulness"}};
    struct cloudwatch_datum d[6];
    static const double v[] = {0.25, 0.75, 0.5, 1.0};
    for (int i = 0; i < 4; i++)
        d[i] = (struct cloudwatch_datum){.metric_name = "QualityScore",
                                         .dimensions = i % 2 ? ba : ab,
                                         .n_dimensions = 2,
                                         .timestamp_ms = t0 + 1000 * i,
                                         .kind = CLOUDWATCH_DATUM_VALUE,
                                         .value = v[i],
                                         .unit = "None"};
    d[4] = (struct cloudwatch_datum){.metric_name = "QualityScore",
                                     .dimensions = ab,
                                     .n_dimensions = 2,
                                     .timestamp_ms = t0 + 60000,
                                     .kind = CLOUDWATCH_DATUM_STATISTICS,
                                     .stats = {4, 2.5, 0.125, 0.875}};
    d[5] = (struct cloudwatch_datum){.metric_name = "QualityScore",
                                     .dimensions = other,
                                     .n_dimensions = 2,
                                     .timestamp_ms = t0,
                                     .kind = CLOUDWATCH_DATUM_VALUE,
                                     .value = 100};
    struct cloudwatch_result res;
    REQUIRE_INT_EQ(cloudwatch_put_metric_data(c.cw, NS, d, 6, &res), ASSAY_OK);
    CHECK_INT_EQ(res.status, 200);

    json_t *s[5];
    read_stats(&c, "QualityScore", ab, 2, 60, t0, t0 + 120000, s);
    REQUIRE(json_array_size(s[0]) == 2);
    CHECK(at(s[0], 0) == 4 && at(s[1], 0) == 2.5 && at(s[2], 0) == 0.25 && at(s[3], 0) == 1.0);
    CHECK(at(s[4], 0) == 0.625);
    CHECK(at(s[0], 1) == 4 && at(s[1], 1) == 2.5 && at(s[2], 1) == 0.125 && at(s[3], 1) == 0.875);
    free_stats(s);
    /* One 120 s period joins both minutes. */
    read_stats(&c, "QualityScore", ba, 2, 120, t0 - (t0 / 1000 % 120) * 1000, t0 + 120000, s);
    double count = 0, sum = 0;
    for (size_t i = 0; i < json_array_size(s[0]); i++) {
        count += at(s[0], i);
        sum += at(s[1], i);
    }
    CHECK(count == 8 && sum == 5.0);
    free_stats(s);
    /* The other series, and none with a subset of the dimensions. */
    read_stats(&c, "QualityScore", other, 2, 60, t0, t0 + 120000, s);
    CHECK(json_array_size(s[1]) == 1 && at(s[1], 0) == 100);
    free_stats(s);
    read_stats(&c, "QualityScore", ab, 1, 60, t0, t0 + 120000, s);
    CHECK_INT_EQ(json_array_size(s[0]), 0);
    free_stats(s);
    cwc_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"operation\":\"PutMetricData\""), 1);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"datums\":6"), 1);
}

TEST_CASE(cloudwatch_values_counts_merge)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct cwc c;
    cwc_init(&c, &e, SECRET, 0, 3);
    int64_t t0 = base_ms();
    struct cloudwatch_dimension dims[] = {{"App", "chat"}};
    static const double values[] = {1, 2, 3, 0.5}, counts[] = {2, 1, 0, 4};
    struct cloudwatch_datum d[3] = {
        {.metric_name = "QualityPass",
         .dimensions = dims,
         .n_dimensions = 1,
         .timestamp_ms = t0 + 5000,
         .kind = CLOUDWATCH_DATUM_VALUES,
         .values = values,
         .counts = counts,
         .n_values = 4},
        {.metric_name = "QualityPass",
         .dimensions = dims,
         .n_dimensions = 1,
         .timestamp_ms = t0 + 7000,
         .kind = CLOUDWATCH_DATUM_VALUE,
         .value = 5},
        {.metric_name = "QualityPass",
         .dimensions = dims,
         .n_dimensions = 1,
         .timestamp_ms = t0 + 9000,
         .kind = CLOUDWATCH_DATUM_VALUES,
         .values = values,
         .n_values = 2}, /* no Counts: each 1 */
    };
    struct cloudwatch_result res;
    REQUIRE_INT_EQ(cloudwatch_put_metric_data(c.cw, NS, d, 3, &res), ASSAY_OK);
    /* A second request merges into the same minute. */
    REQUIRE_INT_EQ(cloudwatch_put_metric_data(c.cw, NS, &d[1], 1, &res), ASSAY_OK);
    json_t *s[5];
    read_stats(&c, "QualityPass", dims, 1, 60, t0, t0 + 60000, s);
    REQUIRE(json_array_size(s[0]) == 1);
    /* 2x1 + 1x2 + 0x3 + 4x0.5, + 5, + 1 + 2, + 5: 3 is counted 0 times, so not the maximum. */
    CHECK(at(s[0], 0) == 2 + 1 + 4 + 1 + 2 + 1);
    CHECK(at(s[1], 0) == 2 + 2 + 2 + 5 + 3 + 5);
    CHECK(at(s[2], 0) == 0.5);
    CHECK(at(s[3], 0) == 5);
    free_stats(s);
    cwc_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
}

TEST_CASE(cloudwatch_gzip_put)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct cwc c;
    cwc_init(&c, &e, SECRET, 0, 3);
    int64_t t0 = base_ms();
    enum { N = 600 };
    struct cloudwatch_datum *d = xcalloc(N, sizeof *d);
    struct cloudwatch_dimension dims[] = {{"App", "gzip"}, {"ModelId", "m"}};
    for (int i = 0; i < N; i++)
        d[i] = (struct cloudwatch_datum){.metric_name = "SamplesJudged",
                                         .dimensions = dims,
                                         .n_dimensions = 2,
                                         .timestamp_ms = t0 + (i % 60) * 1000,
                                         .kind = CLOUDWATCH_DATUM_VALUE,
                                         .value = i % 7,
                                         .unit = "Count"};
    struct cloudwatch_result res;
    REQUIRE_INT_EQ(cloudwatch_put_metric_data(c.cw, NS, d, N, &res), ASSAY_OK);
    CHECK_INT_EQ(res.gzipped, 1);
    CHECK(res.body_bytes >= CLOUDWATCH_GZIP_MIN_BYTES && res.wire_bytes < res.body_bytes);
    json_t *s[5];
    read_stats(&c, "SamplesJudged", dims, 2, 60, t0, t0 + 60000, s);
    double want = 0;
    for (int i = 0; i < N; i++)
        want += i % 7;
    CHECK(json_array_size(s[0]) == 1 && at(s[0], 0) == N && at(s[1], 0) == want);
    free_stats(s);
    free(d);
    cwc_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"gzip\":true"), 1);
}

/* Signs, then flips a body byte: the payload hash no longer matches. */
static enum assay_err sign_then_tamper(void *ctx, struct http_request *req, int64_t now_ms,
                                       char *errbuf)
{
    enum assay_err err = signer_sign(ctx, req, now_ms, errbuf);
    if (err == ASSAY_OK && req->body.len > 4)
        req->body.data[req->body.len - 3] ^= 1;
    return err;
}

static const char small_put[] =
    "{\"Namespace\":\"" NS "\",\"MetricData\":[{\"MetricName\":\"M\",\"Value\":1}]}";

/* Gzips the body (Content-Encoding: gzip), then signs the compressed bytes, as the SDKs do. */
static enum assay_err sign_gzipped(void *ctx, struct http_request *req, int64_t now_ms,
                                   char *errbuf)
{
    if (!http_request_header_get(req, "Content-Encoding")) {
        z_stream z;
        memset(&z, 0, sizeof z);
        REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
        size_t cap = deflateBound(&z, (uLong)req->body.len);
        unsigned char *out = xcalloc(cap, 1);
        z.next_in = (Bytef *)req->body.data;
        z.avail_in = (uInt)req->body.len;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
        size_t n = cap - z.avail_out;
        deflateEnd(&z);
        buf_reset(&req->body);
        buf_append(&req->body, out, n);
        free(out);
        http_request_header_set(req, "Content-Encoding", "gzip");
    }
    return signer_sign(ctx, req, now_ms, errbuf);
}

TEST_CASE(cloudwatch_signature_refused)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    /* Wrong secret, through assay's client: 403, never retried. */
    struct cwc c;
    cwc_init(&c, &e, "not-the-secret", 0, 3);
    struct cloudwatch_datum d = {.metric_name = "M", .kind = CLOUDWATCH_DATUM_VALUE, .value = 1};
    struct cloudwatch_result res;
    CHECK(cloudwatch_put_metric_data(c.cw, NS, &d, 1, &res) != ASSAY_OK);
    CHECK_INT_EQ(res.status, 403);
    CHECK_STR_EQ(res.error_code, "SignatureDoesNotMatch");
    CHECK_INT_EQ(res.attempts, 1);
    cwc_clear(&c);

    /* Signed for another service's scope ("sns", "bedrock"), and a tampered body. */
    static const char *const services[] = {"sns", "bedrock"};
    for (size_t i = 0; i < 2; i++) {
        struct raw r;
        raw_init(&r, SECRET, services[i]);
        struct http_response resp;
        raw_send(&r, &e, "GraniteServiceVersion20100801.PutMetricData", small_put, NULL, &resp);
        CHECK_INT_EQ(resp.status, 403);
        char code[64];
        code_of(&resp, code, sizeof code);
        CHECK_STR_EQ(code, "SignatureDoesNotMatch");
        CHECK_STR_EQ(http_response_header(&resp, "x-amzn-query-error"),
                     "SignatureDoesNotMatch;Sender");
        CHECK(strstr(buf_cstr(&resp.body), "scoped to correct service: 'monitoring'") != NULL);
        http_response_clear(&resp);
        raw_clear(&r);
    }
    struct raw r;
    raw_init(&r, SECRET, "monitoring");
    struct http_response resp;
    raw_send(&r, &e, "GraniteServiceVersion20100801.PutMetricData", small_put, sign_then_tamper,
             &resp);
    CHECK_INT_EQ(resp.status, 403);
    http_response_clear(&resp);
    /* The same request untampered passes. */
    raw_send(&r, &e, "GraniteServiceVersion20100801.PutMetricData", small_put, NULL, &resp);
    CHECK_INT_EQ(resp.status, 200);
    CHECK_STR_EQ(buf_cstr(&resp.body), "{}");
    http_response_clear(&resp);
    raw_clear(&r);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"fault\":\"auth\""), 4);
}

TEST_CASE(cloudwatch_stale_date_refused_then_corrected)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct cwc c;
    cwc_init(&c, &e, SECRET, -20 * 60 * 1000, 3); /* this client's clock is 20 min slow */
    struct cloudwatch_datum d = {.metric_name = "M", .kind = CLOUDWATCH_DATUM_VALUE, .value = 1};
    struct cloudwatch_result res;
    /* Refused with InvalidSignatureException and a Date header; the transport re-signs. */
    CHECK_INT_EQ(cloudwatch_put_metric_data(c.cw, NS, &d, 1, &res), ASSAY_OK);
    int64_t skew = http_transport_skew_ms(c.t);
    CHECK(skew > 19 * 60 * 1000 && skew < 21 * 60 * 1000);
    cwc_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"error\":\"InvalidSignatureException\""), 1);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"status\":200"), 1);
}

/* A body with n datums built by f(i, out). */
static char *many_datums(int n, const char *extra_member)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, "{\"Namespace\":\"" NS "\",\"MetricData\":[");
    for (int i = 0; i < n; i++)
        buf_appendf(&b, "%s{\"MetricName\":\"M\",\"Value\":%d%s}", i ? "," : "", i,
                    extra_member ? extra_member : "");
    buf_append_str(&b, "]}");
    return buf_detach(&b, NULL);
}

static char *long_string(char ch, size_t n)
{
    char *s = xcalloc(n + 1, 1);
    memset(s, ch, n);
    return s;
}

TEST_CASE(cloudwatch_limits_refused)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct cwc c;
    cwc_init(&c, &e, SECRET, 0, 3);
    int64_t now_s = clock_now_ms(NULL) / 1000;
    char *long_name = long_string('m', 256);
    char *huge_value = long_string('v', 1000);
    struct buf dims31 = BUF_INIT, values151 = BUF_INIT, big = BUF_INIT;
    buf_append_str(&dims31, "[");
    for (int i = 0; i < 31; i++)
        buf_appendf(&dims31, "%s{\"Name\":\"D%d\",\"Value\":\"v\"}", i ? "," : "", i);
    buf_append_str(&dims31, "]");
    buf_append_str(&values151, "[");
    for (int i = 0; i < 151; i++)
        buf_appendf(&values151, "%s%d", i ? "," : "", i);
    buf_append_str(&values151, "]");
    /* Over 1 MB: 40 datums of 30 dimensions with 1,000-character values. */
    buf_append_str(&big, "{\"Namespace\":\"" NS "\",\"MetricData\":[");
    for (int i = 0; i < 40; i++) {
        buf_appendf(&big, "%s{\"MetricName\":\"M\",\"Value\":1,\"Dimensions\":[", i ? "," : "");
        for (int k = 0; k < 30; k++)
            buf_appendf(&big, "%s{\"Name\":\"D%d\",\"Value\":\"%s\"}", k ? "," : "", k, huge_value);
        buf_append_str(&big, "]}");
    }
    buf_append_str(&big, "]}");
    char *n1001 = many_datums(1001, NULL), *n1000 = many_datums(1000, NULL);
    struct buf tmp[12];
    for (size_t i = 0; i < 12; i++)
        buf_init(&tmp[i]);
    buf_appendf(&tmp[0],
                "{\"Namespace\":\"" NS
                "\",\"MetricData\":[{\"MetricName\":\"M\",\"Value\":1,\"Timestamp\":%lld}]}",
                (long long)(now_s - 15 * 86400));
    buf_appendf(&tmp[1],
                "{\"Namespace\":\"" NS
                "\",\"MetricData\":[{\"MetricName\":\"M\",\"Value\":1,\"Timestamp\":%lld}]}",
                (long long)(now_s + 3 * 3600));
    buf_appendf(&tmp[2],
                "{\"Namespace\":\"" NS "\",\"MetricData\":[{\"MetricName\":\"M\","
                "\"Value\":1,\"Dimensions\":%s}]}",
                buf_cstr(&dims31));
    buf_appendf(&tmp[3],
                "{\"Namespace\":\"" NS "\",\"MetricData\":[{\"MetricName\":\"M\","
                "\"Values\":%s}]}",
                buf_cstr(&values151));
    buf_appendf(&tmp[4],
                "{\"Namespace\":\"" NS "\",\"MetricData\":[{\"MetricName\":\"%s\","
                "\"Value\":1}]}",
                long_name);
    static const struct {
        const char *op, *body; /* body NULL: the tmp/big body named by index */
        int tmp;
        const char *code;
    } cases[] = {
        {"PutMetricData", NULL, 0, "InvalidParameterValue"},  /* 15 days back */
        {"PutMetricData", NULL, 1, "InvalidParameterValue"},  /* 3 hours ahead */
        {"PutMetricData", NULL, 2, "InvalidParameterValue"},  /* 31 dimensions */
        {"PutMetricData", NULL, 3, "InvalidParameterValue"},  /* 151 values */
        {"PutMetricData", NULL, 4, "InvalidParameterValue"},  /* a 256-character name */
        {"PutMetricData", NULL, -1, "InvalidParameterValue"}, /* 1,001 datums */
        {"PutMetricData",
         "{\"Namespace\":\"" NS "\",\"MetricData\":[{\"MetricName\":\"M\",\"Values\":[1,2],"
         "\"Counts\":[1]}]}",
         0, "InvalidParameterValue"},
        {"PutMetricData",
         "{\"Namespace\":\"" NS "\",\"MetricData\":[{\"MetricName\":\"M\",\"Value\":1,"
         "\"StorageResolution\":30}]}",
         0, "InvalidParameterValue"},
        {"PutMetricData",
         "{\"Namespace\":\"" NS "\",\"MetricData\":[{\"MetricName\":\"M\",\"Value\":1e109}]}", 0,
         "InvalidParameterValue"},
        {"PutMetricData",
         "{\"Namespace\":\"" NS "\",\"MetricData\":[{\"MetricName\":\"M\",\"Value\":1,"
         "\"Unit\":\"Furlongs\"}]}",
         0, "InvalidParameterValue"},
        {"PutMetricData",
         "{\"Namespace\":\"" NS "\",\"MetricData\":[{\"MetricName\":\"M\",\"Value\":1,"
         "\"Dimensions\":[{\"Name\":\"App\",\"Value\":\" \"}]}]}",
         0, "InvalidParameterValue"},
        {"PutMetricData",
         "{\"Namespace\":\"" NS "\",\"MetricData\":[{\"MetricName\":\"M\",\"Value\":1,"
         "\"Dimensions\":[{\"Name\":\"App\",\"Value\":\"a\"},{\"Name\":\"App\",\"Value\":\"b\"}]}]"
         "}",
         0, "InvalidParameterValue"},
        {"PutMetricData",
         "{\"Namespace\":\"AWS/EC2\",\"MetricData\":[{\"MetricName\":\"M\",\"Value\":1}]}", 0,
         "InvalidParameterValue"},
        {"PutMetricData",
         "{\"Namespace\":\"" NS "\",\"MetricData\":[{\"MetricName\":\"M\",\"Value\":1,"
         "\"Values\":[1]}]}",
         0, "InvalidParameterCombination"},
        {"PutMetricData", "{\"Namespace\":\"" NS "\",\"MetricData\":[{\"MetricName\":\"M\"}]}", 0,
         "MissingParameter"},
        {"PutMetricData", "{\"MetricData\":[{\"MetricName\":\"M\",\"Value\":1}]}", 0,
         "MissingParameter"},
        {"PutMetricData",
         "{\"Namespace\":\"" NS "\",\"MetricData\":[{\"MetricName\":\"M\",\"Valeu\":1}]}", 0,
         "InvalidParameterValue"},
        {"PutMetricAlarm",
         "{\"AlarmName\":\"a\",\"MetricName\":\"M\",\"Namespace\":\"" NS "\",\"Statistic\":"
         "\"Average\",\"Period\":45,\"EvaluationPeriods\":1,\"Threshold\":1,"
         "\"ComparisonOperator\":\"LessThanThreshold\"}",
         0, "InvalidParameterValue"},
        {"PutMetricAlarm",
         "{\"AlarmName\":\"a\",\"MetricName\":\"M\",\"Namespace\":\"" NS "\",\"Statistic\":"
         "\"Average\",\"Period\":60,\"EvaluationPeriods\":1441,\"Threshold\":1,"
         "\"ComparisonOperator\":\"LessThanThreshold\"}",
         0, "InvalidParameterCombination"},
        {"PutMetricAlarm",
         "{\"AlarmName\":\"a\",\"MetricName\":\"M\",\"Namespace\":\"" NS "\",\"Statistic\":"
         "\"Average\",\"Period\":60,\"EvaluationPeriods\":3,\"DatapointsToAlarm\":4,"
         "\"Threshold\":1,\"ComparisonOperator\":\"LessThanThreshold\"}",
         0, "InvalidParameterValue"},
        {"PutMetricAlarm",
         "{\"AlarmName\":\"a\",\"MetricName\":\"M\",\"Namespace\":\"" NS "\",\"Statistic\":"
         "\"Average\",\"Period\":60,\"EvaluationPeriods\":3,\"Threshold\":1,"
         "\"ComparisonOperator\":\"Below\"}",
         0, "InvalidParameterValue"},
        {"PutMetricAlarm",
         "{\"AlarmName\":\"a\",\"MetricName\":\"M\",\"Namespace\":\"" NS "\",\"Statistic\":"
         "\"Average\",\"Period\":60,\"EvaluationPeriods\":3,\"Threshold\":1,"
         "\"ComparisonOperator\":\"LessThanThreshold\",\"AlarmActions\":[\"arn:1\",\"arn:2\","
         "\"arn:3\",\"arn:4\",\"arn:5\",\"arn:6\"]}",
         0, "InvalidParameterValue"},
        {"PutMetricAlarm",
         "{\"AlarmName\":\"a\",\"MetricName\":\"M\",\"Namespace\":\"" NS "\","
         "\"Period\":60,\"EvaluationPeriods\":3,\"Threshold\":1,"
         "\"ComparisonOperator\":\"LessThanThreshold\"}",
         0, "InvalidParameterCombination"},
        {"DescribeAlarms", "{\"MaxRecords\":101}", 0, "InvalidParameterValue"},
        {"DescribeAlarms", "{\"NextToken\":\"bogus\"}", 0, "InvalidNextToken"},
        {"DescribeAlarms", "{\"AlarmNames\":[\"a\"],\"AlarmNamePrefix\":\"a\"}", 0,
         "InvalidParameterCombination"},
        {"GetMetricData",
         "{\"MetricDataQueries\":[{\"Id\":\"A\",\"MetricStat\":{\"Metric\":{\"Namespace\":\"" NS
         "\",\"MetricName\":\"M\"},\"Period\":60,\"Stat\":\"Sum\"}}],\"StartTime\":1,"
         "\"EndTime\":2}",
         0, "InvalidParameterValue"},
        {"GetMetricData",
         "{\"MetricDataQueries\":[{\"Id\":\"a\",\"MetricStat\":{\"Metric\":{\"Namespace\":\"" NS
         "\",\"MetricName\":\"M\"},\"Period\":7,\"Stat\":\"Sum\"}}],\"StartTime\":1,"
         "\"EndTime\":2}",
         0, "InvalidParameterValue"},
        {"GetMetricData",
         "{\"MetricDataQueries\":[{\"Id\":\"a\",\"MetricStat\":{\"Metric\":{\"Namespace\":\"" NS
         "\",\"MetricName\":\"M\"},\"Period\":60,\"Stat\":\"Sum\"}}],\"StartTime\":2,"
         "\"EndTime\":1}",
         0, "InvalidParameterValue"},
        {"GetMetricData", "{\"StartTime\":1,\"EndTime\":2}", 0, "MissingParameter"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *text = cases[i].body;
        if (!text)
            text = cases[i].tmp == -1 ? n1001 : buf_cstr(&tmp[cases[i].tmp]);
        json_error_t jerr;
        json_t *in = json_loads(text, 0, &jerr);
        REQUIRE(in != NULL);
        struct cloudwatch_result res;
        json_t *out = NULL;
        enum assay_err err = cloudwatch_call(c.cw, cases[i].op, in, &out, &res);
        if (res.status != 400 || strcmp(res.error_code, cases[i].code) != 0)
            fprintf(stderr, "case %zu (%s): status %d, code %s, want %s\n", i, cases[i].op,
                    res.status, res.error_code, cases[i].code);
        CHECK_INT_EQ(err, ASSAY_ERR_INVALID_ARGUMENT);
        CHECK_INT_EQ(res.status, 400);
        CHECK_STR_EQ(res.error_code, cases[i].code);
        CHECK_INT_EQ(res.attempts, 1); /* never retried */
        json_decref(out);
        json_decref(in);
    }
    /* Over 1 MB (which assay's client would not send): plain, and gzipped to 1% of it. */
    struct raw r;
    raw_init(&r, SECRET, "monitoring");
    for (int gz = 0; gz < 2; gz++) {
        struct http_response resp;
        raw_send(&r, &e, "GraniteServiceVersion20100801.PutMetricData", buf_cstr(&big),
                 gz ? sign_gzipped : NULL, &resp);
        char code[64];
        code_of(&resp, code, sizeof code);
        CHECK_INT_EQ(resp.status, 400);
        CHECK_STR_EQ(code, "InvalidParameterValue");
        CHECK(strstr(buf_cstr(&resp.body), "1 MB") != NULL);
        http_response_clear(&resp);
    }
    raw_clear(&r);
    /* At the limits: 1,000 datums; 30 dimensions; 150 values are accepted. */
    json_t *in = json_loads(n1000, 0, NULL);
    struct cloudwatch_result res;
    CHECK_INT_EQ(cloudwatch_call(c.cw, "PutMetricData", in, NULL, &res), ASSAY_OK);
    json_decref(in);
    /* Nothing of the refused requests was stored: M holds the 1,000 datums only. */
    struct cloudwatch_dimension none[1];
    json_t *s[5];
    read_stats(&c, "M", none, 0, 3600, (now_s - 7200) * 1000, (now_s + 7200) * 1000, s);
    double count = 0;
    for (size_t i = 0; i < json_array_size(s[0]); i++)
        count += at(s[0], i);
    CHECK(count == 1000);
    free_stats(s);
    for (size_t i = 0; i < 12; i++)
        buf_clear(&tmp[i]);
    buf_clear(&dims31);
    buf_clear(&values151);
    buf_clear(&big);
    free(n1001);
    free(n1000);
    free(long_name);
    free(huge_value);
    cwc_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
}

TEST_CASE(cloudwatch_throttling_retried)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e,
                                       "{\"seed\": 3, \"cloudwatch\": {\"throttle_rate\": 0.4, "
                                       "\"error_rate\": 0.2}}",
                                       0),
                   0);
    struct cwc c;
    cwc_init(&c, &e, SECRET, 0, 12);
    int64_t t0 = base_ms();
    struct cloudwatch_dimension dims[] = {{"App", "retry"}};
    int attempts = 0;
    for (int i = 0; i < 20; i++) {
        struct cloudwatch_datum d = {.metric_name = "SamplesReceived",
                                     .dimensions = dims,
                                     .n_dimensions = 1,
                                     .timestamp_ms = t0 + i * 1000,
                                     .kind = CLOUDWATCH_DATUM_VALUE,
                                     .value = i};
        struct cloudwatch_result res;
        CHECK_INT_EQ(cloudwatch_put_metric_data(c.cw, NS, &d, 1, &res), ASSAY_OK);
        attempts += res.attempts;
    }
    CHECK(attempts > 20);
    CHECK_INT_EQ(c.sleeps, attempts - 20);
    /* Every datum once, whatever the retries (reads may be throttled too: retried). */
    json_t *s[5];
    read_stats(&c, "SamplesReceived", dims, 1, 60, t0, t0 + 60000, s);
    CHECK(json_array_size(s[0]) == 1 && at(s[0], 0) == 20 && at(s[1], 0) == 190);
    free_stats(s);
    cwc_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK(emulator_proc_log_count(&e, "\"error\":\"Throttling\"") > 0);
    CHECK(emulator_proc_log_count(&e, "\"fault\":\"internal\"") +
              emulator_proc_log_count(&e, "\"fault\":\"unavailable\"") >
          0);

    /* Always throttled: the client gives up after its attempts with ASSAY_ERR_BUSY. */
    REQUIRE_INT_EQ(emulator_proc_start(&e, "{\"cloudwatch\": {\"throttle_rate\": 1}}", 0), 0);
    cwc_init(&c, &e, SECRET, 0, 4);
    struct cloudwatch_datum d = {.metric_name = "M", .kind = CLOUDWATCH_DATUM_VALUE, .value = 1};
    struct cloudwatch_result res;
    CHECK_INT_EQ(cloudwatch_put_metric_data(c.cw, NS, &d, 1, &res), ASSAY_ERR_BUSY);
    CHECK_INT_EQ(res.status, 400);
    CHECK_STR_EQ(res.error_code, "Throttling");
    CHECK_INT_EQ(res.attempts, 4);
    cwc_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"fault\":\"throttle\""), 4);
}

TEST_CASE(cloudwatch_outage_window)
{
    struct emulator_proc e;
    /* Requests 2..5 (from 0) refused with 503, whatever they are. */
    REQUIRE_INT_EQ(emulator_proc_start(&e,
                                       "{\"cloudwatch\": {\"outage\": [{\"from_request\": 2, "
                                       "\"to_request\": 6}]}}",
                                       0),
                   0);
    struct cwc c;
    cwc_init(&c, &e, SECRET, 0, 3);
    struct cloudwatch_datum d = {.metric_name = "Outage",
                                 .timestamp_ms = base_ms(),
                                 .kind = CLOUDWATCH_DATUM_VALUE,
                                 .value = 1};
    struct cloudwatch_result res;
    CHECK_INT_EQ(cloudwatch_put_metric_data(c.cw, NS, &d, 1, &res), ASSAY_OK); /* 0 */
    CHECK_INT_EQ(cloudwatch_put_metric_data(c.cw, NS, &d, 1, &res), ASSAY_OK); /* 1 */
    /* 2, 3, 4: three attempts, all refused. */
    CHECK_INT_EQ(cloudwatch_put_metric_data(c.cw, NS, &d, 1, &res), ASSAY_ERR_HTTP_STATUS);
    CHECK_INT_EQ(res.status, 503);
    CHECK_STR_EQ(res.error_code, "ServiceUnavailable");
    CHECK_INT_EQ(res.attempts, 3);
    CHECK_INT_EQ(res.retry, RETRY_TRANSIENT);
    /* 5 refused, 6 passes: retried through the end of the outage. */
    CHECK_INT_EQ(cloudwatch_put_metric_data(c.cw, NS, &d, 1, &res), ASSAY_OK);
    CHECK_INT_EQ(res.attempts, 2);
    json_t *s[5];
    struct cloudwatch_dimension none[1];
    read_stats(&c, "Outage", none, 0, 60, d.timestamp_ms, d.timestamp_ms + 60000, s);
    CHECK(json_array_size(s[0]) == 1 && at(s[0], 0) == 3);
    free_stats(s);
    cwc_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"fault\":\"outage\""), 4);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"status\":503"), 4);

    /* By time: the first 1.5 s after start refuse everything. */
    REQUIRE_INT_EQ(emulator_proc_start(&e,
                                       "{\"cloudwatch\": {\"outage\": [{\"from_ms\": 0, "
                                       "\"to_ms\": 1500}]}}",
                                       0),
                   0);
    cwc_init(&c, &e, SECRET, 0, 1);
    CHECK_INT_EQ(cloudwatch_put_metric_data(c.cw, NS, &d, 1, &res), ASSAY_ERR_HTTP_STATUS);
    CHECK_INT_EQ(res.status, 503);
    struct timespec ts = {1, 600000000L};
    nanosleep(&ts, NULL);
    CHECK_INT_EQ(cloudwatch_put_metric_data(c.cw, NS, &d, 1, &res), ASSAY_OK);
    cwc_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
}

TEST_CASE(cloudwatch_alarms)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct cwc c;
    cwc_init(&c, &e, SECRET, 0, 3);
    struct cloudwatch_dimension dims[] = {{"App", "chat"}, {"Rubric", "faithfulness"}};
    const char *actions[] = {TOPIC};
    char names[5][32];
    struct cloudwatch_result res;
    for (int i = 0; i < 5; i++) {
        snprintf(names[i], sizeof names[i], "assay-regression-%d", i);
        struct cloudwatch_alarm a = {.alarm_name = names[i],
                                     .alarm_description = "Quality dropped",
                                     .ns = NS,
                                     .metric_name = "QualityRegression",
                                     .dimensions = dims,
                                     .n_dimensions = 2,
                                     .statistic = "Maximum",
                                     .period_s = 60,
                                     .evaluation_periods = 3,
                                     .datapoints_to_alarm = 2,
                                     .threshold = 1,
                                     .comparison_operator = "GreaterThanOrEqualToThreshold",
                                     .treat_missing_data = "notBreaching",
                                     .alarm_actions = actions,
                                     .n_alarm_actions = 1,
                                     .actions_enabled = 1};
        CHECK_INT_EQ(cloudwatch_put_metric_alarm(c.cw, &a, &res), ASSAY_OK);
    }
    /* Replace alarm 0: a new threshold, the same state. */
    struct cloudwatch_alarm a = {.alarm_name = names[0],
                                 .ns = NS,
                                 .metric_name = "QualityScore",
                                 .dimensions = dims,
                                 .n_dimensions = 2,
                                 .statistic = "Average",
                                 .period_s = 300,
                                 .evaluation_periods = 1,
                                 .threshold = 0.7,
                                 .comparison_operator = "LessThanThreshold",
                                 .actions_enabled = 1};
    CHECK_INT_EQ(cloudwatch_put_metric_alarm(c.cw, &a, &res), ASSAY_OK);
    const char *want[] = {names[0], names[3], "absent"};
    json_t *alarms = NULL;
    REQUIRE_INT_EQ(cloudwatch_describe_alarms(c.cw, want, 3, &alarms, &res), ASSAY_OK);
    REQUIRE(json_array_size(alarms) == 2);
    json_t *a0 = json_array_get(alarms, 0), *a3 = json_array_get(alarms, 1);
    CHECK_STR_EQ(json_string_value(json_object_get(a0, "AlarmName")), names[0]);
    CHECK_STR_EQ(json_string_value(json_object_get(a0, "MetricName")), "QualityScore");
    CHECK(json_number_value(json_object_get(a0, "Threshold")) == 0.7);
    CHECK_INT_EQ(json_integer_value(json_object_get(a0, "Period")), 300);
    CHECK_STR_EQ(json_string_value(json_object_get(a0, "StateValue")), "INSUFFICIENT_DATA");
    CHECK_STR_EQ(json_string_value(json_object_get(a0, "AlarmArn")),
                 "arn:aws:cloudwatch:us-east-1:123456789012:alarm:assay-regression-0");
    CHECK_STR_EQ(json_string_value(json_object_get(a3, "ComparisonOperator")),
                 "GreaterThanOrEqualToThreshold");
    CHECK_STR_EQ(json_string_value(json_object_get(a3, "TreatMissingData")), "notBreaching");
    CHECK_INT_EQ(json_integer_value(json_object_get(a3, "DatapointsToAlarm")), 2);
    CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(a3, "AlarmActions"), 0)), TOPIC);
    CHECK_STR_EQ(json_string_value(json_object_get(
                     json_array_get(json_object_get(a3, "Dimensions"), 1), "Value")),
                 "faithfulness");
    CHECK(json_is_true(json_object_get(a3, "ActionsEnabled")));
    CHECK(json_is_number(json_object_get(a3, "StateUpdatedTimestamp")));
    json_decref(alarms);

    /* Paging by hand: MaxRecords 2 over five alarms gives pages of 2, 2 and 1. */
    json_t *in = json_pack("{s:s, s:i}", "AlarmNamePrefix", "assay-regression-", "MaxRecords", 2);
    size_t seen = 0;
    for (int page = 0; page < 5; page++) {
        json_t *out = NULL;
        REQUIRE_INT_EQ(cloudwatch_call(c.cw, "DescribeAlarms", in, &out, &res), ASSAY_OK);
        seen += json_array_size(json_object_get(out, "MetricAlarms"));
        json_t *next = json_object_get(out, "NextToken");
        if (!next) {
            json_decref(out);
            CHECK_INT_EQ(page, 2);
            break;
        }
        json_object_set(in, "NextToken", next);
        json_decref(out);
    }
    CHECK_INT_EQ(seen, 5);
    json_decref(in);

    /* DeleteAlarms: an unknown name deletes none; then two go. */
    in = json_pack("{s:[s, s]}", "AlarmNames", names[1], "nope");
    CHECK_INT_EQ(cloudwatch_call(c.cw, "DeleteAlarms", in, NULL, &res), ASSAY_ERR_HTTP_STATUS);
    CHECK_INT_EQ(res.status, 404);
    CHECK_STR_EQ(res.error_code, "ResourceNotFound");
    json_decref(in);
    in = json_pack("{s:[s, s]}", "AlarmNames", names[1], names[2]);
    CHECK_INT_EQ(cloudwatch_call(c.cw, "DeleteAlarms", in, NULL, &res), ASSAY_OK);
    json_decref(in);
    const char *all[] = {names[0], names[1], names[2], names[3], names[4]};
    REQUIRE_INT_EQ(cloudwatch_describe_alarms(c.cw, all, 5, &alarms, &res), ASSAY_OK);
    CHECK_INT_EQ(json_array_size(alarms), 3);
    json_decref(alarms);
    cwc_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"replaced\":true"), 1);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"operation\":\"PutMetricAlarm\""), 6);
}

TEST_CASE(cloudwatch_get_metric_data_paging)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct cwc c;
    cwc_init(&c, &e, SECRET, 0, 3);
    int64_t t0 = base_ms() - 60000;
    struct cloudwatch_datum d[10];
    for (int i = 0; i < 10; i++)
        d[i] = (struct cloudwatch_datum){.metric_name = "HighRes",
                                         .timestamp_ms = t0 + i * 1000 + 250,
                                         .kind = CLOUDWATCH_DATUM_VALUE,
                                         .value = i,
                                         .storage_resolution = 1};
    struct cloudwatch_result res;
    REQUIRE_INT_EQ(cloudwatch_put_metric_data(c.cw, NS, d, 10, &res), ASSAY_OK);
    /* By hand with MaxDatapoints 4: pages of 4, 4, 2, descending by default. */
    struct cloudwatch_metric_query q = {
        .id = "m1", .ns = NS, .metric_name = "HighRes", .period_s = 1, .stat = "Sum"};
    json_t *in = cloudwatch_get_metric_data_json(&q, 1, t0, t0 + 60000, NULL, NULL, 4);
    json_t *all = json_array();
    int pages = 0;
    for (; pages < 10; pages++) {
        json_t *out = NULL;
        REQUIRE_INT_EQ(cloudwatch_call(c.cw, "GetMetricData", in, &out, &res), ASSAY_OK);
        json_t *r = json_array_get(json_object_get(out, "MetricDataResults"), 0);
        json_array_extend(all, json_object_get(r, "Values"));
        json_t *next = json_object_get(out, "NextToken");
        CHECK_STR_EQ(json_string_value(json_object_get(r, "StatusCode")),
                     next ? "PartialData" : "Complete");
        if (!next) {
            json_decref(out);
            break;
        }
        json_object_set(in, "NextToken", next);
        json_decref(out);
    }
    CHECK_INT_EQ(pages, 2);
    REQUIRE(json_array_size(all) == 10);
    for (size_t i = 0; i < 10; i++)
        CHECK(at(all, i) == (double)(9 - i));
    json_decref(all);
    json_decref(in);
    /* Through the client (which follows NextToken itself), ascending, per second. */
    json_t *results = NULL;
    REQUIRE_INT_EQ(cloudwatch_get_metric_data(c.cw, &q, 1, t0, t0 + 60000, "TimestampAscending",
                                              &results, &res),
                   ASSAY_OK);
    json_t *ts = json_object_get(json_array_get(results, 0), "Timestamps");
    REQUIRE(json_array_size(ts) == 10);
    CHECK_INT_EQ((int64_t)json_number_value(json_array_get(ts, 0)), t0 / 1000);
    CHECK_INT_EQ((int64_t)json_number_value(json_array_get(ts, 9)), t0 / 1000 + 9);
    json_decref(results);
    cwc_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
}

struct inflight {
    atomic_int done, ok;
};

static void put_done(void *ctx, const struct cloudwatch_result *res, const json_t *output)
{
    (void)output;
    struct inflight *f = ctx;
    if (res->err == ASSAY_OK)
        atomic_fetch_add(&f->ok, 1);
    atomic_fetch_add(&f->done, 1);
}

TEST_CASE(cloudwatch_concurrent_puts_sum_exactly)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct cwc c;
    cwc_init(&c, &e, SECRET, 0, 3);
    int64_t t0 = base_ms();
    enum { REQUESTS = 64, PER = 50 };
    static struct cloudwatch_datum d[REQUESTS][PER];
    struct cloudwatch_dimension dims[3][1] = {{{"App", "a"}}, {{"App", "b"}}, {{"App", "c"}}};
    double want_sum[3] = {0}, want_n[3] = {0};
    for (int r = 0; r < REQUESTS; r++) {
        for (int i = 0; i < PER; i++) {
            int series = (r + i) % 3;
            double v = (double)((r * PER + i) % 101) / 4.0; /* exact in binary */
            d[r][i] = (struct cloudwatch_datum){.metric_name = "QualityScore",
                                                .dimensions = dims[series],
                                                .n_dimensions = 1,
                                                .timestamp_ms = t0 + i * 1000,
                                                .kind = CLOUDWATCH_DATUM_VALUE,
                                                .value = v};
            want_sum[series] += v;
            want_n[series] += 1;
        }
    }
    struct inflight f;
    atomic_init(&f.done, 0);
    atomic_init(&f.ok, 0);
    char errbuf[ASSAY_ERRBUF_SIZE];
    for (int r = 0; r < REQUESTS; r++)
        REQUIRE_INT_EQ(cloudwatch_put_metric_data_submit(c.cw, NS, d[r], PER, put_done, &f, errbuf),
                       ASSAY_OK);
    for (int i = 0; i < 3000 && atomic_load(&f.done) < REQUESTS; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    REQUIRE_INT_EQ(atomic_load(&f.done), REQUESTS);
    CHECK_INT_EQ(atomic_load(&f.ok), REQUESTS);
    for (int series = 0; series < 3; series++) {
        json_t *s[5];
        read_stats(&c, "QualityScore", dims[series], 1, 60, t0, t0 + 60000, s);
        CHECK(json_array_size(s[0]) == 1 && at(s[0], 0) == want_n[series] &&
              at(s[1], 0) == want_sum[series]);
        free_stats(s);
    }
    cwc_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"datums\":50"), REQUESTS);
}

TEST_CASE(cloudwatch_bad_scenario_refused)
{
    struct emulator_proc e;
    CHECK_INT_EQ(emulator_proc_start(&e, "{\"cloudwatch\": {\"throttle\": 1}}", 0), -1);
    CHECK_INT_EQ(emulator_proc_start(&e, "{\"cloudwatch\": {\"outage\": [{}]}}", 0), -1);
    CHECK_INT_EQ(emulator_proc_start(&e,
                                     "{\"cloudwatch\": {\"outage\": [{\"from_request\": 5, "
                                     "\"to_request\": 2}]}}",
                                     0),
                 -1);
    CHECK_INT_EQ(emulator_proc_start(&e,
                                     "{\"sns\": {\"outage\": [{\"from_request\": 1, "
                                     "\"from_ms\": 2}]}}",
                                     0),
                 -1);
    CHECK_INT_EQ(emulator_proc_start(&e, "{\"sqs\": {}}", 0), -1);
}

/* ---- SNS ---- */

static const char publish_body[] =
    "Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3A"
    "assay-alarms&Subject=assay%3A%20QualityRegression%20raised&Message=%7B%22series%22%3A%22chat"
    "%2Ffaithfulness%22%2C%22state%22%3A%22ALARM%22%7D";

TEST_CASE(sns_publish)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct raw r;
    raw_init(&r, SECRET, "sns");
    struct http_response resp;
    raw_send(&r, &e, NULL, publish_body, NULL, &resp);
    CHECK_INT_EQ(resp.status, 200);
    const char *body = buf_cstr(&resp.body);
    CHECK(strstr(body, "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">") !=
          NULL);
    CHECK(strstr(body, "<PublishResult>") && strstr(body, "<MessageId>"));
    const char *rid = http_response_header(&resp, "x-amzn-RequestId");
    REQUIRE(rid != NULL);
    char want_rid[96];
    snprintf(want_rid, sizeof want_rid, "<RequestId>%s</RequestId>", rid);
    CHECK(strstr(body, want_rid) != NULL);
    http_response_clear(&resp);

    static const struct {
        const char *body;
        int status;
        const char *code;
    } bad[] = {
        {"Action=Publish&Version=2010-03-31&Message=hi", 400, "InvalidParameter"},
        {"Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aeu-west-1%3A123456789012%3A"
         "t&Message=hi",
         400, "InvalidParameter"},
        {"Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3A"
         "t",
         400, "InvalidParameter"},
        {"Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3A"
         "t&Message=hi&Subject=two%0Alines",
         400, "InvalidParameter"},
        {"Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3A"
         "t&Message=hi&Colour=red",
         400, "InvalidParameter"},
        {"Action=Subscribe&Version=2010-03-31", 400, "InvalidAction"},
        {"Action=Publish&Version=2010-03-31&Message=%zz", 400, "MalformedQueryString"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        raw_send(&r, &e, NULL, bad[i].body, NULL, &resp);
        char code[64];
        code_of(&resp, code, sizeof code);
        CHECK_INT_EQ(resp.status, bad[i].status);
        CHECK_STR_EQ(code, bad[i].code);
        CHECK(strstr(buf_cstr(&resp.body), "<ErrorResponse") != NULL);
        CHECK(strstr(buf_cstr(&resp.body), "<Type>Sender</Type>") != NULL);
        http_response_clear(&resp);
    }
    /* A message over 256 KB. */
    struct buf big = BUF_INIT;
    buf_append_str(&big, "Action=Publish&Version=2010-03-31&TopicArn=" TOPIC "&Message=");
    for (int i = 0; i < 262145; i++)
        buf_append_char(&big, 'x');
    raw_send(&r, &e, NULL, buf_cstr(&big), NULL, &resp);
    CHECK_INT_EQ(resp.status, 400);
    CHECK(strstr(buf_cstr(&resp.body), "Message too long") != NULL);
    http_response_clear(&resp);
    buf_clear(&big);
    raw_clear(&r);

    /* Signed for CloudWatch's scope, or with a wrong secret: 403 in SNS's XML. */
    raw_init(&r, SECRET, "monitoring");
    raw_send(&r, &e, NULL, publish_body, NULL, &resp);
    CHECK_INT_EQ(resp.status, 403);
    CHECK(strstr(buf_cstr(&resp.body), "<Code>SignatureDoesNotMatch</Code>") != NULL);
    http_response_clear(&resp);
    raw_clear(&r);
    raw_init(&r, "not-the-secret", "sns");
    raw_send(&r, &e, NULL, publish_body, NULL, &resp);
    CHECK_INT_EQ(resp.status, 403);
    http_response_clear(&resp);
    raw_clear(&r);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"topic\":\"" TOPIC "\""), 2); /* one too long */
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"subject\":\"assay: QualityRegression raised\""), 1);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"message_length\":46"), 1);
}

TEST_CASE(sns_faults_and_routing)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e,
                                       "{\"sns\": {\"throttle_rate\": 1}, \"cloudwatch\": "
                                       "{\"outage\": [{\"from_request\": 0}]}}",
                                       0),
                   0);
    struct raw r;
    raw_init(&r, SECRET, "sns");
    struct http_response resp;
    raw_send(&r, &e, NULL, publish_body, NULL, &resp);
    CHECK_INT_EQ(resp.status, 429);
    CHECK(strstr(buf_cstr(&resp.body), "<Code>Throttled</Code>") != NULL);
    http_response_clear(&resp);
    /* CloudWatch's query API (Version 2010-08-01) is not served: no service matches. */
    raw_send(&r, &e, NULL, "Action=PutMetricData&Version=2010-08-01&Namespace=X", NULL, &resp);
    CHECK_INT_EQ(resp.status, 404);
    http_response_clear(&resp);
    raw_clear(&r);
    /* The same POST / with X-Amz-Target goes to CloudWatch (in an outage here). */
    raw_init(&r, SECRET, "monitoring");
    raw_send(&r, &e, "GraniteServiceVersion20100801.PutMetricData", small_put, NULL, &resp);
    CHECK_INT_EQ(resp.status, 503);
    CHECK_STR_EQ(http_response_header(&resp, "x-amzn-query-error"), "ServiceUnavailable;Receiver");
    http_response_clear(&resp);
    raw_send(&r, &e, "GraniteServiceVersion20100801.ListMetrics", "{}", NULL, &resp);
    CHECK_INT_EQ(resp.status, 400);
    http_response_clear(&resp);
    raw_clear(&r);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"service\":\"sns\""), 1);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"service\":\"cloudwatch\""), 2);
}
