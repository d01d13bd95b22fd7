/*
 * Unit tests for judges/llm and the judges/judge dispatcher: the LLM judge
 * against a fake Converse server whose answers are scripted per request
 * (tool verdicts, garbage, max_tokens stops, refusals of forced tools,
 * throttling), and rule / reference rubrics through the same entry point.
 */
#include "aws/bedrock.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "judges/judge.h"
#include "judges/llm.h"
#include "judges/redact.h"
#include "judges/rubric.h"
#include "tests/support/fake_server.h"
#include "tests/support/sigv4_verify.h"
#include "tests/unit/test.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define JUDGE_MODEL "anthropic.claude-3-5-haiku-20241022-v1:0"
#define MAX_REQ 32

enum reply {
    REPLY_TOOL,    /* submit_verdict with the next score */
    REPLY_GARBAGE, /* 200, not JSON */
    REPLY_OUT_OF_RANGE /* submit_verdict with 9.2e+124 */,
    REPLY_MAX_TOKENS,   /* stopReason max_tokens, no content */
    REPLY_REFUSE_TOOLS, /* 400 ValidationException when tools are forced, else text */
    REPLY_THROTTLE,     /* 429 ThrottlingException */
    REPLY_GUARDRAIL     /* stopReason guardrail_intervened */
};

struct seen {
    int has_tools;
    int max_tokens;
    char token[40]; /* the boundary token */
    int has_email;  /* the raw e-mail address reached the server */
    int has_placeholder;
    char model_path[256];
};

struct peer {
    pthread_mutex_t mu;
    enum reply script[16];
    int n_script;
    double scores[16];
    int n_scores, next_score;
    int hits, verified;
    int sleep_ms; /* hold every answer this long */
    struct seen seen[MAX_REQ];
};

static void boundary_token(const char *text, char out[40])
{
    out[0] = '\0';
    const char *p = strstr(text, "boundary token of this request is ");
    if (p)
        sscanf(p + strlen("boundary token of this request is "), "%32[0-9a-f]", out);
}

static void peer_handler(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct peer *p = ctx;
    struct sigv4_verify_key key = {AKID, SECRET, "us-east-1", "bedrock"};
    char code[64], message[256];
    int good = sigv4_verify(req, &key, clock_now_ms(NULL), code, sizeof code, message,
                            sizeof message) == 0;
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    pthread_mutex_lock(&p->mu);
    int i = p->hits++;
    p->verified += good;
    enum reply r = p->script[i < p->n_script ? i : p->n_script - 1];
    struct seen *s = i < MAX_REQ ? &p->seen[i] : NULL;
    double score = p->n_scores ? p->scores[p->next_score++ % p->n_scores] : 4;
    if (s) {
        s->has_tools = json_object_get(body, "toolConfig") != NULL;
        s->max_tokens = (int)json_integer_value(
            json_object_get(json_object_get(body, "inferenceConfig"), "maxTokens"));
        json_t *msg = json_array_get(json_object_get(body, "messages"), 0);
        const char *text = json_string_value(
            json_object_get(json_array_get(json_object_get(msg, "content"), 0), "text"));
        if (text) {
            boundary_token(text, s->token);
            s->has_email = strstr(text, "jane.doe@example.com") != NULL;
            s->has_placeholder = strstr(text, "[EMAIL]") != NULL;
        }
        snprintf(s->model_path, sizeof s->model_path, "%s", req->uri);
    }
    pthread_mutex_unlock(&p->mu);
    int forced = json_object_get(body, "toolConfig") != NULL;
    int hold = p->sleep_ms;
    json_decref(body);
    if (hold > 0) {
        struct timespec ts = {hold / 1000, (long)(hold % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    fake_response_header(resp, "Content-Type", "application/json");
    if (!good) {
        fake_response_header(resp, "x-amzn-ErrorType", code);
        fake_response_text(resp, 403, "{\"message\":\"bad signature\"}");
        return;
    }
    char out[1024];
    const char *usage = "\"usage\":{\"inputTokens\":100,\"outputTokens\":20,\"totalTokens\":120,"
                        "\"cacheReadInputTokens\":50,\"cacheWriteInputTokens\":5},"
                        "\"metrics\":{\"latencyMs\":30}";
    switch (r) {
    case REPLY_TOOL:
    case REPLY_OUT_OF_RANGE:
        snprintf(out, sizeof out,
                 "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"toolUse\":{"
                 "\"toolUseId\":\"t1\",\"name\":\"submit_verdict\",\"input\":{\"reasoning\":"
                 "\"Clear and correct.\",\"score\":%s}}}]}},\"stopReason\":\"tool_use\",%s}",
                 r == REPLY_TOOL ? (score == 2   ? "2"
                                    : score == 5 ? "5"
                                                 : "4")
                                 : "9.2e+124",
                 usage);
        fake_response_text(resp, 200, out);
        break;
    case REPLY_GARBAGE:
        fake_response_text(resp, 200, "{\"output\": {\"message\": tr");
        break;
    case REPLY_MAX_TOKENS:
        snprintf(out, sizeof out,
                 "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":"
                 "\"The answer\"}]}},\"stopReason\":\"max_tokens\",%s}",
                 usage);
        fake_response_text(resp, 200, out);
        break;
    case REPLY_REFUSE_TOOLS:
        if (forced) {
            fake_response_header(resp, "x-amzn-ErrorType", "ValidationException");
            fake_response_text(resp, 400,
                               "{\"message\":\"This model doesn't support the "
                               "toolConfig.toolChoice.tool field. Remove "
                               "toolConfig.toolChoice.tool and try again.\"}");
        } else {
            snprintf(out, sizeof out,
                     "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":"
                     "\"The answer is accurate and direct.\\nSCORE: 5\"}]}},\"stopReason\":"
                     "\"end_turn\",%s}",
                     usage);
            fake_response_text(resp, 200, out);
        }
        break;
    case REPLY_THROTTLE:
        fake_response_header(resp, "x-amzn-ErrorType", "ThrottlingException");
        fake_response_text(resp, 429, "{\"message\":\"Too many requests, please wait.\"}");
        break;
    case REPLY_GUARDRAIL:
        snprintf(out, sizeof out,
                 "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":"
                 "\"blocked\"}]}},\"stopReason\":\"guardrail_intervened\",%s}",
                 usage);
        fake_response_text(resp, 200, out);
        break;
    }
}

struct rig {
    struct peer p;
    struct fake_server *server;
    struct http_transport *t;
    struct creds_provider *creds;
    struct bedrock_client *b;
    struct llm_judge *llm;
    struct judge_runner *runner;
    struct rubric_registry *reg;
};

static void rig_start(struct rig *r)
{
    pthread_mutex_init(&r->p.mu, NULL);
    if (!r->p.n_script)
        r->p.script[r->p.n_script++] = REPLY_TOOL;
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
    struct bedrock_options bo = {.transport = r->t,
                                 .creds = r->creds,
                                 .region = "us-east-1",
                                 .endpoint = fake_server_url(r->server),
                                 .seed = 7};
    retry_policy_init(&bo.retry);
    bo.retry.max_attempts = 3;
    bo.retry.base_ms = 1;
    bo.retry.throttle_base_ms = 2;
    bo.retry.max_backoff_ms = 10;
    r->b = bedrock_client_new(&bo, NULL);
    REQUIRE(r->b != NULL);
    struct llm_judge_options lo = {.bedrock = r->b, .model_id = JUDGE_MODEL};
    r->llm = llm_judge_new(&lo, NULL);
    REQUIRE(r->llm != NULL);
    r->runner = judge_runner_new(r->llm, NULL);
    char path[1024];
    snprintf(path, sizeof path, "%s/rubrics", test_source_dir());
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = rubric_registry_load(path, &r->reg, errbuf);
    if (err)
        fprintf(stderr, "%s\n", errbuf);
    REQUIRE_INT_EQ(err, ASSAY_OK);
}

static void rig_stop(struct rig *r)
{
    bedrock_client_free(r->b);
    judge_runner_free(r->runner);
    llm_judge_free(r->llm);
    http_transport_free(r->t);
    creds_provider_free(r->creds);
    fake_server_stop(r->server);
    rubric_registry_free(r->reg);
    pthread_mutex_destroy(&r->p.mu);
}

struct got {
    atomic_int done;
    enum assay_err err;
    struct verdict v;
};

static void keep(void *ctx, enum assay_err err, struct verdict *v)
{
    struct got *g = ctx;
    g->err = err;
    g->v = *v;
    verdict_init(v);
    atomic_store(&g->done, 1);
}

static void wait_got(struct got *g)
{
    for (int i = 0; i < 1000 && !atomic_load(&g->done); i++) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    REQUIRE(atomic_load(&g->done));
}

static const struct rubric_sample SAMPLE = {
    .input = "How do I reset my password? Mail me at jane.doe@example.com",
    .output = "Open Settings, choose Security, then Reset password.",
    .context = "Passwords are reset under Settings > Security.",
    .reference = "Go to Settings > Security > Reset password."};

static void judge(struct rig *r, const struct rubric *rb, const struct redact_set *red,
                  struct got *g)
{
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = judge_run(r->runner, rb, &SAMPLE, red, keep, g, errbuf);
    if (err)
        fprintf(stderr, "judge_run: %s\n", errbuf);
    REQUIRE_INT_EQ(err, ASSAY_OK);
    wait_got(g);
}

static const struct rubric *find(struct rig *r, const char *name)
{
    const struct rubric *rb = rubric_registry_find(r->reg, name);
    REQUIRE(rb != NULL);
    return rb;
}

TEST_CASE(tool_verdict)
{
    struct rig r = {0};
    rig_start(&r);
    const struct rubric *rb = find(&r, "helpfulness");
    struct got g = {0};
    judge(&r, rb, NULL, &g);
    CHECK_INT_EQ(g.err, ASSAY_OK);
    CHECK_INT_EQ(g.v.outcome, VERDICT_SCORED);
    CHECK_NEAR(g.v.raw_score, 4, 0);
    CHECK_NEAR(g.v.score, 0.75, 1e-12);
    CHECK(g.v.pass);
    CHECK_STR_EQ(g.v.reasoning, "Clear and correct.");
    CHECK_STR_EQ(g.v.judge, JUDGE_MODEL);
    CHECK_STR_EQ(g.v.rubric, "helpfulness");
    CHECK_STR_EQ(g.v.rubric_version, rb->version);
    CHECK_INT_EQ(g.v.attempts, 1);
    CHECK_INT_EQ(g.v.usage.input_tokens, 100);
    CHECK_INT_EQ(g.v.usage.output_tokens, 20);
    CHECK_INT_EQ(g.v.usage.cache_read_input_tokens, 50);
    CHECK_INT_EQ(g.v.usage.cache_write_input_tokens, 5);
    CHECK_INT_EQ(g.v.latency_ms, 30);
    CHECK(g.v.elapsed_ms >= 0);
    CHECK_INT_EQ(r.p.verified, 1);
    CHECK(r.p.seen[0].has_tools);
    CHECK(r.p.seen[0].has_email); /* no redaction configured */
    CHECK_STR_EQ(r.p.seen[0].model_path,
                 "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse");
    json_t *j = verdict_to_json(&g.v);
    CHECK(json_is_false(json_object_get(j, "unscorable")));
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "attempts")), 1);
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "input_tokens")), 100);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "judge")), JUDGE_MODEL);
    json_decref(j);
    verdict_clear(&g.v);
    rig_stop(&r);
}

TEST_CASE(redacted_before_sending)
{
    struct rig r = {0};
    rig_start(&r);
    struct redact_set *red = NULL;
    REQUIRE_INT_EQ(redact_set_new(NULL, &red, NULL), ASSAY_OK);
    struct got g = {0};
    judge(&r, find(&r, "helpfulness"), red, &g);
    CHECK_INT_EQ(g.v.outcome, VERDICT_SCORED);
    CHECK(!r.p.seen[0].has_email);
    CHECK(r.p.seen[0].has_placeholder);
    verdict_clear(&g.v);
    /* the pii-leak rule, through the same entry point, sees the raw text */
    const struct rubric *pii = rubric_registry_find(r.reg, "pii-leak");
    if (pii) {
        struct rubric_sample leaky = SAMPLE;
        leaky.output = "Write to jane.doe@example.com for help.";
        struct got g2 = {0};
        REQUIRE_INT_EQ(judge_run(r.runner, pii, &leaky, red, keep, &g2, NULL), ASSAY_OK);
        REQUIRE(atomic_load(&g2.done)); /* local: before judge_run returns */
        CHECK_INT_EQ(g2.v.outcome, VERDICT_SCORED);
        CHECK(!g2.v.pass);
        CHECK_INT_EQ(r.p.hits, 1); /* no Bedrock call */
        verdict_clear(&g2.v);
    }
    redact_set_free(red);
    rig_stop(&r);
}

TEST_CASE(garbage_retried_once_then_unscorable)
{
    struct rig r = {0};
    r.p.script[0] = REPLY_GARBAGE;
    r.p.n_script = 1;
    rig_start(&r);
    struct got g = {0};
    judge(&r, find(&r, "helpfulness"), NULL, &g);
    CHECK_INT_EQ(g.err, ASSAY_OK);
    CHECK_INT_EQ(g.v.outcome, VERDICT_UNSCORABLE);
    CHECK_STR_EQ(g.v.reason, "unparseable_response");
    CHECK_INT_EQ(r.p.hits, 2);
    CHECK_INT_EQ(g.v.attempts, 2);
    /* the re-ask is a fresh render: a new boundary token */
    CHECK(r.p.seen[0].token[0] && r.p.seen[1].token[0]);
    CHECK(strcmp(r.p.seen[0].token, r.p.seen[1].token) != 0);
    json_t *j = verdict_to_json(&g.v);
    CHECK(json_is_true(json_object_get(j, "unscorable")));
    CHECK_STR_EQ(json_string_value(json_object_get(j, "reason")), "unparseable_response");
    CHECK(json_object_get(j, "score") == NULL);
    json_decref(j);
    verdict_clear(&g.v);
    rig_stop(&r);
}

TEST_CASE(out_of_range_then_good)
{
    struct rig r = {0};
    r.p.script[0] = REPLY_OUT_OF_RANGE;
    r.p.script[1] = REPLY_TOOL;
    r.p.n_script = 2;
    rig_start(&r);
    struct got g = {0};
    judge(&r, find(&r, "helpfulness"), NULL, &g);
    CHECK_INT_EQ(g.v.outcome, VERDICT_SCORED);
    CHECK_NEAR(g.v.raw_score, 4, 0);
    CHECK_INT_EQ(g.v.attempts, 2);
    /* both answers were paid for */
    CHECK_INT_EQ(g.v.usage.input_tokens, 200);
    CHECK_INT_EQ(g.v.usage.output_tokens, 40);
    CHECK_INT_EQ(g.v.usage.cache_read_input_tokens, 100);
    CHECK_INT_EQ(g.v.usage.cache_write_input_tokens, 10);
    verdict_clear(&g.v);
    rig_stop(&r);
}

TEST_CASE(max_tokens_larger_budget)
{
    struct rig r = {0};
    r.p.script[0] = REPLY_MAX_TOKENS;
    r.p.script[1] = REPLY_TOOL;
    r.p.n_script = 2;
    rig_start(&r);
    const struct rubric *rb = find(&r, "helpfulness");
    struct got g = {0};
    judge(&r, rb, NULL, &g);
    CHECK_INT_EQ(g.v.outcome, VERDICT_SCORED);
    REQUIRE_INT_EQ(r.p.hits, 2);
    CHECK_INT_EQ(r.p.seen[0].max_tokens, rb->max_tokens);
    CHECK_INT_EQ(r.p.seen[1].max_tokens, rb->max_tokens * LLM_BUDGET_FACTOR_DEFAULT);
    verdict_clear(&g.v);
    rig_stop(&r);
}

TEST_CASE(max_tokens_twice_unscorable)
{
    struct rig r = {0};
    r.p.script[0] = REPLY_MAX_TOKENS;
    r.p.n_script = 1;
    rig_start(&r);
    struct got g = {0};
    judge(&r, find(&r, "helpfulness"), NULL, &g);
    CHECK_INT_EQ(g.v.outcome, VERDICT_UNSCORABLE);
    CHECK_STR_EQ(g.v.reason, "max_tokens");
    CHECK_INT_EQ(r.p.hits, 2);
    verdict_clear(&g.v);
    rig_stop(&r);
}

TEST_CASE(guardrail_not_retried)
{
    struct rig r = {0};
    r.p.script[0] = REPLY_GUARDRAIL;
    r.p.n_script = 1;
    rig_start(&r);
    struct got g = {0};
    judge(&r, find(&r, "helpfulness"), NULL, &g);
    CHECK_INT_EQ(g.v.outcome, VERDICT_UNSCORABLE);
    CHECK_STR_EQ(g.v.reason, "guardrail_intervened");
    CHECK_INT_EQ(r.p.hits, 1);
    verdict_clear(&g.v);
    rig_stop(&r);
}

TEST_CASE(text_fallback_when_tools_refused)
{
    struct rig r = {0};
    r.p.script[0] = REPLY_REFUSE_TOOLS;
    r.p.n_script = 1;
    rig_start(&r);
    struct got g = {0};
    judge(&r, find(&r, "helpfulness"), NULL, &g);
    CHECK_INT_EQ(g.err, ASSAY_OK);
    CHECK_INT_EQ(g.v.outcome, VERDICT_SCORED);
    CHECK_NEAR(g.v.raw_score, 5, 0);
    CHECK_INT_EQ(g.v.attempts, 2);
    REQUIRE_INT_EQ(r.p.hits, 2);
    CHECK(r.p.seen[0].has_tools);
    CHECK(!r.p.seen[1].has_tools);
    CHECK(llm_judge_model_text_mode(r.llm, JUDGE_MODEL));
    verdict_clear(&g.v);
    /* the next job goes to text mode at once */
    struct got g2 = {0};
    judge(&r, find(&r, "helpfulness"), NULL, &g2);
    CHECK_INT_EQ(g2.v.outcome, VERDICT_SCORED);
    CHECK_INT_EQ(r.p.hits, 3);
    CHECK(!r.p.seen[2].has_tools);
    CHECK_INT_EQ(g2.v.attempts, 1);
    verdict_clear(&g2.v);
    rig_stop(&r);
}

TEST_CASE(throttled_to_the_end_unscorable)
{
    struct rig r = {0};
    r.p.script[0] = REPLY_THROTTLE;
    r.p.n_script = 1;
    rig_start(&r);
    struct got g = {0};
    judge(&r, find(&r, "helpfulness"), NULL, &g);
    CHECK_INT_EQ(g.err, ASSAY_ERR_HTTP_STATUS);
    CHECK_INT_EQ(g.v.outcome, VERDICT_UNSCORABLE);
    CHECK_STR_EQ(g.v.reason, "throttled");
    CHECK_INT_EQ(g.v.attempts, 3); /* the client's bound */
    CHECK(strstr(g.v.detail, "ThrottlingException") != NULL);
    CHECK_INT_EQ(r.p.hits, 3);
    verdict_clear(&g.v);
    rig_stop(&r);
}

TEST_CASE(repeats_median)
{
    struct rig r = {0};
    r.p.scores[0] = 2;
    r.p.scores[1] = 5;
    r.p.scores[2] = 4;
    r.p.n_scores = 3;
    rig_start(&r);
    const struct rubric *base = find(&r, "helpfulness");
    /* the same rubric with repeats: 3 */
    char *text = NULL;
    {
        FILE *f = fopen(base->path, "rb");
        REQUIRE(f != NULL);
        char buf[16384];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        json_t *doc = json_loads(buf, 0, NULL);
        REQUIRE(doc != NULL);
        json_object_set_new(doc, "repeats", json_integer(3));
        text = json_dumps(doc, 0);
        json_decref(doc);
    }
    struct rubric *rb = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    REQUIRE_INT_EQ(rubric_parse("helpfulness-x3.json", text, strlen(text), &rb, errbuf), ASSAY_OK);
    free(text);
    struct got g = {0};
    judge(&r, rb, NULL, &g);
    CHECK_INT_EQ(g.v.outcome, VERDICT_SCORED);
    CHECK_NEAR(g.v.raw_score, 4, 0);
    CHECK_INT_EQ(g.v.n_samples, 3);
    CHECK_NEAR(g.v.spread, 0.75, 1e-12);
    CHECK_INT_EQ(g.v.attempts, 3);
    CHECK_INT_EQ(g.v.usage.input_tokens, 300);
    CHECK_STR_EQ(g.v.judge, JUDGE_MODEL);
    CHECK_STR_EQ(g.v.rubric_version, rb->version);
    verdict_clear(&g.v);
    rig_stop(&r);
    rubric_free(rb);
}

TEST_CASE(missing_field_unscorable_no_call)
{
    struct rig r = {0};
    rig_start(&r);
    struct rubric_sample s = {.output = "an answer"}; /* helpfulness needs the input too */
    struct got g = {0};
    REQUIRE_INT_EQ(judge_run(r.runner, find(&r, "helpfulness"), &s, NULL, keep, &g, NULL),
                   ASSAY_OK);
    wait_got(&g);
    CHECK_INT_EQ(g.err, ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(g.v.outcome, VERDICT_UNSCORABLE);
    CHECK_STR_EQ(g.v.reason, "missing_field");
    CHECK_INT_EQ(r.p.hits, 0);
    verdict_clear(&g.v);
    rig_stop(&r);
}

TEST_CASE(reference_through_dispatcher)
{
    struct rig r = {0};
    rig_start(&r);
    const struct rubric *rb = find(&r, "exact-match");
    struct rubric_sample s = {.output = "The Eiffel Tower!", .reference = "eiffel tower"};
    struct got g = {0};
    REQUIRE_INT_EQ(judge_run(r.runner, rb, &s, NULL, keep, &g, NULL), ASSAY_OK);
    REQUIRE(atomic_load(&g.done));
    CHECK_INT_EQ(g.v.outcome, VERDICT_SCORED);
    CHECK_NEAR(g.v.score, 1, 0);
    CHECK_STR_EQ(g.v.rubric, "exact-match");
    CHECK_INT_EQ(g.v.attempts, 0);
    verdict_clear(&g.v);
    /* no LLM judge: llm rubrics are refused, no callback */
    struct judge_runner *local = judge_runner_new(NULL, NULL);
    struct got g2 = {0};
    CHECK_INT_EQ(judge_run(local, find(&r, "helpfulness"), &SAMPLE, NULL, keep, &g2, NULL),
                 ASSAY_ERR_INVALID_ARGUMENT);
    CHECK(!atomic_load(&g2.done));
    judge_runner_free(local);
    rig_stop(&r);
}

TEST_CASE(transport_free_cancels_jobs)
{
    struct rig r = {0};
    r.p.sleep_ms = 1000;
    rig_start(&r);
    const struct rubric *rb = find(&r, "helpfulness");
    struct got g[3] = {0};
    for (int i = 0; i < 3; i++)
        REQUIRE_INT_EQ(judge_run(r.runner, rb, &SAMPLE, NULL, keep, &g[i], NULL), ASSAY_OK);
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    http_transport_free(r.t); /* every job completes, cancelled */
    r.t = NULL;
    for (int i = 0; i < 3; i++) {
        REQUIRE(atomic_load(&g[i].done));
        CHECK_INT_EQ(g[i].err, ASSAY_ERR_CANCELLED);
        CHECK_INT_EQ(g[i].v.outcome, VERDICT_UNSCORABLE);
        CHECK_STR_EQ(g[i].v.reason, "cancelled");
        verdict_clear(&g[i].v);
    }
    rig_stop(&r);
}
