/*
 * Unit tests for monitor/notify: the monitor.notify config (key-path errors,
 * secrets from the environment only), the payload and the SNS subject, and
 * delivery against local peers (tests/support/fake_server): a webhook's body
 * and headers (token and HMAC), retries with backoff on 503 then exactly one
 * delivery, bounded attempts then a logged failure, no retry on 400, the
 * secret absent from every log line (libcurl's debug lines included), SNS
 * Publish through a peer that verifies SigV4 for "sns", a post that does not
 * wait for a slow receiver, a full queue, and a bounded shutdown.
 */
#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/sns.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/jsonutil.h"
#include "common/log.h"
#include "monitor/notify.h"
#include "tests/support/fake_server.h"
#include "tests/support/sigv4_verify.h"
#include "tests/unit/test.h"

#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <time.h>

#define SECRET "s3cr3t-T0KEN-value"
#define AKID "AKIDEXAMPLE"
#define AWS_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define TOPIC "arn:aws:sns:us-east-1:123456789012:assay-alarms"
#define MAX_SEEN 16

/* ------------------------------------------------------------- log capture -- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct buf log_text = BUF_INIT;

static void log_sink(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    pthread_mutex_lock(&log_lock);
    buf_append(&log_text, line, len);
    pthread_mutex_unlock(&log_lock);
}

static void log_capture(enum log_level level)
{
    log_set_level(level);
    log_set_sink(log_sink, NULL);
}

static void log_release(void)
{
    log_set_sink(NULL, NULL);
    log_set_level(LOG_LEVEL_INFO);
    buf_clear(&log_text);
}

static int log_count(const char *needle)
{
    pthread_mutex_lock(&log_lock);
    int n = 0;
    for (const char *p = log_text.data; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    pthread_mutex_unlock(&log_lock);
    return n;
}

/* ----------------------------------------------------------------- the peer -- */

struct seen {
    char content_type[64];
    char token[128];
    char signature[160];
    char event[32];
    char delivery[40];
    char user_agent[64];
    char *body;
};

struct peer {
    pthread_mutex_t lock;
    int hits;
    int statuses[8]; /* scripted answers, then default_status */
    int n_statuses;
    int default_status;
    const char *retry_after;
    int delay_ms;
    int sns; /* answer as SNS, verifying SigV4 */
    int verified;
    struct seen seen[MAX_SEEN];
    int n_seen;
};

static void copy_header(const struct fake_request *req, const char *name, char *out, size_t size)
{
    const char *v = fake_request_header(req, name);
    snprintf(out, size, "%s", v ? v : "");
}

static void handler(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct peer *p = ctx;
    int ok = 1;
    if (p->sns) {
        struct sigv4_verify_key key = {AKID, AWS_SECRET, "us-east-1", "sns"};
        char code[64], message[256];
        ok = sigv4_verify(req, &key, clock_now_ms(NULL), code, sizeof code, message,
                          sizeof message) == 0;
    }
    pthread_mutex_lock(&p->lock);
    int n = p->hits++;
    p->verified += ok;
    if (p->n_seen < MAX_SEEN) {
        struct seen *s = &p->seen[p->n_seen++];
        copy_header(req, "Content-Type", s->content_type, sizeof s->content_type);
        copy_header(req, "X-Assay-Token", s->token, sizeof s->token);
        copy_header(req, "X-Assay-Signature", s->signature, sizeof s->signature);
        copy_header(req, "X-Assay-Event", s->event, sizeof s->event);
        copy_header(req, "X-Assay-Delivery", s->delivery, sizeof s->delivery);
        copy_header(req, "User-Agent", s->user_agent, sizeof s->user_agent);
        s->body = xstrndup(req->body ? req->body : "", req->body_len);
    }
    int status = n < p->n_statuses ? p->statuses[n] : p->default_status;
    const char *retry_after = p->retry_after;
    int delay = p->delay_ms;
    pthread_mutex_unlock(&p->lock);
    resp->delay_ms = delay;
    if (retry_after)
        fake_response_header(resp, "Retry-After", retry_after);
    if (p->sns && status == 200)
        fake_response_text(resp, 200,
                           "<PublishResponse><PublishResult><MessageId>mid-42</MessageId>"
                           "</PublishResult></PublishResponse>");
    else if (p->sns)
        fake_response_text(resp, status,
                           "<ErrorResponse><Error><Code>InternalError</Code></Error>"
                           "</ErrorResponse>");
    else
        fake_response_text(resp, status, status == 200 ? "ok" : "no");
}

struct rig {
    struct peer peer;
    struct fake_server *server;
    struct http_transport *t;
    struct creds_provider *creds;
    struct sns *sns;
    struct notify_config cfg;
    struct notify *n;
    char url[256];
};

static void rig_start(struct rig *r, int sns)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->peer.lock, NULL);
    r->peer.default_status = 200;
    r->peer.sns = sns;
    r->server = fake_server_start(handler, &r->peer);
    REQUIRE(r->server != NULL);
    r->t = http_transport_new(NULL, NULL);
    REQUIRE(r->t != NULL);
    /* The path stands for a secret in the URL (as Slack's webhooks have). */
    snprintf(r->url, sizeof r->url, "%s/hooks/PATHSECRET?k=QUERYSECRET",
             fake_server_url(r->server));
    notify_config_init(&r->cfg);
    r->cfg.base_ms = 1;
    r->cfg.max_backoff_ms = 5;
    r->cfg.max_attempts = 4;
    r->cfg.flush_timeout_ms = 2000;
}

static void rig_webhook(struct rig *r, enum notify_auth auth)
{
    r->cfg.webhooks = xcalloc(1, sizeof *r->cfg.webhooks);
    r->cfg.n_webhooks = 1;
    r->cfg.webhooks[0].url = xstrdup(r->url);
    r->cfg.webhooks[0].auth = auth;
    if (auth != NOTIFY_AUTH_NONE) {
        r->cfg.webhooks[0].secret = xstrdup(SECRET);
        r->cfg.webhooks[0].secret_env = xstrdup("ASSAY_WEBHOOK_TOKEN");
        r->cfg.webhooks[0].secret_header =
            xstrdup(auth == NOTIFY_AUTH_TOKEN ? "X-Assay-Token" : "X-Assay-Signature");
    }
}

static void rig_sns(struct rig *r)
{
    struct creds c;
    creds_init(&c);
    c.access_key_id = xstrdup(AKID);
    c.secret_access_key = xstrdup(AWS_SECRET);
    r->creds = creds_static_new(&c);
    creds_clear(&c);
    struct sns_options o = {.transport = r->t,
                            .creds = r->creds,
                            .region = "us-east-1",
                            .endpoint = fake_server_url(r->server)};
    r->sns = sns_new(&o, NULL);
    REQUIRE(r->sns != NULL);
    r->cfg.sns_topic_arn = xstrdup(TOPIC);
}

static void rig_go(struct rig *r)
{
    struct notify_options o = {.config = &r->cfg, .transport = r->t, .sns = r->sns, .seed = 11};
    char errbuf[ASSAY_ERRBUF_SIZE];
    r->n = notify_new(&o, errbuf);
    REQUIRE(r->n != NULL);
}

static void rig_stop(struct rig *r)
{
    notify_free(r->n);
    notify_config_clear(&r->cfg);
    sns_free(r->sns);
    http_transport_free(r->t);
    creds_provider_free(r->creds);
    fake_server_stop(r->server);
    for (int i = 0; i < r->peer.n_seen; i++)
        free(r->peer.seen[i].body);
    pthread_mutex_destroy(&r->peer.lock);
}

static const struct notify_series series = {"chat", "helpfulness", "anthropic.claude-3-haiku"};

static struct detector_event raised(void)
{
    return (struct detector_event){.state = DETECTOR_ALARM,
                                   .index = 1834,
                                   .change_point = 1790,
                                   .baseline_mean = 0.82,
                                   .current_mean = 0.64,
                                   .effect_size = -1.25,
                                   .p_value = 0.00012,
                                   .statistic = 10.5,
                                   .threshold = 9.5};
}

static const int64_t T0 = 1764208800000LL; /* 2025-11-27T02:00:00.000Z */

static int64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------- config -- */

struct env {
    const char *name, *value;
};

static const char *fake_getenv(void *ctx, const char *name)
{
    for (const struct env *e = ctx; e->name; e++)
        if (strcmp(e->name, name) == 0)
            return e->value;
    return NULL;
}

static enum assay_err parse(const char *text, struct notify_config *c, char *errbuf)
{
    static const struct env env[] = {{"ASSAY_WEBHOOK_TOKEN", SECRET}, {"HMAC_KEY", "k"}, {0}};
    json_t *j = json_loads(text, 0, NULL);
    REQUIRE(j != NULL);
    notify_config_init(c);
    enum assay_err err = notify_config_from_json(c, j, fake_getenv, (void *)env, errbuf);
    json_decref(j);
    return err;
}

TEST_CASE(config_full_and_defaults)
{
    struct notify_config c;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    REQUIRE_INT_EQ(parse("{}", &c, errbuf), ASSAY_OK);
    CHECK_INT_EQ(c.n_webhooks, 0);
    CHECK(c.sns_topic_arn == NULL);
    CHECK_INT_EQ(c.max_attempts, 6);
    CHECK_INT_EQ(c.base_ms, 500);
    CHECK_INT_EQ(c.max_backoff_ms, 60000);
    CHECK_INT_EQ(c.timeout_ms, 5000);
    CHECK_INT_EQ(c.max_queue, 1000);
    CHECK_INT_EQ(c.flush_timeout_ms, 5000);
    notify_config_clear(&c);

    REQUIRE_INT_EQ(parse("{\"webhooks\": [{\"url\": \"https://hooks.example.com/a\","
                         " \"secret_env\": \"ASSAY_WEBHOOK_TOKEN\"},"
                         " {\"url\": \"http://10.0.0.1:9000/b\", \"auth\": \"hmac\","
                         "  \"secret_env\": \"HMAC_KEY\", \"secret_header\": \"X-Sig\","
                         "  \"timeout_ms\": 2000},"
                         " {\"url\": \"https://open.example.com/\"}],"
                         " \"sns_topic_arn\": \"" TOPIC "\", \"max_attempts\": 3,"
                         " \"base_ms\": 100, \"max_backoff_ms\": 1000, \"timeout_ms\": 3000,"
                         " \"max_queue\": 50, \"flush_timeout_ms\": 0}",
                         &c, errbuf),
                   ASSAY_OK);
    REQUIRE_INT_EQ(c.n_webhooks, 3);
    CHECK_INT_EQ(c.webhooks[0].auth, NOTIFY_AUTH_TOKEN);
    CHECK_STR_EQ(c.webhooks[0].secret_header, "X-Assay-Token");
    CHECK_STR_EQ(c.webhooks[0].secret, SECRET);
    CHECK_INT_EQ(c.webhooks[1].auth, NOTIFY_AUTH_HMAC);
    CHECK_STR_EQ(c.webhooks[1].secret_header, "X-Sig");
    CHECK_STR_EQ(c.webhooks[1].secret, "k");
    CHECK_INT_EQ(c.webhooks[1].timeout_ms, 2000);
    CHECK_INT_EQ(c.webhooks[2].auth, NOTIFY_AUTH_NONE);
    CHECK(c.webhooks[2].secret == NULL && c.webhooks[2].secret_header == NULL);
    CHECK_STR_EQ(c.sns_topic_arn, TOPIC);
    CHECK_INT_EQ(c.max_attempts, 3);
    CHECK_INT_EQ(c.max_queue, 50);
    CHECK_INT_EQ(c.flush_timeout_ms, 0);
    notify_config_clear(&c);
    notify_config_clear(NULL);
}

TEST_CASE(config_errors_name_the_key_path)
{
    struct {
        const char *json, *want;
    } cases[] = {
        {"{\"webhook\": []}", "monitor.notify.webhook: unknown key"},
        {"{\"webhooks\": {}}", "monitor.notify.webhooks: must be an array"},
        {"{\"webhooks\": [3]}", "monitor.notify.webhooks[0]: must be an object"},
        {"{\"webhooks\": [{}]}", "monitor.notify.webhooks[0].url: required"},
        {"{\"webhooks\": [{\"url\": \"ftp://x\"}]}", "monitor.notify.webhooks[0].url"},
        {"{\"webhooks\": [{\"url\": \"https://a/\"}, {\"url\": \"https://b/\", \"secret\": "
         "\"x\"}]}",
         "monitor.notify.webhooks[1]: secrets are not read from the file"},
        {"{\"webhooks\": [{\"url\": \"https://a/\", \"secret_env\": \"UNSET_VAR\"}]}",
         "monitor.notify.webhooks[0].secret_env: the environment variable UNSET_VAR is not set"},
        {"{\"webhooks\": [{\"url\": \"https://a/\", \"auth\": \"hmac\"}]}",
         "monitor.notify.webhooks[0].secret_env: required"},
        {"{\"webhooks\": [{\"url\": \"https://a/\", \"auth\": \"basic\"}]}",
         "monitor.notify.webhooks[0].auth"},
        {"{\"webhooks\": [{\"url\": \"https://a/\", \"secret_env\": \"HMAC_KEY\","
         " \"secret_header\": \"Content-Type\"}]}",
         "monitor.notify.webhooks[0].secret_header"},
        {"{\"webhooks\": [{\"url\": \"https://a/\", \"secret_header\": \"X-T\"}]}",
         "monitor.notify.webhooks[0].secret_header: given without a secret"},
        {"{\"webhooks\": [{\"url\": \"https://a/\", \"timeout_ms\": 0}]}",
         "monitor.notify.webhooks[0].timeout_ms"},
        {"{\"max_attempts\": 0}", "monitor.notify.max_attempts: must be an integer from 1 to 20"},
        {"{\"max_attempts\": \"3\"}", "monitor.notify.max_attempts"},
        {"{\"base_ms\": 100, \"max_backoff_ms\": 10}", "monitor.notify.max_backoff_ms"},
        {"{\"sns_topic_arn\": \"my-topic\"}", "monitor.notify.sns_topic_arn"},
        {"{\"sns_topic_arn\": 5}", "monitor.notify.sns_topic_arn: must be a string"},
        {"[]", "monitor.notify: must be an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct notify_config c;
        char errbuf[ASSAY_ERRBUF_SIZE] = "";
        CHECK_INT_EQ(parse(cases[i].json, &c, errbuf), ASSAY_ERR_CONFIG);
        if (!strstr(errbuf, cases[i].want))
            test_fail_str(__FILE__, __LINE__, cases[i].json, errbuf, cases[i].want);
        CHECK(strstr(errbuf, SECRET) == NULL);
        CHECK_INT_EQ(c.n_webhooks, 0); /* cleared back to the defaults */
        notify_config_clear(&c);
    }
}

/* ----------------------------------------------------------- payload, subject -- */

TEST_CASE(payload_shape)
{
    struct detector_event ev = raised();
    json_t *p = notify_payload_json(&series, T0, &ev);
    CHECK_INT_EQ(json_integer_value(json_object_get(p, "version")), 1);
    CHECK_STR_EQ(jsonutil_str(p, "type"), "alarm.raised");
    CHECK_STR_EQ(jsonutil_str(p, "state"), "alarm");
    CHECK_STR_EQ(jsonutil_str(p, "time"), "2025-11-27T02:00:00.000Z");
    json_t *s = json_object_get(p, "series");
    CHECK_STR_EQ(jsonutil_str(s, "app"), "chat");
    CHECK_STR_EQ(jsonutil_str(s, "rubric"), "helpfulness");
    CHECK_STR_EQ(jsonutil_str(s, "model_id"), "anthropic.claude-3-haiku");
    CHECK_INT_EQ(json_integer_value(json_object_get(p, "index")), 1834);
    CHECK_INT_EQ(json_integer_value(json_object_get(p, "change_point")), 1790);
    CHECK(json_real_value(json_object_get(p, "baseline_mean")) == 0.82);
    CHECK(json_real_value(json_object_get(p, "current_mean")) == 0.64);
    CHECK(json_real_value(json_object_get(p, "effect_size")) == -1.25);
    CHECK(json_real_value(json_object_get(p, "p_value")) == 0.00012);
    CHECK(json_real_value(json_object_get(p, "statistic")) == 10.5);
    CHECK(json_real_value(json_object_get(p, "threshold")) == 9.5);
    const char *id = jsonutil_str(p, "id");
    REQUIRE(id != NULL);
    CHECK_INT_EQ(strlen(id), 32);
    /* The same event has the same id; a clear of it another. */
    json_t *again = notify_payload_json(&series, T0, &ev);
    CHECK_STR_EQ(jsonutil_str(again, "id"), id);
    struct detector_event clr = ev;
    clr.state = DETECTOR_OK;
    clr.p_value = NAN;
    struct notify_series no_model = {"chat", "helpfulness", NULL};
    json_t *c = notify_payload_json(&no_model, T0, &clr);
    CHECK(strcmp(jsonutil_str(c, "id"), id) != 0);
    CHECK_STR_EQ(jsonutil_str(c, "type"), "alarm.cleared");
    CHECK_STR_EQ(jsonutil_str(c, "state"), "ok");
    CHECK(json_is_null(json_object_get(c, "p_value")));
    CHECK(json_is_null(json_object_get(json_object_get(c, "series"), "model_id")));
    json_decref(p);
    json_decref(again);
    json_decref(c);
}

TEST_CASE(subject_short_and_printable)
{
    struct detector_event ev = raised();
    char out[SNS_MAX_SUBJECT_LEN + 1];
    notify_subject_format(&series, &ev, out, sizeof out);
    CHECK_STR_EQ(out, "assay ALARM: quality drop in chat/helpfulness/anthropic.claude-3-haiku");
    ev.state = DETECTOR_OK;
    struct notify_series s = {"chat", "r\xc3\xa9sum\xc3\xa9", ""};
    notify_subject_format(&s, &ev, out, sizeof out);
    CHECK_STR_EQ(out, "assay OK: quality recovered in chat/r??sum??");
    char longapp[300];
    memset(longapp, 'a', sizeof longapp - 1);
    longapp[sizeof longapp - 1] = '\0';
    s.app = longapp;
    notify_subject_format(&s, &ev, out, sizeof out);
    CHECK_INT_EQ(strlen(out), SNS_MAX_SUBJECT_LEN);
    struct sns_publish_input in = {TOPIC, "m", out, 0};
    CHECK_INT_EQ(sns_publish_validate(&in, NULL), ASSAY_OK);
}

/* ------------------------------------------------------------------ delivery -- */

static int wait_hits(struct rig *r, int hits, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        pthread_mutex_lock(&r->peer.lock);
        int h = r->peer.hits;
        pthread_mutex_unlock(&r->peer.lock);
        if (h >= hits)
            return 1;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

TEST_CASE(webhook_payload_and_token_header)
{
    log_capture(LOG_LEVEL_INFO);
    struct rig r;
    rig_start(&r, 0);
    rig_webhook(&r, NOTIFY_AUTH_TOKEN);
    rig_go(&r);
    struct detector_event ev = raised();
    CHECK_INT_EQ(notify_alarm_post(r.n, &series, T0, &ev), ASSAY_OK);
    CHECK_INT_EQ(notify_flush(r.n, 5000), ASSAY_OK);
    struct notify_stats st;
    notify_stats_get(r.n, &st);
    CHECK_INT_EQ(st.posted, 1);
    CHECK_INT_EQ(st.delivered, 1);
    CHECK_INT_EQ(st.failed, 0);
    CHECK_INT_EQ(st.pending, 0);
    REQUIRE_INT_EQ(r.peer.n_seen, 1);
    struct seen *s = &r.peer.seen[0];
    CHECK_STR_EQ(s->content_type, "application/json");
    CHECK_STR_EQ(s->token, SECRET);
    CHECK_STR_EQ(s->signature, "");
    CHECK_STR_EQ(s->event, "alarm.raised");
    CHECK_STR_EQ(s->user_agent, "assay-notify/1");
    json_t *body = json_loads(s->body, 0, NULL);
    REQUIRE(body != NULL);
    json_t *want = notify_payload_json(&series, T0, &ev);
    CHECK(json_equal(body, want));
    CHECK_STR_EQ(s->delivery, jsonutil_str(want, "id"));
    CHECK(strstr(s->body, "\"baseline_mean\":0.82,") != NULL); /* shortest round-trip */
    json_decref(body);
    json_decref(want);
    CHECK_INT_EQ(log_count("\"event\":\"notify.delivered\""), 1);
    CHECK_INT_EQ(log_count(SECRET), 0);
    CHECK_INT_EQ(log_count("PATHSECRET"), 0);
    CHECK_INT_EQ(log_count("QUERYSECRET"), 0);
    rig_stop(&r);
    log_release();
}

TEST_CASE(webhook_hmac_signature)
{
    struct rig r;
    rig_start(&r, 0);
    rig_webhook(&r, NOTIFY_AUTH_HMAC);
    rig_go(&r);
    struct detector_event ev = raised();
    ev.state = DETECTOR_OK;
    CHECK_INT_EQ(notify_alarm_post(r.n, &series, T0, &ev), ASSAY_OK);
    CHECK_INT_EQ(notify_flush(r.n, 5000), ASSAY_OK);
    REQUIRE_INT_EQ(r.peer.n_seen, 1);
    struct seen *s = &r.peer.seen[0];
    CHECK_STR_EQ(s->token, "");
    CHECK_STR_EQ(s->event, "alarm.cleared");
    long long t = 0;
    char hex[65] = "";
    REQUIRE_INT_EQ(sscanf(s->signature, "t=%lld,v1=%64[0-9a-f]", &t, hex), 2);
    long long now = clock_now_ms(NULL) / 1000;
    CHECK(t <= now && t >= now - 60);
    /* The receiver's check: HMAC-SHA256(secret, "<t>.<body>"). */
    struct buf msg = BUF_INIT;
    buf_appendf(&msg, "%lld.%s", t, s->body);
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)msg.data, msg.len, mac,
         &len);
    char want[65];
    for (int i = 0; i < 32; i++)
        snprintf(want + 2 * i, 3, "%02x", mac[i]);
    CHECK_STR_EQ(hex, want);
    buf_clear(&msg);
    rig_stop(&r);
}

TEST_CASE(retry_on_503_then_exactly_one_delivery)
{
    log_capture(LOG_LEVEL_INFO);
    struct rig r;
    rig_start(&r, 0);
    r.peer.statuses[0] = 503;
    r.peer.statuses[1] = 503;
    r.peer.n_statuses = 2;
    rig_webhook(&r, NOTIFY_AUTH_TOKEN);
    rig_go(&r);
    struct detector_event ev = raised();
    CHECK_INT_EQ(notify_alarm_post(r.n, &series, T0, &ev), ASSAY_OK);
    CHECK_INT_EQ(notify_flush(r.n, 5000), ASSAY_OK);
    struct notify_stats st;
    notify_stats_get(r.n, &st);
    CHECK_INT_EQ(st.delivered, 1);
    CHECK_INT_EQ(st.retries, 2);
    CHECK_INT_EQ(st.failed, 0);
    CHECK_INT_EQ(r.peer.hits, 3);
    /* Every attempt carried the same body and delivery id. */
    REQUIRE_INT_EQ(r.peer.n_seen, 3);
    CHECK_STR_EQ(r.peer.seen[2].body, r.peer.seen[0].body);
    CHECK_STR_EQ(r.peer.seen[2].delivery, r.peer.seen[0].delivery);
    CHECK_INT_EQ(log_count("\"event\":\"notify.retry\""), 2);
    CHECK_INT_EQ(log_count("\"wait_ms\":"), 2);
    CHECK_INT_EQ(log_count("\"event\":\"notify.delivered\""), 1);
    CHECK_INT_EQ(log_count("\"event\":\"notify.failed\""), 0);
    CHECK_INT_EQ(log_count(SECRET), 0);
    rig_stop(&r);
    log_release();
}

TEST_CASE(bounded_attempts_then_logged_failure)
{
    log_capture(LOG_LEVEL_INFO);
    struct rig r;
    rig_start(&r, 0);
    r.peer.default_status = 500;
    rig_webhook(&r, NOTIFY_AUTH_TOKEN);
    r.cfg.max_attempts = 3;
    rig_go(&r);
    struct detector_event ev = raised();
    CHECK_INT_EQ(notify_alarm_post(r.n, &series, T0, &ev), ASSAY_OK);
    CHECK_INT_EQ(notify_flush(r.n, 5000), ASSAY_OK);
    struct notify_stats st;
    notify_stats_get(r.n, &st);
    CHECK_INT_EQ(st.delivered, 0);
    CHECK_INT_EQ(st.failed, 1);
    CHECK_INT_EQ(st.retries, 2);
    CHECK_INT_EQ(r.peer.hits, 3);
    CHECK_INT_EQ(log_count("\"event\":\"notify.failed\""), 1);
    CHECK_INT_EQ(log_count("\"reason\":\"attempts_exhausted\""), 1);
    CHECK_INT_EQ(log_count("\"status\":500"), 3);
    CHECK_INT_EQ(log_count(SECRET), 0);
    rig_stop(&r);
    log_release();
}

TEST_CASE(no_retry_on_400)
{
    log_capture(LOG_LEVEL_INFO);
    struct rig r;
    rig_start(&r, 0);
    r.peer.default_status = 400;
    rig_webhook(&r, NOTIFY_AUTH_TOKEN);
    rig_go(&r);
    struct detector_event ev = raised();
    CHECK_INT_EQ(notify_alarm_post(r.n, &series, T0, &ev), ASSAY_OK);
    CHECK_INT_EQ(notify_flush(r.n, 5000), ASSAY_OK);
    struct notify_stats st;
    notify_stats_get(r.n, &st);
    CHECK_INT_EQ(st.failed, 1);
    CHECK_INT_EQ(st.retries, 0);
    CHECK_INT_EQ(r.peer.hits, 1);
    CHECK_INT_EQ(log_count("\"reason\":\"not_retryable\""), 1);
    CHECK_INT_EQ(log_count("\"event\":\"notify.retry\""), 0);
    rig_stop(&r);
    log_release();
}

TEST_CASE(retry_on_429_and_transport_error)
{
    struct rig r;
    rig_start(&r, 0);
    r.peer.statuses[0] = 429;
    r.peer.n_statuses = 1;
    r.peer.retry_after = "0";
    rig_webhook(&r, NOTIFY_AUTH_NONE);
    /* A second webhook on a port where nothing listens: connection refused. */
    struct fake_server *gone = fake_server_start(handler, &r.peer);
    REQUIRE(gone != NULL);
    char dead[128];
    snprintf(dead, sizeof dead, "%s/x", fake_server_url(gone));
    fake_server_stop(gone);
    r.cfg.webhooks = xrealloc(r.cfg.webhooks, 2 * sizeof *r.cfg.webhooks);
    memset(&r.cfg.webhooks[1], 0, sizeof r.cfg.webhooks[1]);
    r.cfg.webhooks[1].url = xstrdup(dead);
    r.cfg.n_webhooks = 2;
    r.cfg.max_attempts = 3;
    rig_go(&r);
    struct detector_event ev = raised();
    CHECK_INT_EQ(notify_alarm_post(r.n, &series, T0, &ev), ASSAY_OK);
    CHECK_INT_EQ(notify_flush(r.n, 10000), ASSAY_OK);
    struct notify_stats st;
    notify_stats_get(r.n, &st);
    CHECK_INT_EQ(st.delivered, 1); /* the 429, then 200 */
    CHECK_INT_EQ(st.failed, 1);    /* the dead port, 3 attempts */
    CHECK_INT_EQ(st.retries, 1 + 2);
    CHECK_INT_EQ(r.peer.hits, 2);
    rig_stop(&r);
}

TEST_CASE(secret_absent_from_debug_logs)
{
    /* At debug level libcurl's header lines are logged too: the secret
     * header must be redacted there as well. */
    log_capture(LOG_LEVEL_DEBUG);
    struct rig r;
    rig_start(&r, 0);
    r.peer.statuses[0] = 503;
    r.peer.n_statuses = 1;
    rig_webhook(&r, NOTIFY_AUTH_TOKEN);
    rig_go(&r);
    struct detector_event ev = raised();
    CHECK_INT_EQ(notify_alarm_post(r.n, &series, T0, &ev), ASSAY_OK);
    CHECK_INT_EQ(notify_flush(r.n, 5000), ASSAY_OK);
    CHECK_INT_EQ(r.peer.hits, 2);
    CHECK(log_count("X-Assay-Token: [redacted]") >= 1); /* the header was sent and logged */
    CHECK_INT_EQ(log_count(SECRET), 0);
    rig_stop(&r);
    log_release();
}

static void url_decode(const char *in, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '%' && i + 2 < n) {
            char h[3] = {in[i + 1], in[i + 2], 0};
            buf_append_char(out, (char)strtol(h, NULL, 16));
            i += 2;
        } else {
            buf_append_char(out, in[i]);
        }
    }
}

/* The decoded value of key in a form body, into out. */
static int form_get(const char *body, const char *key, struct buf *out)
{
    size_t kl = strlen(key);
    for (const char *p = body; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            url_decode(p + kl + 1, len - kl - 1, out);
            return 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

TEST_CASE(sns_publish_through_a_fake)
{
    log_capture(LOG_LEVEL_INFO);
    struct rig r;
    rig_start(&r, 1);
    r.peer.statuses[0] = 500; /* InternalError: retried */
    r.peer.n_statuses = 1;
    rig_sns(&r);
    rig_go(&r);
    struct detector_event ev = raised();
    CHECK_INT_EQ(notify_alarm_post(r.n, &series, T0, &ev), ASSAY_OK);
    CHECK_INT_EQ(notify_flush(r.n, 5000), ASSAY_OK);
    struct notify_stats st;
    notify_stats_get(r.n, &st);
    CHECK_INT_EQ(st.delivered, 1);
    CHECK_INT_EQ(st.retries, 1);
    CHECK_INT_EQ(r.peer.hits, 2);
    CHECK_INT_EQ(r.peer.verified, 2);
    REQUIRE_INT_EQ(r.peer.n_seen, 2);
    const char *body = r.peer.seen[1].body;
    CHECK_STR_EQ(r.peer.seen[1].content_type, "application/x-www-form-urlencoded; charset=utf-8");
    struct buf v = BUF_INIT;
    CHECK(form_get(body, "Action", &v) && strcmp(buf_cstr(&v), "Publish") == 0);
    buf_reset(&v);
    CHECK(form_get(body, "TopicArn", &v) && strcmp(buf_cstr(&v), TOPIC) == 0);
    buf_reset(&v);
    CHECK(form_get(body, "Subject", &v));
    CHECK_STR_EQ(buf_cstr(&v),
                 "assay ALARM: quality drop in chat/helpfulness/anthropic.claude-3-haiku");
    buf_reset(&v);
    REQUIRE(form_get(body, "Message", &v));
    json_t *msg = json_loads(buf_cstr(&v), 0, NULL);
    json_t *want = notify_payload_json(&series, T0, &ev);
    CHECK(msg != NULL && json_equal(msg, want));
    json_decref(msg);
    json_decref(want);
    buf_clear(&v);
    CHECK_INT_EQ(log_count("\"channel\":\"sns\""), 2); /* a retry, then delivered */
    CHECK_INT_EQ(log_count("\"message_id\":\"mid-42\""), 1);
    rig_stop(&r);
    log_release();
}

TEST_CASE(post_does_not_wait_for_a_slow_receiver)
{
    struct rig r;
    rig_start(&r, 0);
    r.peer.delay_ms = 400;
    rig_webhook(&r, NOTIFY_AUTH_NONE);
    rig_go(&r);
    struct detector_event ev = raised();
    int64_t t0 = mono_now();
    for (int i = 0; i < 5; i++) {
        ev.index = (uint64_t)(2000 + i);
        CHECK_INT_EQ(notify_alarm_post(r.n, &series, T0 + i, &ev), ASSAY_OK);
    }
    CHECK(mono_now() - t0 < 200);
    CHECK_INT_EQ(notify_flush(r.n, 10000), ASSAY_OK);
    struct notify_stats st;
    notify_stats_get(r.n, &st);
    CHECK_INT_EQ(st.delivered, 5);
    rig_stop(&r);
}

TEST_CASE(full_queue_drops_and_logs)
{
    log_capture(LOG_LEVEL_INFO);
    struct rig r;
    rig_start(&r, 0);
    r.peer.delay_ms = 300;
    rig_webhook(&r, NOTIFY_AUTH_NONE);
    r.cfg.max_queue = 1;
    rig_go(&r);
    struct detector_event ev = raised();
    CHECK_INT_EQ(notify_alarm_post(r.n, &series, T0, &ev), ASSAY_OK);
    CHECK_INT_EQ(notify_alarm_post(r.n, &series, T0 + 1, &ev), ASSAY_ERR_BUSY);
    CHECK_INT_EQ(notify_flush(r.n, 5000), ASSAY_OK);
    struct notify_stats st;
    notify_stats_get(r.n, &st);
    CHECK_INT_EQ(st.posted, 1);
    CHECK_INT_EQ(st.dropped, 1);
    CHECK_INT_EQ(st.delivered, 1);
    CHECK_INT_EQ(log_count("\"event\":\"notify.dropped\""), 1);
    rig_stop(&r);
    log_release();
}

TEST_CASE(shutdown_bounds_the_wait)
{
    log_capture(LOG_LEVEL_INFO);
    struct rig r;
    rig_start(&r, 0);
    r.peer.default_status = 503;
    rig_webhook(&r, NOTIFY_AUTH_NONE);
    r.cfg.base_ms = 30000; /* the next attempt would be far away */
    r.cfg.max_backoff_ms = 30000;
    r.cfg.flush_timeout_ms = 300;
    rig_go(&r);
    /* Full jitter may draw a short wait; a few events make a long one certain. */
    struct detector_event ev = raised();
    for (int i = 0; i < 4; i++)
        CHECK_INT_EQ(notify_alarm_post(r.n, &series, T0 + i, &ev), ASSAY_OK);
    REQUIRE(wait_hits(&r, 4, 5000));
    int64_t t0 = mono_now();
    notify_free(r.n);
    r.n = NULL;
    CHECK(mono_now() - t0 < 1500);
    CHECK(log_count("\"event\":\"notify.abandoned\"") >= 1);
    rig_stop(&r);
    log_release();
}

TEST_CASE(post_arguments_and_no_channel)
{
    struct notify_config c;
    notify_config_init(&c);
    struct notify_options o = {.config = &c};
    struct notify *n = notify_new(&o, NULL);
    REQUIRE(n != NULL);
    struct detector_event ev = raised();
    CHECK_INT_EQ(notify_alarm_post(n, &series, T0, &ev), ASSAY_OK); /* no channel: no-op */
    struct notify_series bad = {NULL, "r", NULL};
    CHECK_INT_EQ(notify_alarm_post(n, &bad, T0, &ev), ASSAY_ERR_INVALID_ARGUMENT);
    ev.state = DETECTOR_WARMING_UP;
    CHECK_INT_EQ(notify_alarm_post(n, &series, T0, &ev), ASSAY_ERR_INVALID_ARGUMENT);
    notify_free(n);
    notify_free(NULL);
    /* A channel without what it needs is refused up front. */
    c.sns_topic_arn = xstrdup(TOPIC);
    char errbuf[ASSAY_ERRBUF_SIZE];
    CHECK(notify_new(&o, errbuf) == NULL);
    CHECK(strstr(errbuf, "SNS") != NULL);
    notify_config_clear(&c);
}
