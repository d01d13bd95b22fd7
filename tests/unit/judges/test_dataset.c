/*
 * Unit tests for judges/dataset: the shipped datasets load and agree with the
 * rubrics; broken files are refused naming file, line and field; and
 * datasets/demo-traffic.jsonl holds valid samples whose bad stretch is really
 * worse.
 */
#include "judges/dataset.h"
#include "common/buf.h"
#include "judges/reference.h"
#include "tests/unit/test.h"

#include <ctype.h>
#include <stdio.h>

/* The bad deploy of scripts/gen-demo-traffic (0-based, inclusive). */
#define DEMO_BAD_FIRST 150
#define DEMO_BAD_LAST 249

static struct dataset *load_shipped(const char *name)
{
    char path[1024], err[ASSAY_ERRBUF_SIZE] = "";
    snprintf(path, sizeof path, "%s/datasets/%s", test_source_dir(), name);
    struct dataset *d = NULL;
    enum assay_err rc = dataset_load(path, NULL, &d, err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    REQUIRE_INT_EQ(rc, ASSAY_OK);
    REQUIRE(d != NULL);
    return d;
}

static struct rubric_registry *load_rubrics(void)
{
    char dir[1024], err[ASSAY_ERRBUF_SIZE] = "";
    snprintf(dir, sizeof dir, "%s/rubrics", test_source_dir());
    struct rubric_registry *reg = NULL;
    enum assay_err rc = rubric_registry_load(dir, &reg, err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    REQUIRE_INT_EQ(rc, ASSAY_OK);
    return reg;
}

/* Ids unique, by a quadratic check independent of the loader's hash table. */
static void check_ids_unique(const struct dataset *d)
{
    for (size_t i = 0; i < d->n_items; i++)
        for (size_t k = i + 1; k < d->n_items; k++)
            CHECK(strcmp(d->items[i].id, d->items[k].id) != 0);
    for (size_t i = 0; i < d->n_items; i++)
        CHECK(dataset_find(d, d->items[i].id) == &d->items[i]);
}

static const char *tag(const struct dataset_item *it, const char *key)
{
    for (size_t i = 0; i < it->n_tags; i++)
        if (strcmp(it->tags[i].key, key) == 0)
            return it->tags[i].value;
    return NULL;
}

TEST_CASE(support_qa_loads)
{
    struct dataset *d = load_shipped("support-qa.jsonl");
    struct rubric_registry *reg = load_rubrics();
    char err[ASSAY_ERRBUF_SIZE] = "";
    CHECK(d->n_items >= 40);
    CHECK_INT_EQ(d->kind, DATASET_KIND_GOLDEN);
    CHECK_STR_EQ(d->name, "support-qa");
    check_ids_unique(d);
    size_t conversations = 0;
    for (size_t i = 0; i < d->n_items; i++) {
        const struct dataset_item *it = &d->items[i];
        CHECK(it->input && *it->input);
        CHECK(it->reference && *it->reference);
        CHECK(it->output == NULL && it->n_human_scores == 0);
        CHECK(tag(it, "topic") != NULL);
        if (it->messages)
            conversations++;
    }
    CHECK(conversations >= 2);
    enum assay_err rc = dataset_rubrics_check(d, reg, err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    CHECK_INT_EQ(rc, ASSAY_OK);
    rubric_registry_free(reg);
    dataset_free(d);
}

TEST_CASE(rag_faithfulness_loads)
{
    struct dataset *d = load_shipped("rag-faithfulness.jsonl");
    struct rubric_registry *reg = load_rubrics();
    char err[ASSAY_ERRBUF_SIZE] = "";
    CHECK(d->n_items >= 40);
    CHECK_INT_EQ(d->kind, DATASET_KIND_GOLDEN);
    check_ids_unique(d);
    size_t unanswerable = 0;
    for (size_t i = 0; i < d->n_items; i++) {
        const struct dataset_item *it = &d->items[i];
        CHECK(it->n_passages >= 1 && it->n_passages <= 3);
        CHECK(it->context != NULL);
        CHECK(it->reference != NULL);
        const char *answerable = tag(it, "answerable");
        REQUIRE(answerable != NULL);
        if (strcmp(answerable, "no") == 0)
            unanswerable++;
    }
    CHECK(unanswerable >= 5);
    CHECK(unanswerable * 3 < d->n_items);
    enum assay_err rc = dataset_rubrics_check(d, reg, err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    CHECK_INT_EQ(rc, ASSAY_OK);
    rubric_registry_free(reg);
    dataset_free(d);
}

TEST_CASE(calibration_loads_with_scores_in_scale)
{
    struct dataset *d = load_shipped("judge-calibration.calibration.jsonl");
    struct rubric_registry *reg = load_rubrics();
    char err[ASSAY_ERRBUF_SIZE] = "";
    CHECK(d->n_items >= 30);
    CHECK_INT_EQ(d->kind, DATASET_KIND_CALIBRATION);
    CHECK_STR_EQ(d->name, "judge-calibration");
    check_ids_unique(d);
    size_t low = 0, mid = 0, high = 0, faithful = 0;
    for (size_t i = 0; i < d->n_items; i++) {
        const struct dataset_item *it = &d->items[i];
        REQUIRE(it->output != NULL);
        REQUIRE(it->n_human_scores >= 1);
        for (size_t k = 0; k < it->n_human_scores; k++) {
            const struct rubric *r = rubric_registry_find(reg, it->human_scores[k].rubric);
            REQUIRE(r != NULL);
            double s = it->human_scores[k].score;
            CHECK(s >= r->scale.min && s <= r->scale.max);
            CHECK(!r->scale.integer || s == (double)(long)s);
            if (strcmp(r->name, "faithfulness") == 0) {
                faithful++;
                CHECK(it->context != NULL);
            }
        }
        double h;
        REQUIRE(dataset_item_human_score(it, "helpfulness", &h));
        if (h <= 2)
            low++;
        else if (h == 3)
            mid++;
        else
            high++;
    }
    /* Clearly good, mediocre and bad answers all present. */
    CHECK(low >= 5 && mid >= 3 && high >= 5);
    CHECK(faithful >= 10);
    enum assay_err rc = dataset_rubrics_check(d, reg, err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    CHECK_INT_EQ(rc, ASSAY_OK);
    rubric_registry_free(reg);
    dataset_free(d);
}

/* --- broken files ------------------------------------------------------- */

/* Writes text to name in the case's temp dir; loads it; returns the code and the message. */
static enum assay_err load_text(const char *name, const char *text,
                                const struct dataset_limits *lim, char *path_out,
                                char err[ASSAY_ERRBUF_SIZE])
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    if (path_out)
        strcpy(path_out, path);
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    struct dataset *d = NULL;
    err[0] = '\0';
    enum assay_err rc = dataset_load(path, lim, &d, err);
    CHECK((rc == ASSAY_OK) == (d != NULL));
    dataset_free(d);
    return rc;
}

/* Expects the load to fail with code and a message ending in "name:want". */
static void expect_error(const char *name, const char *text, enum assay_err code, const char *want)
{
    char path[1024], err[ASSAY_ERRBUF_SIZE], expected[1400];
    enum assay_err rc = load_text(name, text, NULL, path, err);
    snprintf(expected, sizeof expected, "%s:%s", path, want);
    if (rc != code || strncmp(err, expected, strlen(expected)) != 0) {
        fprintf(stderr, "input:\n%s\n", text);
        CHECK_INT_EQ(rc, code);
        CHECK_STR_EQ(err, expected);
    }
}

#define GOOD "{\"id\": \"a\", \"input\": \"q\", \"reference\": \"r\"}\n"

TEST_CASE(errors_name_file_line_and_field)
{
    expect_error("x.jsonl", "# a comment\n\n{\"id\": \"a\", \"input\": \"q\", \"reference\": 5}\n",
                 ASSAY_ERR_INVALID_ARGUMENT, "3: reference: must be a non-empty string");
    expect_error("x.jsonl", GOOD "{\"input\": \"q\", \"reference\": \"r\"}\n",
                 ASSAY_ERR_INVALID_ARGUMENT, "2: id: missing");
    expect_error("x.jsonl", "{\"id\": \"a b\", \"input\": \"q\", \"reference\": \"r\"}\n",
                 ASSAY_ERR_INVALID_ARGUMENT, "1: id: must be 1 to 128");
    expect_error("x.jsonl", GOOD "{\"id\": \"a\", \"input\": \"q\"\n", ASSAY_ERR_PARSE,
                 "2: (line): not valid JSON");
    expect_error("x.jsonl", "[1, 2]\n", ASSAY_ERR_INVALID_ARGUMENT,
                 "1: (line): must hold one JSON object");
    expect_error("x.jsonl", "{\"id\": \"a\", \"input\": \"q\", \"refrence\": \"r\"}\n",
                 ASSAY_ERR_INVALID_ARGUMENT, "1: refrence: unknown key");
    expect_error("x.jsonl", "{\"id\": \"a\", \"input\": \"q\"}\n", ASSAY_ERR_INVALID_ARGUMENT,
                 "1: reference: missing");
    expect_error("x.jsonl", "{\"id\": \"a\", \"input\": \"\", \"reference\": \"r\"}\n",
                 ASSAY_ERR_INVALID_ARGUMENT, "1: input: must be a non-empty string");
    expect_error("x.jsonl", "{\"id\": \"a\", \"input\": 3, \"reference\": \"r\"}\n",
                 ASSAY_ERR_INVALID_ARGUMENT, "1: input: must be a string or an array of messages");
    expect_error(
        "x.jsonl",
        "{\"id\": \"a\", \"input\": \"q\", \"reference\": \"r\", \"context\": [\"p\", 2]}\n",
        ASSAY_ERR_INVALID_ARGUMENT, "1: context[1]: must be a non-empty string");
    expect_error("x.jsonl",
                 "{\"id\": \"a\", \"input\": \"q\", \"reference\": \"r\", \"context\": []}\n",
                 ASSAY_ERR_INVALID_ARGUMENT, "1: context: must be a string or a non-empty array");
    expect_error(
        "x.jsonl",
        "{\"id\": \"a\", \"input\": \"q\", \"reference\": \"r\", \"rubrics\": [\"Bad\"]}\n",
        ASSAY_ERR_INVALID_ARGUMENT, "1: rubrics[0]: must be a rubric name");
    expect_error("x.jsonl",
                 "{\"id\": \"a\", \"input\": \"q\", \"reference\": \"r\", "
                 "\"rubrics\": [\"correctness\", \"correctness\"]}\n",
                 ASSAY_ERR_INVALID_ARGUMENT, "1: rubrics[1]: names a rubric already listed");
    expect_error(
        "x.jsonl",
        "{\"id\": \"a\", \"input\": \"q\", \"reference\": \"r\", \"tags\": {\"team\": 1}}\n",
        ASSAY_ERR_INVALID_ARGUMENT, "1: tags.team: must be a string");
    expect_error("x.jsonl",
                 "{\"id\": \"a\", \"input\": \"q\", \"reference\": \"r\", \"tags\": []}\n",
                 ASSAY_ERR_INVALID_ARGUMENT, "1: tags: must be an object of strings");
    expect_error("x.jsonl", "", ASSAY_ERR_INVALID_ARGUMENT, " (file): holds no items");
    expect_error("x.jsonl", "# only a comment\n\n", ASSAY_ERR_INVALID_ARGUMENT,
                 " (file): holds no items");
}

TEST_CASE(duplicate_id_names_both_lines)
{
    expect_error("dup.jsonl",
                 GOOD "{\"id\": \"b\", \"input\": \"q\", \"reference\": \"r\"}\n\n"
                      "{\"id\": \"a\", \"input\": \"q2\", \"reference\": \"r2\"}\n",
                 ASSAY_ERR_INVALID_ARGUMENT, "4: id: \"a\" is already the id of line 1");
}

TEST_CASE(many_items_and_duplicates_far_apart)
{
    struct buf text = BUF_INIT;
    for (int i = 0; i < 3000; i++)
        buf_appendf(&text, "{\"id\": \"item-%d\", \"input\": \"q\", \"reference\": \"r\"}\n", i);
    char err[ASSAY_ERRBUF_SIZE];
    struct dataset *d = NULL;
    REQUIRE_INT_EQ(dataset_parse("many.jsonl", text.data, text.len, NULL, &d, err), ASSAY_OK);
    CHECK_INT_EQ(d->n_items, 3000);
    CHECK_INT_EQ(dataset_find(d, "item-2999")->line, 3000);
    CHECK(dataset_find(d, "item-3000") == NULL);
    dataset_free(d);
    buf_appendf(&text, "{\"id\": \"item-17\", \"input\": \"q\", \"reference\": \"r\"}\n");
    CHECK_INT_EQ(dataset_parse("many.jsonl", text.data, text.len, NULL, &d, err),
                 ASSAY_ERR_INVALID_ARGUMENT);
    CHECK(d == NULL);
    CHECK_STR_EQ(err, "many.jsonl:3001: id: \"item-17\" is already the id of line 18");
    buf_clear(&text);
}

TEST_CASE(messages_rules)
{
    const char *pre = "{\"id\": \"m\", \"reference\": \"r\", \"input\": ";
    struct {
        const char *input, *want;
    } cases[] = {
        {"[]", "1: input: must be a non-empty string or a non-empty array of messages"},
        {"[{\"role\": \"assistant\", \"content\": \"hi\"}]",
         "1: input[0].role: the first message must be the user's"},
        {"[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}]",
         "1: input[1].role: roles must alternate between user and assistant"},
        {"[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": "
         "\"b\"}]",
         "1: input[1].role: the last message must be the user's"},
        {"[{\"role\": \"system\", \"content\": \"a\"}]",
         "1: input[0].role: must be \"user\" or \"assistant\""},
        {"[{\"role\": \"user\"}]", "1: input[0].content: missing"},
        {"[{\"role\": \"user\", \"content\": []}]",
         "1: input[0].content: must be a non-empty string or an array of text blocks"},
        {"[{\"role\": \"user\", \"content\": [{\"text\": \"a\"}, {\"image\": {}}]}]",
         "1: input[0].content[1]: only text blocks"},
        {"[{\"role\": \"user\", \"content\": [{\"text\": 7}]}]",
         "1: input[0].content[0].text: must be a non-empty string"},
        {"[{\"role\": \"user\", \"content\": \"a\", \"name\": \"x\"}]",
         "1: input[0].name: unknown key"},
        {"[\"hello\"]", "1: input[0]: must be a message object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[1024];
        snprintf(text, sizeof text, "%s%s}\n", pre, cases[i].input);
        expect_error("m.jsonl", text, ASSAY_ERR_INVALID_ARGUMENT, cases[i].want);
    }
}

TEST_CASE(kind_follows_file_name)
{
    const char *calib = "{\"id\": \"c\", \"input\": \"q\", \"output\": \"o\", "
                        "\"human_scores\": {\"helpfulness\": 4}}\n";
    char err[ASSAY_ERRBUF_SIZE];
    CHECK_INT_EQ(load_text("k.calibration.jsonl", calib, NULL, NULL, err), ASSAY_OK);
    expect_error("k.jsonl", calib, ASSAY_ERR_INVALID_ARGUMENT,
                 "1: output: only calibration sets (files named *.calibration.jsonl)");
    expect_error("k.calibration.jsonl", GOOD, ASSAY_ERR_INVALID_ARGUMENT,
                 "1: output: missing (every calibration item has one)");
    expect_error("k.calibration.jsonl", "{\"id\": \"c\", \"input\": \"q\", \"output\": \"o\"}\n",
                 ASSAY_ERR_INVALID_ARGUMENT, "1: human_scores: missing");
    expect_error("k.calibration.jsonl",
                 "{\"id\": \"c\", \"input\": \"q\", \"output\": \"o\", \"human_scores\": {}}\n",
                 ASSAY_ERR_INVALID_ARGUMENT, "1: human_scores: must be a non-empty object");
    expect_error("k.calibration.jsonl",
                 "{\"id\": \"c\", \"input\": \"q\", \"output\": \"o\", "
                 "\"human_scores\": {\"correctness\": \"4\"}}\n",
                 ASSAY_ERR_INVALID_ARGUMENT, "1: human_scores.correctness: must be a number");
    expect_error("k.calibration.jsonl",
                 "{\"id\": \"c\", \"input\": \"q\", \"output\": 1, \"human_scores\": {\"x\": 1}}\n",
                 ASSAY_ERR_INVALID_ARGUMENT, "1: output: must be a string");
    CHECK_INT_EQ(dataset_kind_from_path("a/b.calibration.jsonl"), DATASET_KIND_CALIBRATION);
    CHECK_INT_EQ(dataset_kind_from_path("a/b.jsonl"), DATASET_KIND_GOLDEN);
    CHECK_INT_EQ(dataset_kind_from_path(NULL), DATASET_KIND_GOLDEN);
    CHECK_STR_EQ(dataset_kind_name(DATASET_KIND_CALIBRATION), "calibration");
    CHECK_STR_EQ(dataset_kind_name(DATASET_KIND_GOLDEN), "golden");
}

TEST_CASE(rubric_checks_name_line_and_field)
{
    struct rubric_registry *reg = load_rubrics();
    struct {
        const char *name, *text, *want;
    } cases[] = {
        {"s.calibration.jsonl",
         "{\"id\": \"c\", \"input\": \"q\", \"reference\": \"r\", \"output\": \"o\", "
         "\"human_scores\": {\"helpfulness\": 4}}\n"
         "{\"id\": \"d\", \"input\": \"q\", \"reference\": \"r\", \"output\": \"o\", "
         "\"human_scores\": {\"correctness\": 6}}\n",
         "2: human_scores.correctness: 6 is outside the rubric's scale 1..5"},
        {"s.calibration.jsonl",
         "{\"id\": \"c\", \"input\": \"q\", \"output\": \"o\", \"human_scores\": "
         "{\"helpfulness\": 3.5}}\n",
         "1: human_scores.helpfulness: 3.5 is not a whole number (the scale is integer)"},
        {"s.calibration.jsonl",
         "{\"id\": \"c\", \"input\": \"q\", \"output\": \"o\", \"human_scores\": "
         "{\"faithfulness\": 3}}\n",
         "1: human_scores.faithfulness: rubric faithfulness needs the item's context"},
        {"s.calibration.jsonl",
         "{\"id\": \"c\", \"input\": \"q\", \"output\": \"o\", \"human_scores\": "
         "{\"no-such-rubric\": 3}}\n",
         "1: human_scores.no-such-rubric: no rubric has this name"},
        {"s.calibration.jsonl",
         "{\"id\": \"c\", \"input\": \"q\", \"output\": \"o\", \"human_scores\": "
         "{\"token-f1\": 1.5}}\n",
         "1: human_scores.token-f1: 1.5 is outside the rubric's scale 0..1"},
        {"s.jsonl",
         GOOD "{\"id\": \"b\", \"input\": \"q\", \"reference\": \"r\", "
              "\"rubrics\": [\"helpfulness\", \"nope\"]}\n",
         "2: rubrics[1]: no rubric is named \"nope\""},
        {"s.jsonl",
         "{\"id\": \"b\", \"input\": \"q\", \"reference\": \"r\", "
         "\"rubrics\": [\"faithfulness\"]}\n",
         "1: rubrics[0]: rubric faithfulness needs the item's context"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[1024], err[ASSAY_ERRBUF_SIZE] = "", want[1400];
        snprintf(path, sizeof path, "%s/%s", test_tmpdir(), cases[i].name);
        FILE *f = fopen(path, "wb");
        REQUIRE(f != NULL);
        fputs(cases[i].text, f);
        fclose(f);
        struct dataset *d = NULL;
        REQUIRE_INT_EQ(dataset_load(path, NULL, &d, err), ASSAY_OK);
        CHECK_INT_EQ(dataset_rubrics_check(d, reg, err), ASSAY_ERR_INVALID_ARGUMENT);
        snprintf(want, sizeof want, "%s:%s", path, cases[i].want);
        CHECK_STR_EQ(err, want);
        dataset_free(d);
    }
    rubric_registry_free(reg);
}

TEST_CASE(limits_are_enforced)
{
    char err[ASSAY_ERRBUF_SIZE], path[1024], want[1400];
    struct dataset_limits lim = {.line_max = 60};
    CHECK_INT_EQ(load_text("l.jsonl",
                           GOOD "{\"id\": \"b\", \"input\": \"a long question for a small cap\", "
                                "\"reference\": \"r\"}\n",
                           &lim, path, err),
                 ASSAY_ERR_TOO_LARGE);
    snprintf(want, sizeof want, "%s:2: (line): longer than 60 bytes", path);
    CHECK_STR_EQ(err, want);
    lim = (struct dataset_limits){.items_max = 2};
    CHECK_INT_EQ(
        load_text("n.jsonl", GOOD GOOD GOOD, &lim, path, err), /* line 2 breaks a rule first */
        ASSAY_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, ":2: id: \"a\" is already the id of line 1") != NULL);
    CHECK_INT_EQ(load_text("n.jsonl",
                           GOOD "{\"id\": \"b\", \"input\": \"q\", \"reference\": \"r\"}\n"
                                "{\"id\": \"c\", \"input\": \"q\", \"reference\": \"r\"}\n",
                           &lim, path, err),
                 ASSAY_ERR_TOO_LARGE);
    snprintf(want, sizeof want, "%s:3: (file): more than 2 items", path);
    CHECK_STR_EQ(err, want);
    lim = (struct dataset_limits){.file_max = 32};
    CHECK_INT_EQ(load_text("f.jsonl", GOOD, &lim, path, err), ASSAY_ERR_TOO_LARGE);
    snprintf(want, sizeof want, "%s: (file): larger than 32 bytes", path);
    CHECK_STR_EQ(err, want);
    struct buf text = BUF_INIT;
    buf_append_str(&text, "{\"id\": \"t\", \"input\": \"q\", \"reference\": \"r\", \"tags\": {");
    for (int i = 0; i < 17; i++)
        buf_appendf(&text, "%s\"k%d\": \"v\"", i ? ", " : "", i);
    buf_append_str(&text, "}}\n");
    CHECK_INT_EQ(load_text("t.jsonl", text.data, NULL, path, err), ASSAY_ERR_TOO_LARGE);
    CHECK(strstr(err, ":1: tags: more than 16 tags") != NULL);
    buf_reset(&text);
    buf_append_str(&text, "{\"id\": \"t\", \"input\": \"q\", \"reference\": \"r\", \"tags\": "
                          "{\"team\": \"");
    for (int i = 0; i < 257; i++)
        buf_append_str(&text, "\xc3\xa9"); /* 257 characters, 514 bytes */
    buf_append_str(&text, "\"}}\n");
    CHECK_INT_EQ(load_text("t.jsonl", text.data, NULL, path, err), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, ":1: tags.team: longer than 256 characters") != NULL);
    buf_reset(&text);
    buf_append_str(&text, "{\"id\": \"t\", \"input\": \"q\", \"reference\": \"r\", \"tags\": "
                          "{\"team\": \"");
    for (int i = 0; i < 256; i++)
        buf_append_str(&text, "\xc3\xa9"); /* exactly 256 characters */
    buf_append_str(&text, "\"}}\n");
    CHECK_INT_EQ(load_text("t.jsonl", text.data, NULL, path, err), ASSAY_OK);
    buf_reset(&text);
    buf_append_str(&text, "{\"id\": \"");
    for (int i = 0; i < 129; i++)
        buf_append_char(&text, 'x');
    buf_append_str(&text, "\", \"input\": \"q\", \"reference\": \"r\"}\n");
    CHECK_INT_EQ(load_text("i.jsonl", text.data, NULL, path, err), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, ":1: id: must be 1 to 128") != NULL);
    buf_clear(&text);
}

TEST_CASE(comments_blank_lines_crlf_and_bom)
{
    const char *text = "\xEF\xBB\xBF# golden set for the test\r\n"
                       "\r\n"
                       "   # an indented comment\n"
                       "{\"id\": \"one\", \"input\": \"q1\", \"reference\": \"r1\"}\r\n"
                       " \t \n"
                       "{\"id\": \"two\", \"input\": \"q2\", \"reference\": \"r2\", "
                       "\"context\": null, \"tags\": null}";
    char err[ASSAY_ERRBUF_SIZE];
    struct dataset *d = NULL;
    REQUIRE_INT_EQ(dataset_parse("dir/c.jsonl", text, strlen(text), NULL, &d, err), ASSAY_OK);
    REQUIRE_INT_EQ(d->n_items, 2);
    CHECK_INT_EQ(d->items[0].line, 4);
    CHECK_INT_EQ(d->items[1].line, 6);
    CHECK_STR_EQ(d->items[0].reference, "r1");
    CHECK(d->items[1].context == NULL && d->items[1].n_tags == 0);
    CHECK_STR_EQ(d->name, "c");
    CHECK_STR_EQ(d->path, "dir/c.jsonl");
    dataset_free(d);
    /* The text need not be NUL-terminated: a line cut at len. */
    const char *cut = "{\"id\": \"a\", \"input\": \"q\", \"reference\": \"r\"}GARBAGE";
    REQUIRE_INT_EQ(dataset_parse("cut.jsonl", cut, strlen(cut) - 7, NULL, &d, err), ASSAY_OK);
    dataset_free(d);
}

TEST_CASE(item_fields_and_sample)
{
    const char *text =
        "{\"id\": \"conv:1\", \"input\": [{\"role\": \"user\", \"content\": \"Hi\"}, "
        "{\"role\": \"assistant\", \"content\": [{\"text\": \"Hello.\"}, {\"text\": \"How can I "
        "help?\"}]}, {\"role\": \"user\", \"content\": [{\"text\": \"Refund?\"}]}], "
        "\"reference\": \"Within 14 days.\", \"context\": [\"P1\", \"P2\"], "
        "\"rubrics\": [\"correctness\", \"token-f1\"], \"tags\": {\"topic\": \"refunds\", \"x\": "
        "\"\"}}\n"
        "{\"id\": \"single\", \"input\": [{\"role\": \"user\", \"content\": [{\"text\": \"a\"}, "
        "{\"text\": \"b\"}]}], \"reference\": \"r\", \"context\": \"only\"}\n";
    char err[ASSAY_ERRBUF_SIZE];
    struct dataset *d = NULL;
    REQUIRE_INT_EQ(dataset_parse("f.jsonl", text, strlen(text), NULL, &d, err), ASSAY_OK);
    REQUIRE_INT_EQ(d->n_items, 2);
    const struct dataset_item *it = dataset_find(d, "conv:1");
    REQUIRE(it != NULL);
    CHECK_STR_EQ(it->input, "user: Hi\n\nassistant: Hello.\nHow can I help?\n\nuser: Refund?");
    REQUIRE(it->messages != NULL);
    char *json = json_dumps(it->messages, JSON_COMPACT);
    CHECK_STR_EQ(json,
                 "[{\"role\":\"user\",\"content\":[{\"text\":\"Hi\"}]},"
                 "{\"role\":\"assistant\",\"content\":[{\"text\":\"Hello.\"},{\"text\":\"How "
                 "can I help?\"}]},{\"role\":\"user\",\"content\":[{\"text\":\"Refund?\"}]}]");
    free(json);
    CHECK_INT_EQ(it->n_passages, 2);
    CHECK_STR_EQ(it->passages[1], "P2");
    CHECK_STR_EQ(it->context, "P1\n\nP2");
    CHECK_INT_EQ(it->n_rubrics, 2);
    CHECK_STR_EQ(it->rubrics[1], "token-f1");
    CHECK_INT_EQ(it->n_tags, 2);
    CHECK_STR_EQ(it->tags[0].key, "topic");
    CHECK_STR_EQ(it->tags[0].value, "refunds");
    CHECK_STR_EQ(it->tags[1].value, "");
    struct rubric_sample s;
    dataset_item_sample(it, "Yes, within 14 days.", &s);
    CHECK(s.input == it->input && s.context == it->context && s.reference == it->reference);
    CHECK_STR_EQ(s.output, "Yes, within 14 days.");
    double score;
    CHECK(!dataset_item_human_score(it, "correctness", &score));
    it = dataset_find(d, "single");
    REQUIRE(it != NULL);
    CHECK_STR_EQ(it->input, "a\nb");
    CHECK_STR_EQ(it->context, "only");
    CHECK_INT_EQ(it->n_passages, 1);
    CHECK(it->rubrics == NULL && it->n_rubrics == 0);
    dataset_free(d);

    const char *calib = "{\"id\": \"c\", \"input\": \"q\", \"output\": \"\", "
                        "\"human_scores\": {\"helpfulness\": 1, \"token-f1\": 0.25}}\n";
    REQUIRE_INT_EQ(dataset_parse("c.calibration.jsonl", calib, strlen(calib), NULL, &d, err),
                   ASSAY_OK);
    it = &d->items[0];
    CHECK(it->reference == NULL);
    CHECK_STR_EQ(it->output, "");
    dataset_item_sample(it, NULL, &s);
    CHECK(s.output == it->output);
    CHECK(dataset_item_human_score(it, "token-f1", &score));
    CHECK_NEAR(score, 0.25, 0);
    CHECK(dataset_item_human_score(it, "helpfulness", &score));
    CHECK_NEAR(score, 1, 0);
    dataset_free(d);
}

TEST_CASE(free_null_and_missing_file)
{
    dataset_free(NULL);
    CHECK(dataset_find(NULL, "x") == NULL);
    char path[1024], err[ASSAY_ERRBUF_SIZE] = "";
    snprintf(path, sizeof path, "%s/absent.jsonl", test_tmpdir());
    struct dataset *d = (struct dataset *)&path; /* must be reset to NULL */
    CHECK_INT_EQ(dataset_load(path, NULL, &d, err), ASSAY_ERR_IO);
    CHECK(d == NULL);
    CHECK(strstr(err, "absent.jsonl: cannot open") != NULL);
    struct dataset_limits l;
    dataset_limits_default(&l);
    CHECK_INT_EQ(l.line_max, DATASET_LINE_MAX_DEFAULT);
    CHECK_INT_EQ(l.items_max, DATASET_ITEMS_MAX_DEFAULT);
    CHECK_INT_EQ(l.file_max, DATASET_FILE_MAX_DEFAULT);
}

/* --- demo traffic --------------------------------------------------------- */

static bool charset_ok(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i]))
            return false;
    return true;
}

static size_t chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

/* RFC 3339 (date-time) to epoch milliseconds; false when malformed. */
static bool rfc3339_ms(const char *s, long long *out)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    const char *p = s + 19;
    long long ms = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        if (digits == 0)
            return false;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    long long offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5)
            return false;
        offset_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return false;
    }
    if (*p)
        return false;
    long long days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    *out = ((days * 86400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms;
    return true;
}

/* Checks one demo sample against DESIGN.md's sample rules; NULL when valid. */
static const char *sample_problem(const json_t *s)
{
    static const char *const keys[] = {"app",       "id",       "input", "output",    "context",
                                       "reference", "model_id", "tags",  "timestamp", "feedback",
                                       "rubrics",   "trace_id", "force", NULL};
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)s, key, v)
    {
        bool known = false;
        for (size_t i = 0; keys[i]; i++)
            known = known || strcmp(keys[i], key) == 0;
        if (!known)
            return "unknown field";
    }
    const char *app = json_string_value(json_object_get(s, "app"));
    if (!app || !charset_ok(app, 64, "._-"))
        return "app";
    const char *id = json_string_value(json_object_get(s, "id"));
    if (!id || !charset_ok(id, 128, "._:-"))
        return "id";
    if (!json_is_string(json_object_get(s, "output")))
        return "output";
    json_t *input = json_object_get(s, "input");
    if (json_is_array(input)) {
        size_t i;
        json_t *m;
        json_array_foreach(input, i, m)
        {
            const char *role = json_string_value(json_object_get(m, "role"));
            if (!role || (strcmp(role, "user") && strcmp(role, "assistant")))
                return "input role";
            if (!json_is_array(json_object_get(m, "content")))
                return "input content";
        }
    } else if (!json_is_string(input)) {
        return "input";
    }
    json_t *ctx = json_object_get(s, "context");
    if (ctx && !json_is_string(ctx)) {
        if (!json_is_array(ctx))
            return "context";
        size_t i;
        json_t *p;
        json_array_foreach(ctx, i, p)
        {
            if (!json_is_string(p))
                return "context passage";
        }
    }
    json_t *ref = json_object_get(s, "reference");
    if (ref && !json_is_string(ref))
        return "reference";
    const char *model = json_string_value(json_object_get(s, "model_id"));
    if (!model || strlen(model) > 256)
        return "model_id";
    for (const char *p = model; *p; p++)
        if (*p <= ' ' || *p > '~')
            return "model_id";
    json_t *tags = json_object_get(s, "tags");
    if (!json_is_object(tags) || json_object_size(tags) > 16)
        return "tags";
    json_object_foreach(tags, key, v)
    {
        if (chars(key) < 1 || chars(key) > 64)
            return "tag key";
        if (!json_is_string(v) || chars(json_string_value(v)) > 256)
            return "tag value";
    }
    json_t *fb = json_object_get(s, "feedback");
    if (fb && (!json_is_string(fb) || (strcmp(json_string_value(fb), "positive") &&
                                       strcmp(json_string_value(fb), "negative"))))
        return "feedback";
    long long ms;
    const char *ts = json_string_value(json_object_get(s, "timestamp"));
    if (!ts || !rfc3339_ms(ts, &ms))
        return "timestamp";
    return NULL;
}

/* The demo samples, one JSON object each (new references in out[0..*n)). */
static json_t **load_demo(size_t *n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/datasets/demo-traffic.jsonl", test_source_dir());
    FILE *f = fopen(path, "rb");
    REQUIRE(f != NULL);
    json_t **rows = NULL;
    size_t cap = 0;
    *n = 0;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    while ((len = getline(&line, &line_cap, f)) > 0) {
        json_error_t je;
        json_t *v = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &je);
        if (!v)
            fprintf(stderr, "demo-traffic.jsonl:%zu: %s\n", *n + 1, je.text);
        REQUIRE(json_is_object(v));
        if (*n == cap) {
            cap = cap ? cap * 2 : 512;
            rows = realloc(rows, cap * sizeof *rows);
            REQUIRE(rows != NULL);
        }
        rows[(*n)++] = v;
    }
    free(line);
    fclose(f);
    return rows;
}

static void free_demo(json_t **rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(rows[i]);
    free(rows);
}

TEST_CASE(demo_traffic_samples_are_valid)
{
    size_t n;
    json_t **rows = load_demo(&n);
    CHECK(n >= 300 && n <= 400);
    long long prev_ms = 0;
    for (size_t i = 0; i < n; i++) {
        const char *problem = sample_problem(rows[i]);
        if (problem) {
            fprintf(stderr, "demo-traffic.jsonl:%zu: %s\n", i + 1, problem);
            CHECK(problem == NULL);
            continue;
        }
        CHECK_STR_EQ(json_string_value(json_object_get(rows[i], "app")), "support-bot");
        long long ms = 0;
        rfc3339_ms(json_string_value(json_object_get(rows[i], "timestamp")), &ms);
        CHECK(ms > prev_ms); /* in time order */
        prev_ms = ms;
        const char *id = json_string_value(json_object_get(rows[i], "id"));
        for (size_t k = 0; k < i; k++)
            CHECK(strcmp(id, json_string_value(json_object_get(rows[k], "id"))) != 0);
    }
    free_demo(rows, n);
}

TEST_CASE(demo_traffic_bad_stretch_is_worse)
{
    size_t n;
    json_t **rows = load_demo(&n);
    REQUIRE(n > DEMO_BAD_LAST + 50);
    double sum_in = 0, sum_out = 0;
    size_t n_in = 0, n_out = 0, neg_in = 0, neg_out = 0;
    for (size_t i = 0; i < n; i++) {
        bool bad = i >= DEMO_BAD_FIRST && i <= DEMO_BAD_LAST;
        const char *fb = json_string_value(json_object_get(rows[i], "feedback"));
        if (fb && strcmp(fb, "negative") == 0) {
            if (bad)
                neg_in++;
            else
                neg_out++;
        }
        const char *ref = json_string_value(json_object_get(rows[i], "reference"));
        if (!ref)
            continue;
        double f1 = reference_token_f1(json_string_value(json_object_get(rows[i], "output")), ref);
        if (bad) {
            sum_in += f1;
            n_in++;
        } else {
            sum_out += f1;
            n_out++;
        }
    }
    REQUIRE(n_in >= 20 && n_out >= 60);
    double mean_in = sum_in / (double)n_in, mean_out = sum_out / (double)n_out;
    fprintf(stderr, "token F1: bad stretch %.3f over %zu, elsewhere %.3f over %zu\n", mean_in, n_in,
            mean_out, n_out);
    CHECK(mean_in < mean_out - 0.2);
    CHECK(neg_in > neg_out);
    free_demo(rows, n);
}
