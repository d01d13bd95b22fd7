/* Unit tests for server/config: defaults, validation with key paths, environment. */
#include "server/config.h"
#include "common/buf.h"
#include "common/log.h"
#include "tests/unit/test.h"

#include <openssl/sha.h>

struct fake_env {
    const char *names[8];
    const char *values[8];
};

static const char *env_get(void *ctx, const char *name)
{
    struct fake_env *e = ctx;
    for (int i = 0; i < 8 && e->names[i]; i++)
        if (strcmp(e->names[i], name) == 0)
            return e->values[i];
    return NULL;
}

static struct config *parse_ok(const char *text, struct fake_env *e)
{
    struct config *c = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = config_parse(text, strlen(text), "test.json", env_get, e, &c, errbuf);
    if (err != ASSAY_OK)
        fprintf(stderr, "unexpected error: %s\n", errbuf);
    REQUIRE_INT_EQ(err, ASSAY_OK);
    return c;
}

static void parse_bad(const char *text, enum assay_err want, const char *needle)
{
    struct fake_env e = {{0}, {0}};
    struct config *c = (struct config *)1;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    CHECK_INT_EQ(config_parse(text, strlen(text), "test.json", env_get, &e, &c, errbuf), want);
    CHECK(c == NULL);
    if (!strstr(errbuf, needle) || !strstr(errbuf, "test.json"))
        test_fail_str(__FILE__, __LINE__, "errbuf", errbuf, needle);
}

TEST_CASE(empty_object_gives_defaults)
{
    struct fake_env e = {{0}, {0}};
    struct config *c = parse_ok("{}", &e);
    CHECK_STR_EQ(c->listen, "127.0.0.1:8787");
    CHECK_STR_EQ(c->data_dir, "var");
    CHECK_STR_EQ(c->aws.region, "us-east-1");
    CHECK(c->aws.bedrock_endpoint == NULL);
    CHECK_INT_EQ(c->judge.max_concurrency, 64);
    CHECK(c->judge.requests_per_minute == 0);
    CHECK_STR_EQ(c->rubrics_dir, "rubrics");
    CHECK_STR_EQ(c->metrics.sink, "cloudwatch");
    CHECK_STR_EQ(c->metrics.namespace_, "Assay");
    CHECK_INT_EQ(c->metrics.period_s, 60);
    CHECK_INT_EQ(c->server.max_batch, 1000);
    CHECK_INT_EQ(c->server.retention_days, 30);
    CHECK_INT_EQ(c->server.retention_interval_s, 3600);
    CHECK_INT_EQ(c->n_keys, 0);
    /* no apps key: a default app that judges everything for helpfulness */
    CHECK_INT_EQ(c->apps_given, 0);
    const struct config_app *a = config_app_find(c, "anything");
    REQUIRE(a != NULL);
    CHECK(a->sample_rate == 1.0);
    REQUIRE_INT_EQ(a->n_rubrics, 1);
    CHECK_STR_EQ(a->rubrics[0], "helpfulness");
    config_free(c);
    config_free(NULL);
}

TEST_CASE(full_file)
{
    struct fake_env e = {{0}, {0}};
    struct config *c = parse_ok(
        "{\"listen\":\"0.0.0.0:9000\",\"aws\":{\"region\":\"eu-west-1\"},"
        "\"judge\":{\"model_id\":\"m:1\",\"max_concurrency\":8,\"requests_per_minute\":120},"
        "\"apps\":{\"support\":{\"sample_rate\":0.25,\"rubrics\":[\"faithfulness\",\"pii-leak\"]},"
        "\"default\":{\"sample_rate\":0.1}},"
        "\"metrics\":{\"sink\":\"emf\",\"namespace\":\"Q\",\"period_s\":300},"
        "\"monitor\":{\"detector\":{}},\"golden\":[]}",
        &e);
    CHECK_STR_EQ(c->listen, "0.0.0.0:9000");
    CHECK_STR_EQ(c->aws.region, "eu-west-1");
    CHECK_STR_EQ(c->judge.model_id, "m:1");
    CHECK_INT_EQ(c->judge.max_concurrency, 8);
    CHECK(c->judge.requests_per_minute == 120);
    const struct config_app *s = config_app_find(c, "support");
    REQUIRE(s != NULL);
    CHECK(s->sample_rate == 0.25);
    CHECK_INT_EQ(s->n_rubrics, 2);
    CHECK_STR_EQ(s->rubrics[1], "pii-leak");
    const struct config_app *other = config_app_find(c, "other");
    REQUIRE(other != NULL);
    CHECK_STR_EQ(other->name, "default");
    CHECK_STR_EQ(c->metrics.sink, "emf");
    CHECK(c->monitor != NULL && c->golden != NULL);
    config_free(c);
}

TEST_CASE(keep_unsampled_text)
{
    struct fake_env e = {{0}, {0}};
    struct config *c = parse_ok("{\"apps\":{\"support\":{\"keep_unsampled_text\":true},"
                                "\"billing\":{\"keep_unsampled_text\":false},\"default\":{}}}",
                                &e);
    CHECK_INT_EQ(config_app_find(c, "support")->keep_unsampled_text, 1);
    CHECK_INT_EQ(config_app_find(c, "billing")->keep_unsampled_text, 0);
    CHECK_INT_EQ(config_app_find(c, "other")->keep_unsampled_text, 0); /* off by default */
    config_free(c);
    c = parse_ok("{}", &e); /* the built-in default app keeps no unsampled text either */
    CHECK_INT_EQ(config_app_find(c, "anything")->keep_unsampled_text, 0);
    config_free(c);
    parse_bad("{\"apps\":{\"support\":{\"keep_unsampled_text\":1}}}", ASSAY_ERR_CONFIG,
              "apps.support.keep_unsampled_text: must be true or false");
    parse_bad("{\"apps\":{\"support\":{\"keep_unsampled_text\":\"yes\"}}}", ASSAY_ERR_CONFIG,
              "apps.support.keep_unsampled_text: must be true or false");
    parse_bad("{\"apps\":{\"support\":{\"sample_negative_feedback\":null}}}", ASSAY_ERR_CONFIG,
              "apps.support.sample_negative_feedback: must be true or false");
}

TEST_CASE(unlisted_app_without_default_refused)
{
    struct fake_env e = {{0}, {0}};
    struct config *c = parse_ok("{\"apps\":{\"support\":{}}}", &e);
    CHECK(config_app_find(c, "support") != NULL);
    CHECK(config_app_find(c, "billing") == NULL);
    config_free(c);
}

TEST_CASE(errors_name_the_key_path)
{
    parse_bad("[1]", ASSAY_ERR_CONFIG, "must be a JSON object");
    parse_bad("{\"listen\":8787}", ASSAY_ERR_CONFIG, "listen: must be a string");
    parse_bad("{\"listen\":\"nowhere\"}", ASSAY_ERR_CONFIG, "listen: must be HOST:PORT");
    parse_bad("{\"apps\":{\"support\":{\"sample_rate\":1.5}}}", ASSAY_ERR_CONFIG,
              "apps.support.sample_rate: must be a number from 0 to 1");
    parse_bad("{\"apps\":{\"bad name\":{}}}", ASSAY_ERR_CONFIG, "apps.bad name");
    parse_bad("{\"apps\":{\"a\":{\"rubrics\":[]}}}", ASSAY_ERR_CONFIG, "apps.a.rubrics");
    parse_bad("{\"judge\":{\"max_concurrency\":0}}", ASSAY_ERR_CONFIG, "judge.max_concurrency");
    parse_bad("{\"judge\":[]}", ASSAY_ERR_CONFIG, "judge: must be an object");
    parse_bad("{\"metrics\":{\"sink\":\"kafka\"}}", ASSAY_ERR_CONFIG, "metrics.sink");
    parse_bad("{\"auth\":{\"keys\":[{\"sha256\":\"abc\",\"apps\":[\"a\"]}]}}", ASSAY_ERR_CONFIG,
              "auth.keys[0]");
    parse_bad("{\"log_level\":\"chatty\"}", ASSAY_ERR_CONFIG, "log_level");
    parse_bad("{\"server\":{\"retention_interval_s\":0}}", ASSAY_ERR_CONFIG,
              "server.retention_interval_s");
    parse_bad("{\"listen\":", ASSAY_ERR_PARSE, "line 1");
    parse_bad("{\"a\":1,\"a\":2}", ASSAY_ERR_PARSE, "duplicate");
}

static void capture(void *ctx, const char *line, size_t len)
{
    buf_append(ctx, line, len);
}

TEST_CASE(unknown_keys_warned_not_refused)
{
    struct buf logs = BUF_INIT;
    log_set_sink(capture, &logs);
    struct fake_env e = {{0}, {0}};
    struct config *c = parse_ok("{\"listne\":\"x\",\"judge\":{\"modelid\":\"y\"}}", &e);
    log_set_sink(NULL, NULL);
    CHECK(strstr(buf_cstr(&logs), "\"key\":\"listne\"") != NULL);
    CHECK(strstr(buf_cstr(&logs), "\"section\":\"judge\",\"key\":\"modelid\"") != NULL);
    config_free(c);
    buf_clear(&logs);
}

TEST_CASE(aws_environment)
{
    struct fake_env e = {{"AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"},
                         {"ap-south-1", "http://127.0.0.1:4566", "http://127.0.0.1:9999"}};
    struct config *c = parse_ok("{}", &e);
    CHECK_STR_EQ(c->aws.region, "ap-south-1");
    CHECK_STR_EQ(c->aws.bedrock_endpoint, "http://127.0.0.1:9999");
    CHECK_STR_EQ(c->aws.cloudwatch_endpoint, "http://127.0.0.1:4566");
    CHECK_STR_EQ(c->aws.sns_endpoint, "http://127.0.0.1:4566");
    config_free(c);
    struct fake_env sns = {{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SNS"},
                           {"http://127.0.0.1:4566", "http://127.0.0.1:4575"}};
    c = parse_ok("{}", &sns);
    CHECK_STR_EQ(c->aws.sns_endpoint, "http://127.0.0.1:4575");
    config_free(c);
    c = parse_ok("{\"aws\":{\"endpoints\":{\"sns\":\"http://s\"}}}", &sns);
    CHECK_STR_EQ(c->aws.sns_endpoint, "http://s");
    config_free(c);
    /* the file's own settings win over the environment */
    c = parse_ok(
        "{\"aws\":{\"region\":\"eu-north-1\",\"endpoints\":{\"cloudwatch\":\"http://x\"}}}", &e);
    CHECK_STR_EQ(c->aws.region, "eu-north-1");
    CHECK_STR_EQ(c->aws.cloudwatch_endpoint, "http://x");
    config_free(c);
    struct fake_env ignore = {{"AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"},
                              {"http://127.0.0.1:4566", "true"}};
    c = parse_ok("{}", &ignore);
    CHECK(c->aws.bedrock_endpoint == NULL);
    config_free(c);
}

TEST_CASE(api_keys)
{
    unsigned char d1[32], d2[32], d3[32];
    SHA256((const unsigned char *)"key-one", 7, d1);
    SHA256((const unsigned char *)"key-two", 7, d2);
    SHA256((const unsigned char *)"key-three", 9, d3);
    char text[512], h1[65], h2[65];
    for (int i = 0; i < 32; i++) {
        sprintf(h1 + 2 * i, "%02x", d1[i]);
        sprintf(h2 + 2 * i, "%02X", d2[i]); /* upper-case hex accepted */
    }
    snprintf(text, sizeof text,
             "{\"auth\":{\"keys\":[{\"sha256\":\"%s\",\"apps\":[\"support\"]},"
             "{\"sha256\":\"%s\",\"apps\":[\"*\"]}]}}",
             h1, h2);
    struct fake_env e = {{0}, {0}};
    struct config *c = parse_ok(text, &e);
    const struct config_api_key *k1 = config_key_find(c, d1);
    REQUIRE(k1 != NULL);
    CHECK(config_api_key_allows(k1, "support"));
    CHECK(!config_api_key_allows(k1, "billing"));
    const struct config_api_key *k2 = config_key_find(c, d2);
    REQUIRE(k2 != NULL);
    CHECK(config_api_key_allows(k2, "billing"));
    CHECK(config_key_find(c, d3) == NULL);
    config_free(c);
}

TEST_CASE(load_from_file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/assay.json", test_tmpdir());
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs("{\"data_dir\": \"/tmp/x\"}\n", f);
    fclose(f);
    struct config *c = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE];
    REQUIRE_INT_EQ(config_load(path, NULL, NULL, &c, errbuf), ASSAY_OK);
    CHECK_STR_EQ(c->data_dir, "/tmp/x");
    CHECK_STR_EQ(c->path, path);
    config_free(c);
    snprintf(path, sizeof path, "%s/missing.json", test_tmpdir());
    CHECK_INT_EQ(config_load(path, NULL, NULL, &c, errbuf), ASSAY_ERR_IO);
    CHECK(strstr(errbuf, "missing.json") != NULL);
    REQUIRE_INT_EQ(config_load(NULL, NULL, NULL, &c, errbuf), ASSAY_OK);
    CHECK(c->path == NULL);
    config_free(c);
}
