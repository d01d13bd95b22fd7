/* Unit tests for monitor/scoreline, the score-line parser of `assay backtest`. */
#include "common/rng.h"
#include "monitor/scoreline.h"
#include "tests/unit/test.h"

#include <math.h>

static int parse(const char *s, double *v, char *why)
{
    return scoreline_parse(s, strlen(s), v, why, 160);
}

TEST_CASE(exact_like_strtod)
{
    /* The fast path must agree bit for bit with strtod (correct rounding). */
    struct rng r;
    rng_seed(&r, 9);
    char text[64], why[160];
    for (int i = 0; i < 200000; i++) {
        int digits = 1 + (int)rng_below(&r, 17);
        double x = rng_uniform(&r);
        snprintf(text, sizeof text, i % 3 ? "%.*f" : "%.*e", digits, x);
        double v = -1;
        if (strtod(text, NULL) > 1)
            continue;
        REQUIRE(parse(text, &v, why) == 0);
        if (v != strtod(text, NULL)) {
            fprintf(stderr, "%s: %.17g vs %.17g\n", text, v, strtod(text, NULL));
            CHECK(0);
            break;
        }
    }
    double v;
    CHECK(parse("0.1", &v, why) == 0 && v == 0.1);
    CHECK(parse("1", &v, why) == 0 && v == 1);
    CHECK(parse("0", &v, why) == 0 && v == 0);
    CHECK(parse("0.30000000000000000000001", &v, why) == 0 && v == 0.3);
    CHECK(parse("1e-400", &v, why) == 0 && v == 0);
}

TEST_CASE(forms_and_refusals)
{
    const char *ok[] = {"0.5",
                        ".5",
                        "+0.5",
                        "5e-1",
                        "5E-1",
                        " 0.5 ",
                        "0.5\r",
                        "\t0.5",
                        "{\"score\":0.5}",
                        "{ \"score\" : 0.5 }",
                        "{\"id\": 1, \"score\": 0.5}",
                        "{\"score\": 5e-1, \"tags\": {\"a\": \"b\"}}"};
    char why[160];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double v = -1;
        CHECK_INT_EQ(parse(ok[i], &v, why), 0);
        CHECK_NEAR(v, 0.5, 0);
    }
    const char *bad[] = {"",
                         "   ",
                         "abc",
                         "nan",
                         "inf",
                         "0x1p-1",
                         "1e",
                         "0.5.1",
                         "0.5 0.6",
                         "--1",
                         "1.5",
                         "-0.1",
                         "1e999",
                         "{}",
                         "{\"score\": \"0.5\"}",
                         "{\"score\": null}",
                         "[0.5]",
                         "{\"score\": 2}",
                         "{\"score\": 0.5",
                         "{\"score\": 0.5, \"score\": 0.6}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v = 42;
        why[0] = 0;
        CHECK_INT_EQ(parse(bad[i], &v, why), -1);
        CHECK(v == 42);
        CHECK(why[0] != 0);
    }
    /* The length is respected: no reading past it. */
    double v = -1;
    CHECK_INT_EQ(scoreline_parse("0.25junk", 4, &v, why, sizeof why), 0);
    CHECK_NEAR(v, 0.25, 0);
}
