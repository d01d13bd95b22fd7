/* Unit tests for common/log: JSON lines, levels, escaping of untrusted text. */
#include "common/log.h"
#include "common/buf.h"
#include "common/err.h"
#include "tests/unit/test.h"

#include <jansson.h>

static void capture(void *ctx, const char *line, size_t len)
{
    buf_append(ctx, line, len);
}

TEST_CASE(json_line_with_fields)
{
    struct buf out = BUF_INIT;
    log_set_sink(capture, &out);
    log_set_level(LOG_LEVEL_INFO);
    LOG_INFO("unit.event", LOG_S("who", "a \"quoted\" %s %n value"), LOG_I("n", 42),
             LOG_F("x", 0.5), LOG_B("ok", 1), LOG_S("none", NULL));
    LOG_DEBUG("unit.hidden", LOG_I("n", 1));
    LOG_WARN("unit.nofields");
    log_set_sink(NULL, NULL);

    const char *nl = strchr(buf_cstr(&out), '\n');
    REQUIRE(nl != NULL);
    json_error_t e;
    json_t *j = json_loadb(out.data, (size_t)(nl - out.data), 0, &e);
    REQUIRE(j != NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "event")), "unit.event");
    CHECK_STR_EQ(json_string_value(json_object_get(j, "level")), "info");
    CHECK_STR_EQ(json_string_value(json_object_get(j, "who")), "a \"quoted\" %s %n value");
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "n")), 42);
    CHECK(json_is_true(json_object_get(j, "ok")));
    CHECK(json_is_null(json_object_get(j, "none")));
    json_decref(j);
    CHECK(strstr(buf_cstr(&out), "unit.hidden") == NULL);
    CHECK(strstr(buf_cstr(&out), "\"event\":\"unit.nofields\"}") != NULL);
    buf_clear(&out);
}

TEST_CASE(level_parse)
{
    enum log_level l;
    CHECK_INT_EQ(log_level_parse("WARNING", &l), 0);
    CHECK_INT_EQ(l, LOG_LEVEL_WARN);
    CHECK_INT_EQ(log_level_parse("verbose", &l), -1);
}

TEST_CASE(error_table)
{
    CHECK_STR_EQ(assay_err_name(ASSAY_ERR_TOO_LARGE), "too_large");
    CHECK_INT_EQ(assay_err_http_status(ASSAY_ERR_TOO_LARGE), 413);
    CHECK_INT_EQ(assay_err_http_status(ASSAY_ERR_BUSY), 429);
    CHECK_STR_EQ(assay_err_name((enum assay_err)9999), "unknown_error");
    char eb[ASSAY_ERRBUF_SIZE];
    CHECK_INT_EQ(assay_errbuf_set(eb, ASSAY_ERR_PARSE, "line %d: %s", 3, "bad"), ASSAY_ERR_PARSE);
    CHECK_STR_EQ(eb, "line 3: bad");
    CHECK_INT_EQ(assay_errbuf_set(NULL, ASSAY_ERR_IO, "x"), ASSAY_ERR_IO);
}
