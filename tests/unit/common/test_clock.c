/* Unit tests for common/clock: AWS time formats and the manual clock. */
#include "common/clock.h"
#include "tests/unit/test.h"

TEST_CASE(amz_date_format)
{
    char out[17];
    clock_format_amz_date(1440938160, out); /* the SigV4 suite's 2015-08-30T12:36:00Z */
    CHECK_STR_EQ(out, "20150830T123600Z");
}

TEST_CASE(iso8601_ms_format)
{
    char out[25];
    clock_format_iso8601_ms(1440938160123LL, out);
    CHECK_STR_EQ(out, "2015-08-30T12:36:00.123Z");
}

TEST_CASE(iso8601_parse_forms)
{
    int64_t ms = 0;
    CHECK_INT_EQ(clock_parse_iso8601("2015-08-30T12:36:00Z", &ms), 0);
    CHECK_INT_EQ(ms, 1440938160000LL);
    CHECK_INT_EQ(clock_parse_iso8601("2015-08-30T12:36:00.5Z", &ms), 0);
    CHECK_INT_EQ(ms, 1440938160500LL);
    CHECK_INT_EQ(clock_parse_iso8601("2015-08-30T13:36:00+01:00", &ms), 0);
    CHECK_INT_EQ(ms, 1440938160000LL);
    CHECK_INT_EQ(clock_parse_iso8601("20150830T123600Z", &ms), 0);
    CHECK_INT_EQ(ms, 1440938160000LL);
}

TEST_CASE(iso8601_parse_rejects)
{
    int64_t ms = 42;
    CHECK_INT_EQ(clock_parse_iso8601("", &ms), -1);
    CHECK_INT_EQ(clock_parse_iso8601("2015-08-30", &ms), -1);
    CHECK_INT_EQ(clock_parse_iso8601("2015-08-30T12:36:00", &ms), -1); /* no zone */
    CHECK_INT_EQ(clock_parse_iso8601("2015-13-30T12:36:00Z", &ms), -1);
    CHECK_INT_EQ(clock_parse_iso8601("2015-08-30T12:36:00Zjunk", &ms), -1);
    CHECK_INT_EQ(clock_parse_iso8601(NULL, &ms), -1);
    CHECK_INT_EQ(ms, 42);
}

TEST_CASE(http_date_parse)
{
    int64_t s = 0;
    CHECK_INT_EQ(clock_parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT", &s), 0);
    CHECK_INT_EQ(s, 1440938160);
    CHECK_INT_EQ(clock_parse_http_date("Sun, 30 Foo 2015 12:36:00 GMT", &s), -1);
    CHECK_INT_EQ(clock_parse_http_date("yesterday", &s), -1);
}

TEST_CASE(manual_clock)
{
    volatile int64_t now = 1000;
    struct clock c;
    clock_manual_init(&c, &now);
    CHECK_INT_EQ(clock_now_ms(&c), 1000);
    now = 5000;
    CHECK_INT_EQ(clock_mono_ms(&c), 5000);
    CHECK(clock_now_ms(NULL) > 1700000000000LL);
}
