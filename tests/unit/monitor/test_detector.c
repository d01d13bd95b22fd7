/*
 * Unit tests for monitor/detector: config parsing, warm-up, an alarm's
 * fields, hysteresis, rebaseline, and the JSON round trip of the state (a
 * restored detector carries on exactly like the original, with no new
 * warm-up). The statistical performance is measured in test_detector_sim.c.
 */
#include "monitor/detector.h"
#include "common/rng.h"
#include "tests/unit/test.h"

#include <math.h>

static double normal_score(struct rng *r, double mean, double sd)
{
    double x = mean + sd * rng_normal(r);
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

static struct detector *new_default(void)
{
    struct detector_config c;
    detector_config_init(&c);
    return detector_new(&c);
}

TEST_CASE(config_json)
{
    struct detector_config c;
    char err[ASSAY_ERRBUF_SIZE] = "";
    detector_config_init(&c);
    CHECK_INT_EQ(c.warmup_samples, 300);
    CHECK_INT_EQ(detector_config_check(&c, err), ASSAY_OK);
    json_t *j = json_loads("{\"warmup_samples\": 100, \"reference_k\": [0.3, 0.6, 1.0],"
                           " \"kind\": \"likert\", \"target_arl0\": 50000,"
                           " \"autocorrelation\": false, \"confirm_alpha\": 0.05}",
                           0, NULL);
    REQUIRE(j);
    CHECK_INT_EQ(detector_config_from_json(&c, j, err), ASSAY_OK);
    CHECK_INT_EQ(c.warmup_samples, 100);
    CHECK_INT_EQ(c.n_charts, 3);
    CHECK_NEAR(c.reference_k[2], 1.0, 0);
    CHECK_INT_EQ(c.kind, DETECTOR_KIND_LIKERT);
    CHECK_INT_EQ(c.autocorrelation, 0);
    CHECK_NEAR(c.target_arl0, 50000, 0);
    json_decref(j);

    const char *bad[] = {"{\"warmup\": 100}",
                         "{\"warmup_samples\": \"100\"}",
                         "{\"warmup_samples\": 5}",
                         "{\"reference_k\": []}",
                         "{\"kind\": \"stars\"}",
                         "{\"max_rho\": 0.99}",
                         "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        detector_config_init(&c);
        j = json_loads(bad[i], 0, NULL);
        REQUIRE(j);
        err[0] = 0;
        CHECK_INT_EQ(detector_config_from_json(&c, j, err), ASSAY_ERR_CONFIG);
        CHECK(err[0] != 0);
        json_decref(j);
    }
    detector_config_init(&c);
    j = json_loads("{\"warmup\": 100}", 0, NULL);
    detector_config_from_json(&c, j, err);
    CHECK(strstr(err, "warmup") != NULL);
    json_decref(j);
}

TEST_CASE(warmup_and_kinds)
{
    struct rng r;
    rng_seed(&r, 1);
    struct detector *d = new_default();
    struct detector_event ev;
    struct detector_summary s;
    for (int i = 0; i < 299; i++)
        CHECK_INT_EQ(detector_update(d, normal_score(&r, 0.7, 0.1), &ev), 0);
    CHECK_INT_EQ(detector_state_get(d), DETECTOR_WARMING_UP);
    detector_update(d, 0.7, &ev);
    CHECK_INT_EQ(detector_state_get(d), DETECTOR_OK);
    detector_summary_get(d, &s);
    CHECK_INT_EQ(s.kind, DETECTOR_KIND_CONTINUOUS);
    CHECK_NEAR(s.baseline_mean, 0.7, 0.02);
    CHECK_NEAR(s.baseline_sd, 0.1, 0.015);
    CHECK(s.threshold > 1);
    CHECK_INT_EQ(s.count, 300);
    detector_free(d);

    d = new_default();
    for (int i = 0; i < 300; i++)
        detector_update(d, rng_uniform(&r) < 0.9 ? 1 : 0, &ev);
    detector_summary_get(d, &s);
    CHECK_INT_EQ(s.kind, DETECTOR_KIND_PASS_FAIL);
    detector_free(d);

    d = new_default();
    for (int i = 0; i < 300; i++)
        detector_update(d, (double)rng_below(&r, 5) / 4, &ev);
    detector_summary_get(d, &s);
    CHECK_INT_EQ(s.kind, DETECTOR_KIND_LIKERT);
    CHECK_STR_EQ(detector_kind_name(s.kind), "likert");
    CHECK_STR_EQ(detector_state_name(s.state), "ok");
    detector_free(d);
    detector_free(NULL);
}

TEST_CASE(robust_to_warmup_outliers)
{
    struct rng r;
    rng_seed(&r, 2);
    struct detector *d = new_default();
    struct detector_event ev;
    for (int i = 0; i < 300; i++)
        detector_update(d, i % 100 == 50 ? 0.0 : normal_score(&r, 0.7, 0.1), &ev);
    struct detector_summary s;
    detector_summary_get(d, &s);
    /* Three zeros would pull a plain sd up to about 0.12. */
    CHECK_NEAR(s.baseline_mean, 0.7, 0.015);
    CHECK(s.baseline_sd < 0.11);
    detector_free(d);
}

/* Feeds n scores of the given mean and returns the index of the first event (or -1). */
static long feed(struct detector *d, struct rng *r, int n, double mean, uint64_t *idx,
                 struct detector_event *first)
{
    long at = -1;
    struct detector_event ev;
    for (int i = 0; i < n; i++) {
        if (detector_update(d, normal_score(r, mean, 0.1), &ev) && at < 0) {
            at = (long)*idx;
            *first = ev;
        }
        (*idx)++;
    }
    return at;
}

TEST_CASE(alarm_fields_and_hysteresis)
{
    struct rng r;
    rng_seed(&r, 3);
    struct detector *d = new_default();
    struct detector_event ev = {0};
    uint64_t idx = 0;
    CHECK_INT_EQ(feed(d, &r, 500, 0.7, &idx, &ev), -1);
    /* A 1 sd drop from sample 500. */
    long at = feed(d, &r, 300, 0.6, &idx, &ev);
    REQUIRE(at >= 500 && at < 580);
    CHECK_INT_EQ(ev.state, DETECTOR_ALARM);
    CHECK_INT_EQ(ev.index, at);
    CHECK((long)ev.change_point >= 470 && (long)ev.change_point <= at);
    CHECK_NEAR(ev.baseline_mean, 0.7, 0.02);
    CHECK_NEAR(ev.current_mean, 0.6, 0.04);
    CHECK_NEAR(ev.effect_size, -1, 0.45);
    CHECK(ev.p_value < 0.01);
    CHECK(ev.statistic > ev.threshold);
    CHECK_INT_EQ(detector_state_get(d), DETECTOR_ALARM);

    /* One perfect score does not clear the alarm. */
    CHECK_INT_EQ(detector_update(d, 1.0, &ev), 0);
    idx++;
    CHECK_INT_EQ(detector_state_get(d), DETECTOR_ALARM);
    /* Recovery clears it within a few dozen samples. */
    at = feed(d, &r, 400, 0.7, &idx, &ev);
    REQUIRE(at > 801 && at < 1000);
    CHECK_INT_EQ(ev.state, DETECTOR_OK);
    CHECK(isnan(ev.p_value));
    /* The mean since the recovery chart left zero: back above half the drop. */
    CHECK(ev.current_mean > 0.65);
    detector_free(d);
}

TEST_CASE(no_clear_while_drop_persists)
{
    /* 20 series, each with a drop of 1 sd that lasts 3000 samples: one event each. */
    for (uint64_t seed = 0; seed < 20; seed++) {
        struct rng r;
        rng_seed(&r, 100 + seed);
        struct detector *d = new_default();
        struct detector_event ev;
        int events = 0;
        for (int i = 0; i < 3500; i++)
            events += detector_update(d, normal_score(&r, i < 500 ? 0.7 : 0.6, 0.1), &ev);
        CHECK_INT_EQ(events, 1);
        CHECK_INT_EQ(detector_state_get(d), DETECTOR_ALARM);
        detector_free(d);
    }
}

TEST_CASE(improvement_never_alarms)
{
    struct rng r;
    rng_seed(&r, 4);
    struct detector *d = new_default();
    struct detector_event ev;
    uint64_t idx = 0;
    CHECK_INT_EQ(feed(d, &r, 400, 0.6, &idx, &ev), -1);
    CHECK_INT_EQ(feed(d, &r, 5000, 0.9, &idx, &ev), -1);
    detector_free(d);
}

TEST_CASE(rebaseline)
{
    struct rng r;
    rng_seed(&r, 5);
    struct detector *d = new_default();
    struct detector_event ev;
    uint64_t idx = 0;
    feed(d, &r, 400, 0.8, &idx, &ev);
    CHECK(feed(d, &r, 200, 0.5, &idx, &ev) >= 0);
    CHECK_INT_EQ(detector_state_get(d), DETECTOR_ALARM);
    detector_rebaseline(d);
    CHECK_INT_EQ(detector_state_get(d), DETECTOR_WARMING_UP);
    /* The new level is the new baseline: no alarm. */
    CHECK_INT_EQ(feed(d, &r, 3000, 0.5, &idx, &ev), -1);
    struct detector_summary s;
    detector_summary_get(d, &s);
    CHECK_NEAR(s.baseline_mean, 0.5, 0.02);
    CHECK_INT_EQ(s.count, 3600);
    detector_free(d);
}

/* Runs a and b side by side on the same scores; they must agree on every event. */
static void run_pair(struct detector *a, struct detector *b, struct rng *r, int n, double mean,
                     int *events)
{
    for (int i = 0; i < n; i++) {
        double x = normal_score(r, mean, 0.1);
        struct detector_event ea, eb;
        int ca = detector_update(a, x, &ea), cb = detector_update(b, x, &eb);
        CHECK_INT_EQ(ca, cb);
        if (ca && cb) {
            (*events)++;
            CHECK_INT_EQ(ea.state, eb.state);
            CHECK_INT_EQ(ea.index, eb.index);
            CHECK_INT_EQ(ea.change_point, eb.change_point);
            CHECK(ea.current_mean == eb.current_mean);
            CHECK(ea.p_value == eb.p_value || (isnan(ea.p_value) && isnan(eb.p_value)));
        }
    }
}

static struct detector *round_trip(const struct detector *d)
{
    json_t *j = detector_to_json(d);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    REQUIRE(text);
    json_t *back = json_loads(text, 0, NULL);
    free(text);
    REQUIRE(back);
    char err[ASSAY_ERRBUF_SIZE] = "";
    struct detector *copy = detector_from_json(back, err);
    if (!copy)
        fprintf(stderr, "restore failed: %s\n", err);
    json_decref(back);
    REQUIRE(copy);
    return copy;
}

TEST_CASE(state_json_round_trip)
{
    struct rng r;
    rng_seed(&r, 6);
    struct detector_config c;
    detector_config_init(&c);
    c.window_samples = 150; /* so that the ring wraps */
    struct detector *a = detector_new(&c);
    struct detector_event ev;
    /* Mid warm-up. */
    for (int i = 0; i < 120; i++)
        detector_update(a, normal_score(&r, 0.7, 0.1), &ev);
    struct detector *b = round_trip(a);
    int events = 0;
    run_pair(a, b, &r, 400, 0.7, &events);
    CHECK_INT_EQ(detector_state_get(b), DETECTOR_OK);
    /* Monitoring, mid-excursion of a drop, then in alarm, then recovered. */
    run_pair(a, b, &r, 10, 0.6, &events);
    struct detector *b2 = round_trip(a);
    detector_free(b);
    b = b2;
    CHECK_INT_EQ(detector_state_get(b), DETECTOR_OK);
    run_pair(a, b, &r, 200, 0.6, &events);
    CHECK_INT_EQ(detector_state_get(b), DETECTOR_ALARM);
    b2 = round_trip(a);
    detector_free(b);
    b = b2;
    run_pair(a, b, &r, 500, 0.7, &events);
    CHECK_INT_EQ(events, 2);
    /* The serialised forms agree too. */
    json_t *ja = detector_to_json(a), *jb = detector_to_json(b);
    CHECK(json_equal(ja, jb));
    json_decref(ja);
    json_decref(jb);
    detector_free(a);
    detector_free(b);

    /* A Likert detector keeps its cut charts. */
    a = new_default();
    for (int i = 0; i < 300; i++)
        detector_update(a, (double)rng_below(&r, 5) / 4, &ev);
    b = round_trip(a);
    ja = detector_to_json(a);
    jb = detector_to_json(b);
    CHECK(json_equal(ja, jb));
    CHECK(json_array_size(json_object_get(ja, "charts")) > 2);
    json_decref(ja);
    json_decref(jb);
    detector_free(a);
    detector_free(b);
}

TEST_CASE(state_json_rejects_garbage)
{
    char err[ASSAY_ERRBUF_SIZE];
    const char *bad[] = {"{}", "{\"version\": 1}", "{\"version\": 2, \"config\": {}}",
                         "{\"version\": 1, \"config\": {}, \"state\": \"ok\", \"kind\": \"auto\"}",
                         "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = json_loads(bad[i], 0, NULL);
        REQUIRE(j);
        err[0] = 0;
        CHECK(detector_from_json(j, err) == NULL);
        CHECK(err[0] != 0);
        json_decref(j);
    }
    /* A real state with one field broken. */
    struct detector *a = new_default();
    struct detector_event ev;
    for (int i = 0; i < 300; i++)
        detector_update(a, 0.5 + 0.001 * (i % 7), &ev);
    json_t *j = detector_to_json(a);
    json_object_set_new(json_object_get(j, "baseline"), "sd_lr", json_string("x"));
    CHECK(detector_from_json(j, err) == NULL);
    CHECK(strstr(err, "baseline") != NULL);
    json_decref(j);
    detector_free(a);
}
