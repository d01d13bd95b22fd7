/*
 * monitor/stats: the distributions and tests the monitor reports with.
 * Normal, Student t and chi-square distribution functions and quantiles;
 * Welch's t-test; the Mann-Whitney U test; the Wilcoxon signed-rank test
 * (paired); the two-proportion z-test; a bootstrap confidence interval of a
 * difference of means.
 *
 * Pure functions of their arguments: thread-safe, no global state. Arrays are
 * borrowed and left unaltered; a test writes its result into a struct the
 * caller holds. Tests return ASSAY_OK, or ASSAY_ERR_INVALID_ARGUMENT (and
 * leave *out untouched) when the samples cannot support the test.
 *
 * Callers: monitor/detector (the p-value of an alarm), `assay eval` (golden
 * runs compared run over run), the simulations in the tests.
 */
#ifndef ASSAY_MONITOR_STATS_H
#define ASSAY_MONITOR_STATS_H

#include <stddef.h>

#include "common/err.h"
#include "common/rng.h"

/* Standard normal: P(Z <= x), P(Z > x) (accurate far in the upper tail). */
double stats_normal_cdf(double x);
double stats_normal_sf(double x);
/* The x with P(Z <= x) = p; -inf at 0, +inf at 1, NaN outside [0, 1]. */
double stats_normal_quantile(double p);

/* Student t with df > 0 degrees of freedom (df need not be an integer). */
double stats_t_cdf(double t, double df);
double stats_t_quantile(double p, double df);

/* Chi-square with df > 0 degrees of freedom; cdf is 0 for x <= 0. */
double stats_chi2_cdf(double x, double df);
double stats_chi2_quantile(double p, double df);

/* Regularised incomplete gamma P(a, x) and incomplete beta I_x(a, b). */
double stats_gamma_p(double a, double x);
double stats_beta_inc(double a, double b, double x);

/*
 * The alternative hypothesis, for samples x and y: STATS_LESS means "x tends
 * to be smaller than y" (for the detector: the recent scores are lower than
 * the baseline's).
 */
enum stats_alternative { STATS_TWO_SIDED, STATS_LESS, STATS_GREATER };

struct stats_test {
    double statistic; /* t, U (of x), V (sum of positive ranks) or z */
    double df;        /* Welch's degrees of freedom; 0 where not applicable */
    double z;         /* the normal score behind p_value; 0 when exact */
    double p_value;
    int exact; /* 1 when p_value comes from the exact distribution */
};

/*
 * Welch's unequal-variance t-test of mean(x) - mean(y). Needs nx, ny >= 2 and
 * not both variances zero.
 */
enum assay_err stats_welch_t_test(const double *x, size_t nx, const double *y, size_t ny,
                                  enum stats_alternative alt, struct stats_test *out);

/*
 * Mann-Whitney U (Wilcoxon rank-sum) test; statistic is U of x, the number of
 * pairs (x_i, y_j) with x_i > y_j plus half the ties (R's W). Without ties and
 * with nx, ny < 50 the p-value is exact; otherwise it is the normal
 * approximation with the tie-corrected variance and a continuity correction
 * (good for nx, ny above about 20). Needs nx, ny >= 1. Allocates scratch.
 */
enum assay_err stats_mann_whitney_u_test(const double *x, size_t nx, const double *y, size_t ny,
                                         enum stats_alternative alt, struct stats_test *out);

/*
 * Wilcoxon signed-rank test on the paired differences x[i] - y[i]; zero
 * differences are dropped. Exact below 50 non-zero differences without ties,
 * otherwise normal with tie correction and continuity correction. Needs at
 * least one non-zero difference.
 */
enum assay_err stats_wilcoxon_signed_rank_test(const double *x, const double *y, size_t n,
                                               enum stats_alternative alt, struct stats_test *out);

/*
 * Two-proportion z-test of k1/n1 - k2/n2 with the pooled variance. Needs
 * n1, n2 >= 1, k <= n, and a pooled proportion strictly between 0 and 1.
 */
enum assay_err stats_two_proportion_z_test(size_t k1, size_t n1, size_t k2, size_t n2,
                                           enum stats_alternative alt, struct stats_test *out);

/*
 * Percentile bootstrap confidence interval of mean(x) - mean(y): resamples
 * both samples with replacement n_resamples times, drawing from the caller's
 * generator (which advances), and returns the (1-level)/2 and (1+level)/2
 * quantiles in *lo, *hi. Needs nx, ny >= 1, 0 < level < 1, n_resamples >= 10.
 */
enum assay_err stats_bootstrap_mean_diff_ci(const double *x, size_t nx, const double *y, size_t ny,
                                            double level, size_t n_resamples, struct rng *r,
                                            double *lo, double *hi);

/* Mean and sample variance (n - 1); variance 0 when n < 2. */
void stats_mean_var(const double *x, size_t n, double *mean, double *var);

#endif
