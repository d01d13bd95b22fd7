/* Unit tests for judges/redact. */
#include "judges/redact.h"
#include "judges/rule.h"
#include "tests/unit/test.h"

static char *redact(const struct redact_set *set, const char *text, size_t *count)
{
    struct buf out = BUF_INIT;
    char err[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err rc = redact_set_apply(set, text, strlen(text), &out, count, err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    REQUIRE_INT_EQ(rc, ASSAY_OK);
    buf_append(&out, "", 0);
    return buf_detach(&out, NULL);
}

static const char mixed[] =
    "Mail jane.doe@example.com or call +1 415-555-0132; card 4111 1111 1111 1111 "
    "(not 4111 1111 1111 1112); key AKIAIOSFODNN7EXAMPLE, "
    "secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY. Released 2024-11-27, v1.2.3.";

TEST_CASE(builtins_replace_with_typed_placeholders)
{
    struct redact_set *set = NULL;
    char err[ASSAY_ERRBUF_SIZE] = "";
    REQUIRE_INT_EQ(redact_set_new(NULL, &set, err), ASSAY_OK);
    size_t count = 0;
    char *got = redact(set, mixed, &count);
    CHECK_STR_EQ(got, "Mail [EMAIL] or call [PHONE]; card [CARD] (not 4111 1111 1111 1112); "
                      "key [AWS_ACCESS_KEY], secret [AWS_SECRET_KEY]. Released 2024-11-27, "
                      "v1.2.3.");
    CHECK_INT_EQ(count, 5);
    free(got);
    got = redact(set, "nothing to hide", &count);
    CHECK_STR_EQ(got, "nothing to hide");
    CHECK_INT_EQ(count, 0);
    free(got);
    got = redact(set, "", NULL);
    CHECK_STR_EQ(got, "");
    free(got);
    redact_set_free(set);
    redact_set_free(NULL);
}

TEST_CASE(pii_leak_rule_sees_raw_text_not_redacted_text)
{
    char path[1024], err[ASSAY_ERRBUF_SIZE] = "";
    snprintf(path, sizeof path, "%s/rubrics/pii-leak.json", test_source_dir());
    struct rubric *r = NULL;
    REQUIRE_INT_EQ(rubric_load(path, &r, err), ASSAY_OK);
    struct rule_judge *j = NULL;
    REQUIRE_INT_EQ(rule_judge_new(r, NULL, &j, err), ASSAY_OK);
    struct redact_set *set = NULL;
    REQUIRE_INT_EQ(redact_set_new(NULL, &set, err), ASSAY_OK);
    struct verdict v;
    verdict_init(&v);
    struct rubric_sample s = {.output = mixed};
    CHECK_INT_EQ(rule_judge_run(j, &s, &v, err), ASSAY_OK);
    CHECK(v.outcome == VERDICT_SCORED && !v.pass);
    char *clean = redact(set, mixed, NULL);
    s.output = clean;
    CHECK_INT_EQ(rule_judge_run(j, &s, &v, err), ASSAY_OK);
    CHECK(v.outcome == VERDICT_SCORED && v.pass); /* both agree on what is personal data */
    free(clean);
    verdict_clear(&v);
    redact_set_free(set);
    rule_judge_free(j);
    rubric_free(r);
}

TEST_CASE(selected_builtins_and_operator_patterns)
{
    static const char *const kinds[] = {"email"};
    static const struct redact_pattern extra[] = {
        {"\\bEMP-[0-9]{6}\\b", "[EMPLOYEE_ID]"},
        {"(?i)project\\s+falcon", "[CODENAME]"},
    };
    struct redact_options o = {.builtins = kinds, .n_builtins = 1, .extra = extra, .n_extra = 2};
    struct redact_set *set = NULL;
    char err[ASSAY_ERRBUF_SIZE] = "";
    REQUIRE_INT_EQ(redact_set_new(&o, &set, err), ASSAY_OK);
    size_t count = 0;
    char *got = redact(set, "EMP-123456 (a@b.io) on Project  Falcon, tel 415-555-0132", &count);
    CHECK_STR_EQ(got, "[EMPLOYEE_ID] ([EMAIL]) on [CODENAME], tel 415-555-0132");
    CHECK_INT_EQ(count, 3);
    free(got);
    redact_set_free(set);

    /* an empty match never loops or eats text */
    static const struct redact_pattern empty[] = {{"x*", "[X]"}};
    struct redact_options o2 = {.builtins = kinds, .n_builtins = 0, .extra = empty, .n_extra = 1};
    REQUIRE_INT_EQ(redact_set_new(&o2, &set, err), ASSAY_OK);
    got = redact(set, "abxxc\xc3\xa9", &count);
    CHECK_STR_EQ(got, "ab[X]c\xc3\xa9");
    free(got);
    redact_set_free(set);
}

TEST_CASE(bad_configuration)
{
    struct redact_set *set = (struct redact_set *)1;
    char err[ASSAY_ERRBUF_SIZE] = "";
    static const char *const kinds[] = {"ssn"};
    struct redact_options o = {.builtins = kinds, .n_builtins = 1};
    CHECK_INT_EQ(redact_set_new(&o, &set, err), ASSAY_ERR_CONFIG);
    CHECK(set == NULL);
    CHECK(strstr(err, "builtins[0]") != NULL);
    static const struct redact_pattern bad[] = {{"ok", "[OK]"}, {"(", "[P]"}};
    struct redact_options o2 = {.extra = bad, .n_extra = 2};
    CHECK_INT_EQ(redact_set_new(&o2, &set, err), ASSAY_ERR_CONFIG);
    CHECK(strstr(err, "patterns[1].pattern") != NULL);
    static const struct redact_pattern noph[] = {{"ok", ""}};
    struct redact_options o3 = {.extra = noph, .n_extra = 1};
    CHECK_INT_EQ(redact_set_new(&o3, &set, err), ASSAY_ERR_CONFIG);
    CHECK(strstr(err, "patterns[0].placeholder") != NULL);
}

TEST_CASE(runaway_pattern_fails_closed)
{
    static const struct redact_pattern evil[] = {{"(a+)+$", "[A]"}};
    struct redact_options o = {.extra = evil, .n_extra = 1, .limits = {.match_limit = 10000}};
    struct redact_set *set = NULL;
    char err[ASSAY_ERRBUF_SIZE] = "";
    REQUIRE_INT_EQ(redact_set_new(&o, &set, err), ASSAY_OK);
    char hostile[128];
    snprintf(hostile, sizeof hostile, "jane@example.com %s",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!");
    struct buf out = BUF_INIT;
    buf_append_str(&out, "prefix:");
    CHECK_INT_EQ(redact_set_apply(set, hostile, strlen(hostile), &out, NULL, err),
                 ASSAY_ERR_TOO_LARGE);
    CHECK_STR_EQ(buf_cstr(&out), "prefix:"); /* nothing half-redacted is handed back */
    CHECK(strstr(err, "[A]") != NULL);
    buf_clear(&out);
    redact_set_free(set);
}

TEST_CASE(from_json_config)
{
    char err[ASSAY_ERRBUF_SIZE] = "";
    json_error_t je;
    json_t *cfg = json_loads("{\"builtins\": [\"card\"], \"patterns\": [{\"pattern\": "
                             "\"EMP-[0-9]{6}\", \"placeholder\": \"[EMPLOYEE_ID]\"}], "
                             "\"match_limit\": 50000}",
                             0, &je);
    REQUIRE(cfg != NULL);
    struct redact_set *set = NULL;
    REQUIRE_INT_EQ(redact_set_from_json(cfg, &set, err), ASSAY_OK);
    char *got = redact(set, "EMP-000042 paid with 4111111111111111 from a@b.io", NULL);
    CHECK_STR_EQ(got, "[EMPLOYEE_ID] paid with [CARD] from a@b.io");
    free(got);
    redact_set_free(set);
    json_decref(cfg);

    REQUIRE_INT_EQ(redact_set_from_json(NULL, &set, err), ASSAY_OK); /* all built-ins */
    got = redact(set, "a@b.io", NULL);
    CHECK_STR_EQ(got, "[EMAIL]");
    free(got);
    redact_set_free(set);

    static const char *const bad[] = {
        "[]",
        "{\"builtin\": true}",
        "{\"builtins\": 3}",
        "{\"builtins\": [\"ssn\"]}",
        "{\"patterns\": [{\"pattern\": \"x\"}]}",
        "{\"match_limit\": 0}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cfg = json_loads(bad[i], JSON_DECODE_ANY, &je);
        REQUIRE(cfg != NULL);
        set = (struct redact_set *)1;
        CHECK_INT_EQ(redact_set_from_json(cfg, &set, err), ASSAY_ERR_CONFIG);
        CHECK(set == NULL);
        json_decref(cfg);
    }
}
