/*
 * Unit tests for aws/cloudwatch against a local peer (tests/support/fake_server)
 * that checks each request's SigV4 signature for the service "monitoring" the
 * way AWS does, records what it received (gunzipped when gzipped) and answers
 * from a script: the wire shape, gzip at the threshold, epoch-second
 * timestamps, error mapping from x-amzn-query-error, bounded retries, paging,
 * batching figures and validation.
 */
#include "aws/cloudwatch.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/jsonutil.h"
#include "tests/support/fake_server.h"
#include "tests/support/sigv4_verify.h"
#include "tests/unit/test.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <zlib.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define MAX_SEEN 16

struct answer {
    int status;
    const char *query_error; /* x-amzn-query-error, or NULL */
};

struct peer {
    pthread_mutex_t lock;
    int hits;
    int verified;
    char sig_code[64];
    /* the last request */
    char target[128];
    char content_type[64];
    char content_encoding[32];
    char query_mode[16];
    char content_length[32];
    char method[8];
    char uri[64];
    int has_sha256;
    size_t wire_len;
    /* bodies as JSON text (gunzipped), oldest first */
    char *bodies[MAX_SEEN];
    int n_bodies;
    /* scripted answers, then 200 */
    struct answer script[8];
    int n_script;
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

static void copy_header(const struct fake_request *req, const char *name, char *out, size_t size)
{
    const char *v = fake_request_header(req, name);
    snprintf(out, size, "%s", v ? v : "");
}

static const char *answer_body(const char *target, json_t *in)
{
    if (strstr(target, "DescribeAlarms"))
        return json_object_get(in, "NextToken")
                   ? "{\"MetricAlarms\":[{\"AlarmName\":\"b\",\"StateValue\":\"ALARM\"}]}"
                   : "{\"MetricAlarms\":[{\"AlarmName\":\"a\",\"StateValue\":\"OK\"}],"
                     "\"NextToken\":\"t2\"}";
    if (strstr(target, "GetMetricData"))
        return json_object_get(in, "NextToken")
                   ? "{\"MetricDataResults\":[{\"Id\":\"q1\",\"Label\":\"L\",\"Timestamps\":"
                     "[1764200120],\"Values\":[3],\"StatusCode\":\"Complete\"}]}"
                   : "{\"MetricDataResults\":[{\"Id\":\"q1\",\"Label\":\"L\",\"Timestamps\":"
                     "[1764200000,1764200060],\"Values\":[1,2],\"StatusCode\":"
                     "\"PartialData\"}],\"NextToken\":\"n2\"}";
    return "{}";
}

static void handler(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct peer *p = ctx;
    struct sigv4_verify_key key = {AKID, SECRET, "us-east-1", "monitoring"};
    char code[64], message[256];
    int ok = sigv4_verify(req, &key, clock_now_ms(NULL), code, sizeof code, message,
                          sizeof message) == 0;
    struct buf body = BUF_INIT;
    const char *enc = fake_request_header(req, "Content-Encoding");
    if (enc && strcmp(enc, "gzip") == 0)
        gunzip(req->body, req->body_len, &body);
    else
        buf_append(&body, req->body ? req->body : "", req->body_len);

    pthread_mutex_lock(&p->lock);
    int n = p->hits++;
    if (ok)
        p->verified++;
    else
        snprintf(p->sig_code, sizeof p->sig_code, "%s", code);
    copy_header(req, "X-Amz-Target", p->target, sizeof p->target);
    copy_header(req, "Content-Type", p->content_type, sizeof p->content_type);
    copy_header(req, "Content-Encoding", p->content_encoding, sizeof p->content_encoding);
    copy_header(req, "x-amzn-query-mode", p->query_mode, sizeof p->query_mode);
    copy_header(req, "Content-Length", p->content_length, sizeof p->content_length);
    snprintf(p->method, sizeof p->method, "%s", req->method);
    snprintf(p->uri, sizeof p->uri, "%s", req->uri);
    p->has_sha256 = fake_request_header(req, "X-Amz-Content-SHA256") != NULL;
    p->wire_len = req->body_len;
    if (p->n_bodies == MAX_SEEN) {
        free(p->bodies[0]);
        memmove(p->bodies, p->bodies + 1, sizeof p->bodies[0] * (MAX_SEEN - 1));
        p->n_bodies--;
    }
    p->bodies[p->n_bodies++] = xstrdup(buf_cstr(&body));
    struct answer a = n < p->n_script ? p->script[n] : (struct answer){200, NULL};
    char target[128];
    snprintf(target, sizeof target, "%s", p->target);
    pthread_mutex_unlock(&p->lock);

    fake_response_header(resp, "x-amzn-RequestId", "req-1");
    fake_response_header(resp, "Content-Type", "application/x-amz-json-1.0");
    if (!ok) {
        char qe[96];
        snprintf(qe, sizeof qe, "%s;Sender", code);
        fake_response_header(resp, "x-amzn-query-error", qe);
        fake_response_text(resp, 403, "{\"message\":\"signature refused\"}");
    } else if (a.status != 200) {
        if (a.query_error)
            fake_response_header(resp, "x-amzn-query-error", a.query_error);
        fake_response_text(resp, a.status, "{\"__type\":\"x#Error\",\"message\":\"scripted\"}");
    } else {
        json_t *in = json_loadb(buf_cstr(&body), body.len, 0, NULL);
        fake_response_text(resp, 200, answer_body(target, in));
        json_decref(in);
    }
    buf_clear(&body);
}

struct rig {
    struct peer peer;
    struct fake_server *server;
    struct http_transport *t;
    struct creds_provider *creds;
    struct cloudwatch *cw;
    int sleeps;
    int64_t slept_ms;
};

static void fake_sleep(void *ctx, int64_t ms)
{
    struct rig *r = ctx;
    r->sleeps++;
    r->slept_ms += ms;
}

static void rig_start(struct rig *r, int max_attempts)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->peer.lock, NULL);
    r->server = fake_server_start(handler, &r->peer);
    REQUIRE(r->server != NULL);
    r->t = http_transport_new(NULL, NULL);
    REQUIRE(r->t != NULL);
    struct creds c;
    creds_init(&c);
    c.access_key_id = xstrdup(AKID);
    c.secret_access_key = xstrdup(SECRET);
    r->creds = creds_static_new(&c);
    creds_clear(&c);
    struct cloudwatch_options o = {.transport = r->t,
                                   .creds = r->creds,
                                   .region = "us-east-1",
                                   .endpoint = fake_server_url(r->server),
                                   .seed = 42,
                                   .sleep_ms = fake_sleep,
                                   .sleep_ctx = r};
    retry_policy_init(&o.retry);
    o.retry.max_attempts = max_attempts;
    char errbuf[ASSAY_ERRBUF_SIZE];
    r->cw = cloudwatch_new(&o, errbuf);
    REQUIRE(r->cw != NULL);
}

static void rig_stop(struct rig *r)
{
    cloudwatch_free(r->cw);
    http_transport_free(r->t);
    creds_provider_free(r->creds);
    fake_server_stop(r->server);
    for (int i = 0; i < r->peer.n_bodies; i++)
        free(r->peer.bodies[i]);
    pthread_mutex_destroy(&r->peer.lock);
}

static json_t *last_body(struct rig *r)
{
    REQUIRE(r->peer.n_bodies > 0);
    json_t *doc = json_loads(r->peer.bodies[r->peer.n_bodies - 1], 0, NULL);
    REQUIRE(doc != NULL);
    return doc;
}

static size_t encoded_size(const json_t *v)
{
    struct buf b = BUF_INIT;
    cloudwatch_json_encode(v, &b);
    size_t n = b.len;
    buf_clear(&b);
    return n;
}

static const struct cloudwatch_dimension dims[] = {{"App", "chat"}, {"Rubric", "helpfulness"}};

static struct cloudwatch_datum value_datum(double v, int64_t ts_ms)
{
    return (struct cloudwatch_datum){.metric_name = "QualityScore",
                                     .dimensions = dims,
                                     .n_dimensions = 2,
                                     .timestamp_ms = ts_ms,
                                     .kind = CLOUDWATCH_DATUM_VALUE,
                                     .value = v,
                                     .unit = "None"};
}

TEST_CASE(put_metric_data_wire_shape_and_signature)
{
    struct rig r;
    rig_start(&r, 3);
    int64_t now = clock_now_ms(NULL);
    int64_t ts_whole = (now / 1000 - 60) * 1000, ts_frac = ts_whole + 123;
    double values[] = {0.5, 1.0}, counts[] = {3, 4};
    struct cloudwatch_datum d[3] = {value_datum(0.75, ts_whole), value_datum(0.25, ts_frac)};
    d[2] = (struct cloudwatch_datum){.metric_name = "QualityPass",
                                     .timestamp_ms = ts_whole,
                                     .kind = CLOUDWATCH_DATUM_VALUES,
                                     .values = values,
                                     .counts = counts,
                                     .n_values = 2,
                                     .storage_resolution = 60};
    struct cloudwatch_result res;
    CHECK_INT_EQ(cloudwatch_put_metric_data(r.cw, "Assay", d, 3, &res), ASSAY_OK);
    CHECK_INT_EQ(res.status, 200);
    CHECK_INT_EQ(res.attempts, 1);
    CHECK_STR_EQ(res.request_id, "req-1");
    CHECK_INT_EQ(r.peer.verified, 1);
    CHECK_STR_EQ(r.peer.method, "POST");
    CHECK_STR_EQ(r.peer.uri, "/");
    CHECK_STR_EQ(r.peer.content_type, "application/x-amz-json-1.0");
    CHECK_STR_EQ(r.peer.target, "GraniteServiceVersion20100801.PutMetricData");
    CHECK_STR_EQ(r.peer.query_mode, "true");
    CHECK_STR_EQ(r.peer.content_encoding, "");
    CHECK(r.peer.has_sha256);
    char len[32];
    snprintf(len, sizeof len, "%zu", r.peer.wire_len);
    CHECK_STR_EQ(r.peer.content_length, len);
    CHECK_INT_EQ(res.gzipped, 0);

    json_t *b = last_body(&r);
    CHECK_STR_EQ(jsonutil_str(b, "Namespace"), "Assay");
    json_t *md = json_object_get(b, "MetricData");
    REQUIRE_INT_EQ(json_array_size(md), 3);
    json_t *t0 = json_object_get(json_array_get(md, 0), "Timestamp");
    json_t *t1 = json_object_get(json_array_get(md, 1), "Timestamp");
    CHECK(json_is_integer(t0));
    CHECK_INT_EQ(json_integer_value(t0), ts_whole / 1000);
    CHECK(json_is_real(t1));
    CHECK(json_real_value(t1) == (double)ts_frac / 1000.0);
    json_t *first = json_array_get(md, 0);
    CHECK_STR_EQ(jsonutil_str(json_array_get(json_object_get(first, "Dimensions"), 1), "Value"),
                 "helpfulness");
    CHECK(json_number_value(json_object_get(first, "Value")) == 0.75);
    CHECK_STR_EQ(jsonutil_str(first, "Unit"), "None");
    json_t *third = json_array_get(md, 2);
    CHECK_INT_EQ(json_array_size(json_object_get(third, "Values")), 2);
    CHECK(json_number_value(json_array_get(json_object_get(third, "Counts"), 1)) == 4);
    CHECK_INT_EQ(json_integer_value(json_object_get(third, "StorageResolution")), 60);
    CHECK(json_object_get(third, "Dimensions") == NULL);
    json_decref(b);
    rig_stop(&r);
}

TEST_CASE(statistic_set_body)
{
    struct cloudwatch_datum d = {.metric_name = "JudgeInvocationLatency",
                                 .kind = CLOUDWATCH_DATUM_STATISTICS,
                                 .stats = {4, 10, 1, 5},
                                 .unit = "Milliseconds"};
    json_t *j = cloudwatch_datum_json(&d);
    json_t *s = json_object_get(j, "StatisticValues");
    CHECK(json_number_value(json_object_get(s, "SampleCount")) == 4);
    CHECK(json_number_value(json_object_get(s, "Sum")) == 10);
    CHECK(json_number_value(json_object_get(s, "Minimum")) == 1);
    CHECK(json_number_value(json_object_get(s, "Maximum")) == 5);
    CHECK(json_object_get(j, "Timestamp") == NULL);
    CHECK(json_object_get(j, "Value") == NULL);
    json_decref(j);
}

TEST_CASE(gzip_above_threshold_signed_over_compressed)
{
    struct rig r;
    rig_start(&r, 3);
    int64_t ts = (clock_now_ms(NULL) / 1000 - 30) * 1000;
    enum { N = 200 };
    struct cloudwatch_datum d[N];
    for (int i = 0; i < N; i++)
        d[i] = value_datum(i / 7.0, ts);
    struct cloudwatch_result res;
    CHECK_INT_EQ(cloudwatch_put_metric_data(r.cw, "Assay", d, N, &res), ASSAY_OK);
    CHECK_INT_EQ(r.peer.verified, 1);
    CHECK_INT_EQ(res.gzipped, 1);
    CHECK(res.body_bytes >= CLOUDWATCH_GZIP_MIN_BYTES);
    CHECK(res.wire_bytes < res.body_bytes);
    CHECK_INT_EQ(r.peer.wire_len, res.wire_bytes);
    CHECK_STR_EQ(r.peer.content_encoding, "gzip");
    /* What arrived, gunzipped, is exactly the JSON of the request. */
    json_t *want = cloudwatch_put_metric_data_json("Assay", d, N);
    struct buf want_text = BUF_INIT;
    cloudwatch_json_encode(want, &want_text);
    CHECK_STR_EQ(r.peer.bodies[r.peer.n_bodies - 1], buf_cstr(&want_text));
    buf_clear(&want_text);
    json_decref(want);
    rig_stop(&r);
}

/* A PutMetricData input whose compact JSON is exactly n bytes. */
static json_t *padded_input(size_t n)
{
    json_t *o = json_pack("{s:s, s:s}", "Namespace", "Assay", "Pad", "");
    size_t base = encoded_size(o);
    char *pad = xmalloc(n - base + 1);
    memset(pad, 'x', n - base);
    pad[n - base] = '\0';
    json_object_set_new(o, "Pad", json_string(pad));
    free(pad);
    return o;
}

TEST_CASE(gzip_threshold_is_10240_bytes)
{
    struct rig r;
    rig_start(&r, 1);
    struct cloudwatch_result res;
    json_t *below = padded_input(CLOUDWATCH_GZIP_MIN_BYTES - 1);
    json_t *at = padded_input(CLOUDWATCH_GZIP_MIN_BYTES);
    CHECK_INT_EQ(cloudwatch_call(r.cw, "PutMetricData", below, NULL, &res), ASSAY_OK);
    CHECK_INT_EQ(res.body_bytes, 10239);
    CHECK_INT_EQ(res.gzipped, 0);
    CHECK_STR_EQ(r.peer.content_encoding, "");
    CHECK_INT_EQ(cloudwatch_call(r.cw, "PutMetricData", at, NULL, &res), ASSAY_OK);
    CHECK_INT_EQ(res.body_bytes, 10240);
    CHECK_INT_EQ(res.gzipped, 1);
    CHECK_STR_EQ(r.peer.content_encoding, "gzip");
    CHECK_INT_EQ(strlen(r.peer.bodies[r.peer.n_bodies - 1]), 10240);
    CHECK_INT_EQ(r.peer.verified, 2);
    json_decref(below);
    json_decref(at);
    rig_stop(&r);
}

TEST_CASE(invalid_parameter_not_retried)
{
    const char *codes[] = {"InvalidParameterValue;Sender", "InvalidParameterCombination;Sender",
                           "MissingParameter;Sender"};
    const char *want[] = {"InvalidParameterValue", "InvalidParameterCombination",
                          "MissingParameter"};
    for (int i = 0; i < 3; i++) {
        struct rig r;
        rig_start(&r, 5);
        r.peer.script[0] = (struct answer){400, codes[i]};
        r.peer.n_script = 1;
        struct cloudwatch_datum d = value_datum(1, 0);
        struct cloudwatch_result res;
        CHECK_INT_EQ(cloudwatch_put_metric_data(r.cw, "Assay", &d, 1, &res),
                     ASSAY_ERR_INVALID_ARGUMENT);
        CHECK_STR_EQ(res.error_code, want[i]);
        CHECK_INT_EQ(res.status, 400);
        CHECK_INT_EQ(res.attempts, 1);
        CHECK_INT_EQ(res.retry, RETRY_NONE);
        CHECK_INT_EQ(r.peer.hits, 1);
        CHECK_INT_EQ(r.sleeps, 0);
        CHECK(strstr(res.errbuf, want[i]) != NULL);
        CHECK(strstr(res.errbuf, "scripted") != NULL);
        rig_stop(&r);
    }
}

TEST_CASE(throttling_retried_then_succeeds)
{
    struct rig r;
    rig_start(&r, 5);
    r.peer.script[0] = (struct answer){400, "Throttling;Sender"};
    r.peer.script[1] = (struct answer){400, "Throttling;Sender"};
    r.peer.n_script = 2;
    struct cloudwatch_datum d = value_datum(1, 0);
    struct cloudwatch_result res;
    CHECK_INT_EQ(cloudwatch_put_metric_data(r.cw, "Assay", &d, 1, &res), ASSAY_OK);
    CHECK_INT_EQ(res.attempts, 3);
    CHECK_INT_EQ(r.peer.hits, 3);
    CHECK_INT_EQ(r.peer.verified, 3);
    CHECK_INT_EQ(r.sleeps, 2);
    /* full jitter: each wait within [0, min(cap, throttle_base * 2^(n-1))] */
    CHECK(r.slept_ms <= 500 + 1000);
    rig_stop(&r);
}

TEST_CASE(throttling_bounded_attempts)
{
    struct rig r;
    rig_start(&r, 3);
    for (int i = 0; i < 8; i++)
        r.peer.script[i] = (struct answer){400, "Throttling;Sender"};
    r.peer.n_script = 8;
    struct cloudwatch_datum d = value_datum(1, 0);
    struct cloudwatch_result res;
    CHECK_INT_EQ(cloudwatch_put_metric_data(r.cw, "Assay", &d, 1, &res), ASSAY_ERR_BUSY);
    CHECK_STR_EQ(res.error_code, "Throttling");
    CHECK_INT_EQ(res.retry, RETRY_THROTTLED);
    CHECK_INT_EQ(res.attempts, 3);
    CHECK_INT_EQ(r.peer.hits, 3);
    CHECK_INT_EQ(r.sleeps, 2);
    rig_stop(&r);
}

TEST_CASE(server_error_503_retried_bounded)
{
    struct rig r;
    rig_start(&r, 4);
    for (int i = 0; i < 8; i++)
        r.peer.script[i] = (struct answer){503, i % 2 ? "ServiceUnavailable;Receiver" : NULL};
    r.peer.n_script = 8;
    struct cloudwatch_datum d = value_datum(1, 0);
    struct cloudwatch_result res;
    CHECK_INT_EQ(cloudwatch_put_metric_data(r.cw, "Assay", &d, 1, &res), ASSAY_ERR_HTTP_STATUS);
    CHECK_INT_EQ(res.status, 503);
    CHECK_INT_EQ(res.retry, RETRY_TRANSIENT);
    CHECK_INT_EQ(res.attempts, 4);
    CHECK_INT_EQ(r.peer.hits, 4);
    CHECK_INT_EQ(r.sleeps, 3);
    rig_stop(&r);
}

TEST_CASE(server_error_then_success)
{
    struct rig r;
    rig_start(&r, 4);
    r.peer.script[0] = (struct answer){500, "InternalFailure;Receiver"};
    r.peer.n_script = 1;
    struct cloudwatch_datum d = value_datum(1, 0);
    struct cloudwatch_result res;
    CHECK_INT_EQ(cloudwatch_put_metric_data(r.cw, "Assay", &d, 1, &res), ASSAY_OK);
    CHECK_INT_EQ(res.attempts, 2);
    rig_stop(&r);
}

TEST_CASE(error_map_table)
{
    CHECK_INT_EQ(cloudwatch_error_map(200, NULL), ASSAY_OK);
    CHECK_INT_EQ(cloudwatch_error_map(400, "Throttling"), ASSAY_ERR_BUSY);
    CHECK_INT_EQ(cloudwatch_error_map(429, ""), ASSAY_ERR_BUSY);
    CHECK_INT_EQ(cloudwatch_error_map(400, "InvalidParameterValue"), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(cloudwatch_error_map(400, "InvalidParameterCombination"),
                 ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(cloudwatch_error_map(400, "MissingParameter"), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(cloudwatch_error_map(503, "ServiceUnavailable"), ASSAY_ERR_HTTP_STATUS);
    CHECK_INT_EQ(cloudwatch_error_map(403, "AccessDenied"), ASSAY_ERR_HTTP_STATUS);
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 400, "InvalidParameterValue"), RETRY_NONE);
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 400, "Throttling"), RETRY_THROTTLED);
}

TEST_CASE(wrong_secret_refused_by_peer)
{
    struct rig r;
    rig_start(&r, 3);
    /* A client whose secret differs from the peer's: the peer's check refuses. */
    struct creds c;
    creds_init(&c);
    c.access_key_id = xstrdup(AKID);
    c.secret_access_key = xstrdup("not-the-secret");
    struct creds_provider *bad = creds_static_new(&c);
    creds_clear(&c);
    struct cloudwatch_options o = {.transport = r.t,
                                   .creds = bad,
                                   .region = "us-east-1",
                                   .endpoint = fake_server_url(r.server),
                                   .sleep_ms = fake_sleep,
                                   .sleep_ctx = &r};
    struct cloudwatch *cw = cloudwatch_new(&o, NULL);
    REQUIRE(cw != NULL);
    struct cloudwatch_datum d = value_datum(1, 0);
    struct cloudwatch_result res;
    CHECK_INT_EQ(cloudwatch_put_metric_data(cw, "Assay", &d, 1, &res), ASSAY_ERR_HTTP_STATUS);
    CHECK_STR_EQ(res.error_code, "SignatureDoesNotMatch");
    CHECK_INT_EQ(res.attempts, 1);
    CHECK(strstr(res.errbuf, "not-the-secret") == NULL);
    cloudwatch_free(cw);
    creds_provider_free(bad);
    rig_stop(&r);
}

TEST_CASE(validation_errors)
{
    int64_t now = 1764200000000LL;
    char errbuf[ASSAY_ERRBUF_SIZE];
    struct cloudwatch_dimension many[31];
    for (int i = 0; i < 31; i++) {
        static char names[31][8];
        snprintf(names[i], sizeof names[i], "D%d", i);
        many[i] = (struct cloudwatch_dimension){names[i], "v"};
    }
    char long_name[257];
    memset(long_name, 'm', 256);
    long_name[256] = '\0';
    char long_value[1026];
    memset(long_value, 'v', 1025);
    long_value[1025] = '\0';
    double vals[151];
    for (int i = 0; i < 151; i++)
        vals[i] = i;

    struct cloudwatch_datum d = value_datum(1, now);
    CHECK_INT_EQ(cloudwatch_datum_validate(&d, 0, now, errbuf), ASSAY_OK);

    struct {
        struct cloudwatch_datum d;
        const char *field;
    } bad[] = {
        {value_datum(1, now), "Dimensions"},
        {value_datum(1, now), "MetricName"},
        {value_datum(NAN, now), "Value"},
        {value_datum(INFINITY, now), "Value"},
        {value_datum(ldexp(1.0, 361), now), "Value"},
        {value_datum(1, now - CLOUDWATCH_MAX_PAST_MS - 1000), "two weeks"},
        {value_datum(1, now + CLOUDWATCH_MAX_FUTURE_MS + 1000), "two hours"},
        {value_datum(1, now), "StorageResolution"},
        {value_datum(1, now), "Unit"},
        {value_datum(1, now), "Values"},
        {value_datum(1, now), "Dimensions[0].Value"},
        {value_datum(1, now), "Dimensions[1]"},
        {value_datum(1, now), "StatisticValues"},
        {value_datum(1, now), "Dimensions[0]: names and values are printable ASCII"},
        {value_datum(1, now), "Dimensions[0]: names and values are printable ASCII"},
    };
    bad[0].d.dimensions = many;
    bad[0].d.n_dimensions = 31;
    bad[1].d.metric_name = long_name;
    bad[7].d.storage_resolution = 5;
    bad[8].d.unit = "Furlongs";
    bad[9].d.kind = CLOUDWATCH_DATUM_VALUES;
    bad[9].d.values = vals;
    bad[9].d.n_values = 151;
    struct cloudwatch_dimension longv[] = {{"App", long_value}};
    bad[10].d.dimensions = longv;
    bad[10].d.n_dimensions = 1;
    struct cloudwatch_dimension dup[] = {{"App", "a"}, {"App", "b"}};
    bad[11].d.dimensions = dup;
    bad[11].d.n_dimensions = 2;
    bad[12].d.kind = CLOUDWATCH_DATUM_STATISTICS;
    bad[12].d.stats = (struct cloudwatch_statistic_set){2, 3, 5, 1};
    struct cloudwatch_dimension ctrl[] = {{"App", "a\nb"}};
    bad[13].d.dimensions = ctrl;
    bad[13].d.n_dimensions = 1;
    struct cloudwatch_dimension colon[] = {{":App", "a"}};
    bad[14].d.dimensions = colon;
    bad[14].d.n_dimensions = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errbuf[0] = '\0';
        CHECK_INT_EQ(cloudwatch_datum_validate(&bad[i].d, 7, now, errbuf),
                     ASSAY_ERR_INVALID_ARGUMENT);
        if (!strstr(errbuf, bad[i].field) || !strstr(errbuf, "MetricData[7]"))
            test_fail_str(__FILE__, __LINE__, "errbuf", errbuf, bad[i].field);
    }
    /* 30 dimensions and 150 values are allowed. */
    bad[0].d.n_dimensions = 30;
    CHECK_INT_EQ(cloudwatch_datum_validate(&bad[0].d, 0, now, errbuf), ASSAY_OK);
    bad[9].d.n_values = 150;
    CHECK_INT_EQ(cloudwatch_datum_validate(&bad[9].d, 0, now, errbuf), ASSAY_OK);

    CHECK_INT_EQ(cloudwatch_namespace_validate("Assay", errbuf), ASSAY_OK);
    CHECK_INT_EQ(cloudwatch_namespace_validate("AWS/EC2", errbuf), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(cloudwatch_namespace_validate("", errbuf), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(cloudwatch_namespace_validate(long_name, errbuf), ASSAY_ERR_INVALID_ARGUMENT);
}

TEST_CASE(invalid_request_never_sent)
{
    struct rig r;
    rig_start(&r, 3);
    struct cloudwatch_datum d = value_datum(NAN, 0);
    struct cloudwatch_result res;
    CHECK_INT_EQ(cloudwatch_put_metric_data(r.cw, "Assay", &d, 1, &res),
                 ASSAY_ERR_INVALID_ARGUMENT);
    CHECK(strstr(res.errbuf, "MetricData[0].Value") != NULL);
    d = value_datum(1, clock_now_ms(NULL) - 15LL * 24 * 3600 * 1000);
    CHECK_INT_EQ(cloudwatch_put_metric_data(r.cw, "Assay", &d, 1, &res),
                 ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(cloudwatch_put_metric_data(r.cw, "AWS/Lambda", &d, 1, &res),
                 ASSAY_ERR_INVALID_ARGUMENT);
    struct cloudwatch_datum *many = xcalloc(1001, sizeof *many);
    for (int i = 0; i < 1001; i++)
        many[i] = value_datum(1, 0);
    CHECK_INT_EQ(cloudwatch_put_metric_data(r.cw, "Assay", many, 1001, &res), ASSAY_ERR_TOO_LARGE);
    free(many);
    CHECK_INT_EQ(res.attempts, 0);
    CHECK_INT_EQ(fake_server_hits(r.server), 0);
    rig_stop(&r);
}

TEST_CASE(batching_10000_datums_over_50_series)
{
    enum { N = 10000, SERIES = 50 };
    static char apps[SERIES][16];
    static struct cloudwatch_dimension sd[SERIES][2];
    for (int s = 0; s < SERIES; s++) {
        snprintf(apps[s], sizeof apps[s], "app-%02d", s);
        sd[s][0] = (struct cloudwatch_dimension){"App", apps[s]};
        sd[s][1] = (struct cloudwatch_dimension){"Rubric", "helpfulness"};
    }
    /* One datum per verdict: limited by 1,000 datums a request -> 10. */
    struct cloudwatch_datum *d = xcalloc(N, sizeof *d);
    for (int i = 0; i < N; i++) {
        d[i] = value_datum((i % 101) / 100.0, 1764200000000LL);
        d[i].dimensions = sd[i % SERIES];
    }
    struct cloudwatch_batches plan;
    char errbuf[ASSAY_ERRBUF_SIZE];
    REQUIRE_INT_EQ(cloudwatch_batches_plan("Assay", d, N, NULL, &plan, errbuf), ASSAY_OK);
    CHECK_INT_EQ(plan.n_batches, 10);
    CHECK_INT_EQ(plan.n_datums, N);
    for (size_t b = 0; b < plan.n_batches; b++) {
        CHECK_INT_EQ(plan.batches[b].count, 1000);
        json_t *j = cloudwatch_put_metric_data_json("Assay", plan.datums + plan.batches[b].first,
                                                    plan.batches[b].count);
        CHECK_INT_EQ(plan.batches[b].bytes, encoded_size(j));
        CHECK(plan.batches[b].bytes <= CLOUDWATCH_MAX_REQUEST_BYTES);
        json_decref(j);
    }
    printf("10000 single-value datums over 50 series: %zu PutMetricData requests\n",
           plan.n_batches);
    cloudwatch_batches_clear(&plan);
    free(d);

    /* Aggregated per series into Values/Counts (scores quantised to 0.01, so
     * at most 101 distinct values): 50 datums -> 1 request. */
    static double qv[101], qc[101];
    for (int i = 0; i <= 100; i++) {
        qv[i] = i / 100.0;
        qc[i] = N / SERIES / 101.0;
    }
    struct cloudwatch_datum agg[SERIES];
    for (int s = 0; s < SERIES; s++) {
        agg[s] = value_datum(0, 1764200000000LL);
        agg[s].dimensions = sd[s];
        agg[s].kind = CLOUDWATCH_DATUM_VALUES;
        agg[s].values = qv;
        agg[s].counts = qc;
        agg[s].n_values = 101;
    }
    REQUIRE_INT_EQ(cloudwatch_batches_plan("Assay", agg, SERIES, NULL, &plan, errbuf), ASSAY_OK);
    CHECK_INT_EQ(plan.n_batches, 1);
    CHECK_INT_EQ(plan.n_datums, SERIES);
    printf("10000 verdicts aggregated over 50 series: %zu PutMetricData request(s)\n",
           plan.n_batches);
    cloudwatch_batches_clear(&plan);
}

TEST_CASE(batching_splits_values_over_150)
{
    double v[400], c[400];
    for (int i = 0; i < 400; i++) {
        v[i] = i;
        c[i] = 1;
    }
    struct cloudwatch_datum d = value_datum(0, 0);
    d.kind = CLOUDWATCH_DATUM_VALUES;
    d.values = v;
    d.counts = c;
    d.n_values = 400;
    struct cloudwatch_batches plan;
    REQUIRE_INT_EQ(cloudwatch_batches_plan("Assay", &d, 1, NULL, &plan, NULL), ASSAY_OK);
    REQUIRE_INT_EQ(plan.n_datums, 3);
    CHECK_INT_EQ(plan.n_batches, 1);
    CHECK_INT_EQ(plan.datums[0].n_values, 150);
    CHECK_INT_EQ(plan.datums[1].n_values, 150);
    CHECK_INT_EQ(plan.datums[2].n_values, 100);
    CHECK(plan.datums[1].values == v + 150);
    CHECK(plan.datums[2].counts == c + 300);
    char errbuf[ASSAY_ERRBUF_SIZE];
    for (size_t i = 0; i < plan.n_datums; i++)
        CHECK_INT_EQ(cloudwatch_datum_validate(&plan.datums[i], i, 0, errbuf), ASSAY_OK);
    cloudwatch_batches_clear(&plan);
}

TEST_CASE(batching_bytes_limit)
{
    /* Datums of ~1 KB each (a long dimension value) under a 10,000-byte limit. */
    static char value[1001];
    memset(value, 'v', 1000);
    struct cloudwatch_dimension big[] = {{"Tag", value}};
    struct cloudwatch_datum d[25];
    for (int i = 0; i < 25; i++) {
        d[i] = value_datum(i, 0);
        d[i].dimensions = big;
        d[i].n_dimensions = 1;
    }
    json_t *one = cloudwatch_datum_json(&d[0]);
    size_t per = encoded_size(one);
    json_decref(one);
    json_t *empty = cloudwatch_put_metric_data_json("Assay", NULL, 0);
    size_t base = encoded_size(empty);
    json_decref(empty);
    struct cloudwatch_limits lim = {.max_bytes = 10000};
    size_t fit = (lim.max_bytes - base + 1) / (per + 1); /* datums per request */
    struct cloudwatch_batches plan;
    REQUIRE_INT_EQ(cloudwatch_batches_plan("Assay", d, 25, &lim, &plan, NULL), ASSAY_OK);
    CHECK_INT_EQ(plan.n_batches, (25 + fit - 1) / fit);
    for (size_t b = 0; b < plan.n_batches; b++) {
        CHECK(plan.batches[b].bytes <= lim.max_bytes);
        json_t *j = cloudwatch_put_metric_data_json("Assay", plan.datums + plan.batches[b].first,
                                                    plan.batches[b].count);
        CHECK_INT_EQ(plan.batches[b].bytes, encoded_size(j));
        json_decref(j);
    }
    cloudwatch_batches_clear(&plan);

    /* One datum larger than the limit on its own. */
    lim.max_bytes = 500;
    char errbuf[ASSAY_ERRBUF_SIZE];
    CHECK_INT_EQ(cloudwatch_batches_plan("Assay", d, 25, &lim, &plan, errbuf), ASSAY_ERR_TOO_LARGE);
    CHECK_INT_EQ(plan.n_batches, 0);
    CHECK(plan.datums == NULL);
}

TEST_CASE(put_metric_data_all_sends_each_batch)
{
    struct rig r;
    rig_start(&r, 2);
    enum { N = 2500 };
    struct cloudwatch_datum *d = xcalloc(N, sizeof *d);
    for (int i = 0; i < N; i++)
        d[i] = value_datum(i, 0);
    struct cloudwatch_result res;
    size_t sent = 0;
    CHECK_INT_EQ(cloudwatch_put_metric_data_all(r.cw, "Assay", d, N, &sent, &res), ASSAY_OK);
    CHECK_INT_EQ(sent, 3);
    CHECK_INT_EQ(r.peer.hits, 3);
    CHECK_INT_EQ(r.peer.verified, 3);
    size_t total = 0;
    for (int i = 0; i < r.peer.n_bodies; i++) {
        json_t *b = json_loads(r.peer.bodies[i], 0, NULL);
        total += json_array_size(json_object_get(b, "MetricData"));
        json_decref(b);
    }
    CHECK_INT_EQ(total, N);
    free(d);
    rig_stop(&r);
}

TEST_CASE(put_metric_alarm_body)
{
    struct rig r;
    rig_start(&r, 2);
    const char *actions[] = {"arn:aws:sns:us-east-1:123456789012:quality"};
    struct cloudwatch_dimension ad[] = {{"App", "chat"}};
    struct cloudwatch_alarm a = {.alarm_name = "assay-chat-helpfulness-regression",
                                 .alarm_description = "quality regression",
                                 .ns = "Assay",
                                 .metric_name = "QualityRegression",
                                 .dimensions = ad,
                                 .n_dimensions = 1,
                                 .statistic = "Maximum",
                                 .period_s = 60,
                                 .evaluation_periods = 3,
                                 .datapoints_to_alarm = 2,
                                 .threshold = 1,
                                 .comparison_operator = "GreaterThanOrEqualToThreshold",
                                 .treat_missing_data = "notBreaching",
                                 .alarm_actions = actions,
                                 .n_alarm_actions = 1,
                                 .ok_actions = actions,
                                 .n_ok_actions = 1,
                                 .actions_enabled = 1};
    struct cloudwatch_result res;
    CHECK_INT_EQ(cloudwatch_put_metric_alarm(r.cw, &a, &res), ASSAY_OK);
    CHECK_STR_EQ(r.peer.target, "GraniteServiceVersion20100801.PutMetricAlarm");
    CHECK_INT_EQ(r.peer.verified, 1);
    json_t *b = last_body(&r);
    CHECK_STR_EQ(jsonutil_str(b, "AlarmName"), "assay-chat-helpfulness-regression");
    CHECK_STR_EQ(jsonutil_str(b, "Statistic"), "Maximum");
    CHECK_STR_EQ(jsonutil_str(b, "ComparisonOperator"), "GreaterThanOrEqualToThreshold");
    CHECK_STR_EQ(jsonutil_str(b, "TreatMissingData"), "notBreaching");
    CHECK_INT_EQ(json_integer_value(json_object_get(b, "Period")), 60);
    CHECK_INT_EQ(json_integer_value(json_object_get(b, "EvaluationPeriods")), 3);
    CHECK_INT_EQ(json_integer_value(json_object_get(b, "DatapointsToAlarm")), 2);
    CHECK(json_number_value(json_object_get(b, "Threshold")) == 1);
    CHECK(json_is_true(json_object_get(b, "ActionsEnabled")));
    CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(b, "AlarmActions"), 0)),
                 actions[0]);
    json_decref(b);

    a.period_s = 45;
    CHECK_INT_EQ(cloudwatch_put_metric_alarm(r.cw, &a, &res), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK(strstr(res.errbuf, "Period") != NULL);
    a.period_s = 60;
    a.evaluation_periods = 1441; /* 1 day + 1 minute at a 1-minute period */
    a.datapoints_to_alarm = 0;
    CHECK_INT_EQ(cloudwatch_put_metric_alarm(r.cw, &a, &res), ASSAY_ERR_INVALID_ARGUMENT);
    a.period_s = 3600;
    a.evaluation_periods = 168; /* 7 days of hours: allowed */
    CHECK_INT_EQ(cloudwatch_alarm_validate(&a, res.errbuf), ASSAY_OK);
    a.evaluation_periods = 169;
    CHECK_INT_EQ(cloudwatch_alarm_validate(&a, res.errbuf), ASSAY_ERR_INVALID_ARGUMENT);
    a.period_s = 60;
    a.evaluation_periods = 3;
    a.comparison_operator = "Bigger";
    CHECK_INT_EQ(cloudwatch_put_metric_alarm(r.cw, &a, &res), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(r.peer.hits, 1);
    rig_stop(&r);
}

TEST_CASE(describe_alarms_pages)
{
    struct rig r;
    rig_start(&r, 2);
    const char *names[] = {"a", "b"};
    json_t *alarms = NULL;
    struct cloudwatch_result res;
    CHECK_INT_EQ(cloudwatch_describe_alarms(r.cw, names, 2, &alarms, &res), ASSAY_OK);
    REQUIRE(alarms != NULL);
    CHECK_INT_EQ(json_array_size(alarms), 2);
    CHECK_STR_EQ(jsonutil_str(json_array_get(alarms, 0), "AlarmName"), "a");
    CHECK_STR_EQ(jsonutil_str(json_array_get(alarms, 1), "AlarmName"), "b");
    CHECK_INT_EQ(r.peer.hits, 2);
    CHECK_STR_EQ(r.peer.target, "GraniteServiceVersion20100801.DescribeAlarms");
    json_t *first = json_loads(r.peer.bodies[0], 0, NULL);
    json_t *second = json_loads(r.peer.bodies[1], 0, NULL);
    CHECK(json_object_get(first, "NextToken") == NULL);
    CHECK_INT_EQ(json_array_size(json_object_get(first, "AlarmNames")), 2);
    CHECK_STR_EQ(jsonutil_str(second, "NextToken"), "t2");
    json_decref(first);
    json_decref(second);
    json_decref(alarms);
    rig_stop(&r);
}

TEST_CASE(get_metric_data_pages_joined)
{
    struct rig r;
    rig_start(&r, 2);
    struct cloudwatch_dimension qd[] = {{"App", "chat"}};
    struct cloudwatch_metric_query q = {.id = "q1",
                                        .ns = "Assay",
                                        .metric_name = "QualityScore",
                                        .dimensions = qd,
                                        .n_dimensions = 1,
                                        .period_s = 60,
                                        .stat = "Sum"};
    json_t *results = NULL;
    struct cloudwatch_result res;
    CHECK_INT_EQ(cloudwatch_get_metric_data(r.cw, &q, 1, 1764190000000LL, 1764200500000LL,
                                            "TimestampAscending", &results, &res),
                 ASSAY_OK);
    REQUIRE(results != NULL);
    REQUIRE_INT_EQ(json_array_size(results), 1);
    json_t *r0 = json_array_get(results, 0);
    CHECK_INT_EQ(json_array_size(json_object_get(r0, "Values")), 3);
    CHECK_INT_EQ(json_array_size(json_object_get(r0, "Timestamps")), 3);
    CHECK(json_number_value(json_array_get(json_object_get(r0, "Values"), 2)) == 3);
    CHECK_STR_EQ(jsonutil_str(r0, "StatusCode"), "Complete");
    CHECK_INT_EQ(r.peer.hits, 2);
    json_t *first = json_loads(r.peer.bodies[0], 0, NULL);
    CHECK_INT_EQ(json_integer_value(json_object_get(first, "StartTime")), 1764190000);
    CHECK_INT_EQ(json_integer_value(json_object_get(first, "EndTime")), 1764200500);
    CHECK_STR_EQ(jsonutil_str(first, "ScanBy"), "TimestampAscending");
    json_t *ms = json_object_get(json_array_get(json_object_get(first, "MetricDataQueries"), 0),
                                 "MetricStat");
    CHECK_STR_EQ(jsonutil_str(ms, "Stat"), "Sum");
    CHECK_STR_EQ(jsonutil_str(json_object_get(ms, "Metric"), "MetricName"), "QualityScore");
    json_t *second = json_loads(r.peer.bodies[1], 0, NULL);
    CHECK_STR_EQ(jsonutil_str(second, "NextToken"), "n2");
    json_decref(first);
    json_decref(second);
    json_decref(results);
    rig_stop(&r);
}

struct async_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    struct cloudwatch_result res;
    int had_output;
};

static void async_done(void *ctx, const struct cloudwatch_result *res, const json_t *output)
{
    struct async_wait *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->res = *res;
    w->had_output = output != NULL;
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void async_wait_done(struct async_wait *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

TEST_CASE(async_submit_one_attempt)
{
    struct rig r;
    rig_start(&r, 5);
    struct async_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}, 0};
    struct cloudwatch_datum d = value_datum(0.5, 0);
    char errbuf[ASSAY_ERRBUF_SIZE];
    REQUIRE_INT_EQ(cloudwatch_put_metric_data_submit(r.cw, "Assay", &d, 1, async_done, &w, errbuf),
                   ASSAY_OK);
    async_wait_done(&w);
    CHECK_INT_EQ(w.res.err, ASSAY_OK);
    CHECK_INT_EQ(w.res.attempts, 1);
    CHECK(w.had_output);
    CHECK_INT_EQ(r.peer.verified, 1);

    /* Throttled: one attempt; the caller learns it may retry. */
    r.peer.script[1] = (struct answer){400, "Throttling;Sender"};
    r.peer.n_script = 2;
    w.done = 0;
    REQUIRE_INT_EQ(cloudwatch_put_metric_data_submit(r.cw, "Assay", &d, 1, async_done, &w, errbuf),
                   ASSAY_OK);
    async_wait_done(&w);
    CHECK_INT_EQ(w.res.err, ASSAY_ERR_BUSY);
    CHECK_INT_EQ(w.res.retry, RETRY_THROTTLED);
    CHECK_INT_EQ(w.res.attempts, 1);
    CHECK(!w.had_output);
    CHECK_INT_EQ(r.peer.hits, 2);

    /* An invalid request: an error return, and no callback. */
    d.value = NAN;
    w.done = 0;
    CHECK_INT_EQ(cloudwatch_put_metric_data_submit(r.cw, "Assay", &d, 1, async_done, &w, errbuf),
                 ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(w.done, 0);
    rig_stop(&r);
}

TEST_CASE(endpoint_default_and_override)
{
    struct http_transport *t = http_transport_new(NULL, NULL);
    struct creds c;
    creds_init(&c);
    c.access_key_id = xstrdup(AKID);
    c.secret_access_key = xstrdup(SECRET);
    struct creds_provider *p = creds_static_new(&c);
    creds_clear(&c);
    struct cloudwatch_options o = {.transport = t, .creds = p, .region = "eu-west-1"};
    struct cloudwatch *cw = cloudwatch_new(&o, NULL);
    REQUIRE(cw != NULL);
    CHECK_STR_EQ(cloudwatch_endpoint(cw), "https://monitoring.eu-west-1.amazonaws.com/");
    cloudwatch_free(cw);
    o.endpoint = "http://localhost:4566/";
    cw = cloudwatch_new(&o, NULL);
    REQUIRE(cw != NULL);
    CHECK_STR_EQ(cloudwatch_endpoint(cw), "http://localhost:4566/");
    cloudwatch_free(cw);
    o.endpoint = "localhost:4566";
    char errbuf[ASSAY_ERRBUF_SIZE];
    CHECK(cloudwatch_new(&o, errbuf) == NULL);
    o.endpoint = NULL;
    o.region = NULL;
    CHECK(cloudwatch_new(&o, errbuf) == NULL);
    cloudwatch_free(NULL);
    creds_provider_free(p);
    http_transport_free(t);
}

TEST_CASE(numbers_written_as_javascript_writes_them)
{
    struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {1, "1"},
        {-2, "-2"},
        {0.1, "0.1"},
        {0.01, "0.01"},
        {1.0 / 7, "0.14285714285714285"},
        {1764200000.123, "1764200000.123"},
        {1234.5, "1234.5"},
        {1e21, "1e+21"},
        {1.5e21, "1.5e+21"},
        {1e20, "100000000000000000000"},
        {1e-6, "0.000001"},
        {1e-7, "1e-7"},
        {-2.5e-8, "-2.5e-8"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = json_real(cases[i].v);
        struct buf b = BUF_INIT;
        cloudwatch_json_encode(v, &b);
        CHECK_STR_EQ(buf_cstr(&b), cases[i].want);
        buf_clear(&b);
        json_decref(v);
    }
    json_t *o = json_pack("{s:s, s:I, s:b, s:[f, n]}", "a\"\n", "x/y\x01", "i", (json_int_t)-7, "t",
                          1, "l", 2.0);
    struct buf b = BUF_INIT;
    cloudwatch_json_encode(o, &b);
    CHECK_STR_EQ(buf_cstr(&b), "{\"a\\\"\\n\":\"x/y\\u0001\",\"i\":-7,\"t\":true,\"l\":[2,null]}");
    buf_clear(&b);
    json_decref(o);
}
