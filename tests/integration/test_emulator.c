/*
 * tests/integration/test_emulator: build/assay-emulator against assay's own
 * client pieces. Each case starts the real emulator (emulator_proc), signs
 * Converse requests with aws/signer over aws/http, renders judge requests
 * with judges/prompt and reads verdicts with judges/verdict, and checks that
 * the emulator stops cleanly (exit 0, so no leak under ASan).
 */
#include "tests/integration/emulator_proc.h"
#include "tests/unit/test.h"

#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/signer.h"
#include "aws/sigv4.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "judges/prompt.h"
#include "judges/rubric.h"
#include "judges/verdict.h"

#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <time.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define MODEL "anthropic.claude-3-haiku-20240307-v1:0"
#define MODEL_PATH "anthropic.claude-3-haiku-20240307-v1%3A0"

struct client {
    struct http_transport *t;
    struct creds_provider *creds;
    struct signer *signer;
    struct clock clk;
    int64_t offset_ms; /* this client's clock error */
};

static int64_t offset_now(void *ctx)
{
    struct client *c = ctx;
    return clock_now_ms(NULL) + c->offset_ms;
}

static int64_t offset_mono(void *ctx)
{
    (void)ctx;
    return clock_mono_ms(NULL);
}

static void client_init_scoped(struct client *c, const char *akid, const char *secret,
                               int64_t offset_ms, const char *region, const char *service)
{
    memset(c, 0, sizeof *c);
    c->offset_ms = offset_ms;
    c->clk.now_ms = offset_now;
    c->clk.mono_ms = offset_mono;
    c->clk.ctx = c;
    struct http_transport_options o = {.clock = &c->clk};
    c->t = http_transport_new(&o, NULL);
    REQUIRE(c->t != NULL);
    struct creds cr;
    creds_init(&cr);
    cr.access_key_id = xstrdup(akid);
    cr.secret_access_key = xstrdup(secret);
    c->creds = creds_static_new(&cr);
    creds_clear(&cr);
    struct signer_options so = {
        .region = region, .service = service, .creds = c->creds, .sign_body = 1};
    char errbuf[ASSAY_ERRBUF_SIZE];
    c->signer = signer_new(&so, errbuf);
    REQUIRE(c->signer != NULL);
}

static void client_init(struct client *c, const char *akid, const char *secret, int64_t offset_ms)
{
    client_init_scoped(c, akid, secret, offset_ms, "us-east-1", "bedrock");
}

static void client_clear(struct client *c)
{
    http_transport_free(c->t);
    signer_free(c->signer);
    creds_provider_free(c->creds);
}

/* Sends body to /model/{model_path}/converse with sign (NULL: the signer). */
static void send_with(struct client *c, const struct emulator_proc *e, const char *model_path,
                      const char *body, http_sign_fn sign, struct http_response *resp)
{
    struct buf url = BUF_INIT;
    buf_appendf(&url, "%s/model/%s/converse", e->url, model_path);
    struct http_request req;
    http_request_init(&req, "POST", buf_cstr(&url));
    http_request_header_set(&req, "Content-Type", "application/json");
    buf_append_str(&req.body, body);
    signer_attach(c->signer, &req);
    if (sign)
        req.sign = sign;
    http_response_init(resp);
    CHECK_INT_EQ(http_transport_perform(c->t, &req, resp), ASSAY_OK);
    http_request_clear(&req);
    buf_clear(&url);
}

static void send_body(struct client *c, const struct emulator_proc *e, const char *body,
                      struct http_response *resp)
{
    send_with(c, e, MODEL_PATH, body, NULL, resp);
}

static void error_code(const struct http_response *resp, char *code, size_t n)
{
    http_response_error_code(resp, code, n);
}

static struct rubric *load_rubric(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/rubrics/%s.json", test_source_dir(), name);
    struct rubric *r = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE];
    REQUIRE_INT_EQ(rubric_load(path, &r, errbuf), ASSAY_OK);
    return r;
}

/* The body of a judge request for (r, s), as the LLM judge renders it. */
static char *judge_body(const struct rubric *r, const struct rubric_sample *s, bool fallback)
{
    struct prompt_options po = {.text_fallback = fallback};
    json_t *body = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE];
    REQUIRE_INT_EQ(prompt_render(r, s, &po, &body, errbuf), ASSAY_OK);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

static const char plain_body[] = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":"
                                 "\"What is the capital of France?\"}]}]}";

/* Judges one answer through the emulator; returns the verdict's score in [0,1]. */
static double judge_once(struct client *c, const struct emulator_proc *e, const struct rubric *r,
                         const char *answer)
{
    struct rubric_sample s = {.input = "What is the capital of France, and what river runs "
                                       "through it?",
                              .output = answer,
                              .reference = "Paris is the capital of France; the Seine runs "
                                           "through Paris."};
    char *body = judge_body(r, &s, false);
    struct http_response resp;
    send_body(c, e, body, &resp);
    CHECK_INT_EQ(resp.status, 200);
    struct verdict v;
    verdict_init(&v);
    CHECK_INT_EQ(verdict_parse(r, buf_cstr(&resp.body), resp.body.len, &v), ASSAY_OK);
    CHECK_INT_EQ(v.outcome, VERDICT_SCORED);
    double score = v.outcome == VERDICT_SCORED ? v.score : -1;
    CHECK(v.raw_score >= r->scale.min && v.raw_score <= r->scale.max);
    CHECK(v.reasoning != NULL && strlen(v.reasoning) > 0);
    verdict_clear(&v);
    http_response_clear(&resp);
    free(body);
    return score;
}

TEST_CASE(verdict_in_range)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct client c;
    client_init(&c, AKID, SECRET, 0);
    struct rubric *r = load_rubric("correctness");
    struct rubric_sample s = {.input = "What is the capital of France?",
                              .output = "The capital of France is Paris.",
                              .reference = "Paris."};
    char *body = judge_body(r, &s, false);
    struct http_response resp;
    send_body(&c, &e, body, &resp);
    CHECK_INT_EQ(resp.status, 200);
    CHECK_STR_EQ(http_response_header(&resp, "Content-Type"), "application/json");
    CHECK(http_response_header(&resp, "x-amzn-RequestId") != NULL);
    json_t *j = json_loads(buf_cstr(&resp.body), 0, NULL);
    REQUIRE(j != NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "stopReason")), "tool_use");
    json_t *tu = json_object_get(
        json_array_get(
            json_object_get(json_object_get(json_object_get(j, "output"), "message"), "content"),
            0),
        "toolUse");
    CHECK_STR_EQ(json_string_value(json_object_get(tu, "name")), "submit_verdict");
    json_t *score = json_object_get(json_object_get(tu, "input"), "score");
    CHECK(json_is_integer(score)); /* the rubric's scale is integer */
    CHECK(json_integer_value(score) >= 1 && json_integer_value(score) <= 5);
    json_t *usage = json_object_get(j, "usage");
    CHECK(json_integer_value(json_object_get(usage, "inputTokens")) > 0);
    CHECK(json_integer_value(json_object_get(usage, "outputTokens")) > 0);
    CHECK(json_integer_value(json_object_get(usage, "cacheWriteInputTokens")) > 0);
    CHECK(json_is_integer(json_object_get(json_object_get(j, "metrics"), "latencyMs")));
    json_decref(j);
    http_response_clear(&resp);

    /* The same rubric again: its system prompt is read from the cache. */
    send_body(&c, &e, body, &resp);
    struct verdict v;
    verdict_init(&v);
    CHECK_INT_EQ(verdict_parse(r, buf_cstr(&resp.body), resp.body.len, &v), ASSAY_OK);
    CHECK_INT_EQ(v.outcome, VERDICT_SCORED);
    CHECK(v.usage.cache_read_input_tokens > 0);
    CHECK_INT_EQ(v.usage.cache_write_input_tokens, 0);
    verdict_clear(&v);
    http_response_clear(&resp);
    free(body);

    /* The text fallback ends in the rubric's "SCORE: n" line, which it parses. */
    body = judge_body(r, &s, true);
    send_body(&c, &e, body, &resp);
    verdict_init(&v);
    CHECK_INT_EQ(verdict_parse(r, buf_cstr(&resp.body), resp.body.len, &v), ASSAY_OK);
    CHECK_INT_EQ(v.outcome, VERDICT_SCORED);
    CHECK(strstr(buf_cstr(&resp.body), "SCORE: ") != NULL);
    verdict_clear(&v);
    http_response_clear(&resp);
    free(body);

    /* A plain prompt (a golden-set target call) gets a text answer. */
    send_body(&c, &e, plain_body, &resp);
    CHECK_INT_EQ(resp.status, 200);
    CHECK(strstr(buf_cstr(&resp.body), "\"stopReason\":\"end_turn\"") != NULL);
    http_response_clear(&resp);

    rubric_free(r);
    client_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"status\":200"), 4);
}

TEST_CASE(model_id_escaping)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct client c;
    client_init(&c, AKID, SECRET, 0);
    struct http_response resp;
    /* An inference-profile ARN as one segment; ':' raw and as %3A. */
    send_with(&c, &e,
              "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic."
              "claude-3-haiku-20240307-v1%3A0",
              plain_body, NULL, &resp);
    CHECK_INT_EQ(resp.status, 200);
    http_response_clear(&resp);
    send_with(&c, &e, "anthropic.claude-3-haiku-20240307-v1:0", plain_body, NULL, &resp);
    CHECK_INT_EQ(resp.status, 200);
    http_response_clear(&resp);
    /* A raw '/' is another path, not a model id. */
    send_with(&c, &e, "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x", plain_body,
              NULL, &resp);
    CHECK_INT_EQ(resp.status, 404);
    http_response_clear(&resp);
    client_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "inference-profile/us.anthropic.claude-3-haiku"), 1);
}

TEST_CASE(wrong_secret)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct client c;
    client_init(&c, AKID, "not-the-secret", 0);
    struct http_response resp;
    send_body(&c, &e, plain_body, &resp);
    char code[64];
    CHECK_INT_EQ(resp.status, 403);
    error_code(&resp, code, sizeof code);
    CHECK_STR_EQ(code, "SignatureDoesNotMatch");
    CHECK_STR_EQ(http_response_header(&resp, "x-amzn-ErrorType"), "SignatureDoesNotMatch");
    CHECK(strstr(buf_cstr(&resp.body), "\"message\"") != NULL);
    http_response_clear(&resp);
    client_clear(&c);

    client_init(&c, "AKIDUNKNOWN", SECRET, 0);
    send_body(&c, &e, plain_body, &resp);
    CHECK_INT_EQ(resp.status, 403);
    error_code(&resp, code, sizeof code);
    CHECK_STR_EQ(code, "UnrecognizedClientException");
    http_response_clear(&resp);
    client_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
}

TEST_CASE(wrong_scope)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    static const struct {
        const char *region, *service, *message_part;
    } cases[] = {
        {"eu-west-1", "bedrock", "scoped to a valid region, not 'eu-west-1'"},
        {"us-east-1", "monitoring", "scoped to correct service: 'bedrock'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct client c;
        client_init_scoped(&c, AKID, SECRET, 0, cases[i].region, cases[i].service);
        struct http_response resp;
        send_body(&c, &e, plain_body, &resp);
        char code[64];
        error_code(&resp, code, sizeof code);
        CHECK_INT_EQ(resp.status, 403);
        CHECK_STR_EQ(code, "SignatureDoesNotMatch");
        if (!strstr(buf_cstr(&resp.body), cases[i].message_part))
            CHECK_STR_EQ(buf_cstr(&resp.body), cases[i].message_part);
        http_response_clear(&resp);
        client_clear(&c);
    }
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
}

TEST_CASE(bad_scenario_refused)
{
    struct emulator_proc e;
    /* Unknown keys, rates out of range, exclusive rates above 1: it never listens. */
    CHECK_INT_EQ(emulator_proc_start(&e, "{\"default\": {\"throttle\": 0.5}}", 0), -1);
    CHECK_INT_EQ(emulator_proc_start(&e, "{\"default\": {\"throttle_rate\": 1.5}}", 0), -1);
    CHECK_INT_EQ(emulator_proc_start(&e,
                                     "{\"models\": {\"m\": {\"throttle_rate\": 0.6, "
                                     "\"error_rate\": 0.6}}}",
                                     0),
                 -1);
    CHECK_INT_EQ(emulator_proc_start(&e, "{\"default\": {\"malformed\": [\"odd\"]}}", 0), -1);
    CHECK_INT_EQ(emulator_proc_start(&e, "not json", 0), -1);
}

TEST_CASE(unsigned_request)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct http_transport *t = http_transport_new(NULL, NULL);
    REQUIRE(t != NULL);
    struct buf url = BUF_INIT;
    buf_appendf(&url, "%s/model/%s/converse", e.url, MODEL_PATH);
    struct http_request req;
    http_request_init(&req, "POST", buf_cstr(&url));
    buf_append_str(&req.body, plain_body);
    struct http_response resp;
    http_response_init(&resp);
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 403);
    char code[64];
    error_code(&resp, code, sizeof code);
    CHECK_STR_EQ(code, "MissingAuthenticationToken");
    http_response_clear(&resp);
    http_request_clear(&req);
    buf_clear(&url);
    http_transport_free(t);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
}

TEST_CASE(stale_date_refused_then_corrected)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct client c;
    client_init(&c, AKID, SECRET, -10 * 60 * 1000); /* this client's clock is 10 min slow */
    struct http_response resp;
    send_body(&c, &e, plain_body, &resp);
    /* Refused once with InvalidSignatureException and a Date header, then re-signed. */
    CHECK_INT_EQ(resp.status, 200);
    CHECK_INT_EQ(resp.attempts, 2);
    int64_t skew = http_transport_skew_ms(c.t);
    CHECK(skew > 9 * 60 * 1000 && skew < 11 * 60 * 1000);
    http_response_clear(&resp);
    /* Later requests use the learned offset from the start. */
    send_body(&c, &e, plain_body, &resp);
    CHECK_INT_EQ(resp.status, 200);
    CHECK_INT_EQ(resp.attempts, 1);
    http_response_clear(&resp);
    client_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"error\":\"InvalidSignatureException\""), 1);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"status\":200"), 2);
}

/* Signs, then changes the body: the signed x-amz-content-sha256 no longer matches. */
static enum assay_err sign_then_tamper(void *ctx, struct http_request *req, int64_t now_ms,
                                       char *errbuf)
{
    enum assay_err err = signer_sign(ctx, req, now_ms, errbuf);
    if (err == ASSAY_OK && req->body.len > 20)
        req->body.data[req->body.len - 8] ^= 1; /* inside the text */
    return err;
}

/* Signs, then replaces the x-amz-content-sha256 header with another body's hash. */
static enum assay_err sign_then_swap_hash(void *ctx, struct http_request *req, int64_t now_ms,
                                          char *errbuf)
{
    enum assay_err err = signer_sign(ctx, req, now_ms, errbuf);
    if (err == ASSAY_OK)
        http_request_header_set(req, "X-Amz-Content-SHA256", SIGV4_EMPTY_SHA256);
    return err;
}

TEST_CASE(tampered_body_hash)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct client c;
    client_init(&c, AKID, SECRET, 0);
    struct http_response resp;
    char code[64];
    send_with(&c, &e, MODEL_PATH, plain_body, sign_then_tamper, &resp);
    CHECK_INT_EQ(resp.status, 403);
    error_code(&resp, code, sizeof code);
    CHECK_STR_EQ(code, "SignatureDoesNotMatch");
    CHECK(strstr(buf_cstr(&resp.body), "x-amz-content-sha256") != NULL);
    http_response_clear(&resp);
    send_with(&c, &e, MODEL_PATH, plain_body, sign_then_swap_hash, &resp);
    CHECK_INT_EQ(resp.status, 403);
    error_code(&resp, code, sizeof code);
    CHECK_STR_EQ(code, "SignatureDoesNotMatch");
    http_response_clear(&resp);
    client_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
}

TEST_CASE(bad_shapes)
{
    static const struct {
        const char *body;
        const char *message_part;
    } cases[] = {
        {"{", "Malformed input request"},
        {"[]", "JSON object"},
        {"{}", "'messages'"},
        {"{\"messages\":[]}", "must start with a user message"},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":[{\"text\":\"hi\"}]}]}",
         "must start with a user message"},
        {"{\"messages\":[{\"role\":\"robot\",\"content\":[{\"text\":\"hi\"}]}]}",
         "[user, assistant]"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]},"
         "{\"role\":\"user\",\"content\":[{\"text\":\"b\"}]}]}",
         "alternate"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[]}]}", "content field"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"  \"}]}]}", "blank"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\",\"image\":{}}]}]}",
         "exactly one member"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}],"
         "\"inferenceConfig\":{\"temperature\":1.5}}",
         "less than or equal to 1"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}],"
         "\"inferenceConfig\":{\"maxTokens\":0}}",
         "greater than or equal to 1"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}],"
         "\"inferenceConfig\":{\"topP\":-0.1}}",
         "greater than or equal to 0"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}],"
         "\"toolConfig\":{\"tools\":[]}}",
         "toolConfig.tools"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}],"
         "\"toolConfig\":{\"tools\":[{\"toolSpec\":{\"name\":\"t\",\"inputSchema\":{\"json\":"
         "{\"type\":\"object\"}}}}],\"toolChoice\":{\"tool\":{\"name\":\"other\"}}}}",
         "toolChoice.tool.name"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}],"
         "\"toolConfig\":{\"tools\":[{\"toolSpec\":{\"name\":\"bad name\",\"inputSchema\":"
         "{\"json\":{}}}}]}}",
         "regular expression"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"toolResult\":{\"toolUseId\":\"x\","
         "\"content\":[]}}]}]}",
         "toolConfig field must be defined"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}],"
         "\"system\":[{\"cachePoint\":{\"type\":\"forever\"}}]}",
         "[default]"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}],\"extra\":1}",
         "Unknown member"},
    };
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct client c;
    client_init(&c, AKID, SECRET, 0);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct http_response resp;
        send_body(&c, &e, cases[i].body, &resp);
        char code[64];
        error_code(&resp, code, sizeof code);
        CHECK_INT_EQ(resp.status, 400);
        CHECK_STR_EQ(code, "ValidationException");
        if (!strstr(buf_cstr(&resp.body), cases[i].message_part))
            CHECK_STR_EQ(buf_cstr(&resp.body), cases[i].message_part);
        http_response_clear(&resp);
    }
    client_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
}

struct tally {
    int ok, throttled, not_ready, server, malformed, other;
    char statuses[256];
};

/* n judge calls through a fresh emulator; the outcome of each, in order. */
static void run_scenario(const char *scenario, uint64_t seed, int n, struct tally *t,
                         struct emulator_proc *e_out)
{
    memset(t, 0, sizeof *t);
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, scenario, seed), 0);
    struct client c;
    client_init(&c, AKID, SECRET, 0);
    struct rubric *r = load_rubric("correctness");
    struct rubric_sample s = {.input = "What is the capital of France?",
                              .output = "Paris.",
                              .reference = "Paris is the capital."};
    char *body = judge_body(r, &s, false);
    for (int i = 0; i < n; i++) {
        struct http_response resp;
        send_body(&c, &e, body, &resp);
        char code[64];
        error_code(&resp, code, sizeof code);
        char mark = '?';
        if (resp.status == 200) {
            struct verdict v;
            verdict_init(&v);
            verdict_parse(r, buf_cstr(&resp.body), resp.body.len, &v);
            if (v.outcome == VERDICT_SCORED) {
                t->ok++;
                mark = '.';
            } else {
                t->malformed++;
                mark = 'm';
            }
            verdict_clear(&v);
        } else if (resp.status == 429 && strcmp(code, "ThrottlingException") == 0) {
            t->throttled++;
            mark = 't';
        } else if (resp.status == 429 && strcmp(code, "ModelNotReadyException") == 0) {
            t->not_ready++;
            mark = 'n';
        } else if ((resp.status == 500 && strcmp(code, "InternalServerException") == 0) ||
                   (resp.status == 503 && strcmp(code, "ServiceUnavailableException") == 0)) {
            t->server++;
            mark = 's';
        } else {
            t->other++;
        }
        if (i < (int)sizeof t->statuses - 1)
            t->statuses[i] = mark;
        http_response_clear(&resp);
    }
    free(body);
    rubric_free(r);
    client_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    *e_out = e;
}

TEST_CASE(scenario_rates)
{
    static const char scenario[] =
        "{\"seed\": 42, \"default\": {\"throttle_rate\": 0.3, \"error_rate\": 0.1, "
        "\"not_ready_rate\": 0.05, \"malformed_rate\": 0.1, \"latency_ms\": 1, \"jitter_ms\": 3}}";
    struct tally a, b, c;
    struct emulator_proc e;
    run_scenario(scenario, 0, 200, &a, &e);
    printf("seed 42: ok %d, throttled %d, not ready %d, 5xx %d, malformed %d\n", a.ok, a.throttled,
           a.not_ready, a.server, a.malformed);
    CHECK_INT_EQ(a.ok + a.throttled + a.not_ready + a.server + a.malformed, 200);
    CHECK_INT_EQ(a.other, 0);
    /* Binomial bounds, about 4 standard deviations wide. */
    CHECK(a.throttled >= 35 && a.throttled <= 85);
    CHECK(a.server >= 6 && a.server <= 36);
    CHECK(a.not_ready >= 1 && a.not_ready <= 22);
    CHECK(a.malformed >= 3 && a.malformed <= 28);
    /* The request log agrees with what the client saw. */
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"error\":\"ThrottlingException\""), a.throttled);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"operation\":\"Converse\""), 200);
    /* Seeded: the same seed and order give exactly the same outcomes. */
    run_scenario(scenario, 0, 200, &b, &e);
    CHECK_STR_EQ(b.statuses, a.statuses);
    /* --seed overrides the file's seed: another sequence. */
    run_scenario(scenario, 7, 200, &c, &e);
    CHECK(strcmp(c.statuses, a.statuses) != 0);
}

TEST_CASE(malformed_kinds)
{
    static const char scenario[] =
        "{\"models\": {"
        "\"no-tool\": {\"malformed_rate\": 1, \"malformed\": [\"no_tool_use\"]},"
        "\"out-of-range\": {\"malformed_rate\": 1, \"malformed\": [\"score_out_of_range\"]},"
        "\"truncated\": {\"malformed_rate\": 1, \"malformed\": [\"truncated_json\"]},"
        "\"wrong-name\": {\"malformed_rate\": 1, \"malformed\": [\"wrong_tool_name\"]},"
        "\"max-tokens\": {\"max_tokens_rate\": 1},"
        "\"no-forced-tools\": {\"refuse_forced_tools\": true},"
        "\"slow\": {\"timeout_rate\": 1, \"timeout_ms\": 300},"
        "\"gone\": {\"not_found\": true},"
        "\"denied\": {\"access_denied\": true}}}";
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, scenario, 0), 0);
    struct client c;
    client_init(&c, AKID, SECRET, 0);
    struct rubric *r = load_rubric("correctness");
    struct rubric_sample s = {
        .input = "Capital of France?", .output = "Paris.", .reference = "Paris."};
    char *body = judge_body(r, &s, false);
    static const struct {
        const char *model;
        int status;
        const char *code;              /* error code, or NULL for 200 */
        const char *unscorable_reason; /* for 200: NULL means scored */
    } cases[] = {
        {"no-tool", 200, NULL, "*"},
        {"out-of-range", 200, NULL, "*"},
        {"truncated", 200, NULL, "*"},
        {"wrong-name", 200, NULL, "*"},
        {"max-tokens", 200, NULL, "max_tokens"},
        {"no-forced-tools", 400, "ValidationException", NULL},
        {"slow", 408, "ModelTimeoutException", NULL},
        {"gone", 404, "ResourceNotFoundException", NULL},
        {"denied", 403, "AccessDeniedException", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct http_response resp;
        int64_t start = clock_mono_ms(NULL);
        send_with(&c, &e, cases[i].model, body, NULL, &resp);
        int64_t took = clock_mono_ms(NULL) - start;
        CHECK_INT_EQ(resp.status, cases[i].status);
        if (cases[i].code) {
            char code[64];
            error_code(&resp, code, sizeof code);
            CHECK_STR_EQ(code, cases[i].code);
        } else {
            struct verdict v;
            verdict_init(&v);
            verdict_parse(r, buf_cstr(&resp.body), resp.body.len, &v);
            CHECK_INT_EQ(v.outcome, VERDICT_UNSCORABLE);
            if (strcmp(cases[i].unscorable_reason, "*") != 0)
                CHECK_STR_EQ(v.reason, cases[i].unscorable_reason);
            verdict_clear(&v);
        }
        if (strcmp(cases[i].model, "slow") == 0)
            CHECK(took >= 300);
        http_response_clear(&resp);
    }
    /* The text fallback works where forced tools are refused. */
    free(body);
    body = judge_body(r, &s, true);
    struct http_response resp;
    send_with(&c, &e, "no-forced-tools", body, NULL, &resp);
    CHECK_INT_EQ(resp.status, 200);
    http_response_clear(&resp);
    /* A maxTokens budget too small for the verdict stops at max_tokens. */
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    json_object_set_new(json_object_get(j, "inferenceConfig"), "maxTokens", json_integer(3));
    body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    send_body(&c, &e, body, &resp);
    CHECK(strstr(buf_cstr(&resp.body), "\"stopReason\":\"max_tokens\"") != NULL);
    http_response_clear(&resp);
    free(body);
    rubric_free(r);
    client_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
}

TEST_CASE(better_answers_score_higher)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct client c;
    client_init(&c, AKID, SECRET, 0);
    struct rubric *r = load_rubric("correctness");
    double full = judge_once(&c, &e, r,
                             "Paris is the capital of France, and the Seine runs "
                             "through Paris.");
    double partial = judge_once(&c, &e, r, "The capital of France is Paris.");
    double wrong = judge_once(&c, &e, r, "Lyon is the biggest city of Germany, on the Rhine.");
    double refusal = judge_once(&c, &e, r, "I'm sorry, but I cannot help with that request.");
    double empty = judge_once(&c, &e, r, " ");
    printf("full %.2f partial %.2f wrong %.2f refusal %.2f empty %.2f\n", full, partial, wrong,
           refusal, empty);
    CHECK(full > partial);
    CHECK(partial > wrong);
    CHECK(wrong >= refusal);
    CHECK(refusal >= empty);
    CHECK_NEAR(empty, 0.0, 1e-9);
    /* Deterministic: the same answer, the same score. */
    CHECK_NEAR(judge_once(&c, &e, r, "The capital of France is Paris."), partial, 1e-12);
    rubric_free(r);
    client_clear(&c);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
}

static void count_done(void *ctx, enum assay_err err, struct http_request *req,
                       struct http_response *resp)
{
    (void)req;
    atomic_int *n = ctx;
    if (err == ASSAY_OK && resp->status == 200)
        atomic_fetch_add(n, 1);
    else
        atomic_fetch_add(n, 1000000); /* any failure shows in the count */
}

TEST_CASE(many_in_flight)
{
    enum { N = 300 };
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, "{\"default\": {\"latency_ms\": 400}}", 0), 0);
    struct client c;
    client_init(&c, AKID, SECRET, 0);
    struct buf url = BUF_INIT;
    buf_appendf(&url, "%s/model/%s/converse", e.url, MODEL_PATH);
    struct http_request *reqs = xcalloc(N, sizeof *reqs);
    struct http_response *resps = xcalloc(N, sizeof *resps);
    atomic_int done = 0;
    int64_t start = clock_mono_ms(NULL);
    for (int i = 0; i < N; i++) {
        http_request_init(&reqs[i], "POST", buf_cstr(&url));
        buf_append_str(&reqs[i].body, plain_body);
        signer_attach(c.signer, &reqs[i]);
        http_response_init(&resps[i]);
        REQUIRE_INT_EQ(http_transport_submit(c.t, &reqs[i], &resps[i], count_done, &done),
                       ASSAY_OK);
    }
    for (int i = 0; i < 600 && atomic_load(&done) < N; i++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    int64_t took = clock_mono_ms(NULL) - start;
    printf("%d calls held 400 ms each answered in %lld ms\n", N, (long long)took);
    CHECK_INT_EQ(atomic_load(&done), N);
    CHECK(took < 15000); /* one after another would take 120 s */
    client_clear(&c);    /* frees the transport: no callback runs after this */
    for (int i = 0; i < N; i++) {
        http_request_clear(&reqs[i]);
        http_response_clear(&resps[i]);
    }
    free(reqs);
    free(resps);
    buf_clear(&url);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"status\":200"), N);
}
