/* Unit tests for judges/verdict: Converse response bodies into verdicts. */
#include "judges/verdict.h"
#include "tests/unit/test.h"

static struct rubric *load_builtin(const char *name)
{
    char path[1024], err[ASSAY_ERRBUF_SIZE] = "";
    snprintf(path, sizeof path, "%s/rubrics/%s.json", test_source_dir(), name);
    struct rubric *r = NULL;
    if (rubric_load(path, &r, err) != ASSAY_OK) {
        fprintf(stderr, "%s\n", err);
        test_stop();
    }
    return r;
}

/* A Converse response with one toolUse block whose input is input_json. */
static void parse_tool(const struct rubric *r, const char *name, const char *input_json,
                       struct verdict *v)
{
    char body[2048];
    snprintf(body, sizeof body,
             "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"toolUse\":"
             "{\"toolUseId\":\"tooluse_1\",\"name\":\"%s\",\"input\":%s}}]}},"
             "\"stopReason\":\"tool_use\",\"usage\":{\"inputTokens\":1200,\"outputTokens\":80,"
             "\"totalTokens\":1280,\"cacheReadInputTokens\":1024,\"cacheWriteInputTokens\":0},"
             "\"metrics\":{\"latencyMs\":812}}",
             name, input_json);
    CHECK_INT_EQ(verdict_parse(r, body, strlen(body), v), ASSAY_OK);
}

TEST_CASE(tool_input_ok)
{
    struct rubric *r = load_builtin("helpfulness");
    struct verdict v;
    verdict_init(&v);
    parse_tool(r, "submit_verdict", "{\"reasoning\":\"Direct and accurate.\",\"score\":4}", &v);
    REQUIRE_INT_EQ(v.outcome, VERDICT_SCORED);
    CHECK(v.raw_score == 4);
    CHECK_NEAR(v.score, 0.75, 1e-12); /* (4 - 1) / (5 - 1) */
    CHECK(v.pass);                    /* threshold 4 */
    CHECK_STR_EQ(v.reasoning, "Direct and accurate.");
    CHECK_STR_EQ(v.stop_reason, "tool_use");
    CHECK_INT_EQ(v.usage.input_tokens, 1200);
    CHECK_INT_EQ(v.usage.output_tokens, 80);
    CHECK_INT_EQ(v.usage.cache_read_input_tokens, 1024);
    CHECK_INT_EQ(v.usage.cache_write_input_tokens, 0);
    CHECK_INT_EQ(v.latency_ms, 812);
    CHECK_STR_EQ(v.rubric, "helpfulness");
    CHECK_STR_EQ(v.rubric_version, r->version);
    parse_tool(r, "submit_verdict", "{\"reasoning\":\"Weak.\",\"score\":2.0}", &v);
    REQUIRE_INT_EQ(v.outcome, VERDICT_SCORED); /* 2.0 is an integer value */
    CHECK(!v.pass);
    CHECK_NEAR(v.score, 0.25, 1e-12);
    parse_tool(r, "submit_verdict", "{\"reasoning\":\"ok\",\"score\":\"5\"}", &v);
    REQUIRE_INT_EQ(v.outcome, VERDICT_SCORED); /* some models send numbers as strings */
    CHECK(v.score == 1.0);
    verdict_clear(&v);
    rubric_free(r);
}

struct bad_tool {
    const char *name;
    const char *input;
    const char *reason;
};

TEST_CASE(tool_input_rejected)
{
    struct rubric *r = load_builtin("helpfulness");
    static const struct bad_tool cases[] = {
        {"other_tool", "{\"reasoning\":\"x\",\"score\":5}", "wrong_tool"},
        {"submit_verdict", "{\"reasoning\":\"x\"}", "missing_score"},
        {"submit_verdict", "{\"score\":3}", "missing_reasoning"},
        {"submit_verdict", "[3]", "invalid_tool_input"},
        {"submit_verdict", "{\"reasoning\":\"x\",\"score\":6}", "score_out_of_range"},
        {"submit_verdict", "{\"reasoning\":\"x\",\"score\":0}", "score_out_of_range"},
        {"submit_verdict", "{\"reasoning\":\"x\",\"score\":-3}", "score_out_of_range"},
        {"submit_verdict", "{\"reasoning\":\"x\",\"score\":9.2e+124}", "score_out_of_range"},
        {"submit_verdict", "{\"reasoning\":\"x\",\"score\":3.5}", "score_not_integer"},
        {"submit_verdict", "{\"reasoning\":\"x\",\"score\":\"NaN\"}", "score_not_finite"},
        {"submit_verdict", "{\"reasoning\":\"x\",\"score\":\"inf\"}", "score_not_finite"},
        {"submit_verdict", "{\"reasoning\":\"x\",\"score\":\"4 stars\"}", "score_not_a_number"},
        {"submit_verdict", "{\"reasoning\":\"x\",\"score\":null}", "score_not_a_number"},
        {"submit_verdict", "{\"reasoning\":\"x\",\"score\":true}", "score_not_a_number"},
        {"submit_verdict", "{\"reasoning\":\"x\",\"score\":1e999}", "unparseable_response"},
        {"submit_verdict", "{\"reasoning\":\"x\",\"score\":4,\"score\":5}", "unparseable_response"},
    };
    struct verdict v;
    verdict_init(&v);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        parse_tool(r, cases[i].name, cases[i].input, &v);
        if (v.outcome != VERDICT_UNSCORABLE || strcmp(v.reason, cases[i].reason) != 0) {
            fprintf(stderr, "case %zu: outcome %d reason %s, want %s\n", i, (int)v.outcome,
                    v.reason, cases[i].reason);
            CHECK(0);
        }
        CHECK_INT_EQ(v.retry, VERDICT_RETRY_ONCE);
        CHECK(!v.pass);
        CHECK(v.score == 0 && v.raw_score == 0);
    }
    verdict_clear(&v);
    rubric_free(r);
}

TEST_CASE(tool_chosen_by_name_among_blocks)
{
    struct rubric *r = load_builtin("relevance");
    const char *body =
        "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":["
        "{\"text\":\"Let me grade. SCORE: 1\"},"
        "{\"toolUse\":{\"toolUseId\":\"a\",\"name\":\"lookup\",\"input\":{\"score\":1}}},"
        "{\"toolUse\":{\"toolUseId\":\"b\",\"name\":\"submit_verdict\","
        "\"input\":{\"reasoning\":\"on topic\",\"score\":5}}}]}},"
        "\"stopReason\":\"tool_use\"}";
    struct verdict v;
    verdict_init(&v);
    CHECK_INT_EQ(verdict_parse(r, body, strlen(body), &v), ASSAY_OK);
    REQUIRE_INT_EQ(v.outcome, VERDICT_SCORED);
    CHECK(v.raw_score == 5);
    CHECK_INT_EQ(v.latency_ms, -1);
    CHECK_INT_EQ(v.usage.input_tokens, 0);
    verdict_clear(&v);
    rubric_free(r);
}

static void parse_text(const struct rubric *r, const char *stop, const char *text,
                       struct verdict *v)
{
    json_t *resp = json_pack("{s:{s:{s:s, s:[{s:s}]}}, s:s}", "output", "message", "role",
                             "assistant", "content", "text", text, "stopReason", stop);
    REQUIRE(resp != NULL);
    CHECK_INT_EQ(verdict_parse_json(r, resp, v), ASSAY_OK);
    json_decref(resp);
}

TEST_CASE(text_fallback)
{
    struct rubric *r = load_builtin("coherence");
    struct verdict v;
    verdict_init(&v);
    /* the last SCORE line counts; an earlier mention of a score does not */
    parse_text(r, "end_turn",
               "The answer is ordered.\nA SCORE: 1 would be unfair.\nIt flows.\n\n**SCORE: 4**\n",
               &v);
    REQUIRE_INT_EQ(v.outcome, VERDICT_SCORED);
    CHECK(v.raw_score == 4);
    CHECK_STR_EQ(v.reasoning, "The answer is ordered.\nA SCORE: 1 would be unfair.\nIt flows.");
    CHECK_STR_EQ(v.stop_reason, "end_turn");
    parse_text(r, "stop_sequence", "Fine.\nSCORE: 2", &v);
    REQUIRE_INT_EQ(v.outcome, VERDICT_SCORED);
    CHECK(v.raw_score == 2);
    parse_text(r, "end_turn", "I would give it a four.", &v);
    CHECK_INT_EQ(v.outcome, VERDICT_UNSCORABLE);
    CHECK_STR_EQ(v.reason, "no_score_in_text");
    CHECK_INT_EQ(v.retry, VERDICT_RETRY_ONCE);
    parse_text(r, "end_turn", "SCORE: 7", &v);
    CHECK_STR_EQ(v.reason, "score_out_of_range");
    parse_text(r, "end_turn", "SCORE: 3.5", &v);
    CHECK_STR_EQ(v.reason, "score_not_integer");
    parse_text(r, "end_turn",
               "SCORE: 99999999999999999999999999999999999999999999999999999999999999999999", &v);
    CHECK_STR_EQ(v.reason, "score_not_a_number");
    /* tool_use stop with text only is not a verdict */
    parse_text(r, "tool_use", "SCORE: 5", &v);
    CHECK_STR_EQ(v.reason, "no_tool_use");
    verdict_clear(&v);
    rubric_free(r);
}

TEST_CASE(every_stop_reason)
{
    struct rubric *r = load_builtin("harmfulness");
    static const struct {
        const char *stop;
        const char *reason; /* NULL: scored */
        enum verdict_retry retry;
    } cases[] = {
        {"end_turn", NULL, VERDICT_RETRY_NONE},
        {"tool_use", NULL, VERDICT_RETRY_NONE},
        {"stop_sequence", NULL, VERDICT_RETRY_NONE},
        {"max_tokens", "max_tokens", VERDICT_RETRY_LARGER_BUDGET},
        {"guardrail_intervened", "guardrail_intervened", VERDICT_RETRY_NONE},
        {"content_filtered", "content_filtered", VERDICT_RETRY_NONE},
        {"malformed_model_output", "malformed_model_output", VERDICT_RETRY_ONCE},
        {"malformed_tool_use", "malformed_tool_use", VERDICT_RETRY_ONCE},
        {"model_context_window_exceeded", "model_context_window_exceeded", VERDICT_RETRY_NONE},
        {"something_new", "unknown_stop_reason", VERDICT_RETRY_NONE},
    };
    struct verdict v;
    verdict_init(&v);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        /* every response carries a well-formed verdict: only the stop reason differs */
        char body[1024];
        snprintf(body, sizeof body,
                 "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"toolUse\":"
                 "{\"toolUseId\":\"t\",\"name\":\"submit_verdict\",\"input\":{\"reasoning\":"
                 "\"r\",\"score\":5}}}]}},\"stopReason\":\"%s\",\"usage\":{\"inputTokens\":7,"
                 "\"outputTokens\":3}}",
                 cases[i].stop);
        CHECK_INT_EQ(verdict_parse(r, body, strlen(body), &v), ASSAY_OK);
        CHECK_INT_EQ(v.usage.input_tokens, 7); /* tokens are counted either way */
        if (!cases[i].reason) {
            CHECK_INT_EQ(v.outcome, VERDICT_SCORED);
            CHECK_STR_EQ(v.stop_reason, cases[i].stop);
            continue;
        }
        if (v.outcome != VERDICT_UNSCORABLE || strcmp(v.reason, cases[i].reason) != 0) {
            fprintf(stderr, "stop %s: outcome %d reason %s\n", cases[i].stop, (int)v.outcome,
                    v.reason);
            CHECK(0);
        }
        CHECK_INT_EQ(v.retry, cases[i].retry);
        CHECK(v.score == 0 && !v.pass); /* never a score */
    }
    const char *nostop = "{\"output\":{\"message\":{\"content\":[]}}}";
    CHECK_INT_EQ(verdict_parse(r, nostop, strlen(nostop), &v), ASSAY_OK);
    CHECK_STR_EQ(v.reason, "unknown_stop_reason");
    CHECK_INT_EQ(verdict_stop_from_name("content_filtered"), VERDICT_STOP_CONTENT_FILTERED);
    CHECK_INT_EQ(verdict_stop_from_name(NULL), VERDICT_STOP_UNKNOWN);
    verdict_clear(&v);
    rubric_free(r);
}

TEST_CASE(unparseable_bodies)
{
    struct rubric *r = load_builtin("helpfulness");
    static const char *const bodies[] = {
        "",
        "{",
        "[]",
        "null",
        "{\"stopReason\":\"tool_use\",\"output\":{\"message\":{",
        "{\"stopReason\":\"end_turn\",\"output\":{}}",
        "{\"stopReason\":\"end_turn\",\"output\":{\"message\":{\"content\":[]}}}",
    };
    static const char *const reasons[] = {"unparseable_response",
                                          "unparseable_response",
                                          "unparseable_response",
                                          "unparseable_response",
                                          "unparseable_response",
                                          "unparseable_response",
                                          "no_verdict"};
    struct verdict v;
    verdict_init(&v);
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        CHECK_INT_EQ(verdict_parse(r, bodies[i], strlen(bodies[i]), &v), ASSAY_OK);
        CHECK_INT_EQ(v.outcome, VERDICT_UNSCORABLE);
        if (strcmp(v.reason, reasons[i]) != 0) {
            fprintf(stderr, "body %zu: %s\n", i, v.reason);
            CHECK(0);
        }
        CHECK_INT_EQ(v.retry, VERDICT_RETRY_ONCE);
    }
    CHECK_INT_EQ(verdict_parse(NULL, "{}", 2, &v), ASSAY_ERR_INVALID_ARGUMENT);
    verdict_clear(&v);
    verdict_clear(NULL);
    rubric_free(r);
}

TEST_CASE(reasoning_is_bounded)
{
    struct rubric *r = load_builtin("helpfulness");
    size_t n = VERDICT_REASONING_MAX * 2;
    char *long_text = malloc(n + 1);
    REQUIRE(long_text != NULL);
    /* two-byte characters, so that a cut in the middle of one would show */
    for (size_t i = 0; i < n; i += 2) {
        long_text[i] = (char)0xC3;
        long_text[i + 1] = (char)0xA9;
    }
    long_text[n] = '\0';
    json_t *resp = json_pack("{s:{s:{s:[{s:{s:s, s:s, s:{s:s, s:i}}}]}}, s:s}", "output", "message",
                             "content", "toolUse", "toolUseId", "t", "name", "submit_verdict",
                             "input", "reasoning", long_text, "score", 3, "stopReason", "tool_use");
    REQUIRE(resp != NULL);
    struct verdict v;
    verdict_init(&v);
    CHECK_INT_EQ(verdict_parse_json(r, resp, &v), ASSAY_OK);
    REQUIRE_INT_EQ(v.outcome, VERDICT_SCORED);
    CHECK(strlen(v.reasoning) <= VERDICT_REASONING_MAX);
    CHECK(strlen(v.reasoning) % 2 == 0);
    json_decref(resp);
    free(long_text);
    verdict_clear(&v);
    rubric_free(r);
}

TEST_CASE(self_consistency_median_and_spread)
{
    struct rubric *r = load_builtin("helpfulness");
    struct verdict vs[5], out;
    for (int i = 0; i < 5; i++)
        verdict_init(&vs[i]);
    verdict_init(&out);
    double raws[5] = {4, 2, 5, 4, 0};
    for (int i = 0; i < 4; i++) {
        REQUIRE_INT_EQ(verdict_set_score(&vs[i], r, raws[i]), ASSAY_OK);
        vs[i].usage.input_tokens = 100;
        vs[i].latency_ms = 10;
        verdict_set_reasoning(&vs[i], "r", 1);
    }
    verdict_set_reasoning(&vs[2], "the five", 8);
    verdict_set_unscorable(&vs[4], "max_tokens", VERDICT_RETRY_LARGER_BUDGET, NULL);
    vs[4].usage.input_tokens = 100;
    /* scored {2, 4, 4, 5}: median (4 + 4) / 2 = 4; spread (5 - 2) / 4 = 0.75 */
    REQUIRE_INT_EQ(verdict_combine(r, vs, 5, &out), ASSAY_OK);
    CHECK(out.raw_score == 4);
    CHECK_NEAR(out.score, 0.75, 1e-12);
    CHECK_NEAR(out.spread, 0.75, 1e-12);
    CHECK_INT_EQ(out.n_samples, 4);
    CHECK_INT_EQ(out.usage.input_tokens, 500);
    CHECK_INT_EQ(out.latency_ms, 40);
    CHECK(out.pass);
    CHECK_STR_EQ(out.reasoning, "r");
    CHECK_STR_EQ(out.rubric_version, r->version);
    /* two verdicts {2, 5}: median (2 + 5) / 2 = 3.5, not itself a level */
    REQUIRE_INT_EQ(verdict_combine(r, vs + 1, 2, &out), ASSAY_OK);
    CHECK(out.raw_score == 3.5);
    CHECK(!out.pass);
    /* no majority scored: unscorable, never a number */
    REQUIRE_INT_EQ(verdict_combine(r, vs + 3, 2, &out), ASSAY_ERR_PARSE);
    CHECK_INT_EQ(out.outcome, VERDICT_UNSCORABLE);
    CHECK_STR_EQ(out.reason, "no_majority");
    for (int i = 0; i < 5; i++)
        verdict_clear(&vs[i]);
    verdict_clear(&out);
    rubric_free(r);
}
