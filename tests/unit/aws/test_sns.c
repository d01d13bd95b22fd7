/*
 * Unit tests for aws/sns against a local peer (tests/support/fake_server)
 * that checks each request's SigV4 signature for the service "sns" the way
 * AWS does, records the form body and answers from a script in SNS's XML:
 * the wire shape, RFC 3986 form encoding, MessageId parsing, error mapping
 * from <Code>, bounded retries of throttling and 5xx, none of client faults,
 * and validation before anything is sent.
 */
#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/sns.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "tests/support/fake_server.h"
#include "tests/support/sigv4_verify.h"
#include "tests/unit/test.h"

#include <pthread.h>
#include <stdatomic.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define TOPIC "arn:aws:sns:us-east-1:123456789012:assay-alarms"

struct answer {
    int status;
    const char *code; /* <Error><Code>, or NULL for no body */
};

struct peer {
    pthread_mutex_t lock;
    int hits;
    int verified;
    char sig_code[64];
    char content_type[96];
    char method[8];
    char uri[64];
    char body[4096];
    int has_sha256;
    struct answer script[8];
    int n_script;
};

static void handler(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct peer *p = ctx;
    struct sigv4_verify_key key = {AKID, SECRET, "us-east-1", "sns"};
    char code[64], message[256];
    int ok = sigv4_verify(req, &key, clock_now_ms(NULL), code, sizeof code, message,
                          sizeof message) == 0;
    pthread_mutex_lock(&p->lock);
    int n = p->hits++;
    if (ok)
        p->verified++;
    else
        snprintf(p->sig_code, sizeof p->sig_code, "%s", code);
    const char *ct = fake_request_header(req, "Content-Type");
    snprintf(p->content_type, sizeof p->content_type, "%s", ct ? ct : "");
    snprintf(p->method, sizeof p->method, "%s", req->method);
    snprintf(p->uri, sizeof p->uri, "%s", req->uri);
    snprintf(p->body, sizeof p->body, "%.*s", (int)req->body_len, req->body ? req->body : "");
    p->has_sha256 = fake_request_header(req, "X-Amz-Content-SHA256") != NULL;
    struct answer a = n < p->n_script ? p->script[n] : (struct answer){200, NULL};
    pthread_mutex_unlock(&p->lock);

    fake_response_header(resp, "x-amzn-RequestId", "rid-1");
    fake_response_header(resp, "Content-Type", "text/xml");
    if (!ok) {
        char xml[512];
        snprintf(xml, sizeof xml,
                 "<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code>"
                 "<Message>refused</Message></Error><RequestId>r</RequestId></ErrorResponse>",
                 code);
        fake_response_text(resp, 403, xml);
    } else if (a.status != 200) {
        char xml[512] = "";
        if (a.code)
            snprintf(xml, sizeof xml,
                     "<ErrorResponse xmlns=\"https://sns.amazonaws.com/doc/2010-03-31/\">"
                     "<Error><Type>Sender</Type><Code>%s</Code><Message>scripted &amp; "
                     "refused</Message></Error><RequestId>rid-x</RequestId></ErrorResponse>",
                     a.code);
        fake_response_text(resp, a.status, xml);
    } else {
        fake_response_text(resp, 200,
                           "<PublishResponse xmlns=\"https://sns.amazonaws.com/doc/2010-03-31/\">"
                           "<PublishResult><MessageId>94f20ce6-13c5-43a0-9a9e-ca52d816e90b"
                           "</MessageId></PublishResult><ResponseMetadata><RequestId>"
                           "f187a3c1-376f-11df-8963-01868b7c937a</RequestId>"
                           "</ResponseMetadata></PublishResponse>");
    }
}

struct rig {
    struct peer peer;
    struct fake_server *server;
    struct http_transport *t;
    struct creds_provider *creds;
    struct sns *sns;
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
    struct sns_options o = {.transport = r->t,
                            .creds = r->creds,
                            .region = "us-east-1",
                            .endpoint = fake_server_url(r->server),
                            .seed = 7,
                            .sleep_ms = fake_sleep,
                            .sleep_ctx = r};
    retry_policy_init(&o.retry);
    o.retry.max_attempts = max_attempts;
    char errbuf[ASSAY_ERRBUF_SIZE];
    r->sns = sns_new(&o, errbuf);
    REQUIRE(r->sns != NULL);
}

static void rig_stop(struct rig *r)
{
    sns_free(r->sns);
    http_transport_free(r->t);
    creds_provider_free(r->creds);
    fake_server_stop(r->server);
    pthread_mutex_destroy(&r->peer.lock);
}

static void script(struct rig *r, int status, const char *code)
{
    r->peer.script[r->peer.n_script++] = (struct answer){status, code};
}

TEST_CASE(publish_wire_shape_signature_and_message_id)
{
    struct rig r;
    rig_start(&r, 3);
    struct sns_publish_input in = {.topic_arn = TOPIC,
                                   .message = "{\"state\":\"alarm\",\"x\":\"a b&c=d+e\"}",
                                   .subject = "assay: alarm raised"};
    struct sns_result res;
    CHECK_INT_EQ(sns_publish(r.sns, &in, &res), ASSAY_OK);
    CHECK_INT_EQ(res.status, 200);
    CHECK_INT_EQ(res.attempts, 1);
    CHECK_STR_EQ(res.message_id, "94f20ce6-13c5-43a0-9a9e-ca52d816e90b");
    CHECK_STR_EQ(res.request_id, "rid-1");
    CHECK_INT_EQ(r.peer.verified, 1);
    CHECK_STR_EQ(r.peer.sig_code, "");
    CHECK_STR_EQ(r.peer.method, "POST");
    CHECK_STR_EQ(r.peer.uri, "/");
    CHECK_STR_EQ(r.peer.content_type, "application/x-www-form-urlencoded; charset=utf-8");
    CHECK(!r.peer.has_sha256); /* the query protocol signs the body without the header */
    CHECK_STR_EQ(r.peer.body, "Action=Publish&Version=2010-03-31"
                              "&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aassay-alarms"
                              "&Message=%7B%22state%22%3A%22alarm%22%2C%22x%22%3A%22a%20b%26c%3Dd"
                              "%2Be%22%7D"
                              "&Subject=assay%3A%20alarm%20raised");
    rig_stop(&r);
}

TEST_CASE(form_encoding_is_rfc3986)
{
    /* Unreserved kept; space %20 (never '+'); sub-delims and UTF-8 bytes %XX
     * upper case, as extendedEncodeURIComponent and botocore write them. */
    struct sns_publish_input in = {.topic_arn = "arn:a", .message = "AZaz09-._~ !*'()+&=/\xc3\xa9"};
    struct buf b = BUF_INIT;
    sns_publish_body(&in, &b);
    CHECK_STR_EQ(buf_cstr(&b), "Action=Publish&Version=2010-03-31&TopicArn=arn%3Aa"
                               "&Message=AZaz09-._~%20%21%2A%27%28%29%2B%26%3D%2F%C3%A9");
    buf_clear(&b);
}

TEST_CASE(throttling_and_5xx_retried_with_backoff)
{
    struct rig r;
    rig_start(&r, 4);
    script(&r, 400, "Throttled"); /* SNS's throttling code */
    script(&r, 500, "InternalError");
    struct sns_publish_input in = {.topic_arn = TOPIC, .message = "m"};
    struct sns_result res;
    CHECK_INT_EQ(sns_publish(r.sns, &in, &res), ASSAY_OK);
    CHECK_INT_EQ(res.attempts, 3);
    CHECK_INT_EQ(r.peer.hits, 3);
    CHECK_INT_EQ(r.peer.verified, 3);
    CHECK_INT_EQ(r.sleeps, 2);
    CHECK(r.slept_ms <= 500 + 200); /* throttle base 500 * 2^0, transient base 100 * 2^1 */
    rig_stop(&r);
}

TEST_CASE(retries_bounded)
{
    struct rig r;
    rig_start(&r, 3);
    for (int i = 0; i < 5; i++)
        script(&r, 503, NULL);
    struct sns_publish_input in = {.topic_arn = TOPIC, .message = "m"};
    struct sns_result res;
    CHECK_INT_EQ(sns_publish(r.sns, &in, &res), ASSAY_ERR_HTTP_STATUS);
    CHECK_INT_EQ(res.attempts, 3);
    CHECK_INT_EQ(r.peer.hits, 3);
    CHECK_INT_EQ(res.status, 503);
    CHECK_INT_EQ(res.retry, RETRY_TRANSIENT);
    CHECK_INT_EQ(r.sleeps, 2);
    rig_stop(&r);
}

TEST_CASE(invalid_parameter_not_retried)
{
    struct rig r;
    rig_start(&r, 5);
    script(&r, 400, "InvalidParameter");
    struct sns_publish_input in = {.topic_arn = TOPIC, .message = "m"};
    struct sns_result res;
    CHECK_INT_EQ(sns_publish(r.sns, &in, &res), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(res.attempts, 1);
    CHECK_INT_EQ(r.peer.hits, 1);
    CHECK_STR_EQ(res.error_code, "InvalidParameter");
    CHECK_INT_EQ(res.retry, RETRY_NONE);
    CHECK(strstr(res.errbuf, "scripted & refused") != NULL);
    CHECK_STR_EQ(res.message_id, "");
    CHECK_INT_EQ(r.sleeps, 0);
    rig_stop(&r);
}

TEST_CASE(not_found_and_authorization_not_retried)
{
    struct rig r;
    rig_start(&r, 5);
    script(&r, 404, "NotFound");
    script(&r, 403, "AuthorizationError");
    struct sns_publish_input in = {.topic_arn = TOPIC, .message = "m"};
    struct sns_result res;
    CHECK_INT_EQ(sns_publish(r.sns, &in, &res), ASSAY_ERR_NOT_FOUND);
    CHECK_INT_EQ(res.attempts, 1);
    CHECK_INT_EQ(sns_publish(r.sns, &in, &res), ASSAY_ERR_FORBIDDEN);
    CHECK_INT_EQ(res.attempts, 1);
    CHECK_INT_EQ(r.peer.hits, 2);
    rig_stop(&r);
}

TEST_CASE(error_map)
{
    CHECK_INT_EQ(sns_error_map(200, NULL), ASSAY_OK);
    CHECK_INT_EQ(sns_error_map(400, "Throttled"), ASSAY_ERR_BUSY);
    CHECK_INT_EQ(sns_error_map(400, "KMSThrottling"), ASSAY_ERR_BUSY);
    CHECK_INT_EQ(sns_error_map(429, ""), ASSAY_ERR_BUSY);
    CHECK_INT_EQ(sns_error_map(400, "InvalidParameter"), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(sns_error_map(400, "InvalidParameterValue"), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(sns_error_map(404, "NotFound"), ASSAY_ERR_NOT_FOUND);
    CHECK_INT_EQ(sns_error_map(403, "AuthorizationError"), ASSAY_ERR_FORBIDDEN);
    CHECK_INT_EQ(sns_error_map(500, "InternalError"), ASSAY_ERR_HTTP_STATUS);
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 500, "InternalError"), RETRY_TRANSIENT);
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 400, "Throttled"), RETRY_THROTTLED);
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 400, "InvalidParameter"), RETRY_NONE);
}

TEST_CASE(signature_refused_with_wrong_secret_not_retried)
{
    struct rig r;
    rig_start(&r, 3);
    sns_free(r.sns);
    creds_provider_free(r.creds);
    struct creds c;
    creds_init(&c);
    c.access_key_id = xstrdup(AKID);
    c.secret_access_key = xstrdup("not-the-secret");
    r.creds = creds_static_new(&c);
    creds_clear(&c);
    struct sns_options o = {.transport = r.t,
                            .creds = r.creds,
                            .region = "us-east-1",
                            .endpoint = fake_server_url(r.server),
                            .sleep_ms = fake_sleep,
                            .sleep_ctx = &r};
    r.sns = sns_new(&o, NULL);
    REQUIRE(r.sns != NULL);
    struct sns_publish_input in = {.topic_arn = TOPIC, .message = "m"};
    struct sns_result res;
    CHECK(sns_publish(r.sns, &in, &res) != ASSAY_OK);
    CHECK_STR_EQ(res.error_code, "SignatureDoesNotMatch");
    CHECK_INT_EQ(res.attempts, 1);
    CHECK(strstr(res.errbuf, "not-the-secret") == NULL);
    rig_stop(&r);
}

TEST_CASE(validation_before_sending)
{
    struct rig r;
    rig_start(&r, 3);
    char subject[SNS_MAX_SUBJECT_LEN + 2];
    memset(subject, 'S', sizeof subject - 1);
    subject[sizeof subject - 1] = '\0';
    char *big = xmalloc(SNS_MAX_MESSAGE_BYTES + 2);
    memset(big, 'm', SNS_MAX_MESSAGE_BYTES + 1);
    big[SNS_MAX_MESSAGE_BYTES + 1] = '\0';
    struct {
        struct sns_publish_input in;
        enum assay_err want;
    } cases[] = {
        {{NULL, "m", NULL, 0}, ASSAY_ERR_INVALID_ARGUMENT},
        {{"topic", "m", NULL, 0}, ASSAY_ERR_INVALID_ARGUMENT},
        {{TOPIC, "", NULL, 0}, ASSAY_ERR_INVALID_ARGUMENT},
        {{TOPIC, "bad \xc3\x28 utf-8", NULL, 0}, ASSAY_ERR_INVALID_ARGUMENT},
        {{TOPIC, big, NULL, 0}, ASSAY_ERR_TOO_LARGE},
        {{TOPIC, "m", subject, 0}, ASSAY_ERR_INVALID_ARGUMENT},
        {{TOPIC, "m", "two\nlines", 0}, ASSAY_ERR_INVALID_ARGUMENT},
        {{TOPIC, "m", "caf\xc3\xa9", 0}, ASSAY_ERR_INVALID_ARGUMENT},
        {{TOPIC, "m", "", 0}, ASSAY_ERR_INVALID_ARGUMENT},
        {{TOPIC, "m", " leading space", 0}, ASSAY_ERR_INVALID_ARGUMENT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sns_result res;
        CHECK_INT_EQ(sns_publish(r.sns, &cases[i].in, &res), cases[i].want);
        CHECK_INT_EQ(res.attempts, 0);
        CHECK(res.errbuf[0] != '\0');
    }
    /* The limits themselves are allowed. */
    subject[SNS_MAX_SUBJECT_LEN] = '\0';
    big[SNS_MAX_MESSAGE_BYTES] = '\0';
    struct sns_publish_input edge = {TOPIC, big, subject, 0};
    CHECK_INT_EQ(sns_publish_validate(&edge, NULL), ASSAY_OK);
    CHECK_INT_EQ(r.peer.hits, 0);
    free(big);
    rig_stop(&r);
}

TEST_CASE(answer_parse)
{
    struct sns_result res;
    memset(&res, 0, sizeof res);
    const char *ok = "<PublishResponse><PublishResult><MessageId>a&amp;b</MessageId>"
                     "</PublishResult><ResponseMetadata><RequestId>r-9</RequestId>"
                     "</ResponseMetadata></PublishResponse>";
    sns_publish_answer_parse(200, ok, strlen(ok), &res);
    CHECK_INT_EQ(res.err, ASSAY_OK);
    CHECK_STR_EQ(res.message_id, "a&b");
    CHECK_STR_EQ(res.request_id, "r-9");
    memset(&res, 0, sizeof res);
    const char *none = "<PublishResponse><PublishResult/></PublishResponse>";
    sns_publish_answer_parse(200, none, strlen(none), &res);
    CHECK_INT_EQ(res.err, ASSAY_ERR_PARSE);
    memset(&res, 0, sizeof res);
    sns_publish_answer_parse(502, "", 0, &res);
    CHECK_INT_EQ(res.err, ASSAY_ERR_HTTP_STATUS);
    CHECK_INT_EQ(res.retry, RETRY_TRANSIENT);
    CHECK_STR_EQ(res.error_code, "");
}

struct async_box {
    atomic_int calls;
    atomic_int err;
    char message_id[128];
};

static void async_done(void *ctx, enum assay_err err, const struct sns_result *res)
{
    struct async_box *b = ctx;
    snprintf(b->message_id, sizeof b->message_id, "%s", res->message_id);
    atomic_store(&b->err, (int)err);
    atomic_fetch_add(&b->calls, 1);
}

TEST_CASE(submit_async_calls_back_once)
{
    struct rig r;
    rig_start(&r, 3);
    struct async_box box = {0};
    struct sns_publish_input in = {.topic_arn = TOPIC, .message = "m", .subject = "s"};
    char errbuf[ASSAY_ERRBUF_SIZE];
    REQUIRE_INT_EQ(sns_publish_submit(r.sns, &in, async_done, &box, errbuf), ASSAY_OK);
    for (int i = 0; i < 500 && atomic_load(&box.calls) == 0; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    CHECK_INT_EQ(atomic_load(&box.calls), 1);
    CHECK_INT_EQ(atomic_load(&box.err), ASSAY_OK);
    CHECK_STR_EQ(box.message_id, "94f20ce6-13c5-43a0-9a9e-ca52d816e90b");
    /* An input refused up front never calls back. */
    struct sns_publish_input bad = {.topic_arn = TOPIC, .message = ""};
    CHECK_INT_EQ(sns_publish_submit(r.sns, &bad, async_done, &box, errbuf),
                 ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(atomic_load(&box.calls), 1);
    rig_stop(&r);
}

TEST_CASE(endpoint_default_and_override)
{
    struct http_transport *t = http_transport_new(NULL, NULL);
    REQUIRE(t != NULL);
    struct creds c;
    creds_init(&c);
    c.access_key_id = xstrdup(AKID);
    c.secret_access_key = xstrdup(SECRET);
    struct creds_provider *p = creds_static_new(&c);
    creds_clear(&c);
    struct sns_options o = {.transport = t, .creds = p, .region = "eu-west-1"};
    struct sns *s = sns_new(&o, NULL);
    REQUIRE(s != NULL);
    CHECK_STR_EQ(sns_endpoint(s), "https://sns.eu-west-1.amazonaws.com/");
    sns_free(s);
    o.endpoint = "http://localhost:4566//";
    s = sns_new(&o, NULL);
    REQUIRE(s != NULL);
    CHECK_STR_EQ(sns_endpoint(s), "http://localhost:4566/");
    sns_free(s);
    o.endpoint = "localhost:4566";
    char errbuf[ASSAY_ERRBUF_SIZE];
    CHECK(sns_new(&o, errbuf) == NULL);
    o.endpoint = NULL;
    o.region = NULL;
    CHECK(sns_new(&o, errbuf) == NULL);
    sns_free(NULL);
    creds_provider_free(p);
    http_transport_free(t);
}
