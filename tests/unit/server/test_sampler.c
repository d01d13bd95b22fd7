/* Unit tests for server/sampler: determinism, rates, force and feedback, the cost cap. */
#include "server/sampler.h"
#include "tests/unit/test.h"

static struct config_app app_cfg(double rate, int64_t cap)
{
    struct config_app a = {0};
    a.name = "support";
    a.sample_rate = rate;
    a.max_judged_per_minute = cap;
    a.sample_negative_feedback = 1;
    return a;
}

TEST_CASE(deterministic)
{
    struct sampler *s1 = sampler_new(NULL), *s2 = sampler_new(NULL);
    struct config_app a = app_cfg(0.5, 0);
    for (int i = 0; i < 1000; i++) {
        char id[32];
        snprintf(id, sizeof id, "id-%d", i);
        CHECK_INT_EQ(sampler_decide(s1, &a, "support", id, false, false, NULL),
                     sampler_decide(s2, &a, "support", id, false, false, NULL));
    }
    /* stable across versions: a fixed value of the hash */
    CHECK(sampler_hash_unit("support", "id-1") == sampler_hash_unit("support", "id-1"));
    CHECK(sampler_hash_unit("support", "id-1") != sampler_hash_unit("support2", "id-1"));
    CHECK(sampler_hash_unit("ab", "c") != sampler_hash_unit("a", "bc"));
    sampler_free(s1);
    sampler_free(s2);
    sampler_free(NULL);
}

static void check_rate(double rate)
{
    struct sampler *s = sampler_new(NULL);
    struct config_app a = app_cfg(rate, 0);
    int n = 100000, k = 0;
    for (int i = 0; i < n; i++) {
        char id[40];
        snprintf(id, sizeof id, "%08x-req-%d", (unsigned)i * 2654435761u, i);
        k += sampler_decide(s, &a, "support", id, false, false, NULL) == SAMPLER_SAMPLED;
    }
    CHECK_NEAR((double)k / n, rate, 0.01);
    sampler_free(s);
}

TEST_CASE(rates)
{
    check_rate(0.25);
    check_rate(0.05);
    check_rate(0.5);
    check_rate(0.0);
    check_rate(1.0);
}

TEST_CASE(hash_is_uniform)
{
    /* 10 buckets of 100k sequential UUID-like ids: each within 1% of 10k */
    int counts[10] = {0};
    for (int i = 0; i < 100000; i++) {
        char id[40];
        snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", i);
        double u = sampler_hash_unit("app", id);
        REQUIRE(u >= 0 && u < 1);
        counts[(int)(u * 10)]++;
    }
    for (int b = 0; b < 10; b++)
        CHECK(counts[b] > 9000 && counts[b] < 11000);
}

TEST_CASE(force_and_feedback)
{
    struct sampler *s = sampler_new(NULL);
    struct config_app a = app_cfg(0.0, 0);
    enum sampler_reason why;
    CHECK_INT_EQ(sampler_decide(s, &a, "support", "x", false, false, &why), SAMPLER_NOT_SAMPLED);
    CHECK_INT_EQ(sampler_decide(s, &a, "support", "x", true, false, &why), SAMPLER_SAMPLED);
    CHECK_INT_EQ(why, SAMPLER_BY_FORCE);
    CHECK_INT_EQ(sampler_decide(s, &a, "support", "x", false, true, &why), SAMPLER_SAMPLED);
    CHECK_INT_EQ(why, SAMPLER_BY_FEEDBACK);
    a.sample_negative_feedback = 0;
    CHECK_INT_EQ(sampler_decide(s, &a, "support", "x", false, true, &why), SAMPLER_NOT_SAMPLED);
    sampler_free(s);
}

TEST_CASE(cost_cap)
{
    volatile int64_t now = 1700000000000LL - 1700000000000LL % 60000;
    struct clock clk;
    clock_manual_init(&clk, &now);
    struct sampler *s = sampler_new(&clk);
    struct config_app a = app_cfg(1.0, 3);
    int sampled = 0, dropped = 0;
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        enum sampler_decision d = sampler_decide(s, &a, "support", id, false, false, NULL);
        sampled += d == SAMPLER_SAMPLED;
        dropped += d == SAMPLER_DROPPED;
    }
    CHECK_INT_EQ(sampled, 3);
    CHECK_INT_EQ(dropped, 7);
    /* another app has its own window */
    CHECK_INT_EQ(sampler_decide(s, &a, "other", "1", false, false, NULL), SAMPLER_SAMPLED);
    /* force is never dropped; feedback is */
    CHECK_INT_EQ(sampler_decide(s, &a, "support", "f", true, false, NULL), SAMPLER_SAMPLED);
    CHECK_INT_EQ(sampler_decide(s, &a, "support", "g", false, true, NULL), SAMPLER_DROPPED);
    /* a released slot can be used again */
    sampler_release(s, "support", 1);
    CHECK_INT_EQ(sampler_decide(s, &a, "support", "h", false, false, NULL), SAMPLER_DROPPED);
    sampler_release(s, "support", 2);
    CHECK_INT_EQ(sampler_decide(s, &a, "support", "h", false, false, NULL), SAMPLER_SAMPLED);
    /* the next minute starts afresh */
    now += 60000;
    CHECK_INT_EQ(sampler_decide(s, &a, "support", "i", false, false, NULL), SAMPLER_SAMPLED);
    /* not-sampled samples do not count toward the cap */
    struct config_app z = app_cfg(0.0, 1);
    CHECK_INT_EQ(sampler_decide(s, &z, "zero", "a", false, false, NULL), SAMPLER_NOT_SAMPLED);
    CHECK_INT_EQ(sampler_decide(s, &z, "zero", "b", true, false, NULL), SAMPLER_SAMPLED);
    sampler_free(s);
}

TEST_CASE(many_apps_pruned)
{
    volatile int64_t now = 60000;
    struct clock clk;
    clock_manual_init(&clk, &now);
    struct sampler *s = sampler_new(&clk);
    struct config_app a = app_cfg(1.0, 1);
    for (int i = 0; i < 3000; i++) {
        char app[16];
        snprintf(app, sizeof app, "app%d", i);
        if (i % 1000 == 0)
            now += 60000;
        CHECK_INT_EQ(sampler_decide(s, &a, app, "x", false, false, NULL), SAMPLER_SAMPLED);
    }
    sampler_free(s);
}
