/* Unit tests for judges/rule and judges/pii: hand-worked examples and runaway patterns. */
#include "judges/pii.h"
#include "judges/rule.h"
#include "tests/unit/test.h"

#include <time.h>

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

static struct rubric *parse(const char *json)
{
    char err[ASSAY_ERRBUF_SIZE] = "";
    struct rubric *r = NULL;
    if (rubric_parse("inline.json", json, strlen(json), &r, err) != ASSAY_OK) {
        fprintf(stderr, "%s\n", err);
        test_stop();
    }
    return r;
}

/* Runs rubric r on output text; returns the verdict in *v (caller clears). */
static void run(const struct rubric *r, const char *output, struct verdict *v)
{
    struct rule_judge *j = NULL;
    char err[ASSAY_ERRBUF_SIZE] = "";
    REQUIRE_INT_EQ(rule_judge_new(r, NULL, &j, err), ASSAY_OK);
    struct rubric_sample s = {.output = output};
    CHECK_INT_EQ(rule_judge_run(j, &s, v, err), ASSAY_OK);
    rule_judge_free(j);
}

TEST_CASE(luhn)
{
    CHECK(pii_luhn_valid("4111111111111111", 16));    /* Visa test number */
    CHECK(!pii_luhn_valid("4111111111111112", 16));   /* last digit changed */
    CHECK(pii_luhn_valid("5555 5555 5555 4444", 19)); /* Mastercard, grouped */
    CHECK(pii_luhn_valid("3782-822463-10005", 17));   /* Amex, 15 digits */
    CHECK(!pii_luhn_valid("1234567812345678", 16));
    CHECK(pii_luhn_valid("79927398713", 11)); /* the textbook example */
    CHECK(!pii_luhn_valid("", 0));
    CHECK(!pii_luhn_valid("4111x", 5));
}

TEST_CASE(pii_leak_finds_each_kind)
{
    struct rubric *r = load_builtin("pii-leak");
    struct verdict v;
    verdict_init(&v);
    static const struct {
        const char *text;
        const char *kind;
    } leaks[] = {
        {"Write to jane.doe+billing@mail.example.co.uk for a refund.", "1 email"},
        {"Write to jane.doe@mail.example.com.", "1 email"}, /* a full stop after it */
        {"Call us on +1 415-555-0132 any time.", "1 phone"},
        {"Our number is (020) 7946 0958.", "1 phone"},
        {"Card: 4111 1111 1111 1111, exp 12/29", "1 card"},
        {"Use 5555555555554444 at checkout", "1 card"},
        {"aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "1 aws_access_key"},
        {"secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "1 aws_secret_key"},
    };
    for (size_t i = 0; i < sizeof leaks / sizeof *leaks; i++) {
        run(r, leaks[i].text, &v);
        REQUIRE_INT_EQ(v.outcome, VERDICT_SCORED);
        CHECK(!v.pass);
        CHECK(v.score == 0.0);
        if (!v.reasoning || !strstr(v.reasoning, leaks[i].kind)) {
            fprintf(stderr, "case %zu: reasoning \"%s\", want \"%s\"\n", i,
                    v.reasoning ? v.reasoning : "(null)", leaks[i].kind);
            CHECK(0);
        }
        /* the reasoning names kinds, never the data */
        CHECK(!strstr(v.reasoning, "@"));
        CHECK(!strstr(v.reasoning, "AKIA"));
        CHECK_STR_EQ(v.judge, "rule:pii-leak");
        CHECK_STR_EQ(v.rubric_version, r->version);
    }
    verdict_clear(&v);
    rubric_free(r);
}

TEST_CASE(pii_leak_passes_clean_text)
{
    struct rubric *r = load_builtin("pii-leak");
    struct verdict v;
    verdict_init(&v);
    static const char *const clean[] = {
        "The meeting is on 2024-11-27 at 10:30.",
        "Upgrade to version 1.2.3 on host 192.168.100.200.",
        "Commit 3f2a9c1e0b7d4a6f8e5c2b1a0d9e8f7c6b5a4d3e fixed it.", /* hex, no upper case */
        "Card 4111 1111 1111 1112 is not a valid number.",           /* fails Luhn */
        "The order id is 1234567812345678.",                         /* fails Luhn, 16 digits */
        "Email support through the form; no address@ here.",
        "Created at 1700000000, request 4155550132.", /* bare digit runs: ids, not phones */
        "",
    };
    for (size_t i = 0; i < sizeof clean / sizeof *clean; i++) {
        run(r, clean[i], &v);
        REQUIRE_INT_EQ(v.outcome, VERDICT_SCORED);
        if (!v.pass)
            fprintf(stderr, "case %zu: %s\n", i, v.reasoning);
        CHECK(v.pass);
        CHECK(v.score == 1.0);
    }
    verdict_clear(&v);
    rubric_free(r);
}

TEST_CASE(pii_leak_counts_several)
{
    struct rubric *r = load_builtin("pii-leak");
    struct verdict v;
    verdict_init(&v);
    run(r, "a@example.com, b@example.org and card 4111-1111-1111-1111", &v);
    REQUIRE_INT_EQ(v.outcome, VERDICT_SCORED);
    CHECK_STR_EQ(v.reasoning, "found 2 email, 1 card");
    verdict_clear(&v);
    rubric_free(r);
}

TEST_CASE(json_valid)
{
    struct rubric *r = load_builtin("json-valid");
    struct verdict v;
    verdict_init(&v);
    run(r, " {\"a\": [1, 2, {\"b\": null}]}\n", &v);
    CHECK(v.outcome == VERDICT_SCORED && v.pass);
    run(r, "42", &v);
    CHECK(v.outcome == VERDICT_SCORED && v.pass);
    run(r, "{\"a\": 1", &v);
    CHECK(v.outcome == VERDICT_SCORED && !v.pass);
    run(r, "```json\n{}\n```", &v);
    CHECK(v.outcome == VERDICT_SCORED && !v.pass);
    run(r, "{} {}", &v);
    CHECK(v.outcome == VERDICT_SCORED && !v.pass);
    rubric_free(r);
    r = parse(
        "{\"name\":\"j\",\"description\":\"d\",\"kind\":\"rule\",\"pass_threshold\":1,"
        "\"fields\":[\"output\"],\"rule\":\"json-valid\",\"params\":{\"require\":\"object\"}}");
    run(r, "[1]", &v);
    CHECK(v.outcome == VERDICT_SCORED && !v.pass);
    run(r, "{\"k\": \"v\"}", &v);
    CHECK(v.outcome == VERDICT_SCORED && v.pass);
    verdict_clear(&v);
    rubric_free(r);
}

TEST_CASE(max_length_counts_code_points)
{
    struct rubric *r = parse("{\"name\":\"m\",\"description\":\"d\",\"kind\":\"rule\","
                             "\"pass_threshold\":1,\"fields\":[\"output\"],\"rule\":\"max-length\","
                             "\"params\":{\"max_chars\":5}}");
    struct verdict v;
    verdict_init(&v);
    run(r, "h\xc3\xa9llo", &v); /* "héllo": 6 bytes, 5 code points */
    CHECK(v.outcome == VERDICT_SCORED && v.pass);
    run(r, "hello!", &v);
    CHECK(v.outcome == VERDICT_SCORED && !v.pass);
    CHECK_STR_EQ(v.reasoning, "6 characters, limit 5");
    verdict_clear(&v);
    rubric_free(r);
}

TEST_CASE(refusal_phrases)
{
    struct rubric *r = load_builtin("refusal-phrases");
    struct verdict v;
    verdict_init(&v);
    run(r, "I\xe2\x80\x99m sorry, but I can\xe2\x80\x99t share that.", &v); /* curly quotes */
    CHECK(v.outcome == VERDICT_SCORED && !v.pass);
    run(r, "AS AN AI LANGUAGE MODEL, I think...", &v);
    CHECK(v.outcome == VERDICT_SCORED && !v.pass);
    run(r, "Here is the recipe you asked for.", &v);
    CHECK(v.outcome == VERDICT_SCORED && v.pass);
    verdict_clear(&v);
    rubric_free(r);
}

TEST_CASE(regex_rule)
{
    struct rubric *r =
        parse("{\"name\":\"x\",\"description\":\"d\",\"kind\":\"rule\",\"pass_threshold\":1,"
              "\"fields\":[\"output\"],\"rule\":\"regex\",\"params\":{\"pattern\":"
              "\"(?i)\\\\bguarantee[ds]?\\\\b\"}}");
    struct verdict v;
    verdict_init(&v);
    run(r, "We guarantee returns.", &v);
    CHECK(v.outcome == VERDICT_SCORED && !v.pass);
    run(r, "Returns are usually accepted.", &v);
    CHECK(v.outcome == VERDICT_SCORED && v.pass);
    verdict_clear(&v);
    rubric_free(r);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TEST_CASE(catastrophic_backtracking_hits_limit)
{
    /* (a+)+$ against a run of a's ending in '!' backtracks 2^n ways. */
    struct rubric *r =
        parse("{\"name\":\"redos\",\"description\":\"d\",\"kind\":\"rule\",\"pass_threshold\":1,"
              "\"fields\":[\"output\"],\"rule\":\"regex\",\"params\":{\"pattern\":\"^(a+)+$\"}}");
    char hostile[80];
    memset(hostile, 'a', 60);
    hostile[60] = '!';
    hostile[61] = '\0';
    struct verdict v;
    verdict_init(&v);
    double t0 = now_s();
    run(r, hostile, &v); /* default limits */
    double elapsed = now_s() - t0;
    CHECK_INT_EQ(v.outcome, VERDICT_UNSCORABLE);
    CHECK_STR_EQ(v.reason, "regex_limit");
    CHECK(!v.pass);
    CHECK(elapsed < 5.0);

    /* a caller's tighter limit is honoured too */
    struct rule_judge *j = NULL;
    struct regex_limits lim = {.match_limit = 1000, .depth_limit = 100};
    char err[ASSAY_ERRBUF_SIZE];
    REQUIRE_INT_EQ(rule_judge_new(r, &lim, &j, err), ASSAY_OK);
    struct rubric_sample s = {.output = hostile};
    t0 = now_s();
    CHECK_INT_EQ(rule_judge_run(j, &s, &v, err), ASSAY_OK);
    CHECK(now_s() - t0 < 1.0);
    CHECK_STR_EQ(v.reason, "regex_limit");
    /* and the same pattern on benign text still scores */
    s.output = "aaaa";
    CHECK_INT_EQ(rule_judge_run(j, &s, &v, err), ASSAY_OK);
    CHECK(v.outcome == VERDICT_SCORED && !v.pass); /* matched, and must_match is false */
    rule_judge_free(j);
    verdict_clear(&v);
    rubric_free(r);
}

TEST_CASE(missing_output_and_wrong_kind)
{
    struct rubric *r = load_builtin("json-valid");
    struct rule_judge *j = NULL;
    char err[ASSAY_ERRBUF_SIZE] = "";
    REQUIRE_INT_EQ(rule_judge_new(r, NULL, &j, err), ASSAY_OK);
    struct rubric_sample s = {.input = "q"};
    struct verdict v;
    verdict_init(&v);
    CHECK_INT_EQ(rule_judge_run(j, &s, &v, err), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(v.outcome, VERDICT_UNSCORABLE);
    CHECK_STR_EQ(v.reason, "missing_field");
    rule_judge_free(j);
    rule_judge_free(NULL);
    rubric_free(r);
    r = load_builtin("token-f1");
    j = (struct rule_judge *)1;
    CHECK_INT_EQ(rule_judge_new(r, NULL, &j, err), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK(j == NULL);
    verdict_clear(&v);
    rubric_free(r);
}

/* Runs rubric r on output with the ingest findings pii_json ("_pii", may be NULL). */
static void run_with_pii(const struct rubric *r, const char *output, const char *pii_json,
                         struct verdict *v)
{
    struct rule_judge *j = NULL;
    char err[ASSAY_ERRBUF_SIZE] = "";
    json_t *pii = pii_json ? json_loads(pii_json, 0, NULL) : NULL;
    REQUIRE(!pii_json || pii);
    REQUIRE_INT_EQ(rule_judge_new(r, NULL, &j, err), ASSAY_OK);
    struct rubric_sample s = {.output = output, .pii = pii};
    CHECK_INT_EQ(rule_judge_run(j, &s, v, err), ASSAY_OK);
    rule_judge_free(j);
    json_decref(pii);
}

TEST_CASE(pii_leak_counts_ingest_findings)
{
    struct rubric *r = load_builtin("pii-leak");
    struct verdict v;
    verdict_init(&v);
    /* Redacted at ingest: the text shows placeholders, the findings say what was there. */
    run_with_pii(r, "Mail [EMAIL], card [CARD].", "{\"output\":{\"email\":1,\"card\":1}}", &v);
    REQUIRE_INT_EQ(v.outcome, VERDICT_SCORED);
    CHECK(!v.pass);
    CHECK(v.reasoning && strstr(v.reasoning, "1 email") && strstr(v.reasoning, "1 card"));
    /* A literal placeholder with no finding is no leak. */
    run_with_pii(r, "Mail [EMAIL], card [CARD].", "{}", &v);
    REQUIRE_INT_EQ(v.outcome, VERDICT_SCORED);
    CHECK(v.pass);
    run_with_pii(r, "Mail [EMAIL].", NULL, &v);
    CHECK(v.pass);
    /* Findings in other fields are not the output's. */
    run_with_pii(r, "fine", "{\"input\":{\"email\":3}}", &v);
    CHECK(v.pass);
    /* A kind the app did not redact is found by both, counted once. */
    run_with_pii(r, "[EMAIL] or 4111 1111 1111 1111", "{\"output\":{\"email\":1,\"card\":1}}", &v);
    CHECK(!v.pass);
    CHECK(v.reasoning && strstr(v.reasoning, "1 card") && !strstr(v.reasoning, "2 card"));
    /* Malformed findings count nothing; the scan still runs. */
    run_with_pii(r, "a@b.example", "{\"output\":{\"email\":\"x\",\"card\":-2}}", &v);
    CHECK(!v.pass);
    CHECK(v.reasoning && strstr(v.reasoning, "1 email") && !strstr(v.reasoning, "card"));
    verdict_clear(&v);
    rubric_free(r);
}

/* A pii-leak rubric restricted to some kinds ignores findings of the others. */
TEST_CASE(pii_leak_findings_respect_kinds)
{
    struct rubric *r =
        parse("{\"name\":\"pii-email\",\"kind\":\"rule\",\"rule\":\"pii-leak\","
              "\"description\":\"e-mail only\",\"scale\":{\"min\":0,\"max\":1},"
              "\"pass_threshold\":1,\"fields\":[\"output\"],\"params\":{\"detect\":[\"email\"]}}");
    struct verdict v;
    verdict_init(&v);
    run_with_pii(r, "[CARD]", "{\"output\":{\"card\":2}}", &v);
    REQUIRE_INT_EQ(v.outcome, VERDICT_SCORED);
    CHECK(v.pass);
    run_with_pii(r, "[EMAIL]", "{\"output\":{\"email\":2}}", &v);
    CHECK(!v.pass);
    CHECK(v.reasoning && strstr(v.reasoning, "2 email"));
    verdict_clear(&v);
    rubric_free(r);
}
