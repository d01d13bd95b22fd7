/*
 * Unit tests for monitor/compare: the paired comparison behind `assay eval`.
 * The bootstrap interval and the Wilcoxon p-value are checked against
 * monitor/stats called directly (same seed, same data), the ordering of the
 * worse items by hand, and the regression rule (significant and beyond the
 * margin) on constructed drops.
 */
#include "monitor/compare.h"
#include "monitor/stats.h"
#include "tests/unit/test.h"

#include <math.h>
#include <string.h>

TEST_CASE(worse_items_largest_drop_first)
{
    struct compare_pair p[] = {
        {"a", 0.8, 0.2}, {"b", 0.9, 0.5}, {"c", 0.5, 0.5}, {"d", 0.3, 0.9}, {"e", 0.7, 0.1}};
    struct compare_options o;
    compare_options_init(&o);
    struct compare_result r;
    REQUIRE_INT_EQ(compare_scores(p, 5, &o, &r), ASSAY_OK);
    REQUIRE_INT_EQ(r.n_worse, 3);
    /* a and e drop by 0.6 (ties by id), then b by 0.4; c is unchanged, d better. */
    CHECK_STR_EQ(p[r.worse[0]].item_id, "a");
    CHECK_STR_EQ(p[r.worse[1]].item_id, "e");
    CHECK_STR_EQ(p[r.worse[2]].item_id, "b");
    CHECK_NEAR(r.mean_before, (0.8 + 0.9 + 0.5 + 0.3 + 0.7) / 5, 1e-12);
    CHECK_NEAR(r.mean_after, (0.2 + 0.5 + 0.5 + 0.9 + 0.1) / 5, 1e-12);
    CHECK_NEAR(r.delta, r.mean_after - r.mean_before, 1e-12);
    compare_result_clear(&r);
}

TEST_CASE(wilcoxon_matches_stats)
{
    struct compare_pair p[12];
    double before[12], after[12];
    for (int i = 0; i < 12; i++) {
        before[i] = 0.5 + 0.03 * i;
        after[i] = before[i] - 0.01 * ((i * 7) % 5) + (i == 3 ? 0.02 : 0);
        p[i] = (struct compare_pair){"x", before[i], after[i]};
    }
    struct compare_options o;
    compare_options_init(&o);
    struct compare_result r;
    REQUIRE_INT_EQ(compare_scores(p, 12, &o, &r), ASSAY_OK);
    struct stats_test t;
    REQUIRE_INT_EQ(stats_wilcoxon_signed_rank_test(after, before, 12, STATS_LESS, &t), ASSAY_OK);
    CHECK(r.has_p);
    CHECK_NEAR(r.p_value, t.p_value, 1e-15);
    compare_result_clear(&r);
}

TEST_CASE(bootstrap_seeded)
{
    struct compare_pair p[30];
    double diff[30];
    for (int i = 0; i < 30; i++) {
        double b = 0.4 + 0.02 * (i % 10), a = b - 0.05 + 0.01 * (i % 7);
        p[i] = (struct compare_pair){"x", b, a};
        diff[i] = a - b;
    }
    struct compare_options o;
    compare_options_init(&o);
    o.seed = 42;
    struct compare_result r1, r2;
    REQUIRE_INT_EQ(compare_scores(p, 30, &o, &r1), ASSAY_OK);
    REQUIRE_INT_EQ(compare_scores(p, 30, &o, &r2), ASSAY_OK);
    CHECK(r1.has_ci);
    /* The same seed gives the same interval, and it is monitor/stats' interval
     * of the mean paired difference. */
    CHECK(r1.ci_lo == r2.ci_lo && r1.ci_hi == r2.ci_hi);
    struct rng g;
    rng_seed(&g, 42);
    double zero = 0, lo, hi;
    REQUIRE_INT_EQ(stats_bootstrap_mean_diff_ci(diff, 30, &zero, 1, 0.95, 2000, &g, &lo, &hi),
                   ASSAY_OK);
    CHECK_NEAR(r1.ci_lo, lo, 1e-15);
    CHECK_NEAR(r1.ci_hi, hi, 1e-15);
    CHECK(r1.ci_lo <= r1.delta && r1.delta <= r1.ci_hi);
    CHECK(r1.ci_hi < 0);
    compare_result_clear(&r1);
    compare_result_clear(&r2);
}

TEST_CASE(margin_rule)
{
    /* 20 items, each 0.1 lower (with a little spread): significant. */
    struct compare_pair p[20];
    for (int i = 0; i < 20; i++) {
        double b = 0.6 + 0.01 * i;
        p[i] = (struct compare_pair){"x", b, b - 0.1 - 0.001 * i};
    }
    struct compare_options o;
    compare_options_init(&o);
    struct compare_result r;
    o.margin = 0.05;
    REQUIRE_INT_EQ(compare_scores(p, 20, &o, &r), ASSAY_OK);
    CHECK(r.p_value < 0.001);
    CHECK(r.regressed);
    compare_result_clear(&r);
    /* The same drop within a wider margin: significant, but not a regression. */
    o.margin = 0.2;
    REQUIRE_INT_EQ(compare_scores(p, 20, &o, &r), ASSAY_OK);
    CHECK(r.p_value < 0.001);
    CHECK(!r.regressed);
    compare_result_clear(&r);
    /* A large drop on two items only: beyond the margin, not significant. */
    struct compare_pair q[] = {{"a", 0.9, 0.1}, {"b", 0.9, 0.2}, {"c", 0.5, 0.5}};
    o.margin = 0.05;
    REQUIRE_INT_EQ(compare_scores(q, 3, &o, &r), ASSAY_OK);
    CHECK(-r.delta > o.margin);
    CHECK(r.p_value >= o.alpha);
    CHECK(!r.regressed);
    compare_result_clear(&r);
    /* Nothing changed: p = 1, nothing worse. */
    struct compare_pair same[] = {{"a", 0.5, 0.5}, {"b", 0.7, 0.7}};
    REQUIRE_INT_EQ(compare_scores(same, 2, &o, &r), ASSAY_OK);
    CHECK(!r.has_p && r.p_value == 1.0 && !r.regressed && r.n_worse == 0);
    compare_result_clear(&r);
    /* Better scores never regress. */
    for (int i = 0; i < 20; i++) {
        double t = p[i].before;
        p[i].before = p[i].after;
        p[i].after = t;
    }
    REQUIRE_INT_EQ(compare_scores(p, 20, &o, &r), ASSAY_OK);
    CHECK(!r.regressed && r.n_worse == 0 && r.delta > 0);
    compare_result_clear(&r);
}

TEST_CASE(bad_input)
{
    struct compare_options o;
    compare_options_init(&o);
    struct compare_result r;
    REQUIRE_INT_EQ(compare_scores(NULL, 0, &o, &r), ASSAY_OK);
    CHECK(r.n == 0 && !r.regressed && !r.has_ci);
    compare_result_clear(&r);
    struct compare_pair p[] = {{"a", 1.5, 0.5}};
    CHECK_INT_EQ(compare_scores(p, 1, &o, &r), ASSAY_ERR_INVALID_ARGUMENT);
    p[0].before = NAN;
    CHECK_INT_EQ(compare_scores(p, 1, &o, &r), ASSAY_ERR_INVALID_ARGUMENT);
    p[0].before = 0.5;
    o.level = 1.0;
    CHECK_INT_EQ(compare_scores(p, 1, &o, &r), ASSAY_ERR_INVALID_ARGUMENT);
    compare_result_clear(&r);
}
