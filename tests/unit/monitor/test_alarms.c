/*
 * Unit tests for monitor/alarms and `assay alarms`: the planner's output for
 * a sample config (names, metrics, dimensions, thresholds, actions), schema
 * refusals with the key path, the diff, and the reconciler against a fake
 * CloudWatch that keeps the alarms it is given (SigV4 checked for
 * "monitoring"): the first run creates, the second changes nothing (0
 * PutMetricAlarm calls), a changed threshold updates one alarm, an alarm of
 * the same name that assay did not create is left alone. The last cases run
 * the real build/assay.
 */
#include "monitor/alarms.h"

#include "aws/credentials.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "tests/support/fake_server.h"
#include "tests/support/sigv4_verify.h"
#include "tests/unit/test.h"

#include <pthread.h>
#include <sys/wait.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static const char *const sample_config =
    "{\"prefix\": \"assay\","
    " \"alarm_actions\": [\"arn:aws:sns:us-east-1:123456789012:quality\"],"
    " \"ok_actions\": [\"arn:aws:sns:us-east-1:123456789012:quality\"],"
    " \"score\": {\"threshold\": 0.7, \"evaluation_periods\": 5, \"datapoints_to_alarm\": 3},"
    " \"apps\": {"
    "   \"support\": {\"score\": {\"threshold\": 0.8},"
    "                 \"rubrics\": {\"faithfulness\": {\"regression\": {\"enabled\": false}},"
    "                               \"tone\": {}}},"
    "   \"internal\": {\"enabled\": false}"
    " },"
    " \"golden\": {\"datasets\": [{\"dataset\": \"faq\", \"rubric\": \"correctness\","
    "              \"target_model_id\": \"amazon.nova-lite-v1:0\"}]}"
    "}";

static const struct alarms_target targets[] = {
    {"chat", "helpfulness", NULL},     {"support", "helpfulness", NULL},
    {"support", "faithfulness", NULL}, {"internal", "helpfulness", NULL},
    {"chat", "helpfulness", NULL}, /* named twice: one alarm */
};

static json_t *load(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    REQUIRE(j != NULL);
    return j;
}

static const struct alarms_planned *find(const struct alarms_plan *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->alarms[i].name, name) == 0)
            return &p->alarms[i];
    return NULL;
}

TEST_CASE(plan_sample_config)
{
    json_t *cfg = load(sample_config);
    struct alarms_plan plan;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    struct alarms_target *t = xmemdup(targets, sizeof targets);
    size_t n = sizeof targets / sizeof targets[0];
    alarms_targets_from_config(cfg, &t, &n); /* adds support x faithfulness, support x tone */
    CHECK_INT_EQ(n, 7);
    REQUIRE_INT_EQ(alarms_plan_build(cfg, "Assay", 60, t, n, &plan, errbuf), ASSAY_OK);
    free(t);
    for (size_t i = 0; i < plan.n; i++)
        printf("%s\n", plan.alarms[i].name);
    /* chat/helpfulness: regression + score; support/helpfulness: both;
     * support/faithfulness: score only; support/tone: both; internal: none;
     * golden: one */
    CHECK_INT_EQ(plan.n, 2 + 2 + 1 + 2 + 1);

    const struct alarms_planned *a = find(&plan, "assay-chat-helpfulness-regression");
    REQUIRE(a != NULL);
    CHECK_STR_EQ(a->alarm.metric_name, "QualityRegression");
    CHECK_STR_EQ(a->alarm.statistic, "Maximum");
    CHECK_STR_EQ(a->alarm.comparison_operator, "GreaterThanOrEqualToThreshold");
    CHECK(a->alarm.threshold == 1);
    CHECK_INT_EQ(a->alarm.period_s, 60);
    CHECK_INT_EQ(a->alarm.evaluation_periods, 1);
    CHECK_STR_EQ(a->alarm.treat_missing_data, "notBreaching");
    CHECK_INT_EQ(a->alarm.n_dimensions, 2);
    CHECK_STR_EQ(a->alarm.dimensions[0].name, "App");
    CHECK_STR_EQ(a->alarm.dimensions[0].value, "chat");
    CHECK_STR_EQ(a->alarm.dimensions[1].value, "helpfulness");
    CHECK_INT_EQ(a->alarm.n_alarm_actions, 1);
    CHECK_STR_EQ(a->alarm.alarm_actions[0], "arn:aws:sns:us-east-1:123456789012:quality");
    CHECK(strncmp(a->alarm.alarm_description, ALARMS_MARKER, strlen(ALARMS_MARKER)) == 0);

    a = find(&plan, "assay-chat-helpfulness-score-low");
    REQUIRE(a != NULL);
    CHECK_STR_EQ(a->alarm.metric_name, "QualityScore");
    CHECK_STR_EQ(a->alarm.statistic, "Average");
    CHECK_STR_EQ(a->alarm.comparison_operator, "LessThanThreshold");
    CHECK(a->alarm.threshold == 0.7);
    CHECK_INT_EQ(a->alarm.evaluation_periods, 5);
    CHECK_INT_EQ(a->alarm.datapoints_to_alarm, 3);

    a = find(&plan, "assay-support-helpfulness-score-low");
    REQUIRE(a != NULL);
    CHECK(a->alarm.threshold == 0.8);             /* the app's override */
    CHECK_INT_EQ(a->alarm.evaluation_periods, 5); /* merged from the top level */
    CHECK(find(&plan, "assay-support-faithfulness-regression") == NULL);
    CHECK(find(&plan, "assay-support-faithfulness-score-low") != NULL);
    CHECK(find(&plan, "assay-support-tone-regression") != NULL);
    CHECK(find(&plan, "assay-internal-helpfulness-regression") == NULL);

    a = find(&plan, "assay-golden-faq-correctness-amazon.nova-lite-v1:0-regression");
    REQUIRE(a != NULL);
    CHECK_STR_EQ(a->alarm.metric_name, "GoldenSetRegression");
    CHECK_INT_EQ(a->alarm.n_dimensions, 3);
    CHECK_STR_EQ(a->alarm.dimensions[2].name, "TargetModelId");
    CHECK_INT_EQ(a->alarm.period_s, 3600);
    CHECK_INT_EQ(a->alarm.evaluation_periods, 24);
    CHECK_INT_EQ(a->alarm.datapoints_to_alarm, 1);

    /* the request as it goes on the wire */
    json_t *req =
        cloudwatch_put_metric_alarm_json(&find(&plan, "assay-chat-helpfulness-score-low")->alarm);
    CHECK_STR_EQ(json_string_value(json_object_get(req, "Namespace")), "Assay");
    CHECK_STR_EQ(json_string_value(json_object_get(req, "TreatMissingData")), "notBreaching");
    json_decref(req);
    alarms_plan_clear(&plan);
    json_decref(cfg);
}

TEST_CASE(plan_defaults_and_model_targets)
{
    struct alarms_plan plan;
    char errbuf[ASSAY_ERRBUF_SIZE];
    struct alarms_target t[] = {{"chat", "helpfulness", NULL}, {"chat", "helpfulness", "m-1"}};
    REQUIRE_INT_EQ(alarms_plan_build(NULL, "Assay", 300, t, 2, &plan, errbuf), ASSAY_OK);
    CHECK_INT_EQ(plan.n, 2); /* regression only: no score threshold by default */
    CHECK_STR_EQ(plan.alarms[1].name, "assay-chat-helpfulness-m-1-regression");
    CHECK_INT_EQ(plan.alarms[1].alarm.n_dimensions, 3);
    CHECK_INT_EQ(plan.alarms[0].alarm.period_s, 300);
    CHECK_INT_EQ(plan.alarms[0].alarm.n_alarm_actions, 0);
    alarms_plan_clear(&plan);
    alarms_plan_clear(NULL);
}

TEST_CASE(plan_refusals_name_the_key)
{
    static const struct {
        const char *cfg, *want;
    } cases[] = {
        {"{\"score\": {\"threshold\": 1.5}}", "alarms.score.threshold"},
        {"{\"scor\": {}}", "alarms.scor"},
        {"{\"apps\": {\"chat\": {\"score\": {\"treshold\": 0.5}}}}",
         "alarms.apps.chat.score.treshold"},
        {"{\"alarm_actions\": [\"sns-topic\"]}", "alarms.alarm_actions"},
        {"{\"period_s\": 45}", "alarms.period_s"},
        {"{\"treat_missing_data\": \"maybe\"}", "alarms.treat_missing_data"},
        {"{\"score\": {\"threshold\": 0.5, \"evaluation_periods\": 2, \"datapoints_to_alarm\": 3}}",
         "datapoints_to_alarm"},
        {"{\"golden\": {\"datasets\": [{\"dataset\": \"x\"}]}}", "alarms.golden.datasets[0]"},
        {"{\"apps\": {\"chat\": {\"prefix\": \"x\"}}}", "alarms.apps.chat.prefix"},
    };
    struct alarms_target t = {"chat", "helpfulness", NULL};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *cfg = load(cases[i].cfg);
        struct alarms_plan plan;
        char errbuf[ASSAY_ERRBUF_SIZE] = "";
        CHECK_INT_EQ(alarms_plan_build(cfg, "Assay", 60, &t, 1, &plan, errbuf), ASSAY_ERR_CONFIG);
        if (!strstr(errbuf, cases[i].want))
            test_fail_str(__FILE__, __LINE__, cases[i].cfg, errbuf, cases[i].want);
        CHECK_INT_EQ(plan.n, 0);
        json_decref(cfg);
    }
}

/* --- A fake CloudWatch that keeps alarms -------------------------------- */

struct peer {
    pthread_mutex_t lock;
    json_t *alarms; /* AlarmName -> the alarm as DescribeAlarms answers it */
    int puts, describes, bad_sig;
};

static void handler(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct peer *p = ctx;
    struct sigv4_verify_key key = {AKID, SECRET, "us-east-1", "monitoring"};
    char code[64], message[256];
    int ok = sigv4_verify(req, &key, clock_now_ms(NULL), code, sizeof code, message,
                          sizeof message) == 0;
    const char *target = fake_request_header(req, "X-Amz-Target");
    json_t *in = json_loadb(req->body ? req->body : "", req->body_len, 0, NULL);
    fake_response_header(resp, "Content-Type", "application/x-amz-json-1.0");
    pthread_mutex_lock(&p->lock);
    if (!ok || !in || !target) {
        p->bad_sig += !ok;
        fake_response_header(resp, "x-amzn-query-error", "SignatureDoesNotMatch;Sender");
        fake_response_text(resp, 403, "{}");
    } else if (strstr(target, "PutMetricAlarm")) {
        p->puts++;
        json_t *a = json_deep_copy(in);
        json_object_set_new(a, "StateValue", json_string("INSUFFICIENT_DATA"));
        json_object_set_new(a, "AlarmArn", json_string("arn:aws:cloudwatch:us-east-1:1:alarm:x"));
        json_object_set_new(p->alarms, json_string_value(json_object_get(in, "AlarmName")), a);
        fake_response_text(resp, 200, "{}");
    } else if (strstr(target, "DescribeAlarms")) {
        p->describes++;
        json_t *out = json_array();
        const json_t *names = json_object_get(in, "AlarmNames");
        for (size_t i = 0; i < json_array_size(names); i++) {
            json_t *a = json_object_get(p->alarms, json_string_value(json_array_get(names, i)));
            if (a)
                json_array_append(out, a);
        }
        json_t *answer = json_pack("{s:o}", "MetricAlarms", out);
        char *text = json_dumps(answer, JSON_COMPACT);
        fake_response_text(resp, 200, text);
        free(text);
        json_decref(answer);
    } else {
        fake_response_text(resp, 400, "{}");
    }
    pthread_mutex_unlock(&p->lock);
    json_decref(in);
}

struct rig {
    struct peer peer;
    struct fake_server *server;
    struct http_transport *t;
    struct creds_provider *creds;
    struct cloudwatch *cw;
    json_t *lines;
};

static void rig_start(struct rig *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->peer.lock, NULL);
    r->peer.alarms = json_object();
    r->lines = json_array();
    r->server = fake_server_start(handler, &r->peer);
    REQUIRE(r->server);
    r->t = http_transport_new(NULL, NULL);
    struct creds k;
    creds_init(&k);
    k.access_key_id = xstrdup(AKID);
    k.secret_access_key = xstrdup(SECRET);
    r->creds = creds_static_new(&k);
    creds_clear(&k);
    struct cloudwatch_options o = {.transport = r->t,
                                   .creds = r->creds,
                                   .region = "us-east-1",
                                   .endpoint = fake_server_url(r->server)};
    retry_policy_init(&o.retry);
    r->cw = cloudwatch_new(&o, NULL);
    REQUIRE(r->cw);
}

static void rig_stop(struct rig *r)
{
    cloudwatch_free(r->cw);
    http_transport_free(r->t);
    creds_provider_free(r->creds);
    fake_server_stop(r->server);
    json_decref(r->peer.alarms);
    json_decref(r->lines);
    pthread_mutex_destroy(&r->peer.lock);
}

static void collect(void *ctx, const json_t *line)
{
    json_array_append_new(ctx, json_deep_copy(line));
}

static struct alarms_summary reconcile(struct rig *r, const char *cfg_text, int dry_run)
{
    json_t *cfg = load(cfg_text);
    struct alarms_plan plan;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    struct alarms_target *t = xmemdup(targets, sizeof targets);
    size_t n = 4;
    alarms_targets_from_config(cfg, &t, &n);
    REQUIRE_INT_EQ(alarms_plan_build(cfg, "Assay", 60, t, n, &plan, errbuf), ASSAY_OK);
    json_array_clear(r->lines);
    struct alarms_summary s;
    enum assay_err err = alarms_reconcile(r->cw, &plan, dry_run, collect, r->lines, &s, errbuf);
    if (err != ASSAY_OK)
        fprintf(stderr, "%s\n", errbuf);
    CHECK_INT_EQ(err, ASSAY_OK);
    CHECK_INT_EQ(json_array_size(r->lines), plan.n);
    alarms_plan_clear(&plan);
    free(t);
    json_decref(cfg);
    return s;
}

TEST_CASE(reconcile_creates_then_changes_nothing_then_updates_one)
{
    struct rig r;
    rig_start(&r);
    struct alarms_summary s = reconcile(&r, sample_config, 0);
    CHECK_INT_EQ(s.created, 8);
    CHECK_INT_EQ(s.put_calls, 8);
    CHECK_INT_EQ(r.peer.puts, 8);
    CHECK_INT_EQ(json_object_size(r.peer.alarms), 8);

    /* a restart with the same config: nothing to do */
    s = reconcile(&r, sample_config, 0);
    CHECK_INT_EQ(s.unchanged, 8);
    CHECK_INT_EQ(s.put_calls, 0);
    CHECK_INT_EQ(r.peer.puts, 8);

    /* the default threshold changes: only chat/helpfulness uses it (the
     * support app has its own), so one alarm is updated, in place */
    char *changed = xstrdup(sample_config);
    char *at = strstr(changed, "\"threshold\": 0.7");
    REQUIRE(at);
    memcpy(at, "\"threshold\": 0.6", 16);
    s = reconcile(&r, changed, 0);
    CHECK_INT_EQ(s.updated, 1);
    CHECK_INT_EQ(s.unchanged, 7);
    CHECK_INT_EQ(s.put_calls, 1);
    CHECK_INT_EQ(r.peer.puts, 9);
    int seen = 0;
    for (size_t i = 0; i < json_array_size(r.lines); i++) {
        const json_t *l = json_array_get(r.lines, i);
        if (strcmp(json_string_value(json_object_get(l, "action")), "update") == 0) {
            seen++;
            CHECK_STR_EQ(json_string_value(json_object_get(l, "alarm")),
                         "assay-chat-helpfulness-score-low");
            const json_t *ch = json_object_get(l, "changes");
            int has_threshold = 0;
            for (size_t k = 0; k < json_array_size(ch); k++)
                has_threshold |= strcmp(json_string_value(json_array_get(ch, k)), "Threshold") == 0;
            CHECK(has_threshold);
        }
    }
    CHECK_INT_EQ(seen, 1);
    json_t *stored = json_object_get(r.peer.alarms, "assay-chat-helpfulness-score-low");
    CHECK(json_number_value(json_object_get(stored, "Threshold")) == 0.6);

    /* dry run after another change: reported, not applied */
    memcpy(at, "\"threshold\": 0.5", 16);
    s = reconcile(&r, changed, 1);
    CHECK_INT_EQ(s.updated, 1);
    CHECK_INT_EQ(s.put_calls, 0);
    CHECK_INT_EQ(r.peer.puts, 9);
    CHECK_INT_EQ(r.peer.bad_sig, 0);
    free(changed);
    rig_stop(&r);
}

TEST_CASE(reconcile_leaves_foreign_alarm_alone)
{
    struct rig r;
    rig_start(&r);
    json_object_set_new(r.peer.alarms, "assay-chat-helpfulness-regression",
                        json_pack("{s:s, s:s, s:s}", "AlarmName",
                                  "assay-chat-helpfulness-regression", "AlarmDescription",
                                  "made by hand", "MetricName", "Latency"));
    struct alarms_summary s = reconcile(&r, "{}", 0);
    CHECK_INT_EQ(s.conflicts, 1);
    CHECK_INT_EQ(s.created, 3); /* the other regression alarms of the four targets */
    json_t *kept = json_object_get(r.peer.alarms, "assay-chat-helpfulness-regression");
    CHECK_STR_EQ(json_string_value(json_object_get(kept, "MetricName")), "Latency");
    rig_stop(&r);
}

TEST_CASE(diff_fields)
{
    const char *actions[] = {"arn:aws:sns:us-east-1:1:a"};
    struct cloudwatch_dimension dims[] = {{"App", "chat"}, {"Rubric", "r"}};
    struct cloudwatch_alarm w = {.alarm_name = "n",
                                 .alarm_description = ALARMS_MARKER " x",
                                 .ns = "Assay",
                                 .metric_name = "QualityScore",
                                 .dimensions = dims,
                                 .n_dimensions = 2,
                                 .statistic = "Average",
                                 .period_s = 60,
                                 .evaluation_periods = 5,
                                 .datapoints_to_alarm = 5,
                                 .threshold = 0.7,
                                 .comparison_operator = "LessThanThreshold",
                                 .treat_missing_data = "notBreaching",
                                 .alarm_actions = actions,
                                 .n_alarm_actions = 1,
                                 .actions_enabled = 1};
    CHECK_INT_EQ(alarms_diff(&w, NULL, NULL), ALARMS_CREATE);
    json_t *e = cloudwatch_put_metric_alarm_json(&w);
    /* as the service describes it: DatapointsToAlarm may be absent, the
     * dimensions in another order */
    json_object_del(e, "DatapointsToAlarm");
    json_t *d = json_object_get(e, "Dimensions");
    json_t *first = json_incref(json_array_get(d, 0));
    json_array_remove(d, 0);
    json_array_append_new(d, first);
    CHECK_INT_EQ(alarms_diff(&w, e, NULL), ALARMS_UNCHANGED);
    json_object_set_new(e, "TreatMissingData", json_string("breaching"));
    json_object_set_new(e, "Threshold", json_real(0.75));
    json_t *changes = json_array();
    CHECK_INT_EQ(alarms_diff(&w, e, changes), ALARMS_UPDATE);
    CHECK_INT_EQ(json_array_size(changes), 2);
    json_decref(changes);
    json_object_set_new(e, "AlarmDescription", json_string("someone else's"));
    CHECK_INT_EQ(alarms_diff(&w, e, NULL), ALARMS_CONFLICT);
    json_decref(e);
}

/* --- assay alarms ------------------------------------------------------- */

static int run_cmd(const char *url, const char *config_text, const char *flags, struct buf *out)
{
    const char *bin = getenv("ASSAY_BINARY_DIR");
    if (!bin)
        TEST_SKIP("ASSAY_BINARY_DIR is not set");
    char cfg[512], outp[512], errp[512], cmd[4096];
    snprintf(cfg, sizeof cfg, "%s/assay.json", test_tmpdir());
    snprintf(outp, sizeof outp, "%s/out", test_tmpdir());
    snprintf(errp, sizeof errp, "%s/err", test_tmpdir());
    FILE *f = fopen(cfg, "w");
    REQUIRE(f);
    fputs(config_text, f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "env -i PATH=/usr/bin:/bin HOME=/nonexistent AWS_ACCESS_KEY_ID=" AKID
             " AWS_SECRET_ACCESS_KEY=" SECRET " AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true"
             " AWS_ENDPOINT_URL_CLOUDWATCH=%s '%s/assay' alarms --config '%s' %s > '%s' 2> '%s'",
             url, bin, cfg, flags, outp, errp);
    int st = system(cmd);
    REQUIRE(st != -1 && WIFEXITED(st));
    buf_reset(out);
    f = fopen(outp, "r");
    REQUIRE(f);
    char line[8192];
    while (fgets(line, sizeof line, f))
        buf_append_str(out, line);
    fclose(f);
    f = fopen(errp, "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            fprintf(stderr, "assay alarms: stderr: %s", line);
        fclose(f);
    }
    return WEXITSTATUS(st);
}

static const char *const cmd_config =
    "{\"apps\": {\"chat\": {\"rubrics\": [\"helpfulness\", \"faithfulness\"]},"
    "            \"default\": {\"rubrics\": [\"helpfulness\"]}},"
    " \"metrics\": {\"namespace\": \"AssayCmd\"},"
    " \"alarms\": {\"score\": {\"threshold\": 0.65, \"evaluation_periods\": 3}}}";

TEST_CASE(cmd_dry_run_prints_plan_and_changes_nothing)
{
    struct rig r;
    rig_start(&r);
    struct buf out = BUF_INIT;
    CHECK_INT_EQ(run_cmd(fake_server_url(r.server), cmd_config, "--dry-run", &out), 0);
    CHECK_INT_EQ(r.peer.puts, 0);
    CHECK(r.peer.describes >= 1);
    /* one JSON line per alarm: chat x {helpfulness, faithfulness} x {regression, score} */
    int lines = 0, creates = 0;
    char *save = NULL;
    for (char *l = strtok_r(out.data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(l, 0, NULL);
        REQUIRE(j);
        lines++;
        creates += strcmp(json_string_value(json_object_get(j, "action")), "create") == 0;
        CHECK(json_is_true(json_object_get(j, "dry_run")));
        const json_t *req = json_object_get(j, "request");
        CHECK_STR_EQ(json_string_value(json_object_get(req, "Namespace")), "AssayCmd");
        json_decref(j);
    }
    CHECK_INT_EQ(lines, 4);
    CHECK_INT_EQ(creates, 4);

    /* applied, then a second run is a no-op */
    CHECK_INT_EQ(run_cmd(fake_server_url(r.server), cmd_config, "", &out), 0);
    CHECK_INT_EQ(r.peer.puts, 4);
    CHECK_INT_EQ(run_cmd(fake_server_url(r.server), cmd_config, "", &out), 0);
    CHECK_INT_EQ(r.peer.puts, 4);
    CHECK(strstr(out.data, "\"unchanged\"") != NULL);
    CHECK_INT_EQ(r.peer.bad_sig, 0);
    buf_clear(&out);
    rig_stop(&r);
}

TEST_CASE(cmd_bad_config_fails)
{
    struct buf out = BUF_INIT;
    CHECK_INT_EQ(run_cmd("http://127.0.0.1:1", "{\"alarms\": {\"score\": {\"threshold\": 2}}}",
                         "--dry-run", &out),
                 1);
    buf_clear(&out);
}
