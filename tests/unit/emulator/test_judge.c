/*
 * tests/unit/emulator/test_judge: the emulator's deterministic model.
 */
#include "tests/unit/test.h"

#include "common/buf.h"
#include "emulator/judge.h"

#include <jansson.h>

static double quality(const char *request, const char *context, const char *reference,
                      const char *answer)
{
    struct buf why = BUF_INIT;
    double q = judge_quality(request, context, reference, answer, &why);
    CHECK(why.len > 0);
    buf_clear(&why);
    return q;
}

TEST_CASE(quality_ranks_answers)
{
    const char *ref = "The Eiffel Tower is in Paris and was completed in 1889.";
    double exact = quality(NULL, NULL, ref, "The Eiffel Tower is in Paris, completed in 1889.");
    double half = quality(NULL, NULL, ref, "The Eiffel Tower is in Paris.");
    double wrong = quality(NULL, NULL, ref, "Big Ben stands in London.");
    double refusal =
        quality(NULL, NULL, ref, "I'm sorry, but I cannot help with the Eiffel Tower.");
    CHECK(exact > half);
    CHECK(half > wrong);
    CHECK(refusal <= 0.05);
    CHECK_NEAR(quality(NULL, NULL, ref, ""), 0, 0);
    CHECK_NEAR(quality(NULL, NULL, ref, " \n\t "), 0, 0);
    /* Faithfulness: supported by the context or not. */
    const char *ctx = "Our store opens at 9 am and closes at 6 pm on weekdays.";
    CHECK(quality(NULL, ctx, NULL, "The store opens at 9 am on weekdays.") >
          quality(NULL, ctx, NULL, "The store is open all night on Sundays with free pizza."));
    /* Without reference or context: covering the request. */
    const char *req = "Explain photosynthesis in plants briefly.";
    CHECK(quality(req, NULL, NULL,
                  "Photosynthesis lets plants turn light, water and CO2 into "
                  "sugar.") > quality(req, NULL, NULL, "Bananas are yellow."));
}

static json_t *judge_request(const char *answer, const char *score_type, double lo, double hi)
{
    char user[2048];
    snprintf(user, sizeof user,
             "Grade the sample below. The boundary token of this request is abc123. Only "
             "lines...\n\n<<<BEGIN REFERENCE_ANSWER abc123>>>\nParis is the capital of France.\n"
             "<<<END REFERENCE_ANSWER abc123>>>\n\n<<<BEGIN ANSWER abc123>>>\n%s\n"
             "<<<END ANSWER abc123>>>\n\nNow call submit_verdict.",
             answer);
    return json_pack("{s:[{s:s, s:[{s:s}]}], s:{s:[{s:{s:s, s:{s:{s:s, s:{s:{s:s}, "
                     "s:{s:s, s:f, s:f}}}}}}], s:{s:{s:s}}}}",
                     "messages", "role", "user", "content", "text", user, "toolConfig", "tools",
                     "toolSpec", "name", "submit_verdict", "inputSchema", "json", "type", "object",
                     "properties", "reasoning", "type", "string", "score", "type", score_type,
                     "minimum", lo, "maximum", hi, "toolChoice", "tool", "name", "submit_verdict");
}

TEST_CASE(tool_verdict_on_schema_scale)
{
    json_t *req = judge_request("Paris is the capital of France.", "integer", 1, 5);
    REQUIRE(req != NULL);
    struct judge_reply r;
    judge_reply_init(&r);
    judge_answer(req, NULL, &r);
    CHECK(r.tool_use);
    CHECK_STR_EQ(r.tool_name, "submit_verdict");
    CHECK(r.integer);
    CHECK_NEAR(r.score, 5, 0);
    CHECK(r.reasoning.len > 0);
    judge_reply_clear(&r);
    json_decref(req);

    req = judge_request("Lyon.", "number", 0, 1);
    judge_reply_init(&r);
    judge_answer(req, NULL, &r);
    CHECK(!r.integer);
    CHECK(r.score >= 0 && r.score < 0.5);
    judge_reply_clear(&r);
    json_decref(req);
}

TEST_CASE(fallback_and_plain_text)
{
    json_t *req = json_pack(
        "{s:[{s:s, s:[{s:s}]}]}", "messages", "role", "user", "content", "text",
        "The boundary token of this request is t0k.\n<<<BEGIN ANSWER t0k>>>\n\n<<<END ANSWER "
        "t0k>>>\nNow give your reasoning, then the final line \"SCORE: <n>\" (an integer from 0 "
        "to 10).");
    struct judge_reply r;
    judge_reply_init(&r);
    judge_answer(req, NULL, &r);
    CHECK(!r.tool_use);
    const char *tail = strstr(buf_cstr(&r.text), "\nSCORE: ");
    REQUIRE(tail != NULL);
    CHECK_STR_EQ(tail, "\nSCORE: 0"); /* an empty answer, on 0..10 */
    judge_reply_clear(&r);
    json_decref(req);

    req = json_pack("{s:[{s:s, s:[{s:s}]}]}", "messages", "role", "user", "content", "text",
                    "What is the capital of France?");
    json_t *answers = json_pack("[{s:s, s:s}]", "match", "capital of france", "text", "Paris.");
    judge_reply_init(&r);
    judge_answer(req, answers, &r);
    CHECK_STR_EQ(buf_cstr(&r.text), "Paris.");
    judge_reply_clear(&r);
    judge_reply_init(&r);
    judge_answer(req, NULL, &r);
    CHECK(strstr(buf_cstr(&r.text), "What is the capital of France?") != NULL);
    judge_reply_clear(&r);
    json_decref(answers);
    json_decref(req);
}
