/*
 * tests/unit/emulator/test_scenario: scenario files and seeded decisions.
 */
#include "tests/unit/test.h"

#include "common/err.h"
#include "emulator/scenario.h"

static const char *write_file(const char *name, const char *text)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs(text, f);
    fclose(f);
    return path;
}

TEST_CASE(no_file_no_faults)
{
    char errbuf[ASSAY_ERRBUF_SIZE];
    struct scenario *s = scenario_new(NULL, false, 0, errbuf);
    REQUIRE(s != NULL);
    CHECK_INT_EQ((long long)scenario_seed(s), 1);
    for (int i = 0; i < 100; i++) {
        struct scenario_decision d;
        scenario_decide(s, "m", &d);
        CHECK_INT_EQ(d.fault, SCENARIO_FAULT_NONE);
        CHECK_INT_EQ(d.malformed, SCENARIO_MALFORMED_NONE);
        CHECK(!d.max_tokens);
        CHECK_INT_EQ(d.delay_ms, 0);
        CHECK_INT_EQ((long long)d.index, i);
    }
    scenario_free(s);
    scenario_free(NULL);
}

TEST_CASE(models_override_default)
{
    const char *path = write_file("s.json", "{\"seed\": 9, \"default\": {\"throttle_rate\": 0.5, "
                                            "\"latency_ms\": 10}, \"models\": {\"m\": "
                                            "{\"throttle_rate\": 0, \"refuse_forced_tools\": "
                                            "true}}}");
    char errbuf[ASSAY_ERRBUF_SIZE];
    struct scenario *s = scenario_new(path, false, 0, errbuf);
    REQUIRE(s != NULL);
    CHECK_INT_EQ((long long)scenario_seed(s), 9);
    const struct scenario_rule *m = scenario_rule_for(s, "m");
    const struct scenario_rule *d = scenario_rule_for(s, "other");
    CHECK_NEAR(m->throttle_rate, 0, 0);
    CHECK_INT_EQ(m->latency_ms, 10); /* inherited */
    CHECK(m->refuse_forced_tools);
    CHECK_NEAR(d->throttle_rate, 0.5, 0);
    CHECK(!d->refuse_forced_tools);
    scenario_free(s);
}

static void sequence(const char *path, bool seed_set, uint64_t seed, char *out, int n)
{
    char errbuf[ASSAY_ERRBUF_SIZE];
    struct scenario *s = scenario_new(path, seed_set, seed, errbuf);
    REQUIRE(s != NULL);
    for (int i = 0; i < n; i++) {
        struct scenario_decision d;
        scenario_decide(s, "model", &d);
        out[i] = (char)('0' + d.fault + (d.malformed ? 10 : 0));
    }
    out[n] = '\0';
    scenario_free(s);
}

TEST_CASE(seeded_and_at_rate)
{
    const char *path = write_file("s.json", "{\"seed\": 42, \"default\": {\"throttle_rate\": 0.3, "
                                            "\"error_rate\": 0.1, \"malformed_rate\": 0.2}}");
    enum { N = 10000 };
    static char a[N + 1], b[N + 1], c[N + 1];
    sequence(path, false, 0, a, N);
    sequence(path, false, 0, b, N);
    sequence(path, true, 43, c, N);
    CHECK_STR_EQ(a, b);
    CHECK(strcmp(a, c) != 0);
    int throttled = 0, server = 0, malformed = 0;
    for (int i = 0; i < N; i++) {
        throttled += a[i] == '0' + SCENARIO_FAULT_THROTTLE;
        server += a[i] == '0' + SCENARIO_FAULT_INTERNAL || a[i] == '0' + SCENARIO_FAULT_UNAVAILABLE;
        malformed += a[i] > '9';
    }
    /* 4 standard deviations. */
    CHECK(throttled > 2820 && throttled < 3180);
    CHECK(server > 880 && server < 1120);
    CHECK(malformed > 1120 && malformed < 1280); /* 20% of the 60% that succeed */
}

TEST_CASE(latency_and_timeout)
{
    const char *path =
        write_file("s.json", "{\"default\": {\"latency_ms\": 100, \"jitter_ms\": 50}, "
                             "\"models\": {\"slow\": {\"timeout_rate\": 1, \"timeout_ms\": 700}}}");
    char errbuf[ASSAY_ERRBUF_SIZE];
    struct scenario *s = scenario_new(path, false, 0, errbuf);
    REQUIRE(s != NULL);
    int64_t lo = 1000, hi = 0;
    for (int i = 0; i < 1000; i++) {
        struct scenario_decision d;
        scenario_decide(s, "m", &d);
        lo = d.delay_ms < lo ? d.delay_ms : lo;
        hi = d.delay_ms > hi ? d.delay_ms : hi;
    }
    CHECK(lo >= 100 && lo < 105);
    CHECK(hi > 145 && hi < 150);
    struct scenario_decision d;
    scenario_decide(s, "slow", &d);
    CHECK_INT_EQ(d.fault, SCENARIO_FAULT_TIMEOUT);
    CHECK_INT_EQ(d.delay_ms, 700);
    scenario_free(s);
}

TEST_CASE(errors_name_the_field)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"[]", "must be an object"},
        {"{\"sed\": 1}", "unknown key \"sed\""},
        {"{\"seed\": -1}", "seed"},
        {"{\"default\": {\"error_rate\": \"high\"}}", "default.error_rate"},
        {"{\"default\": {\"latency_ms\": 1.5}}", "default.latency_ms"},
        {"{\"models\": {\"m\": {\"throttle_rate\": 0.7, \"timeout_rate\": 0.7}}}", "models[\"m\"]"},
        {"{\"models\": {\"m\": {\"malformed\": []}}}", "models[\"m\"].malformed"},
        {"{\"default\": {\"answers\": [{\"match\": 1}]}}", "default.answers"},
        {"{\"default\": {\"not_found\": 1}}", "default.not_found"},
        {"{\"seed\": 1, \"seed\": 2}", "line 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *path = write_file("bad.json", cases[i].text);
        char errbuf[ASSAY_ERRBUF_SIZE] = "";
        struct scenario *s = scenario_new(path, false, 0, errbuf);
        CHECK(s == NULL);
        if (!strstr(errbuf, cases[i].want))
            CHECK_STR_EQ(errbuf, cases[i].want);
        scenario_free(s);
    }
}
