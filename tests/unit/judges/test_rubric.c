/* Unit tests for judges/rubric: the built-in library and broken rubric files. */
#include "judges/rubric.h"
#include "tests/unit/test.h"

#include <stdio.h>

static void rubrics_dir(char *out, size_t n)
{
    snprintf(out, n, "%s/rubrics", test_source_dir());
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs(text, f);
    fclose(f);
}

TEST_CASE(builtin_library_loads)
{
    char dir[1024], err[ASSAY_ERRBUF_SIZE] = "";
    rubrics_dir(dir, sizeof dir);
    struct rubric_registry *reg = NULL;
    enum assay_err rc = rubric_registry_load(dir, &reg, err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    REQUIRE_INT_EQ(rc, ASSAY_OK);
    static const char *const llm[] = {
        "correctness", "completeness",          "faithfulness",       "helpfulness", "coherence",
        "relevance",   "instruction-following", "professional-style", "harmfulness", "stereotyping",
        "refusal"};
    static const char *const rule[] = {"pii-leak", "json-valid", "max-length", "refusal-phrases"};
    static const char *const ref[] = {"exact-match", "token-f1", "rouge-l"};
    CHECK_INT_EQ(rubric_registry_count(reg), 18);
    for (size_t i = 0; i < sizeof llm / sizeof *llm; i++) {
        const struct rubric *r = rubric_registry_find(reg, llm[i]);
        REQUIRE(r != NULL);
        CHECK_INT_EQ(r->kind, RUBRIC_KIND_LLM);
        CHECK(r->scale.integer);
        CHECK_INT_EQ(r->n_anchors, 5);
        CHECK(r->fallback_re != NULL);
        CHECK_INT_EQ(r->repeats, 1);
        CHECK(r->temperature == 0);
        CHECK_INT_EQ(strlen(r->version), 64);
    }
    CHECK(rubric_registry_find(reg, "correctness")->fields & RUBRIC_FIELD_REFERENCE);
    CHECK(rubric_registry_find(reg, "faithfulness")->fields & RUBRIC_FIELD_CONTEXT);
    for (size_t i = 0; i < 4; i++) {
        const struct rubric *r = rubric_registry_find(reg, rule[i]);
        REQUIRE(r != NULL);
        CHECK_INT_EQ(r->kind, RUBRIC_KIND_RULE);
    }
    for (size_t i = 0; i < 3; i++) {
        const struct rubric *r = rubric_registry_find(reg, ref[i]);
        REQUIRE(r != NULL);
        CHECK_INT_EQ(r->kind, RUBRIC_KIND_REFERENCE);
        CHECK(!r->scale.integer);
    }
    CHECK(rubric_registry_find(reg, "nonexistent") == NULL);
    CHECK(rubric_registry_at(reg, 0) != NULL);
    CHECK(rubric_registry_at(reg, 18) == NULL);
    rubric_registry_free(reg);
    rubric_registry_free(NULL);
    rubric_free(NULL);
}

TEST_CASE(version_is_sha256_of_file)
{
    /* Expected digest computed with `printf '%s' TEXT | sha256sum`. */
    const char *text = "{\"name\":\"x\",\"description\":\"d\",\"kind\":\"reference\","
                       "\"pass_threshold\":0.5,\"fields\":[\"output\",\"reference\"],"
                       "\"metric\":\"rouge-l\"}";
    struct rubric *a = NULL, *b = NULL;
    char err[ASSAY_ERRBUF_SIZE] = "";
    REQUIRE_INT_EQ(rubric_parse("a.json", text, strlen(text), &a, err), ASSAY_OK);
    CHECK_STR_EQ(a->version, "c9cbc7e95b303f28aa75668b34d85c9b2cc0d989c330b5e9a6ce87d92e1f8090");
    /* the same rubric with one more space is another version */
    char text2[512];
    snprintf(text2, sizeof text2, "%s ", text);
    REQUIRE_INT_EQ(rubric_parse("b.json", text2, strlen(text2), &b, err), ASSAY_OK);
    CHECK(strcmp(a->version, b->version) != 0);
    CHECK_STR_EQ(a->name, "x");
    CHECK_STR_EQ(a->metric, "rouge-l");
    CHECK(a->scale.min == 0 && a->scale.max == 1 && !a->scale.integer);
    rubric_free(a);
    rubric_free(b);
}

struct bad_case {
    const char *json;
    const char *want; /* substring of the error: "<file>: <field>: ..." */
    enum assay_err err;
};

#define LLM_HEAD                                                                                   \
    "{\"name\":\"t\",\"description\":\"d\",\"kind\":\"llm\",\"pass_threshold\":4,"                 \
    "\"fields\":[\"input\",\"output\"],\"system\":\"s\",\"criteria\":\"c\","
#define ANCHORS5                                                                                   \
    "\"anchors\":[{\"score\":1,\"text\":\"a\"},{\"score\":2,\"text\":\"b\"},{\"score\":3,"         \
    "\"text\":\"c\"},{\"score\":4,\"text\":\"d\"},{\"score\":5,\"text\":\"e\"}]"
#define SCALE5 "\"scale\":{\"min\":1,\"max\":5,\"integer\":true}"

TEST_CASE(good_llm_rubric_with_options)
{
    const char *text =
        LLM_HEAD SCALE5 "," ANCHORS5 ",\"model_id\":\"anthropic.claude-3-haiku\",\"repeats\":3,"
                        "\"inference\":{\"temperature\":0.2,\"max_tokens\":300},"
                        "\"fallback_pattern\":\"(?i)score\\\\s*[:=]\\\\s*(?<score>\\\\d+)\"}";
    struct rubric *r = NULL;
    char err[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err rc = rubric_parse("good.json", text, strlen(text), &r, err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    REQUIRE_INT_EQ(rc, ASSAY_OK);
    CHECK_INT_EQ(r->repeats, 3);
    CHECK_INT_EQ(r->max_tokens, 300);
    CHECK_NEAR(r->temperature, 0.2, 1e-12);
    CHECK_STR_EQ(r->model_id, "anthropic.claude-3-haiku");
    CHECK_STR_EQ(rubric_anchor_text(r, 3), "c");
    CHECK(rubric_anchor_text(r, 6) == NULL);
    struct rubric_sample s = {.input = "q", .output = "a"};
    CHECK_INT_EQ(rubric_sample_check(r, &s, err), ASSAY_OK);
    s.input = NULL;
    CHECK_INT_EQ(rubric_sample_check(r, &s, err), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "input") != NULL);
    rubric_free(r);
}

TEST_CASE(broken_rubrics_name_file_and_field)
{
    static const struct bad_case cases[] = {
        {"{", "bad.json: (file): JSON", ASSAY_ERR_PARSE},
        {"[]", "bad.json: (file): must hold one JSON object", ASSAY_ERR_CONFIG},
        {"{\"description\":\"d\"}", "bad.json: name: missing", ASSAY_ERR_CONFIG},
        {"{\"name\":\"Bad Name\",\"description\":\"d\"}", "bad.json: name:", ASSAY_ERR_CONFIG},
        {"{\"name\":\"t\",\"description\":\"d\",\"kind\":\"oracle\"}",
         "bad.json: kind:", ASSAY_ERR_CONFIG},
        {LLM_HEAD ANCHORS5 "}", "bad.json: scale: missing", ASSAY_ERR_CONFIG},
        {LLM_HEAD "\"scale\":{\"min\":5,\"max\":1}," ANCHORS5 "}",
         "bad.json: scale.max:", ASSAY_ERR_CONFIG},
        {LLM_HEAD "\"scale\":{\"min\":1,\"max\":\"5\"}," ANCHORS5 "}",
         "bad.json: scale.max:", ASSAY_ERR_CONFIG},
        {LLM_HEAD "\"scale\":{\"min\":1,\"max\":5,\"step\":1}," ANCHORS5 "}",
         "bad.json: scale.step: unknown key", ASSAY_ERR_CONFIG},
        {LLM_HEAD SCALE5 "}", "bad.json: anchors: missing", ASSAY_ERR_CONFIG},
        {LLM_HEAD SCALE5
         ",\"anchors\":[{\"score\":1,\"text\":\"a\"},{\"score\":5,\"text\":\"e\"}]}",
         "bad.json: anchors: an integer scale needs one anchor", ASSAY_ERR_CONFIG},
        {LLM_HEAD SCALE5
         ",\"anchors\":[{\"score\":1,\"text\":\"a\"},{\"score\":9,\"text\":\"e\"}]}",
         "bad.json: anchors[1].score: outside the scale", ASSAY_ERR_CONFIG},
        {LLM_HEAD SCALE5 ",\"anchors\":[{\"score\":1,\"text\":\"a\"},{\"score\":2}]}",
         "bad.json: anchors[1].text", ASSAY_ERR_CONFIG},
        {LLM_HEAD SCALE5 "," ANCHORS5 ",\"fallback_pattern\":\"(unclosed\"}",
         "bad.json: fallback_pattern: pattern error", ASSAY_ERR_CONFIG},
        {LLM_HEAD SCALE5 "," ANCHORS5 ",\"fallback_pattern\":\"SCORE: (\\\\d)\"}",
         "bad.json: fallback_pattern: needs a named group", ASSAY_ERR_CONFIG},
        {LLM_HEAD SCALE5 "," ANCHORS5 ",\"fallback_pattern\":\"RATING=(?<score>\\\\d)\"}",
         "bad.json: fallback_pattern: must extract", ASSAY_ERR_CONFIG},
        {LLM_HEAD SCALE5 "," ANCHORS5 ",\"repeats\":0}", "bad.json: repeats: must be between",
         ASSAY_ERR_CONFIG},
        {LLM_HEAD SCALE5 "," ANCHORS5 ",\"inference\":{\"temperature\":3}}",
         "bad.json: inference.temperature", ASSAY_ERR_CONFIG},
        {LLM_HEAD SCALE5 "," ANCHORS5 ",\"inference\":{\"max_tokens\":1.5}}",
         "bad.json: inference.max_tokens: must be an integer", ASSAY_ERR_CONFIG},
        {LLM_HEAD SCALE5 "," ANCHORS5 ",\"temprature\":0}", "bad.json: temprature: unknown key",
         ASSAY_ERR_CONFIG},
        {"{\"name\":\"t\",\"description\":\"d\",\"kind\":\"llm\",\"pass_threshold\":9,"
         "\"fields\":[\"output\"]," SCALE5 "}",
         "bad.json: pass_threshold: outside the scale", ASSAY_ERR_CONFIG},
        {"{\"name\":\"t\",\"description\":\"d\",\"kind\":\"llm\",\"pass_threshold\":3,"
         "\"fields\":[\"output\",\"answer\"]," SCALE5 "}",
         "bad.json: fields[1]: must be one of", ASSAY_ERR_CONFIG},
        {"{\"name\":\"t\",\"description\":\"d\",\"kind\":\"rule\",\"pass_threshold\":1,"
         "\"fields\":[\"output\"],\"rule\":\"telepathy\"}",
         "bad.json: rule: must be", ASSAY_ERR_CONFIG},
        {"{\"name\":\"t\",\"description\":\"d\",\"kind\":\"rule\",\"pass_threshold\":1,"
         "\"fields\":[\"output\"],\"rule\":\"max-length\",\"params\":{}}",
         "bad.json: params.max_chars: missing", ASSAY_ERR_CONFIG},
        {"{\"name\":\"t\",\"description\":\"d\",\"kind\":\"rule\",\"pass_threshold\":1,"
         "\"fields\":[\"output\"],\"rule\":\"pii-leak\",\"params\":{\"detect\":[\"ssn\"]}}",
         "bad.json: params.detect", ASSAY_ERR_CONFIG},
        {"{\"name\":\"t\",\"description\":\"d\",\"kind\":\"rule\",\"pass_threshold\":1,"
         "\"fields\":[\"output\"],\"rule\":\"regex\",\"params\":{\"pattern\":\"a(\"}}",
         "bad.json: params.pattern: pattern error", ASSAY_ERR_CONFIG},
        {"{\"name\":\"t\",\"description\":\"d\",\"kind\":\"rule\",\"pass_threshold\":1,"
         "\"scale\":{\"min\":0,\"max\":10},"
         "\"fields\":[\"output\"],\"rule\":\"json-valid\"}",
         "bad.json: scale: a rule rubric's scale is 0..1", ASSAY_ERR_CONFIG},
        {"{\"name\":\"t\",\"description\":\"d\",\"kind\":\"reference\",\"pass_threshold\":0.5,"
         "\"fields\":[\"output\"],\"metric\":\"bleu\"}",
         "bad.json: metric: must be", ASSAY_ERR_CONFIG},
        {"{\"name\":\"t\",\"description\":\"d\",\"kind\":\"reference\",\"pass_threshold\":0.5,"
         "\"fields\":[\"output\"],\"metric\":\"rouge-l\"}",
         "bad.json: fields: a reference rubric needs", ASSAY_ERR_CONFIG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct rubric *r = (struct rubric *)1;
        char err[ASSAY_ERRBUF_SIZE] = "";
        enum assay_err rc = rubric_parse("bad.json", cases[i].json, strlen(cases[i].json), &r, err);
        if (rc != cases[i].err || !strstr(err, cases[i].want)) {
            fprintf(stderr, "case %zu: rc %d err \"%s\", want \"%s\"\n", i, (int)rc, err,
                    cases[i].want);
            CHECK(0);
        }
        CHECK(r == NULL);
    }
}

TEST_CASE(registry_errors_name_the_file)
{
    const char *dir = test_tmpdir();
    char err[ASSAY_ERRBUF_SIZE] = "";
    struct rubric_registry *reg = (struct rubric_registry *)1;
    const char *good = "{\"name\":\"same\",\"description\":\"d\",\"kind\":\"rule\","
                       "\"pass_threshold\":1,\"fields\":[\"output\"],\"rule\":\"json-valid\"}";
    write_file(dir, "a.json", good);
    write_file(dir, "notes.txt", "ignored");
    REQUIRE_INT_EQ(rubric_registry_load(dir, &reg, err), ASSAY_OK);
    CHECK_INT_EQ(rubric_registry_count(reg), 1);
    rubric_registry_free(reg);

    write_file(dir, "b.json", good);
    CHECK_INT_EQ(rubric_registry_load(dir, &reg, err), ASSAY_ERR_CONFIG);
    CHECK(reg == NULL);
    CHECK(strstr(err, "b.json: name:") != NULL);

    write_file(dir, "b.json", "{\"name\":\"other\",\"kind\":\"rule\"}");
    CHECK_INT_EQ(rubric_registry_load(dir, &reg, err), ASSAY_ERR_CONFIG);
    CHECK(strstr(err, "b.json: description: missing") != NULL);

    char missing[1100];
    snprintf(missing, sizeof missing, "%s/none", dir);
    CHECK_INT_EQ(rubric_registry_load(missing, &reg, err), ASSAY_ERR_IO);
    struct rubric *r = NULL;
    CHECK_INT_EQ(rubric_load(missing, &r, err), ASSAY_ERR_IO);
    CHECK(r == NULL);
}

TEST_CASE(oversized_file_refused)
{
    size_t n = RUBRIC_FILE_MAX + 10;
    char *text = malloc(n);
    REQUIRE(text != NULL);
    memset(text, ' ', n);
    struct rubric *r = NULL;
    char err[ASSAY_ERRBUF_SIZE] = "";
    CHECK_INT_EQ(rubric_parse("big.json", text, n, &r, err), ASSAY_ERR_TOO_LARGE);
    CHECK(strstr(err, "big.json") != NULL);
    free(text);
}
