/* Unit tests for server/ingest_redact: findings and redaction per field, apps without
 * "redact" untouched, the fail-closed refusal, and the per-app table. */
#include "server/ingest_redact.h"
#include "server/config.h"
#include "tests/unit/test.h"

#define EMAIL "jane.doe@mail.example.com"
#define CARD "4111 1111 1111 1111"

static const char *const cfg_text =
    "{\"apps\": {"
    " \"shop\": {\"rubrics\": [\"pii-leak\"], \"redact\": {}},"
    " \"plain\": {\"rubrics\": [\"pii-leak\"]},"
    " \"tight\": {\"rubrics\": [\"pii-leak\"], \"redact\": {\"builtins\": [\"email\"],"
    "   \"patterns\": [{\"pattern\": \"(a+)+$\", \"placeholder\": \"[RUNAWAY]\"}],"
    "   \"match_limit\": 1000}}}}";

struct env {
    struct config *cfg;
    struct ingest_redact *ir;
    struct sample_batch b;
};

static void env_open(struct env *e, const char *cfg, const char *body)
{
    char err[ASSAY_ERRBUF_SIZE] = "";
    memset(e, 0, sizeof *e);
    if (config_parse(cfg, strlen(cfg), "t.json", NULL, NULL, &e->cfg, err) != ASSAY_OK) {
        fprintf(stderr, "%s\n", err);
        test_stop();
    }
    REQUIRE_INT_EQ(ingest_redact_new(e->cfg, &e->ir, err), ASSAY_OK);
    struct sample_parse_opts o = {.max_batch = 8, .now_ms = 1700000000000};
    struct sample_error se;
    if (sample_batch_parse(body, strlen(body), SAMPLE_FORMAT_JSON, &o, &e->b, &se) != ASSAY_OK) {
        fprintf(stderr, "%s (%s)\n", se.message, se.field);
        test_stop();
    }
}

static void env_close(struct env *e)
{
    sample_batch_clear(&e->b);
    ingest_redact_free(e->ir);
    config_free(e->cfg);
}

static const char *str_at(const json_t *doc, const char *path0, size_t i, const char *key)
{
    const json_t *v = json_object_get(doc, path0);
    if (json_is_array(v))
        v = json_array_get(v, i);
    if (key)
        v = json_object_get(v, key);
    return json_string_value(v);
}

static json_int_t found(const json_t *doc, const char *field, const char *kind)
{
    return json_integer_value(
        json_object_get(json_object_get(json_object_get(doc, "_pii"), field), kind));
}

TEST_CASE(output_redacted_and_findings_recorded)
{
    struct env e;
    env_open(&e, cfg_text,
             "{\"app\":\"shop\",\"output\":\"Mail " EMAIL " or pay with " CARD ".\","
             "\"reference\":\"none\"}");
    struct sample_error se;
    REQUIRE_INT_EQ(ingest_redact_batch(e.ir, &e.b, &se), ASSAY_OK);
    struct sample *s = &e.b.items[0];
    CHECK_STR_EQ(str_at(sample_doc(s), "output", 0, NULL), "Mail [EMAIL] or pay with [CARD].");
    CHECK_STR_EQ(s->output, "Mail [EMAIL] or pay with [CARD].");
    CHECK_STR_EQ(s->reference, "none");
    CHECK_INT_EQ(found(sample_doc(s), "output", "email"), 1);
    CHECK_INT_EQ(found(sample_doc(s), "output", "card"), 1);
    CHECK(!json_object_get(json_object_get(sample_doc(s), "_pii"), "reference"));
    char *dump = json_dumps(sample_doc(s), JSON_COMPACT);
    CHECK(!strstr(dump, "jane") && !strstr(dump, "4111"));
    free(dump);
    env_close(&e);
}

TEST_CASE(messages_input_and_context_array)
{
    struct env e;
    env_open(&e, cfg_text,
             "{\"app\":\"shop\",\"output\":\"ok\","
             "\"input\":[{\"role\":\"user\",\"content\":\"I am " EMAIL "\"},"
             "{\"role\":\"assistant\",\"content\":[{\"text\":\"card " CARD "?\"},"
             "{\"image\":{\"format\":\"png\"}},{\"text\":\"and " EMAIL "\"}]}],"
             "\"context\":[\"no data\",\"key AKIAIOSFODNN7EXAMPLE\"]}");
    struct sample_error se;
    REQUIRE_INT_EQ(ingest_redact_batch(e.ir, &e.b, &se), ASSAY_OK);
    struct sample *s = &e.b.items[0];
    const json_t *in = json_object_get(sample_doc(s), "input");
    CHECK_STR_EQ(str_at(sample_doc(s), "input", 0, "content"), "I am [EMAIL]");
    const json_t *blocks = json_object_get(json_array_get(in, 1), "content");
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(blocks, 0), "text")),
                 "card [CARD]?");
    CHECK(json_object_get(json_array_get(blocks, 1), "image") != NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(blocks, 2), "text")),
                 "and [EMAIL]");
    CHECK_STR_EQ(str_at(sample_doc(s), "context", 0, NULL), "no data");
    CHECK_STR_EQ(str_at(sample_doc(s), "context", 1, NULL), "key [AWS_ACCESS_KEY]");
    CHECK_INT_EQ(found(sample_doc(s), "input", "email"), 2);
    CHECK_INT_EQ(found(sample_doc(s), "input", "card"), 1);
    CHECK_INT_EQ(found(sample_doc(s), "context", "aws_access_key"), 1);
    CHECK(!json_object_get(json_object_get(sample_doc(s), "_pii"), "output"));
    /* The flattened copies the sample keeps are redacted too. */
    CHECK(s->input && !strstr(s->input, "jane") && strstr(s->input, "[EMAIL]"));
    CHECK(s->context && !strstr(s->context, "AKIA") && strstr(s->context, "[AWS_ACCESS_KEY]"));
    env_close(&e);
}

TEST_CASE(app_without_redact_untouched)
{
    struct env e;
    env_open(&e, cfg_text,
             "[{\"app\":\"plain\",\"output\":\"Mail " EMAIL "\"},"
             "{\"app\":\"shop\",\"output\":\"no data here\"}]");
    struct sample_error se;
    REQUIRE_INT_EQ(ingest_redact_batch(e.ir, &e.b, &se), ASSAY_OK);
    CHECK_STR_EQ(str_at(sample_doc(&e.b.items[0]), "output", 0, NULL), "Mail " EMAIL);
    CHECK(!json_object_get(sample_doc(&e.b.items[0]), "_pii"));
    /* A redacting app's sample always carries "_pii", empty when nothing was found. */
    const json_t *pii = json_object_get(sample_doc(&e.b.items[1]), "_pii");
    CHECK(json_is_object(pii) && json_object_size(pii) == 0);
    CHECK_STR_EQ(e.b.items[1].output, "no data here");
    env_close(&e);

    /* No app redacts: the batch is not looked at. */
    env_open(&e, "{\"apps\":{\"plain\":{\"rubrics\":[\"pii-leak\"]}}}",
             "{\"app\":\"plain\",\"output\":\"" EMAIL "\"}");
    REQUIRE_INT_EQ(ingest_redact_batch(e.ir, &e.b, &se), ASSAY_OK);
    CHECK(ingest_redact_for(e.ir, "plain") == NULL);
    CHECK_STR_EQ(e.b.items[0].output, EMAIL);
    env_close(&e);
    CHECK_INT_EQ(ingest_redact_batch(NULL, NULL, &se), ASSAY_OK);
}

TEST_CASE(fail_closed_names_index_and_field)
{
    struct env e;
    env_open(&e, cfg_text,
             "[{\"app\":\"plain\",\"output\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaab\"},"
             "{\"app\":\"tight\",\"output\":\"fine\",\"context\":[\"ok\","
             "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab " EMAIL "\"]}]");
    struct sample_error se;
    memset(&se, 0, sizeof se);
    CHECK_INT_EQ(ingest_redact_batch(e.ir, &e.b, &se), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(se.code, ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(se.index, 1);
    CHECK_STR_EQ(se.field, "context[1]");
    CHECK(strstr(se.message, "limit") && strstr(se.message, "refused"));
    CHECK(!strstr(se.message, "jane"));
    env_close(&e);
}

TEST_CASE(table_per_app)
{
    struct config *cfg = NULL;
    struct ingest_redact *ir = NULL;
    char err[ASSAY_ERRBUF_SIZE] = "";
    const char *text = "{\"apps\":{\"default\":{\"rubrics\":[\"pii-leak\"],\"redact\":"
                       "{\"builtins\":[\"email\"]}},\"plain\":{\"rubrics\":[\"pii-leak\"]}}}";
    REQUIRE_INT_EQ(config_parse(text, strlen(text), "t.json", NULL, NULL, &cfg, err), ASSAY_OK);
    REQUIRE_INT_EQ(ingest_redact_new(cfg, &ir, err), ASSAY_OK);
    const struct redact_set *d = ingest_redact_for(ir, "default");
    CHECK(d != NULL);
    CHECK(ingest_redact_for(ir, "unlisted") == d); /* apps.default applies */
    CHECK(ingest_redact_for(ir, "plain") == NULL);
    ingest_redact_free(ir);
    config_free(cfg);
    ingest_redact_free(NULL);

    /* A broken "redact" fails start-up, naming the app. */
    text = "{\"apps\":{\"bad\":{\"rubrics\":[\"pii-leak\"],\"redact\":{\"builtins\":[\"nope\"]}}}}";
    REQUIRE_INT_EQ(config_parse(text, strlen(text), "t.json", NULL, NULL, &cfg, err), ASSAY_OK);
    ir = (struct ingest_redact *)1;
    CHECK_INT_EQ(ingest_redact_new(cfg, &ir, err), ASSAY_ERR_CONFIG);
    CHECK(ir == NULL);
    CHECK(strstr(err, "apps.bad.redact") != NULL);
    config_free(cfg);
}
