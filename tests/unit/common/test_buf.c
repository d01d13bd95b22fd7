/* Unit tests for common/buf. */
#include "common/buf.h"
#include "tests/unit/test.h"

TEST_CASE(append_and_terminate)
{
    struct buf b = BUF_INIT;
    CHECK_STR_EQ(buf_cstr(&b), "");
    buf_append_str(&b, "abc");
    buf_append_char(&b, '-');
    buf_appendf(&b, "%d/%s", 42, "x");
    CHECK_STR_EQ(buf_cstr(&b), "abc-42/x");
    CHECK_INT_EQ(b.len, 8);
    buf_reset(&b);
    CHECK_INT_EQ(b.len, 0);
    CHECK_STR_EQ(buf_cstr(&b), "");
    buf_clear(&b);
    buf_clear(NULL);
}

TEST_CASE(append_int)
{
    struct buf b = BUF_INIT;
    buf_append_int(&b, 0);
    buf_append_char(&b, ' ');
    buf_append_int(&b, 7);
    buf_append_char(&b, ' ');
    buf_append_int(&b, -42);
    buf_append_char(&b, ' ');
    buf_append_int(&b, INT64_MAX);
    buf_append_char(&b, ' ');
    buf_append_int(&b, INT64_MIN);
    CHECK_STR_EQ(buf_cstr(&b), "0 7 -42 9223372036854775807 -9223372036854775808");
    buf_clear(&b);
}

TEST_CASE(grows_past_large_sizes)
{
    struct buf b = BUF_INIT;
    for (int i = 0; i < 100000; i++)
        buf_append(&b, "0123456789", 10);
    CHECK_INT_EQ(b.len, 1000000);
    CHECK(b.cap > b.len);
    CHECK_INT_EQ(b.data[b.len], 0);
    size_t len = 0;
    char *p = buf_detach(&b, &len);
    CHECK_INT_EQ(len, 1000000);
    CHECK(b.data == NULL);
    free(p);
}

TEST_CASE(json_escape)
{
    struct buf b = BUF_INIT;
    const char in[] = "a\"b\\c\nd\x01\x7f\xc3\xa9";
    buf_append_json_escaped(&b, in, sizeof in - 1);
    CHECK_STR_EQ(buf_cstr(&b), "a\\\"b\\\\c\\nd\\u0001\\u007f\xc3\xa9");
    buf_clear(&b);
}

TEST_CASE(utf8_encoding)
{
    struct buf b = BUF_INIT;
    buf_append_utf8(&b, 0x41);    /* A */
    buf_append_utf8(&b, 0xE9);    /* e acute: C3 A9 */
    buf_append_utf8(&b, 0x20AC);  /* euro: E2 82 AC */
    buf_append_utf8(&b, 0x1F600); /* emoji: F0 9F 98 80 */
    CHECK_STR_EQ(buf_cstr(&b), "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    CHECK_INT_EQ(b.len, 10);
    buf_clear(&b);
}

TEST_CASE(xml_escape)
{
    struct buf b = BUF_INIT;
    buf_append_xml_escaped(&b, "a<b>&\"c\"'d'\xc3\xa9");
    buf_append_xml_escaped(&b, NULL);
    CHECK_STR_EQ(buf_cstr(&b), "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;\xc3\xa9");
    buf_clear(&b);
}
