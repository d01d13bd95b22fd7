/*
 * Unit tests for monitor/stats against published reference values. Sources:
 *  - standard normal: Abramowitz & Stegun (1964) table 26.1 and the usual
 *    critical values (1.959963984540054 for 0.975, ...), as printed by R's
 *    pnorm/qnorm;
 *  - Student t: t tables (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2) to their
 *    printed precision, and the closed forms for 1 and 2 degrees of freedom;
 *  - chi-square: NIST/SEMATECH e-Handbook table 1.3.6.7.4 and the closed form
 *    for 2 degrees of freedom, P = 1 - exp(-x/2);
 *  - Welch: Student's sleep data (Cushny & Peebles), R's t.test example:
 *    t = -1.8608, df = 17.776, p = 0.07939;
 *  - Mann-Whitney and Wilcoxon: Hollander & Wolfe (1973), the examples of R's
 *    wilcox.test: W = 35, p = 0.1272 and V = 40, p = 0.01953.
 */
#include "monitor/stats.h"
#include "tests/unit/test.h"

#include <math.h>

TEST_CASE(normal_cdf)
{
    CHECK_NEAR(stats_normal_cdf(0), 0.5, 1e-15);
    CHECK_NEAR(stats_normal_cdf(1), 0.8413447460685429, 1e-14);
    CHECK_NEAR(stats_normal_cdf(1.96), 0.9750021048517795, 1e-14);
    CHECK_NEAR(stats_normal_cdf(-3), 0.0013498980316301035, 1e-16);
    CHECK_NEAR(stats_normal_sf(8) / 6.220960574271784e-16, 1, 1e-10);
}

TEST_CASE(normal_quantile)
{
    CHECK_NEAR(stats_normal_quantile(0.975), 1.959963984540054, 1e-13);
    CHECK_NEAR(stats_normal_quantile(0.995), 2.5758293035489004, 1e-13);
    CHECK_NEAR(stats_normal_quantile(0.999), 3.090232306167813, 1e-12);
    CHECK_NEAR(stats_normal_quantile(0.05), -1.6448536269514722, 1e-13);
    CHECK_NEAR(stats_normal_quantile(1e-10), -6.361340902404056, 1e-10);
    CHECK_NEAR(stats_normal_quantile(0.5), 0, 1e-15);
    CHECK(isinf(stats_normal_quantile(0)) && stats_normal_quantile(0) < 0);
    CHECK(isnan(stats_normal_quantile(1.5)));
    for (double p = 0.001; p < 1; p += 0.0137)
        CHECK_NEAR(stats_normal_cdf(stats_normal_quantile(p)), p, 1e-14);
}

TEST_CASE(t_distribution)
{
    /* Closed forms: df 1 (Cauchy) and df 2. */
    for (double t = -20; t <= 20; t += 0.73) {
        CHECK_NEAR(stats_t_cdf(t, 1), 0.5 + atan(t) / M_PI, 1e-13);
        CHECK_NEAR(stats_t_cdf(t, 2), 0.5 + t / (2 * sqrt(2 + t * t)), 1e-13);
    }
    /* Table values (two-sided 5% and 1% critical values and friends). */
    CHECK_NEAR(stats_t_quantile(0.975, 1), 12.706204736174707, 1e-9);
    CHECK_NEAR(stats_t_quantile(0.975, 10), 2.228138851986522, 1e-9);
    CHECK_NEAR(stats_t_quantile(0.95, 5), 2.015048372669157, 1e-9);
    CHECK_NEAR(stats_t_quantile(0.975, 30), 2.042272456301238, 1e-9);
    CHECK_NEAR(stats_t_quantile(0.99, 20), 2.528, 5e-4);
    CHECK_NEAR(stats_t_quantile(0.995, 2), 9.925, 5e-4);
    CHECK_NEAR(stats_t_quantile(0.025, 10), -2.228138851986522, 1e-9);
    CHECK_NEAR(stats_t_cdf(2.228138851986522, 10), 0.975, 1e-12);
    /* Large df tends to the normal. */
    CHECK_NEAR(stats_t_quantile(0.975, 1e7), 1.959963984540054, 1e-5);
    for (double p = 0.01; p < 1; p += 0.049)
        CHECK_NEAR(stats_t_cdf(stats_t_quantile(p, 7.5), 7.5), p, 1e-12);
}

TEST_CASE(chi2_distribution)
{
    for (double x = 0.1; x < 40; x += 0.77)
        CHECK_NEAR(stats_chi2_cdf(x, 2), 1 - exp(-x / 2), 1e-13);
    CHECK_NEAR(stats_chi2_quantile(0.95, 1), 3.841458820694124, 1e-9);
    CHECK_NEAR(stats_chi2_quantile(0.95, 2), 5.991464547107979, 1e-9);
    CHECK_NEAR(stats_chi2_quantile(0.95, 10), 18.307038053275146, 1e-8);
    CHECK_NEAR(stats_chi2_quantile(0.99, 5), 15.08627246938899, 1e-8);
    CHECK_NEAR(stats_chi2_quantile(0.05, 10), 3.940299136119, 1e-8);
    CHECK_NEAR(stats_chi2_quantile(0.95, 20), 31.410, 5e-4);
    CHECK_NEAR(stats_chi2_quantile(0.01, 30), 14.953, 5e-4);
    CHECK_NEAR(stats_chi2_cdf(3.841458820694124, 1), 0.95, 1e-12);
    CHECK_NEAR(stats_chi2_cdf(0, 3), 0, 0);
    for (double p = 0.01; p < 1; p += 0.049)
        CHECK_NEAR(stats_chi2_cdf(stats_chi2_quantile(p, 3.3), 3.3), p, 1e-12);
}

static const double sleep1[] = {0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0};
static const double sleep2[] = {1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4};

TEST_CASE(welch_t_test)
{
    struct stats_test r;
    REQUIRE_INT_EQ(stats_welch_t_test(sleep1, 10, sleep2, 10, STATS_TWO_SIDED, &r), ASSAY_OK);
    CHECK_NEAR(r.statistic, -1.8608, 5e-5);
    CHECK_NEAR(r.df, 17.776, 5e-4);
    CHECK_NEAR(r.p_value, 0.07939, 5e-6);
    REQUIRE_INT_EQ(stats_welch_t_test(sleep1, 10, sleep2, 10, STATS_LESS, &r), ASSAY_OK);
    CHECK_NEAR(r.p_value, 0.07939 / 2, 5e-6);
    const double one[] = {1};
    CHECK_INT_EQ(stats_welch_t_test(one, 1, sleep2, 10, STATS_LESS, &r),
                 ASSAY_ERR_INVALID_ARGUMENT);
    const double c[] = {1, 1, 1};
    CHECK_INT_EQ(stats_welch_t_test(c, 3, c, 3, STATS_LESS, &r), ASSAY_ERR_INVALID_ARGUMENT);
}

TEST_CASE(mann_whitney_exact)
{
    const double x[] = {0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46};
    const double y[] = {1.15, 0.88, 0.90, 0.74, 1.21};
    struct stats_test r;
    REQUIRE_INT_EQ(stats_mann_whitney_u_test(x, 10, y, 5, STATS_GREATER, &r), ASSAY_OK);
    CHECK_NEAR(r.statistic, 35, 0);
    CHECK_INT_EQ(r.exact, 1);
    CHECK_NEAR(r.p_value, 0.1272, 5e-5);
    /* The mirror image: y less than x, same p. */
    REQUIRE_INT_EQ(stats_mann_whitney_u_test(y, 5, x, 10, STATS_LESS, &r), ASSAY_OK);
    CHECK_NEAR(r.statistic, 15, 0);
    CHECK_NEAR(r.p_value, 0.1272, 5e-5);
    REQUIRE_INT_EQ(stats_mann_whitney_u_test(x, 10, y, 5, STATS_TWO_SIDED, &r), ASSAY_OK);
    CHECK_NEAR(r.p_value, 0.2544, 1e-4);
}

TEST_CASE(mann_whitney_ties_normal)
{
    /*
     * Tied data, so the normal approximation: U = 157.5, tie-corrected variance
     * nx*ny/12 * ((N+1) - sum(t^3 - t)/(N(N-1))), continuity-corrected z.
     * Expected values worked out from those formulas by hand (z = -2.7635496).
     */
    const double base_x[] = {1, 2, 2, 3, 3, 3, 4, 5}, base_y[] = {2, 3, 3, 4, 4, 5, 5, 5};
    double x[24], y[24];
    for (int i = 0; i < 24; i++) {
        x[i] = base_x[i % 8];
        y[i] = base_y[i % 8];
    }
    struct stats_test r;
    REQUIRE_INT_EQ(stats_mann_whitney_u_test(x, 24, y, 24, STATS_LESS, &r), ASSAY_OK);
    CHECK_NEAR(r.statistic, 157.5, 1e-9);
    CHECK_INT_EQ(r.exact, 0);
    CHECK_NEAR(r.z, -2.763549576413935, 1e-9);
    CHECK_NEAR(r.p_value, 0.002858820290685271, 1e-12);
}

TEST_CASE(wilcoxon_signed_rank)
{
    const double x[] = {1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30};
    const double y[] = {0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29};
    struct stats_test r;
    REQUIRE_INT_EQ(stats_wilcoxon_signed_rank_test(x, y, 9, STATS_GREATER, &r), ASSAY_OK);
    CHECK_NEAR(r.statistic, 40, 0);
    CHECK_INT_EQ(r.exact, 1);
    CHECK_NEAR(r.p_value, 0.01953, 5e-6);
    REQUIRE_INT_EQ(stats_wilcoxon_signed_rank_test(x, y, 9, STATS_TWO_SIDED, &r), ASSAY_OK);
    CHECK_NEAR(r.p_value, 0.03906, 5e-6);
    CHECK_INT_EQ(stats_wilcoxon_signed_rank_test(x, x, 9, STATS_LESS, &r),
                 ASSAY_ERR_INVALID_ARGUMENT);
}

TEST_CASE(two_proportion)
{
    /* 60/100 vs 45/100: pooled p = 0.525, z = 0.15 / sqrt(0.525*0.475*0.02). */
    struct stats_test r;
    REQUIRE_INT_EQ(stats_two_proportion_z_test(60, 100, 45, 100, STATS_TWO_SIDED, &r), ASSAY_OK);
    CHECK_NEAR(r.statistic, 2.123976976214366, 1e-12);
    CHECK_NEAR(r.p_value, 0.03367206885634585, 1e-12);
    REQUIRE_INT_EQ(stats_two_proportion_z_test(45, 100, 60, 100, STATS_LESS, &r), ASSAY_OK);
    CHECK_NEAR(r.p_value, 0.03367206885634585 / 2, 1e-12);
    CHECK_INT_EQ(stats_two_proportion_z_test(10, 10, 5, 5, STATS_LESS, &r),
                 ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(stats_two_proportion_z_test(11, 10, 5, 5, STATS_LESS, &r),
                 ASSAY_ERR_INVALID_ARGUMENT);
}

TEST_CASE(bootstrap_ci)
{
    struct rng g;
    rng_seed(&g, 42);
    double x[400], y[400];
    for (int i = 0; i < 400; i++) {
        x[i] = 0.6 + 0.1 * rng_normal(&g);
        y[i] = 0.5 + 0.1 * rng_normal(&g);
    }
    double lo, hi, lo2, hi2;
    struct rng a, b;
    rng_seed(&a, 7);
    rng_seed(&b, 7);
    REQUIRE_INT_EQ(stats_bootstrap_mean_diff_ci(x, 400, y, 400, 0.95, 2000, &a, &lo, &hi),
                   ASSAY_OK);
    REQUIRE_INT_EQ(stats_bootstrap_mean_diff_ci(x, 400, y, 400, 0.95, 2000, &b, &lo2, &hi2),
                   ASSAY_OK);
    CHECK(lo == lo2 && hi == hi2); /* seeded: reproducible */
    CHECK(lo < 0.1 && hi > 0.1);
    /* Width close to 2 * 1.96 * sqrt(2 * 0.01 / 400) = 0.0277. */
    CHECK_NEAR(hi - lo, 0.0277, 0.002);
    CHECK_INT_EQ(stats_bootstrap_mean_diff_ci(x, 0, y, 400, 0.95, 2000, &a, &lo, &hi),
                 ASSAY_ERR_INVALID_ARGUMENT);
}

TEST_CASE(rng_reproducible)
{
    struct rng a, b;
    rng_seed(&a, 1);
    rng_seed(&b, 1);
    for (int i = 0; i < 100; i++)
        CHECK(rng_next(&a) == rng_next(&b));
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) {
        double z = rng_normal(&a);
        s += z;
        s2 += z * z;
    }
    CHECK_NEAR(s / 100000, 0, 0.02);
    CHECK_NEAR(s2 / 100000, 1, 0.02);
    for (int i = 0; i < 1000; i++)
        CHECK(rng_below(&a, 7) < 7);
}
