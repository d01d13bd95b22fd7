/*
 * Unit tests for aws/bedrock: the Converse client against a fake Bedrock
 * (tests/support/fake_server) that verifies every signature as AWS does
 * (tests/support/sigv4_verify) and answers from a script: the path on the
 * wire, error mapping, retries and their bound, token buckets, the
 * concurrency bound and shutdown.
 */
#include "aws/bedrock.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "tests/support/fake_server.h"
#include "tests/support/sigv4_verify.h"
#include "tests/unit/test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define MODEL "anthropic.claude-3-haiku-20240307-v1:0"
#define PROFILE_ARN                                                                                \
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"                                    \
    "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
#define BODY "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"hi\"}]}]}"
#define OK_BODY                                                                                    \
    "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":\"hello\"}]}},"       \
    "\"stopReason\":\"end_turn\",\"usage\":{\"inputTokens\":%d,\"outputTokens\":7,"                \
    "\"totalTokens\":19,\"cacheReadInputTokens\":3,\"cacheWriteInputTokens\":2},"                  \
    "\"metrics\":{\"latencyMs\":5}}"

#define MAX_HITS 64

/* One scripted answer; hits past the script get the last entry. */
struct answer {
    int status;
    const char *error_type; /* x-amzn-ErrorType, or NULL */
    const char *body;       /* NULL: OK_BODY */
    int sleep_ms;           /* inside the handler */
};

struct peer {
    pthread_mutex_t mu;
    struct answer script[8];
    int n_script;
    int hits;
    int verified;
    char uri[MAX_HITS][512];
    int64_t at_ms[MAX_HITS];
    int concurrent, concurrent_peak;
    int input_tokens;     /* reported usage */
    int content_sha_seen; /* requests that carried X-Amz-Content-SHA256, signed */
    char last_code[64];
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void peer_handler(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct peer *p = ctx;
    struct sigv4_verify_key key = {AKID, SECRET, "us-east-1", "bedrock"};
    char code[64], message[256];
    int good = sigv4_verify(req, &key, clock_now_ms(NULL), code, sizeof code, message,
                            sizeof message) == 0;
    pthread_mutex_lock(&p->mu);
    int i = p->hits++;
    if (i < MAX_HITS) {
        snprintf(p->uri[i], sizeof p->uri[i], "%s", req->uri);
        p->at_ms[i] = clock_mono_ms(NULL);
    }
    if (good)
        p->verified++;
    const char *auth = fake_request_header(req, "Authorization");
    if (fake_request_header(req, "X-Amz-Content-SHA256") && auth &&
        strstr(auth, "x-amz-content-sha256"))
        p->content_sha_seen++;
    else
        snprintf(p->last_code, sizeof p->last_code, "%s", code);
    struct answer a = p->script[i < p->n_script ? i : p->n_script - 1];
    int tokens = p->input_tokens ? p->input_tokens : 10;
    if (++p->concurrent > p->concurrent_peak)
        p->concurrent_peak = p->concurrent;
    pthread_mutex_unlock(&p->mu);
    if (a.sleep_ms)
        sleep_ms(a.sleep_ms);
    pthread_mutex_lock(&p->mu);
    p->concurrent--;
    pthread_mutex_unlock(&p->mu);
    fake_response_header(resp, "Content-Type", "application/json");
    if (!good) {
        fake_response_header(resp, "x-amzn-ErrorType", code);
        fake_response_text(resp, 403, "{\"message\":\"signature refused\"}");
        return;
    }
    if (a.error_type)
        fake_response_header(resp, "x-amzn-ErrorType", a.error_type);
    if (a.body) {
        fake_response_text(resp, a.status ? a.status : 200, a.body);
    } else {
        char body[512];
        snprintf(body, sizeof body, OK_BODY, tokens);
        fake_response_text(resp, a.status ? a.status : 200, body);
    }
}

struct rig {
    struct peer p;
    struct fake_server *server;
    struct http_transport *t;
    struct creds_provider *creds;
    struct bedrock_client *b;
};

static void rig_start(struct rig *r, struct bedrock_options *opt)
{
    pthread_mutex_init(&r->p.mu, NULL);
    if (r->p.n_script == 0)
        r->p.script[r->p.n_script++] = (struct answer){200, NULL, NULL, 0};
    r->server = fake_server_start(peer_handler, &r->p);
    REQUIRE(r->server != NULL);
    r->t = http_transport_new(NULL, NULL);
    REQUIRE(r->t != NULL);
    struct creds c;
    creds_init(&c);
    c.access_key_id = xstrdup(AKID);
    c.secret_access_key = xstrdup(SECRET);
    r->creds = creds_static_new(&c);
    creds_clear(&c);
    opt->transport = r->t;
    opt->creds = r->creds;
    opt->region = "us-east-1";
    opt->endpoint = fake_server_url(r->server);
    if (opt->seed == 0)
        opt->seed = 42;
    if (opt->retry.max_attempts == 0) {
        retry_policy_init(&opt->retry);
        opt->retry.base_ms = 5;
        opt->retry.throttle_base_ms = 10;
        opt->retry.max_backoff_ms = 50;
    }
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    r->b = bedrock_client_new(opt, errbuf);
    if (!r->b)
        fprintf(stderr, "bedrock_client_new: %s\n", errbuf);
    REQUIRE(r->b != NULL);
}

static void rig_stop(struct rig *r)
{
    bedrock_client_free(r->b);
    http_transport_free(r->t);
    creds_provider_free(r->creds);
    fake_server_stop(r->server);
    pthread_mutex_destroy(&r->p.mu);
}

/* What a callback saw. */
struct outcome {
    atomic_int done;
    enum assay_err err;
    int status, attempts, throttles;
    int64_t backoff_ms;
    char code[64];
    char message[512];
    char body[1024];
    int64_t input_tokens, output_tokens, cache_read, cache_write, latency_ms;
    struct bedrock_attempt log[BEDROCK_ATTEMPT_LOG_MAX];
    int n_log;
    int on_thread;
    struct http_transport *t;
};

static void record(void *ctx, enum assay_err err, const struct bedrock_result *res)
{
    struct outcome *o = ctx;
    o->err = err;
    o->status = res->status;
    o->attempts = res->attempts;
    o->throttles = res->throttles;
    o->backoff_ms = res->backoff_ms;
    snprintf(o->code, sizeof o->code, "%s", res->error_code);
    snprintf(o->message, sizeof o->message, "%s", res->error_message);
    snprintf(o->body, sizeof o->body, "%s", buf_cstr(&res->body));
    o->input_tokens = res->input_tokens;
    o->output_tokens = res->output_tokens;
    o->cache_read = res->cache_read_input_tokens;
    o->cache_write = res->cache_write_input_tokens;
    o->latency_ms = res->latency_ms;
    o->n_log = res->n_attempt_log;
    memcpy(o->log, res->attempt_log, sizeof o->log);
    o->on_thread = http_transport_on_thread(o->t);
    atomic_store(&o->done, 1);
}

static void wait_done(struct outcome *o, int n, int max_ms)
{
    for (int waited = 0; waited < max_ms; waited += 5) {
        int all = 1;
        for (int i = 0; i < n; i++)
            all &= atomic_load(&o[i].done);
        if (all)
            return;
        sleep_ms(5);
    }
    for (int i = 0; i < n; i++)
        REQUIRE(atomic_load(&o[i].done));
}

static void call(struct rig *r, const char *model, struct outcome *o)
{
    o->t = r->t;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = bedrock_converse(r->b, model, BODY, strlen(BODY), record, o, errbuf);
    if (err)
        fprintf(stderr, "bedrock_converse: %s\n", errbuf);
    REQUIRE_INT_EQ(err, ASSAY_OK);
}

TEST_CASE(label_encode)
{
    struct buf b = BUF_INIT;
    bedrock_label_encode(PROFILE_ARN, &b);
    /* What @smithy/core's extendedEncodeURIComponent gives for the same id. */
    CHECK_STR_EQ(b.data, "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus."
                         "anthropic.claude-3-5-sonnet-20240620-v1%3A0");
    buf_reset(&b);
    bedrock_label_encode("a!b(c)*d~e_f.g-h'i j\xc3\xa9", &b);
    CHECK_STR_EQ(b.data, "a%21b%28c%29%2Ad~e_f.g-h%27i%20j%C3%A9");
    buf_reset(&b);
    bedrock_endpoint_default("us-east-1", &b);
    CHECK_STR_EQ(b.data, "https://bedrock-runtime.us-east-1.amazonaws.com");
    buf_reset(&b);
    bedrock_endpoint_default("cn-north-1", &b);
    CHECK_STR_EQ(b.data, "https://bedrock-runtime.cn-north-1.amazonaws.com.cn");
    buf_clear(&b);
}

TEST_CASE(endpoint_default_and_override)
{
    http_transport_free(NULL);
    struct http_transport *t = http_transport_new(NULL, NULL);
    REQUIRE(t != NULL);
    struct creds c;
    creds_init(&c);
    c.access_key_id = xstrdup(AKID);
    c.secret_access_key = xstrdup(SECRET);
    struct creds_provider *cp = creds_static_new(&c);
    creds_clear(&c);
    struct bedrock_options opt = {.transport = t, .creds = cp, .region = "eu-west-3"};
    struct bedrock_client *b = bedrock_client_new(&opt, NULL);
    REQUIRE(b != NULL);
    CHECK_STR_EQ(bedrock_client_endpoint(b), "https://bedrock-runtime.eu-west-3.amazonaws.com");
    bedrock_client_free(b);
    opt.endpoint = "http://127.0.0.1:4566//";
    b = bedrock_client_new(&opt, NULL);
    REQUIRE(b != NULL);
    CHECK_STR_EQ(bedrock_client_endpoint(b), "http://127.0.0.1:4566");
    bedrock_client_free(b);
    opt.region = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    CHECK(bedrock_client_new(&opt, errbuf) == NULL);
    CHECK(errbuf[0] != '\0');
    creds_provider_free(cp);
    http_transport_free(t);
}

struct per_model {
    int models;
    uint64_t arn_invocations, arn_input_tokens;
};

static void per_model_add(void *ctx, const char *model_id, const struct bedrock_stats *s)
{
    struct per_model *pm = ctx;
    pm->models++;
    if (strcmp(model_id, PROFILE_ARN) == 0) {
        pm->arn_invocations = s->invocations;
        pm->arn_input_tokens = s->input_tokens;
    }
}

TEST_CASE(arn_path_signed_on_the_wire)
{
    struct rig r = {0};
    struct bedrock_options opt = {0};
    rig_start(&r, &opt);
    struct outcome o[2] = {0};
    call(&r, PROFILE_ARN, &o[0]);
    call(&r, MODEL, &o[1]);
    wait_done(o, 2, 5000);
    for (int i = 0; i < 2; i++) {
        CHECK_INT_EQ(o[i].err, ASSAY_OK);
        CHECK_INT_EQ(o[i].status, 200);
        CHECK_INT_EQ(o[i].attempts, 1);
        CHECK_INT_EQ(o[i].input_tokens, 10);
        CHECK_INT_EQ(o[i].output_tokens, 7);
        CHECK_INT_EQ(o[i].cache_read, 3);
        CHECK_INT_EQ(o[i].cache_write, 2);
        CHECK(strstr(o[i].body, "\"stopReason\"") != NULL);
        CHECK(o[i].on_thread);
        CHECK(o[i].latency_ms >= 0);
    }
    CHECK_INT_EQ(r.p.verified, 2);
    CHECK_INT_EQ(r.p.content_sha_seen, 2); /* as @aws-sdk/client-bedrock-runtime sends it */
    int arn = strcmp(r.p.uri[0], r.p.uri[1]) < 0 ? 0 : 1; /* "/model/anthropic" < "/model/arn" */
    CHECK_STR_EQ(r.p.uri[!arn ? 1 : 0],
                 "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus."
                 "anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
    CHECK_STR_EQ(r.p.uri[!arn ? 0 : 1], "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse");
    struct bedrock_stats st;
    bedrock_client_stats(r.b, &st);
    CHECK_INT_EQ(st.calls, 2);
    CHECK_INT_EQ(st.calls_done, 2);
    CHECK_INT_EQ(st.invocations, 2);
    CHECK_INT_EQ(st.successes, 2);
    CHECK_INT_EQ(st.input_tokens, 20);
    CHECK_INT_EQ(st.output_tokens, 14);
    struct per_model pm = {0};
    bedrock_client_stats_each(r.b, per_model_add, &pm);
    CHECK_INT_EQ(pm.models, 2);
    CHECK_INT_EQ(pm.arn_invocations, 1);
    CHECK_INT_EQ(pm.arn_input_tokens, 10);
    rig_stop(&r);
}

TEST_CASE(validation_not_retried)
{
    struct rig r = {0};
    r.p.script[0] = (struct answer){400, "ValidationException:http://internal.amazon.com/coral/",
                                    "{\"message\":\"The model returned the following errors: "
                                    "bad\"}",
                                    0};
    r.p.n_script = 1;
    struct bedrock_options opt = {0};
    rig_start(&r, &opt);
    struct outcome o = {0};
    call(&r, MODEL, &o);
    wait_done(&o, 1, 5000);
    CHECK_INT_EQ(o.err, ASSAY_ERR_HTTP_STATUS);
    CHECK_INT_EQ(o.status, 400);
    CHECK_STR_EQ(o.code, "ValidationException");
    CHECK_STR_EQ(o.message, "The model returned the following errors: bad");
    CHECK_INT_EQ(o.attempts, 1);
    CHECK_INT_EQ(r.p.hits, 1);
    struct bedrock_stats st;
    bedrock_client_stats(r.b, &st);
    CHECK_INT_EQ(st.client_errors, 1);
    rig_stop(&r);
}

TEST_CASE(access_denied_from_body_type)
{
    struct rig r = {0};
    /* No header: the code comes from the body's __type, as awsJson sends it. */
    r.p.script[0] = (struct answer){
        403, NULL,
        "{\"__type\":\"com.amazon.coral.service#AccessDeniedException\",\"Message\":\"nope\"}", 0};
    r.p.n_script = 1;
    struct bedrock_options opt = {0};
    rig_start(&r, &opt);
    struct outcome o = {0};
    call(&r, MODEL, &o);
    wait_done(&o, 1, 5000);
    CHECK_INT_EQ(o.err, ASSAY_ERR_HTTP_STATUS);
    CHECK_STR_EQ(o.code, "AccessDeniedException");
    CHECK_STR_EQ(o.message, "nope");
    CHECK_INT_EQ(o.attempts, 1);
    rig_stop(&r);
}

TEST_CASE(throttling_retried)
{
    struct rig r = {0};
    r.p.script[0] = (struct answer){429, "ThrottlingException", "{\"message\":\"Too many\"}", 0};
    r.p.script[1] = r.p.script[0];
    r.p.script[2] = (struct answer){200, NULL, NULL, 0};
    r.p.n_script = 3;
    struct bedrock_options opt = {0};
    rig_start(&r, &opt);
    struct outcome o = {0};
    call(&r, MODEL, &o);
    wait_done(&o, 1, 5000);
    CHECK_INT_EQ(o.err, ASSAY_OK);
    CHECK_INT_EQ(o.attempts, 3);
    CHECK_INT_EQ(o.throttles, 2);
    CHECK_INT_EQ(r.p.verified, 3); /* each attempt signed afresh */
    struct bedrock_stats st;
    bedrock_client_stats(r.b, &st);
    CHECK_INT_EQ(st.throttles, 2);
    CHECK_INT_EQ(st.retries, 2);
    CHECK_INT_EQ(st.successes, 1);
    rig_stop(&r);
}

TEST_CASE(server_errors_bounded)
{
    struct rig r = {0};
    r.p.script[0] =
        (struct answer){503, "ServiceUnavailableException", "{\"message\":\"busy\"}", 0};
    r.p.script[1] = (struct answer){500, NULL, "{\"__type\":\"InternalServerException\"}", 0};
    r.p.script[2] = (struct answer){429, "ModelNotReadyException", "{\"message\":\"warming\"}", 0};
    r.p.n_script = 3;
    struct bedrock_options opt = {0};
    retry_policy_init(&opt.retry);
    opt.retry.max_attempts = 4;
    opt.retry.base_ms = 2;
    opt.retry.max_backoff_ms = 10;
    rig_start(&r, &opt);
    struct outcome o = {0};
    call(&r, MODEL, &o);
    wait_done(&o, 1, 5000);
    CHECK_INT_EQ(o.err, ASSAY_ERR_HTTP_STATUS);
    CHECK_INT_EQ(o.attempts, 4);
    CHECK_INT_EQ(r.p.hits, 4);
    CHECK_STR_EQ(o.code, "ModelNotReadyException");
    CHECK_STR_EQ(o.message, "warming");
    struct bedrock_stats st;
    bedrock_client_stats(r.b, &st);
    CHECK_INT_EQ(st.server_errors, 2);
    CHECK_INT_EQ(st.throttles, 2); /* 429 ModelNotReady: retried with the throttle base */
    CHECK_INT_EQ(st.client_errors, 0);
    rig_stop(&r);
}

/* Each attempt in the result's log, classified as the stats count it. */
TEST_CASE(attempt_log_classifies_each_attempt)
{
    struct rig r = {0};
    r.p.script[0] = (struct answer){429, "ThrottlingException", "{\"message\":\"slow\"}", 0};
    r.p.script[1] = (struct answer){503, "ServiceUnavailableException", "{\"message\":\"x\"}", 0};
    r.p.script[2] = (struct answer){200, NULL, NULL, 0};
    r.p.script[3] = (struct answer){400, "ValidationException", "{\"message\":\"bad\"}", 0};
    r.p.n_script = 4;
    struct bedrock_options opt = {0};
    retry_policy_init(&opt.retry);
    opt.retry.base_ms = 2;
    opt.retry.max_backoff_ms = 10;
    rig_start(&r, &opt);
    struct outcome o = {0};
    call(&r, MODEL, &o);
    wait_done(&o, 1, 5000);
    CHECK_INT_EQ(o.err, ASSAY_OK);
    CHECK_INT_EQ(o.n_log, 3);
    CHECK_INT_EQ(o.log[0].outcome, BEDROCK_ATTEMPT_THROTTLED);
    CHECK_INT_EQ(o.log[1].outcome, BEDROCK_ATTEMPT_SERVER_ERROR);
    CHECK_INT_EQ(o.log[2].outcome, BEDROCK_ATTEMPT_OK);
    for (int i = 0; i < 3; i++)
        CHECK(o.log[i].latency_ms >= 0 && o.log[i].latency_ms <= o.latency_ms);
    struct outcome v = {0};
    call(&r, MODEL, &v);
    wait_done(&v, 1, 5000);
    CHECK_INT_EQ(v.n_log, 1);
    CHECK_INT_EQ(v.log[0].outcome, BEDROCK_ATTEMPT_CLIENT_ERROR);
    rig_stop(&r);
}

TEST_CASE(timeout_retried)
{
    struct rig r = {0};
    r.p.script[0] = (struct answer){200, NULL, NULL, 400};
    r.p.script[1] = (struct answer){200, NULL, NULL, 0};
    r.p.n_script = 2;
    struct bedrock_options opt = {.timeout_ms = 100};
    rig_start(&r, &opt);
    struct outcome o = {0};
    call(&r, MODEL, &o);
    wait_done(&o, 1, 5000);
    CHECK_INT_EQ(o.err, ASSAY_OK);
    CHECK_INT_EQ(o.attempts, 2);
    struct bedrock_stats st;
    bedrock_client_stats(r.b, &st);
    CHECK_INT_EQ(st.server_errors, 1);
    rig_stop(&r);
}

TEST_CASE(timeouts_bounded)
{
    struct rig r = {0};
    r.p.script[0] = (struct answer){200, NULL, NULL, 300};
    r.p.n_script = 1;
    struct bedrock_options opt = {.timeout_ms = 60};
    retry_policy_init(&opt.retry);
    opt.retry.max_attempts = 2;
    opt.retry.base_ms = 1;
    rig_start(&r, &opt);
    struct outcome o = {0};
    call(&r, MODEL, &o);
    wait_done(&o, 1, 5000);
    CHECK_INT_EQ(o.err, ASSAY_ERR_TIMEOUT);
    CHECK_INT_EQ(o.attempts, 2);
    CHECK(o.message[0] != '\0');
    rig_stop(&r);
}

TEST_CASE(requests_per_minute_paced)
{
    struct rig r = {0};
    /* 600 a minute, a burst of 1: one request every 100 ms. */
    struct bedrock_options opt = {.requests_per_minute = 600, .requests_burst = 1};
    rig_start(&r, &opt);
    struct outcome o[6] = {0};
    int64_t t0 = clock_mono_ms(NULL);
    for (int i = 0; i < 6; i++)
        call(&r, MODEL, &o[i]);
    wait_done(o, 6, 5000);
    REQUIRE_INT_EQ(r.p.hits, 6);
    for (int i = 1; i < 6; i++)
        CHECK(r.p.at_ms[i] - r.p.at_ms[i - 1] >= 90);
    CHECK(r.p.at_ms[5] - t0 >= 480);
    CHECK(r.p.at_ms[5] - t0 < 1500);
    /* another model has its own bucket: it goes at once */
    struct outcome other = {0};
    int64_t t1 = clock_mono_ms(NULL);
    call(&r, "amazon.nova-micro-v1:0", &other);
    wait_done(&other, 1, 5000);
    CHECK(clock_mono_ms(NULL) - t1 < 80);
    rig_stop(&r);
}

TEST_CASE(tokens_per_minute_charged_after)
{
    struct rig r = {0};
    r.p.input_tokens = 300;
    /* 60,000 a minute = 1 a millisecond; a bucket of 50. The body is ~60
     * bytes (estimate 16); the answer reports 300 + 7, so the bucket ends
     * near -250 and the next call waits about a quarter of a second. */
    struct bedrock_options opt = {.tokens_per_minute = 60000, .tokens_burst = 50};
    rig_start(&r, &opt);
    struct outcome a = {0}, b = {0};
    call(&r, MODEL, &a);
    wait_done(&a, 1, 5000);
    int64_t t0 = clock_mono_ms(NULL);
    call(&r, MODEL, &b);
    wait_done(&b, 1, 5000);
    int64_t waited = r.p.at_ms[1] - t0;
    CHECK(waited >= 200);
    CHECK(waited < 1000);
    rig_stop(&r);
}

TEST_CASE(concurrency_bounded)
{
    struct rig r = {0};
    r.p.script[0] = (struct answer){200, NULL, NULL, 60};
    r.p.n_script = 1;
    struct bedrock_options opt = {.max_concurrency = 3};
    rig_start(&r, &opt);
    struct outcome o[12] = {0};
    for (int i = 0; i < 12; i++)
        call(&r, MODEL, &o[i]);
    sleep_ms(20);
    struct bedrock_stats st;
    bedrock_client_stats(r.b, &st);
    CHECK(st.in_flight <= 3);
    CHECK(st.queued >= 6);
    wait_done(o, 12, 5000);
    for (int i = 0; i < 12; i++)
        CHECK_INT_EQ(o[i].err, ASSAY_OK);
    CHECK_INT_EQ(r.p.concurrent_peak, 3);
    bedrock_client_stats(r.b, &st);
    CHECK_INT_EQ(st.in_flight_peak, 3);
    CHECK_INT_EQ(st.in_flight, 0);
    CHECK_INT_EQ(st.queued, 0);
    rig_stop(&r);
}

TEST_CASE(bad_arguments_no_callback)
{
    struct rig r = {0};
    struct bedrock_options opt = {0};
    rig_start(&r, &opt);
    struct outcome o = {0};
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    CHECK_INT_EQ(bedrock_converse(r.b, "", BODY, strlen(BODY), record, &o, errbuf),
                 ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(bedrock_converse(r.b, MODEL, BODY, 0, record, &o, errbuf),
                 ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(bedrock_converse(r.b, MODEL, BODY, strlen(BODY), NULL, &o, errbuf),
                 ASSAY_ERR_INVALID_ARGUMENT);
    char *long_id = xmalloc(BEDROCK_MODEL_ID_MAX + 2);
    memset(long_id, 'm', BEDROCK_MODEL_ID_MAX + 1);
    long_id[BEDROCK_MODEL_ID_MAX + 1] = '\0';
    CHECK_INT_EQ(bedrock_converse(r.b, long_id, BODY, strlen(BODY), record, &o, errbuf),
                 ASSAY_ERR_INVALID_ARGUMENT);
    free(long_id);
    sleep_ms(20);
    CHECK_INT_EQ(atomic_load(&o.done), 0);
    CHECK_INT_EQ(r.p.hits, 0);
    rig_stop(&r);
}

TEST_CASE(transport_free_cancels)
{
    struct rig r = {0};
    r.p.script[0] = (struct answer){200, NULL, NULL, 1500};
    r.p.n_script = 1;
    /* one in flight, one queued for the slot, one waiting on its bucket */
    struct bedrock_options opt = {.max_concurrency = 1};
    rig_start(&r, &opt);
    struct outcome o[3] = {0};
    for (int i = 0; i < 3; i++)
        call(&r, MODEL, &o[i]);
    sleep_ms(50);
    http_transport_free(r.t);
    r.t = NULL;
    for (int i = 0; i < 3; i++) {
        CHECK(atomic_load(&o[i].done));
        CHECK_INT_EQ(o[i].err, ASSAY_ERR_CANCELLED);
    }
    rig_stop(&r);
}

TEST_CASE(bucket_wait_cancelled)
{
    struct rig r = {0};
    struct bedrock_options opt = {.requests_per_minute = 1, .requests_burst = 1};
    rig_start(&r, &opt);
    struct outcome o[2] = {0};
    call(&r, MODEL, &o[0]);
    call(&r, MODEL, &o[1]); /* waits a minute for its token */
    wait_done(&o[0], 1, 5000);
    http_transport_free(r.t);
    r.t = NULL;
    CHECK(atomic_load(&o[1].done));
    CHECK_INT_EQ(o[1].err, ASSAY_ERR_CANCELLED);
    rig_stop(&r);
}

TEST_CASE(wrong_secret_refused)
{
    struct rig r = {0};
    pthread_mutex_init(&r.p.mu, NULL);
    r.p.script[r.p.n_script++] = (struct answer){200, NULL, NULL, 0};
    r.server = fake_server_start(peer_handler, &r.p);
    REQUIRE(r.server != NULL);
    r.t = http_transport_new(NULL, NULL);
    struct creds c;
    creds_init(&c);
    c.access_key_id = xstrdup(AKID);
    c.secret_access_key = xstrdup("not-the-secret");
    r.creds = creds_static_new(&c);
    creds_clear(&c);
    struct bedrock_options opt = {.transport = r.t,
                                  .creds = r.creds,
                                  .region = "us-east-1",
                                  .endpoint = fake_server_url(r.server),
                                  .seed = 1};
    r.b = bedrock_client_new(&opt, NULL);
    REQUIRE(r.b != NULL);
    struct outcome o = {0};
    call(&r, MODEL, &o);
    wait_done(&o, 1, 5000);
    CHECK_INT_EQ(o.err, ASSAY_ERR_HTTP_STATUS);
    CHECK_STR_EQ(o.code, "SignatureDoesNotMatch");
    CHECK_INT_EQ(o.attempts, 1);
    rig_stop(&r);
}

/* The jitter comes from the seeded generator: the same seed draws the same
 * waits, another seed other ones; each within its full-jitter ceiling. */
static int64_t backoff_with_seed(uint64_t seed)
{
    struct rig r = {0};
    r.p.script[0] = (struct answer){429, "ThrottlingException", "{\"message\":\"slow\"}", 0};
    r.p.n_script = 1;
    struct bedrock_options opt = {.seed = seed};
    retry_policy_init(&opt.retry);
    opt.retry.max_attempts = 4;
    opt.retry.throttle_base_ms = 40;
    opt.retry.max_backoff_ms = 1000;
    rig_start(&r, &opt);
    struct outcome o = {0};
    call(&r, MODEL, &o);
    wait_done(&o, 1, 5000);
    CHECK_INT_EQ(o.attempts, 4);
    CHECK_INT_EQ(o.throttles, 4);
    CHECK(o.backoff_ms >= 0 && o.backoff_ms <= 40 + 80 + 160);
    rig_stop(&r);
    return o.backoff_ms;
}

TEST_CASE(jitter_seeded)
{
    int64_t a = backoff_with_seed(99), b = backoff_with_seed(99);
    CHECK_INT_EQ(a, b);
    int differ = 0;
    for (uint64_t s = 100; s < 104 && !differ; s++)
        differ = backoff_with_seed(s) != a;
    CHECK(differ);
}

/* maxTokens is reserved when a call starts, as Bedrock reserves it: two calls
 * of maxTokens 300 do not both fit a bucket of 400, the second waits for the
 * refill (1 token a millisecond) while the first is still unanswered. */
TEST_CASE(max_tokens_reserved)
{
    struct rig r = {0};
    r.p.script[0] = (struct answer){200, NULL, NULL, 400};
    r.p.n_script = 1;
    struct bedrock_options opt = {.tokens_per_minute = 60000, .tokens_burst = 400};
    rig_start(&r, &opt);
    static const char body[] =
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"hi\"}]}],"
        "\"inferenceConfig\":{\"maxTokens\":300}}";
    struct outcome o[2] = {0};
    for (int i = 0; i < 2; i++) {
        o[i].t = r.t;
        REQUIRE_INT_EQ(bedrock_converse(r.b, MODEL, body, strlen(body), record, &o[i], NULL),
                       ASSAY_OK);
    }
    wait_done(o, 2, 5000);
    REQUIRE_INT_EQ(r.p.hits, 2);
    int64_t gap = r.p.at_ms[1] - r.p.at_ms[0];
    CHECK(gap >= 150); /* needs ~240 tokens more: ~240 ms */
    CHECK(gap < 400);  /* and not held until the first answer settled */
    rig_stop(&r);
}
