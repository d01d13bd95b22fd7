/*
 * tests/integration/test_emulator_notify: aws/sns and monitor/notify against
 * build/assay-emulator's SNS Publish (strict SigV4 for "sns", strict form and
 * limits, scripted throttling and outages): a Publish accepted and logged
 * with its subject and length, throttling retried up to the bound, a topic of
 * another region refused without retry, and an alarm notification delivered
 * through an outage. Each case starts the real emulator (emulator_proc) and
 * checks it stops cleanly.
 */
#include "tests/integration/emulator_proc.h"
#include "tests/unit/test.h"

#include "aws/cloudwatch.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/sns.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "monitor/notify.h"

#include <stdio.h>
#include <string.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define TOPIC "arn:aws:sns:us-east-1:123456789012:assay-alarms"

struct client {
    struct http_transport *t;
    struct creds_provider *creds;
    struct sns *sns;
    int sleeps;
};

static void count_sleep(void *ctx, int64_t ms)
{
    (void)ms;
    struct client *c = ctx;
    c->sleeps++;
}

static void client_init(struct client *c, const struct emulator_proc *e, int max_attempts)
{
    memset(c, 0, sizeof *c);
    c->t = http_transport_new(NULL, NULL);
    REQUIRE(c->t != NULL);
    struct creds cr;
    creds_init(&cr);
    cr.access_key_id = xstrdup(AKID);
    cr.secret_access_key = xstrdup(SECRET);
    c->creds = creds_static_new(&cr);
    creds_clear(&cr);
    struct sns_options o = {.transport = c->t,
                            .creds = c->creds,
                            .region = "us-east-1",
                            .endpoint = e->url,
                            .seed = 3,
                            .sleep_ms = count_sleep,
                            .sleep_ctx = c};
    retry_policy_init(&o.retry);
    o.retry.max_attempts = max_attempts;
    c->sns = sns_new(&o, NULL);
    REQUIRE(c->sns != NULL);
}

static void client_clear(struct client *c)
{
    sns_free(c->sns);
    http_transport_free(c->t);
    creds_provider_free(c->creds);
}

TEST_CASE(sns_publish_accepted)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct client c;
    client_init(&c, &e, 3);
    /* Characters the form encoding must carry exactly: space, '+', '&', '=', UTF-8. */
    const char *message = "{\"x\":\"a b+c&d=e \xc3\xa9\"}";
    struct sns_publish_input in = {
        .topic_arn = TOPIC, .message = message, .subject = "assay: alarm raised"};
    struct sns_result res;
    CHECK_INT_EQ(sns_publish(c.sns, &in, &res), ASSAY_OK);
    CHECK_INT_EQ(res.attempts, 1);
    CHECK_INT_EQ(strlen(res.message_id), 36); /* a UUID */
    CHECK(res.request_id[0] != '\0');
    client_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    char want[64];
    snprintf(want, sizeof want, "\"message_length\":%zu", strlen(message));
    CHECK_INT_EQ(emulator_proc_log_count(&e, want), 1);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"subject\":\"assay: alarm raised\""), 1);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"status\":200"), 1);
}

TEST_CASE(sns_throttling_bounded)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, "{\"sns\": {\"throttle_rate\": 1}}", 0), 0);
    struct client c;
    client_init(&c, &e, 3);
    struct sns_publish_input in = {.topic_arn = TOPIC, .message = "m"};
    struct sns_result res;
    CHECK_INT_EQ(sns_publish(c.sns, &in, &res), ASSAY_ERR_BUSY);
    CHECK_INT_EQ(res.attempts, 3);
    CHECK_INT_EQ(res.status, 429);
    CHECK_STR_EQ(res.error_code, "Throttled");
    CHECK_INT_EQ(c.sleeps, 2);
    client_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"service\":\"sns\""), 3);
}

TEST_CASE(sns_invalid_parameter_not_retried)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct client c;
    client_init(&c, &e, 5);
    /* A topic in another region than the endpoint's. */
    struct sns_publish_input in = {.topic_arn = "arn:aws:sns:eu-west-1:123456789012:t",
                                   .message = "m"};
    struct sns_result res;
    CHECK_INT_EQ(sns_publish(c.sns, &in, &res), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(res.attempts, 1);
    CHECK_STR_EQ(res.error_code, "InvalidParameter");
    CHECK_INT_EQ(c.sleeps, 0);
    client_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"service\":\"sns\""), 1);
}

TEST_CASE(notify_alarm_through_an_outage)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e,
                                       "{\"sns\": {\"outage\": [{\"from_request\": 0, "
                                       "\"to_request\": 2}]}}",
                                       0),
                   0);
    struct client c;
    client_init(&c, &e, 1);
    struct notify_config cfg;
    notify_config_init(&cfg);
    cfg.sns_topic_arn = xstrdup(TOPIC);
    cfg.base_ms = 1;
    cfg.max_backoff_ms = 10;
    cfg.max_attempts = 4;
    struct notify_options o = {.config = &cfg, .transport = c.t, .sns = c.sns, .seed = 5};
    struct notify *n = notify_new(&o, NULL);
    REQUIRE(n != NULL);
    struct notify_series s = {"chat", "helpfulness", NULL};
    struct detector_event ev = {.state = DETECTOR_ALARM,
                                .index = 400,
                                .change_point = 380,
                                .baseline_mean = 0.9,
                                .current_mean = 0.7,
                                .effect_size = -2,
                                .p_value = 1e-6};
    CHECK_INT_EQ(notify_alarm_post(n, &s, 1764208800000LL, &ev), ASSAY_OK);
    CHECK_INT_EQ(notify_flush(n, 20000), ASSAY_OK);
    struct notify_stats st;
    notify_stats_get(n, &st);
    CHECK_INT_EQ(st.delivered, 1);
    CHECK_INT_EQ(st.retries, 2);
    CHECK_INT_EQ(st.failed, 0);
    /* The Message is the payload as notify encodes it (compact, shortest numbers). */
    json_t *payload = notify_payload_json(&s, 1764208800000LL, &ev);
    struct buf text = BUF_INIT;
    cloudwatch_json_encode(payload, &text);
    json_decref(payload);
    char want[64];
    snprintf(want, sizeof want, "\"message_length\":%zu", text.len);
    buf_clear(&text);
    notify_free(n);
    notify_config_clear(&cfg);
    client_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"fault\":\"outage\""), 2);
    CHECK_INT_EQ(emulator_proc_log_count(
                     &e, "\"subject\":\"assay ALARM: quality drop in chat/helpfulness\""),
                 1);
    CHECK_INT_EQ(emulator_proc_log_count(&e, want), 1);
}
