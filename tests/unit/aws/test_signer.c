/*
 * Unit tests for aws/signer: requests signed through the transport's sign
 * hook are verified by a local server that knows the secret (the same check
 * AWS makes), including re-signing after a clock-skew refusal.
 */
#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/signer.h"
#include "common/alloc.h"
#include "common/log.h"
#include "tests/support/fake_server.h"
#include "tests/support/sigv4_verify.h"
#include "tests/unit/test.h"

#include <stdatomic.h>
#include <time.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define TOKEN "FQoGZXIvYXdzEXAMPLETOKEN"
#define MODEL_PATH "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"

struct verifier {
    int64_t ahead_ms; /* the server's clock: the real one plus this */
    atomic_int hits;
    atomic_int verified;
    char last_code[64];
    char saw_token[64];
};

static void http_date(int64_t ms, char out[40])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void verify_handler(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct verifier *v = ctx;
    atomic_fetch_add(&v->hits, 1);
    struct sigv4_verify_key key = {AKID, SECRET, "us-east-1", "bedrock"};
    int64_t server_ms = clock_now_ms(NULL) + v->ahead_ms;
    char code[64], message[256];
    const char *tok = fake_request_header(req, "X-Amz-Security-Token");
    snprintf(v->saw_token, sizeof v->saw_token, "%s", tok ? tok : "");
    if (sigv4_verify(req, &key, server_ms, code, sizeof code, message, sizeof message) == 0) {
        atomic_fetch_add(&v->verified, 1);
        fake_response_header(resp, "Content-Type", "application/json");
        fake_response_text(resp, 200, "{\"ok\":true}");
        return;
    }
    snprintf(v->last_code, sizeof v->last_code, "%s", code);
    char date[40];
    http_date(server_ms, date);
    fake_response_header(resp, "Date", date);
    fake_response_header(resp, "x-amzn-ErrorType", code);
    fake_response_text(resp, 403, "{\"message\":\"refused\"}");
}

struct rig {
    struct verifier v;
    struct fake_server *server;
    struct http_transport *t;
    struct creds_provider *creds;
    struct signer *signer;
};

static void rig_start(struct rig *r, const char *secret, const char *token, int64_t ahead_ms)
{
    memset(r, 0, sizeof *r);
    r->v.ahead_ms = ahead_ms;
    r->server = fake_server_start(verify_handler, &r->v);
    REQUIRE(r->server != NULL);
    r->t = http_transport_new(NULL, NULL);
    REQUIRE(r->t != NULL);
    struct creds c;
    creds_init(&c);
    c.access_key_id = xstrdup(AKID);
    c.secret_access_key = xstrdup(secret);
    c.session_token = token ? xstrdup(token) : NULL;
    r->creds = creds_static_new(&c);
    creds_clear(&c);
    struct signer_options so = {.region = "us-east-1", .service = "bedrock", .creds = r->creds};
    char errbuf[ASSAY_ERRBUF_SIZE];
    r->signer = signer_new(&so, errbuf);
    REQUIRE(r->signer != NULL);
}

static void rig_stop(struct rig *r)
{
    http_transport_free(r->t);
    signer_free(r->signer);
    creds_provider_free(r->creds);
    fake_server_stop(r->server);
}

static enum assay_err converse(struct rig *r, const char *body, struct http_response *resp)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", fake_server_url(r->server), MODEL_PATH);
    struct http_request req;
    http_request_init(&req, "POST", url);
    http_request_header_set(&req, "Content-Type", "application/json");
    buf_append_str(&req.body, body);
    signer_attach(r->signer, &req);
    enum assay_err err = http_transport_perform(r->t, &req, resp);
    http_request_clear(&req);
    return err;
}

TEST_CASE(signed_request_verified)
{
    struct rig r;
    rig_start(&r, SECRET, NULL, 0);
    struct http_response resp;
    http_response_init(&resp);
    CHECK_INT_EQ(converse(&r, "{\"messages\":[]}", &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 200);
    CHECK_INT_EQ(resp.attempts, 1);
    CHECK_INT_EQ(atomic_load(&r.v.verified), 1);
    /* the same signer again, with a different body: the cached key still signs right */
    CHECK_INT_EQ(converse(&r, "{\"messages\":[{\"role\":\"user\"}]}", &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 200);
    CHECK_INT_EQ(atomic_load(&r.v.verified), 2);
    http_response_clear(&resp);
    rig_stop(&r);
}

TEST_CASE(session_token_sent_and_signed)
{
    struct rig r;
    rig_start(&r, SECRET, TOKEN, 0);
    struct http_response resp;
    http_response_init(&resp);
    CHECK_INT_EQ(converse(&r, "{}", &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 200);
    CHECK_STR_EQ(r.v.saw_token, TOKEN);
    http_response_clear(&resp);
    rig_stop(&r);
}

TEST_CASE(wrong_secret_refused)
{
    struct rig r;
    rig_start(&r, "not-the-secret-the-server-knows", NULL, 0);
    struct http_response resp;
    http_response_init(&resp);
    CHECK_INT_EQ(converse(&r, "{}", &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 403);
    CHECK_INT_EQ(resp.attempts, 1); /* not a skew refusal: never re-sent */
    CHECK_STR_EQ(r.v.last_code, "SignatureDoesNotMatch");
    http_response_clear(&resp);
    rig_stop(&r);
}

TEST_CASE(skewed_clock_resigned)
{
    struct rig r;
    rig_start(&r, SECRET, NULL, 3600 * 1000LL); /* the server is an hour ahead */
    struct http_response resp;
    http_response_init(&resp);
    CHECK_INT_EQ(converse(&r, "{}", &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 200);
    CHECK_INT_EQ(resp.attempts, 2);
    CHECK_INT_EQ(atomic_load(&r.v.hits), 2);
    CHECK_INT_EQ(atomic_load(&r.v.verified), 1);
    int64_t skew = http_transport_skew_ms(r.t);
    CHECK(skew > 3590 * 1000LL && skew < 3610 * 1000LL);
    /* later requests are signed with the corrected time from the start */
    CHECK_INT_EQ(converse(&r, "{}", &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 200);
    CHECK_INT_EQ(resp.attempts, 1);
    http_response_clear(&resp);
    rig_stop(&r);
}

static const char *empty_env(void *ctx, const char *name)
{
    (void)ctx;
    (void)name;
    return NULL;
}

static void capture(void *ctx, const char *line, size_t len)
{
    buf_append(ctx, line, len);
}

TEST_CASE(no_credentials_no_send)
{
    struct rig r;
    rig_start(&r, SECRET, NULL, 0);
    struct creds_options opt = {.getenv = empty_env};
    struct creds_provider *env = creds_env_new(&opt);
    struct signer_options so = {.region = "us-east-1", .service = "bedrock", .creds = env};
    struct signer *s = signer_new(&so, NULL);
    REQUIRE(s != NULL);
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    CHECK(signer_warm(s, errbuf) != ASSAY_OK);
    signer_free(r.signer);
    r.signer = s;
    struct http_response resp;
    http_response_init(&resp);
    CHECK_INT_EQ(converse(&r, "{}", &resp), ASSAY_ERR_NO_CREDENTIALS);
    CHECK_INT_EQ(atomic_load(&r.v.hits), 0);
    http_response_clear(&resp);
    rig_stop(&r);
    creds_provider_free(env);
}

TEST_CASE(bad_options_and_urls)
{
    char errbuf[ASSAY_ERRBUF_SIZE];
    struct signer_options so = {.region = "us-east-1", .service = "", .creds = NULL};
    CHECK(signer_new(&so, errbuf) == NULL);
    CHECK(strstr(errbuf, "service") != NULL);

    struct rig r;
    rig_start(&r, SECRET, NULL, 0);
    struct http_request req;
    http_request_init(&req, "GET", "ftp://example.com/x");
    CHECK_INT_EQ(signer_sign(r.signer, &req, clock_now_ms(NULL), errbuf),
                 ASSAY_ERR_INVALID_ARGUMENT);
    http_request_clear(&req);
    /* Host leaves out a default port, keeps another; userinfo never signed */
    http_request_init(&req, "GET",
                      "https://user@bedrock-runtime.us-east-1.amazonaws.com:443/x?b=2&a=1");
    CHECK_INT_EQ(signer_sign(r.signer, &req, clock_now_ms(NULL), errbuf), ASSAY_OK);
    CHECK_STR_EQ(http_request_header_get(&req, "Host"), "bedrock-runtime.us-east-1.amazonaws.com");
    CHECK(http_request_header_get(&req, "X-Amz-Date") != NULL);
    /* signing twice leaves one set of signature headers */
    CHECK_INT_EQ(signer_sign(r.signer, &req, clock_now_ms(NULL) + 1000, errbuf), ASSAY_OK);
    int auth = 0;
    for (size_t i = 0; i < req.n_headers; i++)
        auth += strcasecmp(req.headers[i].name, "Authorization") == 0;
    CHECK_INT_EQ(auth, 1);
    http_request_clear(&req);
    http_request_init(&req, "GET", "http://127.0.0.1:8787/");
    CHECK_INT_EQ(signer_sign(r.signer, &req, clock_now_ms(NULL), errbuf), ASSAY_OK);
    CHECK_STR_EQ(http_request_header_get(&req, "Host"), "127.0.0.1:8787");
    http_request_clear(&req);
    rig_stop(&r);
}

TEST_CASE(secret_never_logged)
{
    struct buf logs = BUF_INIT;
    log_set_level(LOG_LEVEL_DEBUG);
    log_set_sink(capture, &logs);
    struct rig r;
    rig_start(&r, SECRET, TOKEN, 3600 * 1000LL);
    struct http_response resp;
    http_response_init(&resp);
    CHECK_INT_EQ(converse(&r, "{}", &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 200);
    http_response_clear(&resp);
    rig_stop(&r);
    log_set_sink(NULL, NULL);
    CHECK(logs.len > 0);
    CHECK(strstr(buf_cstr(&logs), SECRET) == NULL);
    CHECK(strstr(buf_cstr(&logs), TOKEN) == NULL);
    buf_clear(&logs);
}

/* The verifier itself must be able to refuse: tampering is caught. */
TEST_CASE(verifier_refuses_tampering)
{
    struct rig r;
    rig_start(&r, SECRET, NULL, 0);
    struct http_request req;
    http_request_init(&req, "POST", "https://bedrock-runtime.us-east-1.amazonaws.com" MODEL_PATH);
    http_request_header_set(&req, "Content-Type", "application/json");
    buf_append_str(&req.body, "{\"score\":5}");
    int64_t now = clock_now_ms(NULL);
    REQUIRE_INT_EQ(signer_sign(r.signer, &req, now, NULL), ASSAY_OK);

    struct fake_request fr;
    memset(&fr, 0, sizeof fr);
    fr.method = "POST";
    fr.uri = MODEL_PATH;
    fr.path = MODEL_PATH;
    for (size_t i = 0; i < req.n_headers; i++) {
        fr.headers[i].name = req.headers[i].name;
        fr.headers[i].value = req.headers[i].value;
    }
    fr.n_headers = req.n_headers;
    fr.body = req.body.data;
    fr.body_len = req.body.len;
    struct sigv4_verify_key key = {AKID, SECRET, "us-east-1", "bedrock"};
    char code[64], msg[256];
    CHECK_INT_EQ(sigv4_verify(&fr, &key, now, code, sizeof code, msg, sizeof msg), 0);

    fr.body = "{\"score\":1}";
    CHECK_INT_EQ(sigv4_verify(&fr, &key, now, code, sizeof code, msg, sizeof msg), -1);
    CHECK_STR_EQ(code, "SignatureDoesNotMatch");
    fr.body = req.body.data;

    fr.uri = "/model/other/converse";
    CHECK_INT_EQ(sigv4_verify(&fr, &key, now, code, sizeof code, msg, sizeof msg), -1);
    CHECK_STR_EQ(code, "SignatureDoesNotMatch");
    fr.uri = MODEL_PATH;

    CHECK_INT_EQ(sigv4_verify(&fr, &key, now + 6 * 60000, code, sizeof code, msg, sizeof msg), -1);
    CHECK_STR_EQ(code, "InvalidSignatureException");

    struct sigv4_verify_key other = {AKID, "another-secret", "us-east-1", "bedrock"};
    CHECK_INT_EQ(sigv4_verify(&fr, &other, now, code, sizeof code, msg, sizeof msg), -1);
    CHECK_STR_EQ(code, "SignatureDoesNotMatch");
    struct sigv4_verify_key stranger = {"AKIDSTRANGER", SECRET, "us-east-1", "bedrock"};
    CHECK_INT_EQ(sigv4_verify(&fr, &stranger, now, code, sizeof code, msg, sizeof msg), -1);
    CHECK_STR_EQ(code, "UnrecognizedClientException");
    http_request_clear(&req);
    rig_stop(&r);
}
