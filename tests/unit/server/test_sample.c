/* Unit tests for server/sample: every field rule, batches, NDJSON, error index and field. */
#include "server/sample.h"
#include "common/buf.h"
#include "common/clock.h"
#include "tests/unit/test.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static int known(void *ctx, const char *name)
{
    (void)ctx;
    return strcmp(name, "helpfulness") == 0 || strcmp(name, "faithfulness") == 0;
}

static const struct sample_parse_opts opts = {
    .max_batch = 3, .now_ms = 1700000000000, .rubric_known = known};

static enum assay_err parse(const char *body, enum sample_format fmt, struct sample_batch *b,
                            struct sample_error *e)
{
    return sample_batch_parse(body, strlen(body), fmt, &opts, b, e);
}

/* Expects a refusal naming index and field (and a message containing needle). */
static void refused(const char *body, long index, const char *field, const char *needle)
{
    struct sample_batch b;
    struct sample_error e;
    enum assay_err err = parse(body, SAMPLE_FORMAT_JSON, &b, &e);
    if (err == ASSAY_OK) {
        fprintf(stderr, "accepted: %s\n", body);
        sample_batch_clear(&b);
    }
    CHECK_INT_EQ(err, ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(e.index, index);
    if (field)
        CHECK_STR_EQ(e.field, field);
    if (needle && !strstr(e.message, needle))
        test_fail_str(__FILE__, __LINE__, "e.message", e.message, needle);
    CHECK(b.n == 0 && b.items == NULL);
}

static void accepted(const char *body)
{
    struct sample_batch b;
    struct sample_error e;
    enum assay_err err = parse(body, SAMPLE_FORMAT_JSON, &b, &e);
    if (err != ASSAY_OK)
        fprintf(stderr, "refused: %s: %s (%s)\n", body, e.message, e.field);
    CHECK_INT_EQ(err, ASSAY_OK);
    sample_batch_clear(&b);
}

TEST_CASE(minimal_sample)
{
    struct sample_batch b;
    struct sample_error e;
    REQUIRE_INT_EQ(parse("{\"app\":\"support\",\"output\":\"hi\"}", SAMPLE_FORMAT_JSON, &b, &e),
                   ASSAY_OK);
    REQUIRE_INT_EQ(b.n, 1);
    struct sample *s = &b.items[0];
    CHECK_STR_EQ(s->app, "support");
    CHECK_STR_EQ(s->output, "hi");
    CHECK(s->input == NULL && s->context == NULL && s->reference == NULL);
    CHECK(s->model_id == NULL && s->trace_id == NULL && s->n_rubrics == 0);
    CHECK(s->id_generated);
    REQUIRE(s->id != NULL);
    CHECK_INT_EQ(strlen(s->id), 36);
    CHECK(sample_id_valid(s->id));
    CHECK(s->id[14] == '7');
    CHECK_INT_EQ(s->timestamp_ms, 1700000000000);
    CHECK_INT_EQ(s->feedback, SAMPLE_FEEDBACK_NONE);
    CHECK(!s->force);
    /* the document is normalised: id and timestamp filled in */
    CHECK_STR_EQ(json_string_value(json_object_get(sample_doc(s), "id")), s->id);
    CHECK_INT_EQ(json_integer_value(json_object_get(sample_doc(s), "timestamp")), 1700000000000);
    sample_batch_clear(&b);
    sample_batch_clear(&b);
}

TEST_CASE(full_sample)
{
    const char *body =
        "{\"app\":\"a.b-c_9\",\"output\":\"out\",\"input\":\"in\",\"context\":[\"p1\",\"p2\"],"
        "\"reference\":\"ref\",\"model_id\":\"anthropic.claude-3-haiku-20240307-v1:0\","
        "\"id\":\"req:42.a_b-c\",\"rubrics\":[\"helpfulness\",\"faithfulness\"],"
        "\"tags\":{\"team\":\"x\",\"env\":\"prod\"},"
        "\"trace_id\":\"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;"
        "Sampled=1\",\"timestamp\":\"2026-11-27T01:02:03.5Z\",\"feedback\":\"negative\","
        "\"force\":true}";
    struct sample_batch b;
    struct sample_error e;
    REQUIRE_INT_EQ(parse(body, SAMPLE_FORMAT_JSON, &b, &e), ASSAY_OK);
    struct sample *s = &b.items[0];
    CHECK_STR_EQ(s->input, "in");
    CHECK_STR_EQ(s->context, "p1\n\np2");
    CHECK_STR_EQ(s->reference, "ref");
    CHECK_STR_EQ(s->model_id, "anthropic.claude-3-haiku-20240307-v1:0");
    CHECK_STR_EQ(s->id, "req:42.a_b-c");
    CHECK(!s->id_generated);
    REQUIRE_INT_EQ(s->n_rubrics, 2);
    CHECK_STR_EQ(s->rubrics[1], "faithfulness");
    CHECK(s->trace_id && strncmp(s->trace_id, "Root=1-5759e988", 15) == 0);
    CHECK_INT_EQ(s->timestamp_ms, 1795741323500LL);
    CHECK_INT_EQ(s->feedback, SAMPLE_FEEDBACK_NEGATIVE);
    CHECK(s->force);
    sample_batch_clear(&b);
}

TEST_CASE(app_rules)
{
    refused("{\"output\":\"x\"}", 0, "app", "required");
    refused("{\"app\":\"\",\"output\":\"x\"}", 0, "app", NULL);
    refused("{\"app\":\"a b\",\"output\":\"x\"}", 0, "app", NULL);
    refused("{\"app\":\"a/b\",\"output\":\"x\"}", 0, "app", NULL);
    refused("{\"app\":7,\"output\":\"x\"}", 0, "app", NULL);
    char body[256];
    snprintf(body, sizeof body, "{\"app\":\"%065d\",\"output\":\"x\"}", 0);
    refused(body, 0, "app", NULL);
    snprintf(body, sizeof body, "{\"app\":\"%064d\",\"output\":\"x\"}", 0);
    accepted(body);
    CHECK(!sample_app_valid("caf\xc3\xa9"));
}

TEST_CASE(output_rules)
{
    refused("{\"app\":\"a\"}", 0, "output", "required");
    refused("{\"app\":\"a\",\"output\":null}", 0, "output", NULL);
    refused("{\"app\":\"a\",\"output\":[\"x\"]}", 0, "output", NULL);
    accepted("{\"app\":\"a\",\"output\":\"\"}");
}

TEST_CASE(input_messages)
{
    const char *body = "{\"app\":\"a\",\"output\":\"o\",\"input\":["
                       "{\"role\":\"user\",\"content\":[{\"text\":\"hello\"},{\"image\":{}}]},"
                       "{\"role\":\"assistant\",\"content\":\"hi\"},"
                       "{\"role\":\"user\",\"content\":[{\"text\":\"more\"}]}]}";
    struct sample_batch b;
    struct sample_error e;
    REQUIRE_INT_EQ(parse(body, SAMPLE_FORMAT_JSON, &b, &e), ASSAY_OK);
    CHECK_STR_EQ(b.items[0].input, "[user]\nhello\n\n[assistant]\nhi\n\n[user]\nmore");
    sample_batch_clear(&b);
    refused("{\"app\":\"a\",\"output\":\"o\",\"input\":[]}", 0, "input", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"input\":5}", 0, "input", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"input\":[{\"role\":\"system\",\"content\":\"x\"}]}",
            0, "input[0].role", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"input\":[{\"role\":\"user\",\"content\":\"x\"},"
            "{\"role\":\"user\",\"content\":[{\"text\":1}]}]}",
            0, "input[1].content[0]", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"input\":[{\"role\":\"user\"}]}", 0,
            "input[0].content", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"input\":[\"x\"]}", 0, "input[0]", NULL);
}

TEST_CASE(context_rules)
{
    accepted("{\"app\":\"a\",\"output\":\"o\",\"context\":\"one passage\"}");
    accepted("{\"app\":\"a\",\"output\":\"o\",\"context\":[]}");
    refused("{\"app\":\"a\",\"output\":\"o\",\"context\":{}}", 0, "context", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"context\":[\"x\",2]}", 0, "context[1]", NULL);
}

TEST_CASE(reference_and_model)
{
    refused("{\"app\":\"a\",\"output\":\"o\",\"reference\":1}", 0, "reference", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"model_id\":\"\"}", 0, "model_id", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"model_id\":\"a b\"}", 0, "model_id", NULL);
    accepted(
        "{\"app\":\"a\",\"output\":\"o\",\"model_id\":"
        "\"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x\",\"reference\":null}");
}

TEST_CASE(id_rules)
{
    refused("{\"app\":\"a\",\"output\":\"o\",\"id\":\"\"}", 0, "id", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"id\":\"a/b\"}", 0, "id", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"id\":12}", 0, "id", NULL);
    char body[300];
    snprintf(body, sizeof body, "{\"app\":\"a\",\"output\":\"o\",\"id\":\"%0129d\"}", 0);
    refused(body, 0, "id", NULL);
    snprintf(body, sizeof body, "{\"app\":\"a\",\"output\":\"o\",\"id\":\"%0128d\"}", 0);
    accepted(body);
}

/* The leading 48 bits of a generated id as a number: its Unix time in ms. */
static int64_t id_ms(const char *id)
{
    char hex[13];
    memcpy(hex, id, 8);
    memcpy(hex + 8, id + 9, 4);
    hex[12] = '\0';
    return (int64_t)strtoll(hex, NULL, 16);
}

TEST_CASE(generated_ids_are_uuid7)
{
    char a[37], c[37], d[37];
    int64_t before = clock_now_ms(NULL);
    sample_id_generate(a);
    sample_id_generate(c);
    int64_t after = clock_now_ms(NULL);
    CHECK(strcmp(a, c) != 0);
    CHECK_INT_EQ((int64_t)strlen(a), 36);
    CHECK(a[8] == '-' && a[13] == '-' && a[14] == '7' && a[18] == '-' && a[23] == '-');
    CHECK(strchr("89ab", a[19]) != NULL);
    CHECK(strspn(a, "0123456789abcdef-") == 36);
    CHECK(sample_id_valid(a));
    /* The time in the first 48 bits, so ids sort by when they were made. */
    CHECK(id_ms(a) >= before && id_ms(a) <= after);
    CHECK(id_ms(c) >= id_ms(a) && id_ms(c) <= after);
    struct timespec pause = {0, 3 * 1000 * 1000};
    nanosleep(&pause, NULL);
    sample_id_generate(d);
    CHECK(id_ms(d) > after);
    CHECK(strcmp(d, a) > 0 && strcmp(d, c) > 0);
}

TEST_CASE(rubrics_rules)
{
    refused("{\"app\":\"a\",\"output\":\"o\",\"rubrics\":[]}", 0, "rubrics", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"rubrics\":\"helpfulness\"}", 0, "rubrics", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"rubrics\":[\"helpfulness\",\"nope\"]}", 0,
            "rubrics[1]", "nope");
    refused("{\"app\":\"a\",\"output\":\"o\",\"rubrics\":[\"helpfulness\",\"helpfulness\"]}", 0,
            "rubrics[1]", "twice");
    refused("{\"app\":\"a\",\"output\":\"o\",\"rubrics\":[3]}", 0, "rubrics[0]", NULL);
}

TEST_CASE(tags_rules)
{
    refused("{\"app\":\"a\",\"output\":\"o\",\"tags\":[]}", 0, "tags", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"tags\":{\"team\":1}}", 0, "tags.team", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"tags\":{\"\":\"x\"}}", 0, "tags.", NULL);
    struct buf b = BUF_INIT;
    buf_append_str(&b, "{\"app\":\"a\",\"output\":\"o\",\"tags\":{");
    for (int i = 0; i < 17; i++)
        buf_appendf(&b, "%s\"k%d\":\"v\"", i ? "," : "", i);
    buf_append_str(&b, "}}");
    refused(buf_cstr(&b), 0, "tags", "16");
    buf_reset(&b);
    buf_append_str(&b, "{\"app\":\"a\",\"output\":\"o\",\"tags\":{");
    for (int i = 0; i < 16; i++)
        buf_appendf(&b, "%s\"k%d\":\"v\"", i ? "," : "", i);
    buf_append_str(&b, "}}");
    accepted(buf_cstr(&b));
    /* 256 characters (2-byte é each) is fine, 257 is not; 65-character keys are not */
    buf_reset(&b);
    buf_append_str(&b, "{\"app\":\"a\",\"output\":\"o\",\"tags\":{\"k\":\"");
    for (int i = 0; i < 256; i++)
        buf_append_str(&b, "\xc3\xa9");
    buf_append_str(&b, "\"}}");
    accepted(buf_cstr(&b));
    buf_reset(&b);
    buf_append_str(&b, "{\"app\":\"a\",\"output\":\"o\",\"tags\":{\"k\":\"");
    for (int i = 0; i < 257; i++)
        buf_append_str(&b, "x");
    buf_append_str(&b, "\"}}");
    refused(buf_cstr(&b), 0, "tags.k", NULL);
    buf_reset(&b);
    buf_appendf(&b, "{\"app\":\"a\",\"output\":\"o\",\"tags\":{\"%065d\":\"v\"}}", 0);
    refused(buf_cstr(&b), 0, NULL, NULL); /* field checked below */
    buf_clear(&b);
}

TEST_CASE(trace_id_rules)
{
    CHECK(sample_trace_id_valid("1-5759e988-bd862e3fe1be46a994272793"));
    CHECK(sample_trace_id_valid("Root=1-5759e988-bd862e3fe1be46a994272793"));
    CHECK(sample_trace_id_valid(
        "Self=1-67891234-12456789abcdef012345678;Root=1-67891233-abcdef012345678912345678"));
    CHECK(sample_trace_id_valid("Root=1-5759e988-bd862e3fe1be46a994272793; Sampled=1"));
    CHECK(!sample_trace_id_valid(""));
    CHECK(!sample_trace_id_valid("Root=1-5759e988-bd862e3fe1be46a99427279"));
    CHECK(!sample_trace_id_valid("Root=2-5759e988-bd862e3fe1be46a994272793"));
    CHECK(!sample_trace_id_valid("Parent=53995c3f42cd8ad8"));
    CHECK(!sample_trace_id_valid("Root=1-5759e988-bd862e3fe1be46a994272793;Root=1-5759e988-"
                                 "bd862e3fe1be46a994272793"));
    CHECK(!sample_trace_id_valid("Root=1-5759e988-bd862e3fe1be46a994272793;x=\x01"));
    CHECK(!sample_trace_id_valid("abc"));
    refused("{\"app\":\"a\",\"output\":\"o\",\"trace_id\":\"nope\"}", 0, "trace_id", NULL);

    /* from the header when the sample has none; an invalid header is ignored */
    struct sample_parse_opts o = opts;
    o.header_trace_id = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0";
    const char *body = "[{\"app\":\"a\",\"output\":\"o\"},{\"app\":\"a\",\"output\":\"o\","
                       "\"trace_id\":\"1-00000000-000000000000000000000000\"}]";
    struct sample_batch b;
    struct sample_error e;
    REQUIRE_INT_EQ(sample_batch_parse(body, strlen(body), SAMPLE_FORMAT_JSON, &o, &b, &e),
                   ASSAY_OK);
    CHECK_STR_EQ(b.items[0].trace_id, o.header_trace_id);
    CHECK_STR_EQ(b.items[1].trace_id, "1-00000000-000000000000000000000000");
    sample_batch_clear(&b);
    o.header_trace_id = "garbage";
    REQUIRE_INT_EQ(sample_batch_parse(body, strlen(body), SAMPLE_FORMAT_JSON, &o, &b, &e),
                   ASSAY_OK);
    CHECK(b.items[0].trace_id == NULL);
    sample_batch_clear(&b);
}

TEST_CASE(timestamp_rules)
{
    struct sample_batch b;
    struct sample_error e;
    REQUIRE_INT_EQ(
        parse("{\"app\":\"a\",\"output\":\"o\",\"timestamp\":1234}", SAMPLE_FORMAT_JSON, &b, &e),
        ASSAY_OK);
    CHECK_INT_EQ(b.items[0].timestamp_ms, 1234);
    sample_batch_clear(&b);
    REQUIRE_INT_EQ(parse("{\"app\":\"a\",\"output\":\"o\",\"timestamp\":"
                         "\"2026-11-27T02:02:03+01:00\"}",
                         SAMPLE_FORMAT_JSON, &b, &e),
                   ASSAY_OK);
    CHECK_INT_EQ(b.items[0].timestamp_ms, 1795741323000LL);
    sample_batch_clear(&b);
    refused("{\"app\":\"a\",\"output\":\"o\",\"timestamp\":\"yesterday\"}", 0, "timestamp", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"timestamp\":\"20261127T010203Z\"}", 0, "timestamp",
            NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"timestamp\":\"2026-11-27T01:02:03\"}", 0,
            "timestamp", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"timestamp\":-1}", 0, "timestamp", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"timestamp\":1.5}", 0, "timestamp", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"timestamp\":99999999999999999}", 0, "timestamp",
            NULL);
}

TEST_CASE(feedback_and_force)
{
    accepted("{\"app\":\"a\",\"output\":\"o\",\"feedback\":\"positive\",\"force\":false}");
    accepted("{\"app\":\"a\",\"output\":\"o\",\"feedback\":null,\"force\":null}");
    refused("{\"app\":\"a\",\"output\":\"o\",\"feedback\":\"meh\"}", 0, "feedback", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"feedback\":1}", 0, "feedback", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"force\":\"yes\"}", 0, "force", NULL);
    refused("{\"app\":\"a\",\"output\":\"o\",\"force\":1}", 0, "force", NULL);
}

TEST_CASE(unknown_field_refused)
{
    refused("{\"app\":\"a\",\"output\":\"o\",\"refrence\":\"x\"}", 0, "refrence", "unknown");
}

/* "_pii" is written by ingest redaction only: a client cannot claim (or hide) findings. */
TEST_CASE(reserved_pii_refused)
{
    refused("{\"app\":\"a\",\"output\":\"o\",\"_pii\":{\"output\":{\"email\":1}}}", 0, "_pii",
            "unknown");
    refused("{\"app\":\"a\",\"output\":\"o\",\"_pii\":{}}", 0, "_pii", NULL);
    refused("[{\"app\":\"a\",\"output\":\"o\"},{\"app\":\"a\",\"output\":\"o\",\"_pii\":null}]", 1,
            "_pii", NULL);
}

TEST_CASE(batch_all_or_nothing)
{
    refused("[{\"app\":\"a\",\"output\":\"o\"},{\"app\":\"a\",\"output\":\"o\"},"
            "{\"app\":\"a\"}]",
            2, "output", NULL);
    refused("[{\"app\":\"a\",\"output\":\"o\"},7]", 1, "", "object");
    refused("[]", -1, "", "no sample");
    refused("[{\"app\":\"a\",\"output\":\"o\"},{\"app\":\"a\",\"output\":\"o\"},"
            "{\"app\":\"a\",\"output\":\"o\"},{\"app\":\"a\",\"output\":\"o\"}]",
            -1, "", "at most 3");
    refused("\"x\"", -1, "", NULL);
    struct sample_batch b;
    struct sample_error e;
    REQUIRE_INT_EQ(parse("[{\"app\":\"a\",\"output\":\"o\",\"id\":\"1\"},"
                         "{\"app\":\"b\",\"output\":\"p\",\"id\":\"2\"}]",
                         SAMPLE_FORMAT_JSON, &b, &e),
                   ASSAY_OK);
    REQUIRE_INT_EQ(b.n, 2);
    CHECK_STR_EQ(b.items[1].app, "b");
    CHECK_STR_EQ(b.items[1].id, "2");
    sample_batch_clear(&b);
}

TEST_CASE(json_syntax)
{
    struct sample_batch b;
    struct sample_error e;
    CHECK_INT_EQ(parse("{\"app\":", SAMPLE_FORMAT_JSON, &b, &e), ASSAY_ERR_PARSE);
    CHECK_INT_EQ(e.index, -1);
    CHECK(strstr(e.message, "line 1") != NULL);
    CHECK_INT_EQ(
        parse("{\"app\":\"a\",\"app\":\"b\",\"output\":\"o\"}", SAMPLE_FORMAT_JSON, &b, &e),
        ASSAY_ERR_PARSE);
    CHECK_INT_EQ(parse("{\"app\":\"a\",\"output\":\"o\"} {}", SAMPLE_FORMAT_JSON, &b, &e),
                 ASSAY_ERR_PARSE);
    CHECK_INT_EQ(parse("{\"app\":\"a\",\"output\":\"o\\u0000\"}", SAMPLE_FORMAT_JSON, &b, &e),
                 ASSAY_ERR_PARSE);
    CHECK_INT_EQ(parse("", SAMPLE_FORMAT_JSON, &b, &e), ASSAY_ERR_PARSE);
}

TEST_CASE(ndjson)
{
    struct sample_batch b;
    struct sample_error e;
    const char *body = "{\"app\":\"a\",\"output\":\"1\"}\r\n\n  \n{\"app\":\"a\",\"output\":\"2\"}";
    REQUIRE_INT_EQ(parse(body, SAMPLE_FORMAT_NDJSON, &b, &e), ASSAY_OK);
    REQUIRE_INT_EQ(b.n, 2);
    CHECK_STR_EQ(b.items[1].output, "2");
    sample_batch_clear(&b);

    CHECK_INT_EQ(
        parse("{\"app\":\"a\",\"output\":\"1\"}\n{\"app\":\"a\"}\n", SAMPLE_FORMAT_NDJSON, &b, &e),
        ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(e.index, 1);
    CHECK_STR_EQ(e.field, "output");
    CHECK(b.n == 0);
    CHECK_INT_EQ(parse("{\"app\":\"a\",\"output\":\"1\"}\n{oops\n", SAMPLE_FORMAT_NDJSON, &b, &e),
                 ASSAY_ERR_PARSE);
    CHECK_INT_EQ(e.index, 1);
    CHECK_INT_EQ(parse("\n\n", SAMPLE_FORMAT_NDJSON, &b, &e), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(parse("{\"app\":\"a\",\"output\":\"1\"}\n{\"app\":\"a\",\"output\":\"1\"}\n"
                       "{\"app\":\"a\",\"output\":\"1\"}\n{\"app\":\"a\",\"output\":\"1\"}\n",
                       SAMPLE_FORMAT_NDJSON, &b, &e),
                 ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(e.index, 3);
    /* an array on an NDJSON line is not a sample */
    CHECK_INT_EQ(parse("[{\"app\":\"a\",\"output\":\"1\"}]", SAMPLE_FORMAT_NDJSON, &b, &e),
                 ASSAY_ERR_INVALID_ARGUMENT);
}

TEST_CASE(content_types)
{
    enum sample_format f;
    CHECK_INT_EQ(sample_format_from_content_type(NULL, &f), ASSAY_OK);
    CHECK_INT_EQ(f, SAMPLE_FORMAT_JSON);
    CHECK_INT_EQ(sample_format_from_content_type("application/json", &f), ASSAY_OK);
    CHECK_INT_EQ(sample_format_from_content_type("Application/JSON; charset=UTF-8", &f), ASSAY_OK);
    CHECK_INT_EQ(f, SAMPLE_FORMAT_JSON);
    CHECK_INT_EQ(sample_format_from_content_type("application/x-ndjson", &f), ASSAY_OK);
    CHECK_INT_EQ(f, SAMPLE_FORMAT_NDJSON);
    CHECK_INT_EQ(sample_format_from_content_type("application/ndjson;charset=\"utf-8\"", &f),
                 ASSAY_OK);
    CHECK_INT_EQ(f, SAMPLE_FORMAT_NDJSON);
    CHECK_INT_EQ(sample_format_from_content_type("text/plain", &f), ASSAY_ERR_UNSUPPORTED_MEDIA);
    CHECK_INT_EQ(sample_format_from_content_type("application/x-www-form-urlencoded", &f),
                 ASSAY_ERR_UNSUPPORTED_MEDIA);
    CHECK_INT_EQ(sample_format_from_content_type("application/jsonx", &f),
                 ASSAY_ERR_UNSUPPORTED_MEDIA);
    CHECK_INT_EQ(sample_format_from_content_type("application/json; charset=latin1", &f),
                 ASSAY_ERR_UNSUPPORTED_MEDIA);
}

/*
 * sample_doc_text: the stored document is the same JSON value as doc, whether
 * spliced from the client's text (raw kept) or serialised (raw dropped).
 */
static void doc_text_case(const char *body, enum sample_format fmt, const char *header_trace,
                          bool spliced)
{
    struct sample_parse_opts o = opts;
    o.header_trace_id = header_trace;
    struct sample_batch b;
    struct sample_error e;
    REQUIRE_INT_EQ(sample_batch_parse(body, strlen(body), fmt, &o, &b, &e), ASSAY_OK);
    for (size_t i = 0; i < b.n; i++) {
        struct sample *s = &b.items[i];
        if ((s->raw != NULL) != spliced)
            test_fail_str(__FILE__, __LINE__, "spliced", s->raw ? "yes" : "no", body);
        size_t len = 0;
        char *text = sample_doc_text(s, &len);
        CHECK_INT_EQ(len, strlen(text));
        json_t *back = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
        if (!back || !json_equal(back, sample_doc(s)))
            test_fail_str(__FILE__, __LINE__, "doc text", text, body);
        json_decref(back);
        free(text);
    }
    sample_batch_clear(&b);
}

TEST_CASE(doc_text)
{
    const char *trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Foo=\"q\\\"";
    doc_text_case("{\"app\":\"a\",\"output\":\"o\"}", SAMPLE_FORMAT_JSON, NULL, true);
    doc_text_case(" \n{ \"app\" : \"a\", \"output\":\"\\u00e9\\n\" }\r\n ", SAMPLE_FORMAT_JSON,
                  trace, true);
    doc_text_case("{\"app\":\"a\",\"output\":\"o\",\"id\":\"x1\",\"timestamp\":5}",
                  SAMPLE_FORMAT_JSON, trace, true);
    doc_text_case("{\"app\":\"a\",\"output\":\"o\"}\n\n {\"app\":\"b\",\"output\":\"p\","
                  "\"trace_id\":\"1-00000000-000000000000000000000000\"} \n",
                  SAMPLE_FORMAT_NDJSON, trace, true);
    /* members rewritten in place: serialised instead */
    doc_text_case("{\"app\":\"a\",\"output\":\"o\",\"id\":null}", SAMPLE_FORMAT_JSON, NULL, false);
    doc_text_case("{\"app\":\"a\",\"output\":\"o\",\"trace_id\":null}", SAMPLE_FORMAT_JSON, trace,
                  false);
    doc_text_case("{\"app\":\"a\",\"output\":\"o\",\"timestamp\":null}", SAMPLE_FORMAT_JSON, NULL,
                  false);
    doc_text_case("{\"app\":\"a\",\"output\":\"o\",\"timestamp\":\"2026-11-27T02:02:03Z\"}",
                  SAMPLE_FORMAT_JSON, NULL, false);
    /* array elements: their text is not known */
    doc_text_case("[{\"app\":\"a\",\"output\":\"o\"},{\"app\":\"a\",\"output\":\"p\"}]",
                  SAMPLE_FORMAT_JSON, NULL, false);
}
